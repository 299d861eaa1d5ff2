"""examples/tuning against a real `wonderland up`: the iris Experiment, applied with the CLI,
runs its TrainJob trials and reports the best one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.daemon import WonderlandDaemon, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

pytest.importorskip("torch", reason="the example's trials train with PyTorch")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tuning" / "iris-tune.yaml"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[WonderlandDaemon]:
    started = WonderlandDaemon.in_tmp(tmp_path).start()
    try:
        yield started
    finally:
        started.stop()


def _get(daemon: WonderlandDaemon, kind: str, name: str) -> dict[str, Any]:
    return dict(json.loads(daemon.ok("get", kind, name, "-o", "json")))


def _finished(daemon: WonderlandDaemon) -> dict[str, Any] | None:
    status = _get(daemon, "experiment", "iris-tune").get("status") or {}
    for condition in status.get("conditions") or []:
        if condition["type"] in ("Succeeded", "Failed") and condition["status"] == "True":
            return dict(status)
    return None


def test_the_iris_experiment_tunes_the_classifier_and_reports_the_best_trial(
    daemon: WonderlandDaemon,
) -> None:
    daemon.ok("apply", "-f", str(EXAMPLE))
    status = wait_for(lambda: _finished(daemon), 240, "experiment iris-tune to finish")
    assert status["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached", status
    assert status["trialsSucceeded"] == 6, status

    trials = json.loads(daemon.ok("get", "trials", "-o", "json"))["items"]
    losses = {}
    for trial in trials:
        metrics = {m["name"]: m for m in trial["status"]["observation"]["metrics"]}
        losses[trial["metadata"]["name"]] = float(metrics["loss"]["latest"])
    best = status["currentOptimalTrial"]
    assert best["bestTrialName"] == min(losses, key=losses.__getitem__)
    assignments = {a["name"]: a["value"] for a in best["parameterAssignments"]}
    assert 0.001 <= float(assignments["lr"]) <= 0.3
    assert 2 <= int(assignments["hidden"]) <= 64
    assert 5 <= int(assignments["epochs"]) <= 80
    observed = {m["name"]: m["latest"] for m in best["observation"]["metrics"]}
    assert float(observed["accuracy"]) >= 0.9

    row = daemon.ok("get", "experiment", "iris-tune").splitlines()[1].split()
    assert row[:4] == ["iris-tune", "Succeeded", "True", "6/6"], row
    assert row[4] == f"loss={observed['loss']}", row

    # retain: true keeps the trial's TrainJob: its log, and the same values reported to the
    # trainer status endpoint.
    name = best["bestTrialName"]
    log = daemon.ok("logs", f"trainjob/{name}")
    assert f"lr {assignments['lr']} hidden {assignments['hidden']}" in log, log
    reported = _get(daemon, "trainjob", name)["status"]["trainerStatus"]["metrics"]
    assert {m["name"]: m["value"] for m in reported}["loss"] == observed["loss"]
