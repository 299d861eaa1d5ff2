"""An experiment survives a kill -9 of `wonderland up`: started again on the same state
directory, the daemon finishes it with the trials it had, no assignment handed out twice."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from _support.daemon import WonderlandDaemon, wait_for
from tuning_support import QUADRATIC, experiment

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The quadratic objective, a little slower, so that trials are running at the kill; each
# process leaves its pid in the folder argv[2] names.
SLOW = (
    "import os, pathlib, sys, time; "
    "pathlib.Path(sys.argv[2], str(os.getpid())).touch(); time.sleep(0.8); " + QUADRATIC
)
MAX_TRIALS = 8


def _get(daemon: WonderlandDaemon, *args: str) -> Any:
    return json.loads(daemon.ok("get", *args, "-o", "json"))


def _trials(daemon: WonderlandDaemon) -> list[dict[str, Any]]:
    found = _get(daemon, "trials", "-l", "katib.kubeflow.org/experiment=crash")
    return list(found.get("items") or [])


def _state(trial: dict[str, Any]) -> str:
    conditions = (trial.get("status") or {}).get("conditions") or []
    return str(conditions[-1]["type"]) if conditions else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_experiment_finishes_after_a_kill_9_of_the_daemon(tmp_path: Path) -> None:
    daemon = WonderlandDaemon.in_tmp(tmp_path)
    pids = tmp_path / "pids"
    pids.mkdir()
    body = experiment(
        "crash",
        algorithm="tpe",
        settings={"n_startup_trials": "3", "random_state": "11"},
        command=[sys.executable, "-c", SLOW, "${trialParameters.x}", str(pids)],
        max_trials=MAX_TRIALS,
        parallel=2,
    )
    # An interrupted trial's pod is marked Failed after the restart (restartPolicy Never);
    # the Job's backoffLimit gives it another pod, as on a node that rebooted.
    body["spec"]["trialTemplate"]["trialSpec"]["spec"]["backoffLimit"] = 2
    try:
        daemon.start()
        daemon.ok("apply", "-f", "-", stdin=json.dumps(body))

        def some_succeeded() -> list[dict[str, Any]]:
            trials = _trials(daemon)
            done = [t for t in trials if _state(t) == "Succeeded"]
            running = [t for t in trials if _state(t) in ("Running", "Created")]
            return done if len(done) >= 2 and running else []

        before = wait_for(some_succeeded, 90, "two succeeded trials and one running")
        daemon.kill(signal.SIGKILL)
        assert daemon.proc is not None and daemon.proc.returncode == -signal.SIGKILL
        # The trial processes die with the daemon (none is left running unowned).
        started = [int(p.name) for p in pids.iterdir()]
        wait_for(lambda: not any(_alive(pid) for pid in started), 10, "trial processes to end")
        daemon.start()

        def finished() -> dict[str, Any] | None:
            status = _get(daemon, "experiment", "crash").get("status") or {}
            for c in status.get("conditions") or []:
                if c["type"] in ("Succeeded", "Failed") and c["status"] == "True":
                    return status
            return None

        status = wait_for(finished, 180, "the experiment to finish", log=daemon.log)
        assert status["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached", status
        trials = _trials(daemon)
        assert len(trials) == MAX_TRIALS
        assert status["trialsSucceeded"] == MAX_TRIALS, status
        by_name = {t["metadata"]["name"]: t for t in trials}
        for trial in before:
            kept = by_name[trial["metadata"]["name"]]
            assert kept["spec"]["parameterAssignments"] == trial["spec"]["parameterAssignments"]
            assert kept["status"]["observation"] == trial["status"]["observation"]
        assignments = [json.dumps(t["spec"]["parameterAssignments"]) for t in trials]
        assert len(set(assignments)) == MAX_TRIALS  # none handed out twice
        suggestion = _get(daemon, "suggestion", "crash")
        assert suggestion["status"]["suggestionCount"] == MAX_TRIALS
    finally:
        daemon.stop()
