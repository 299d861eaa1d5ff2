"""Experiments, queries and the platform the tuning tests share."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

from _support.daemon import wait_until

from wonderland.errors import NotFoundError
from wonderland.platform import Platform
from wonderland.settings import Settings
from wonderland.store import Store

Obj = dict[str, Any]
EXPERIMENTS = "experiments.kubeflow.org"
TRIALS = "trials.kubeflow.org"
SUGGESTIONS = "suggestions.kubeflow.org"
PLUGINS = ("wonderland.workloads", "wonderland.training", "wonderland.tuning")

# An objective with its minimum at x=0.3: prints ``loss=...`` as Katib's examples do.
QUADRATIC = "import sys; x = float(sys.argv[1]); print(f'loss={(x - 0.3) ** 2:.6f}')"


async def start_tuner(home: Path) -> Tuner:
    settings = Settings(
        home=home, gateway_port=0, api_port=0, mlflow_port=0, metrics_port=0, backoff_seconds=0.2
    )
    platform = Platform.open(settings)
    platform.install_plugins(PLUGINS)
    await platform.start()
    return Tuner(platform)


def job_template(command: list[str], container: str = "training-container") -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": container, "image": "python:3.12", "command": command}],
                }
            },
        },
    }


def experiment(
    name: str,
    *,
    algorithm: str = "random",
    settings: dict[str, str] | None = None,
    parameters: list[Obj] | None = None,
    command: list[str] | None = None,
    max_trials: int = 4,
    parallel: int = 2,
    objective: Obj | None = None,
    **spec: Any,
) -> Obj:
    """An Experiment whose trials are batch Jobs running ``command`` (by default the
    quadratic objective of parameter ``x``)."""
    params = parameters or [
        {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
    ]
    body: Obj = {
        "objective": objective or {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {
            "algorithmName": algorithm,
            "algorithmSettings": [{"name": k, "value": v} for k, v in (settings or {}).items()],
        },
        "parameters": params,
        "parallelTrialCount": parallel,
        "maxTrialCount": max_trials,
        "trialTemplate": {
            "primaryContainerName": "training-container",
            "trialParameters": [{"name": p["name"], "reference": p["name"]} for p in params],
            "trialSpec": job_template(
                command
                or [
                    sys.executable,
                    "-c",
                    QUADRATIC,
                    *(f"${{trialParameters.{p['name']}}}" for p in params),
                ]
            ),
        },
    }
    body.update(spec)
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": copy.deepcopy(body),
    }


class Tuner:
    """An in-process platform with workloads, training and tuning."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.store: Store = platform.store

    async def stop(self) -> None:
        await self.platform.stop()
        self.store.close()

    def create(self, obj: Obj) -> Obj:
        return self.store.create(obj)

    def experiment(self, name: str) -> Obj:
        return self.store.get(EXPERIMENTS, "default", name)

    def status(self, name: str) -> Obj:
        try:
            return dict(self.experiment(name).get("status") or {})
        except NotFoundError:
            return {}

    def trials(self, name: str) -> list[Obj]:
        items, _ = self.store.list(TRIALS, "default", {"katib.kubeflow.org/experiment": name})
        return sorted(items, key=lambda t: t["metadata"]["creationTimestamp"])

    def trial(self, name: str) -> Obj:
        return self.store.get(TRIALS, "default", name)

    async def finished(self, name: str, timeout: float = 60) -> Obj:
        """The Succeeded or Failed condition of the experiment, once it has one."""

        def done() -> Obj | None:
            for c in self.status(name).get("conditions") or []:
                if c["type"] in ("Succeeded", "Failed") and c["status"] == "True":
                    return dict(c)
            return None

        return await wait_until(done, timeout, f"experiment {name} to finish")


def trial_condition(trial: Obj) -> str:
    """The last condition's type, as the CRD's Type column shows it."""
    conditions = (trial.get("status") or {}).get("conditions") or []
    return str(conditions[-1]["type"]) if conditions else ""


def assignment(trial: Obj, name: str) -> str:
    return next(a["value"] for a in trial["spec"]["parameterAssignments"] if a["name"] == name)
