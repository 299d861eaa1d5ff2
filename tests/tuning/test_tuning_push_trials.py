"""Push trials through the Trial controller: the injection in the run it creates, the
observation while the trial runs, and ``DeleteObservationLog`` on the platform's own store.

The trial processes run the real ``kubeflow.katib.report_metrics`` from ``.venv-katib``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from _support.daemon import wait_until
from _support.katib_sdk import katib_python
from tuning_support import Tuner, experiment, trial_condition

from wonderland.tuning._katib_api import api_pb2
from wonderland.tuning._katib_api._generated import api_pb2_grpc
from wonderland.tuning.push import DBManagerServer, PushCollectorAccess

# Reports loss=x, waits for the test's go-ahead file, reports loss=x/2 and ends.
STEPS = """
import os, pathlib, sys, time
from kubeflow.katib import report_metrics
x = float(sys.argv[1])
report_metrics({"loss": x})
go = pathlib.Path(sys.argv[2])
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
report_metrics({"loss": x / 2})
"""


def push_experiment(name: str, python: Path, go: Path, **spec: Any) -> dict[str, Any]:
    body = experiment(
        name,
        command=[str(python), "-c", STEPS, "${trialParameters.x}", str(go)],
        max_trials=1,
        parallel=1,
        metricsCollectorSpec={"collector": {"kind": "Push"}},
        **spec,
    )
    body["spec"]["trialTemplate"]["retain"] = True
    return body


def latest_loss(trial: dict[str, Any]) -> str:
    observation = (trial.get("status") or {}).get("observation") or {}
    return next((m["latest"] for m in observation.get("metrics") or [] if m["name"] == "loss"), "")


async def test_a_push_trial_is_observed_while_it_runs_and_succeeds_with_its_metric(
    tuner: Tuner, tmp_path: Path
) -> None:
    python = katib_python()
    go = tmp_path / "go"
    tuner.create(push_experiment("pushed", python, go))
    trial = await wait_until(
        lambda: next(iter(tuner.trials("pushed")), None), 30, "the trial to be created"
    )
    name = trial["metadata"]["name"]
    x = float(trial["spec"]["parameterAssignments"][0]["value"])

    # The first report shows up while the trial still runs.
    def reported() -> dict[str, Any] | None:
        current = tuner.trial(name)
        return current if latest_loss(current) else None

    running = await wait_until(reported, 60, "the first report")
    assert trial_condition(running) == "Running"
    assert float(latest_loss(running)) == x
    go.touch()
    await tuner.finished("pushed")
    done = tuner.trial(name)
    assert trial_condition(done) == "Succeeded"
    metric = next(m for m in done["status"]["observation"]["metrics"] if m["name"] == "loss")
    assert float(metric["latest"]) == x / 2
    assert float(metric["min"]) == x / 2 and float(metric["max"]) == x
    # The run is what Katib's webhook would have made of it: the injection is in the Job.
    job = tuner.store.get("jobs.batch", "default", name)
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KATIB_TRIAL_NAME"] == name
    assert env["grpc_proxy"].startswith("http://127.0.0.1:")
    assert any(
        m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"
        for m in container["volumeMounts"]
    )


async def test_delete_observation_log_clears_a_trials_log_on_the_platform(
    tuner: Tuner, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    go.touch()
    tuner.create(push_experiment("forgotten", katib_python(), go))
    await tuner.finished("forgotten")
    name = tuner.trials("forgotten")[0]["metadata"]["name"]
    access = tuner.platform.require(PushCollectorAccess)  # type: ignore[type-abstract]
    assert isinstance(access, DBManagerServer)
    async with grpc.aio.insecure_channel(access.address) as channel:
        stub = api_pb2_grpc.DBManagerStub(channel)
        got = await stub.GetObservationLog(api_pb2.GetObservationLogRequest(trial_name=name))
        assert [m.metric.name for m in got.observation_log.metric_logs] == ["loss", "loss"]
        await stub.DeleteObservationLog(api_pb2.DeleteObservationLogRequest(trial_name=name))
        got = await stub.GetObservationLog(api_pb2.GetObservationLogRequest(trial_name=name))
        assert list(got.observation_log.metric_logs) == []
