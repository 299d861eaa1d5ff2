"""Trainer's OptimizationJob (alpha): trials are real TrainJob processes. In process: the
trials' names, owners, hyperparameters (env and annotations), the parallelism bound and
the failure ends. Against a real `wonderland up` (slow): trials report their objective with
the Kubeflow SDK's ``update_trainjob_status`` to the trainer status endpoint, the best one
becomes ``status.result``, grid search ends when the grid does, and the study carries on
across a daemon restart."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.daemon import WonderlandDaemon, daemon_env, free_port, wait_for, wait_until
from _support.kubeflow_sdk import kubeflow_python
from tuning_support import Tuner

from wonderland.errors import NotFoundError
from wonderland.runtime.kubelet import Kubelet
from wonderland.runtime.logs import LogOptions

Obj = dict[str, Any]
OPTIMIZATIONJOBS = "optimizationjobs.trainer.kubeflow.org"
TRAINJOBS = "trainjobs.trainer.kubeflow.org"
JOB_LABEL = "trainer.kubeflow.org/optimizationjob-name"

# Reports loss=(x-0.3)^2 (x from KUBEFLOW_TRAINER_OPT_X) with the SDK's reporter.
REPORT_LOSS = textwrap.dedent(
    """
    import os
    from kubeflow.trainer import update_trainjob_status
    x = float(os.environ["KUBEFLOW_TRAINER_OPT_X"])
    loss = (x - 0.3) ** 2
    print(f"x={x} loss={loss}", flush=True)
    assert update_trainjob_status(metrics={"loss": loss}), "the status endpoint refused"
    """
)


def optimization_job(
    name: str,
    command: list[str],
    parameters: list[Obj],
    *,
    num: int = 3,
    parallel: int = 1,
    algorithm: Obj | None = None,
    metric: str = "loss",
) -> Obj:
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "OptimizationJob",
        "metadata": {"name": name},
        "spec": {
            "objectives": [{"metric": metric, "direction": "Minimize"}],
            "searchAlgorithm": algorithm or {"random": {"seed": 7}},
            "parameters": parameters,
            "numTrials": num,
            "parallelTrials": parallel,
            "trainJobTemplate": {
                "metadata": {"labels": {"team": "tuning"}},
                "spec": {
                    "runtimeRef": {"name": "torch-distributed"},
                    "trainer": {"command": command, "env": [{"name": "KEEP", "value": "1"}]},
                },
            },
        },
    }


X = [{"name": "x", "searchSpace": {"uniform": {"min": "0", "max": "1"}}}]


def _condition(job: Obj, kind: str) -> Obj | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c["type"] == kind and c["status"] == "True":
            return dict(c)
    return None


def _env(trainjob: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in trainjob["spec"]["trainer"].get("env") or []}


def _state(trainjob: Obj) -> str:
    for c in (trainjob.get("status") or {}).get("conditions") or []:
        if c["type"] in ("Complete", "Failed") and c["status"] == "True":
            return str(c["type"])
    return "Running"


# -- in process ---------------------------------------------------------------------------------


class Optimizer:
    def __init__(self, tuner: Tuner) -> None:
        self.store = tuner.store
        self.kubelet = tuner.platform.require(Kubelet)

    def job(self, name: str) -> Obj:
        return self.store.get(OPTIMIZATIONJOBS, "default", name)

    def trials(self, name: str) -> list[Obj]:
        items, _ = self.store.list(TRAINJOBS, "default", {JOB_LABEL: name})
        return sorted(items, key=lambda t: int(t["metadata"]["name"].rsplit("-", 1)[1]))

    async def ended(self, name: str, timeout: float = 90) -> Obj:
        def done() -> Obj | None:
            try:
                job = self.job(name)
            except NotFoundError:
                return None
            return _condition(job, "Complete") or _condition(job, "Failed")

        return await wait_until(done, timeout, f"optimizationjob {name} to end")

    def node_log(self, trainjob: str) -> str:
        items, _ = self.store.list("pods", "default", {"jobset.sigs.k8s.io/jobset-name": trainjob})
        pod = items[0]["metadata"]["name"]
        return self.kubelet.read_log("default", pod, "node", False, LogOptions()).decode()


async def test_trials_are_owned_trainjobs_with_the_parameters_in_env_and_annotations(
    tuner: Tuner,
) -> None:
    opt = Optimizer(tuner)
    show = "import os; print(sorted((k, v) for k, v in os.environ.items() if 'OPT_' in k))"
    parameters = [
        {"name": "lr", "searchSpace": {"logUniform": {"min": "0.0001", "max": "0.1"}}},
        {"name": "units", "searchSpace": {"uniform": {"min": "2", "max": "9.5", "type": "Int"}}},
        {"name": "optimizer", "searchSpace": {"categorical": {"choices": ["adam", "sgd"]}}},
    ]
    created = tuner.create(
        optimization_job("shape", ["python", "-c", show], parameters, num=3, parallel=2)
    )
    most_active = 0

    def finished() -> Obj | None:
        nonlocal most_active
        trials = opt.trials("shape")
        most_active = max(most_active, sum(_state(t) == "Running" for t in trials))
        job = opt.job("shape")
        return _condition(job, "Complete") or _condition(job, "Failed")

    ended = await wait_until(finished, 90, "shape to end")
    trials = opt.trials("shape")
    assert [t["metadata"]["name"] for t in trials] == [f"shape-trial-{i}" for i in range(3)]
    assert 1 <= most_active <= 2
    for trial in trials:
        meta = trial["metadata"]
        assert meta["labels"] == {"team": "tuning", JOB_LABEL: "shape"}
        owner = meta["ownerReferences"][0]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "OptimizationJob",
            created["metadata"]["uid"],
            True,
        )
        env = _env(trial)
        notes = meta["annotations"]
        assert env["KEEP"] == "1"
        for name in ("lr", "units", "optimizer"):
            assert (
                env[f"KUBEFLOW_TRAINER_OPT_{name.upper()}"]
                == notes[f"trainer.kubeflow.org/opt-param-{name}"]
            )
        assert 0.0001 <= float(env["KUBEFLOW_TRAINER_OPT_LR"]) <= 0.1
        assert env["KUBEFLOW_TRAINER_OPT_UNITS"] in {str(i) for i in range(2, 10)}
        assert env["KUBEFLOW_TRAINER_OPT_OPTIMIZER"] in ("adam", "sgd")
        # the training process saw them
        assert f"('KUBEFLOW_TRAINER_OPT_LR', '{env['KUBEFLOW_TRAINER_OPT_LR']}')" in opt.node_log(
            meta["name"]
        )
    # the trials succeeded without reporting the objective: the job says what is missing
    assert ended["type"] == "Failed" and ended["reason"] == "MetricsUnavailable"
    assert "'loss'" in ended["message"] and "update_trainjob_status" in ended["message"]
    created_condition = opt.job("shape")["status"]["conditions"][0]
    assert (created_condition["type"], created_condition["status"]) == ("Created", "True")


async def test_a_job_whose_trials_all_fail_fails_with_the_last_reason(tuner: Tuner) -> None:
    opt = Optimizer(tuner)
    tuner.create(optimization_job("broken", ["python", "-c", "raise SystemExit(3)"], X, num=2))
    ended = await opt.ended("broken")
    assert ended["type"] == "Failed" and ended["reason"] == "AllTrialsFailed"
    assert ended["message"].startswith("2 out of 2 trials failed (the last, broken-trial-1:")
    assert "result" not in opt.job("broken")["status"]


async def test_a_template_that_makes_an_invalid_trainjob_fails_at_the_first_trial(
    tuner: Tuner,
) -> None:
    opt = Optimizer(tuner)
    # a parameter name that cannot be part of an annotation key
    bad = [{"name": "x y", "searchSpace": {"uniform": {"min": "0", "max": "1"}}}]
    tuner.create(optimization_job("badname", ["python", "-c", "pass"], bad, num=1))
    ended = await opt.ended("badname", timeout=30)
    assert (ended["type"], ended["reason"]) == ("Failed", "TrainJobsCreationFailed")
    assert "badname-trial-0" in ended["message"]
    assert 'spec.parameters[0].name: Invalid value: "x y"' in ended["message"]
    assert "rename the parameter" in ended["message"]
    created = next(c for c in opt.job("badname")["status"]["conditions"] if c["type"] == "Created")
    assert (created["status"], created["reason"]) == ("False", "TrainJobsCreationFailed")
    assert opt.trials("badname") == []


# -- against `wonderland up` ------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WonderlandDaemon]:
    kubeflow_python()
    started = WonderlandDaemon.in_tmp(tmp_path_factory.mktemp("optimization")).start()
    try:
        yield started
    finally:
        started.stop()


def _apply(daemon: WonderlandDaemon, job: Obj) -> None:
    daemon.ok("apply", "-f", "-", stdin=json.dumps(job))


def _get(daemon: WonderlandDaemon, kind: str, name: str) -> Obj:
    return dict(json.loads(daemon.ok("get", kind, name, "-o", "json")))


def _trials(daemon: WonderlandDaemon, job: str) -> list[Obj]:
    listing = json.loads(daemon.ok("get", "trainjobs", "-l", f"{JOB_LABEL}={job}", "-o", "json"))
    return sorted(listing["items"], key=lambda t: int(t["metadata"]["name"].rsplit("-", 1)[1]))


def _ended(daemon: WonderlandDaemon, name: str, timeout: float = 150) -> Obj:
    def done() -> Obj | None:
        job = _get(daemon, "optimizationjob", name)
        return _condition(job, "Complete") or _condition(job, "Failed")

    return dict(wait_for(done, timeout, f"optimizationjob {name} to end", interval=0.5))


def _loss(trial: Obj) -> float:
    metrics = trial["status"]["trainerStatus"]["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "loss"))


@pytest.mark.slow
@pytest.mark.e2e
def test_reported_objectives_pick_the_best_trial_as_the_result(daemon: WonderlandDaemon) -> None:
    command = [str(kubeflow_python()), "-c", REPORT_LOSS]
    _apply(daemon, optimization_job("quad", command, X, num=4, parallel=2))
    ended = _ended(daemon, "quad")
    assert (ended["type"], ended["reason"]) == ("Complete", "MaxTrialsReached")
    trials = _trials(daemon, "quad")
    assert [t["metadata"]["name"] for t in trials] == [f"quad-trial-{i}" for i in range(4)]
    best = min(trials, key=_loss)
    result = _get(daemon, "optimizationjob", "quad")["status"]["result"]
    x = _env(best)["KUBEFLOW_TRAINER_OPT_X"]
    assert result == {
        "trainJobName": best["metadata"]["name"],
        "parameters": [{"name": "x", "value": x}],
    }
    assert best["metadata"]["name"] in ended["message"]
    table = daemon.ok("get", "optimizationjob", "quad", "-o", "wide").splitlines()
    assert table[0].split() == ["NAME", "STATE", "TRIALS", "BEST-TRIAL", "AGE", "PARAMETERS"]
    row = table[1].split()
    assert row[:4] == ["quad", "Complete", "4", best["metadata"]["name"]]
    assert row[-1] == f"x={x}"
    # deleting the job deletes its trials
    daemon.ok("delete", "optimizationjob", "quad")
    wait_for(lambda: not _trials(daemon, "quad"), 60, "the trials to go", interval=0.5)


@pytest.mark.slow
@pytest.mark.e2e
def test_grid_search_ends_when_every_combination_ran(daemon: WonderlandDaemon) -> None:
    command = [str(kubeflow_python()), "-c", REPORT_LOSS]
    grid = [{"name": "x", "searchSpace": {"categorical": {"choices": ["0.1", "0.35", "0.9"]}}}]
    _apply(
        daemon, optimization_job("grid", command, grid, num=5, parallel=2, algorithm={"grid": {}})
    )
    ended = _ended(daemon, "grid")
    assert (ended["type"], ended["reason"]) == ("Complete", "SearchSpaceExhausted")
    trials = _trials(daemon, "grid")
    assert sorted(_env(t)["KUBEFLOW_TRAINER_OPT_X"] for t in trials) == ["0.1", "0.35", "0.9"]
    result = _get(daemon, "optimizationjob", "grid")["status"]["result"]
    assert result["parameters"] == [{"name": "x", "value": "0.35"}]


@pytest.mark.slow
@pytest.mark.e2e
def test_the_study_carries_on_after_a_daemon_restart(tmp_path: Path) -> None:
    kubeflow_python()
    command = [str(kubeflow_python()), "-c", REPORT_LOSS]
    choices = ["0.0", "0.2", "0.4", "0.6", "0.8"]
    grid = [{"name": "x", "searchSpace": {"categorical": {"choices": choices}}}]
    # the control API keeps its port across the restart, as `wonderland up` does by default
    # (7443): a trial running then reports to the status URL it was started with
    env = daemon_env(tmp_path, gateway_port=free_port(), WONDERLAND_API_PORT=str(free_port()))
    daemon = WonderlandDaemon(tmp_path / "home", env, tmp_path / "daemon.log")
    daemon.start()
    try:
        _apply(daemon, optimization_job("again", command, grid, num=5, algorithm={"grid": {}}))

        def two_done() -> bool:
            return sum(_state(t) == "Complete" for t in _trials(daemon, "again")) >= 2

        wait_for(two_done, 120, "two trials to finish", interval=0.5)
        daemon.stop()
        assert daemon.proc is not None
        daemon.proc.wait(timeout=30)
        daemon.start()
        ended = _ended(daemon, "again")
        trials = _trials(daemon, "again")
    finally:
        daemon.stop()
    assert (ended["type"], ended["reason"]) == ("Complete", "MaxTrialsReached")
    # the rebuilt study knew which points of the grid had run: every one ran exactly once
    assert [t["metadata"]["name"] for t in trials] == [f"again-trial-{i}" for i in range(5)]
    assert sorted(_env(t)["KUBEFLOW_TRAINER_OPT_X"] for t in trials) == choices
    assert all(_state(t) == "Complete" for t in trials)
