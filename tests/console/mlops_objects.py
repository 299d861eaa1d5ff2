"""Objects the console's Training and Experiments tests put in a real store: TrainJobs
that report progress and metrics as the trainer status endpoint writes them, their pods
and events, and a Katib Experiment with trials in every state."""

from __future__ import annotations

import sys
from typing import Any

from wonderland.store import Store

Obj = dict[str, Any]
TRAINER = "trainer.kubeflow.org/v1alpha1"
KATIB = "kubeflow.org/v1beta1"


def with_status(store: Store, obj: Obj, status: Obj) -> Obj:
    created = store.create(obj)
    created["status"] = status
    return store.update_status(created)


def report(
    store: Store,
    name: str,
    at: str,
    metrics: dict[str, str],
    progress: int | None = None,
    remaining: int | None = None,
    namespace: str = "default",
) -> Obj:
    """Write ``status.trainerStatus`` as the status endpoint does."""
    job = store.get("trainjobs.trainer.kubeflow.org", namespace, name)
    trainer: Obj = {
        "metrics": [{"name": k, "value": v} for k, v in metrics.items()],
        "lastUpdatedTime": at,
    }
    if progress is not None:
        trainer["progressPercentage"] = progress
    if remaining is not None:
        trainer["estimatedRemainingSeconds"] = remaining
    job["status"] = {**(job.get("status") or {}), "trainerStatus": trainer}
    return store.update_status(job)


def add_trainjob(store: Store, name: str = "iris", namespace: str = "default") -> Obj:
    """A TrainJob on torch-distributed with 2 nodes, env (one value secret-like), running."""
    return with_status(
        store,
        {
            "apiVersion": TRAINER,
            "kind": "TrainJob",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "trainer": {
                    "numNodes": 2,
                    "command": [sys.executable, "train.py"],
                    "env": [
                        {"name": "EPOCHS", "value": "60"},
                        {"name": "HF_TOKEN", "value": "hf_secret_value"},
                    ],
                },
            },
        },
        {
            "conditions": [],
            "jobsStatus": [{"name": "node", "active": 2, "ready": 2, "succeeded": 0, "failed": 0}],
        },
    )


def add_node_pods(store: Store, job: str = "iris", namespace: str = "default") -> None:
    for index in (1, 0):
        store.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{job}-node-0-{index}-abcde",
                    "namespace": namespace,
                    "labels": {
                        "jobset.sigs.k8s.io/jobset-name": job,
                        "jobset.sigs.k8s.io/replicatedjob-name": "node",
                        "jobset.sigs.k8s.io/job-index": str(index),
                    },
                },
                "spec": {"containers": [{"name": "node", "image": "python:3.12"}]},
            }
        )
    store.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{job}.1", "namespace": namespace},
            "involvedObject": {"kind": "TrainJob", "name": job},
            "reason": "Created",
            "message": "JobSet created",
            "type": "Normal",
            "lastTimestamp": "2026-12-03T07:00:01Z",
        }
    )
    store.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "other.1", "namespace": namespace},
            "involvedObject": {"kind": "Service", "name": "hello"},
            "reason": "Created",
            "message": "not about the job",
            "type": "Normal",
            "lastTimestamp": "2026-12-03T07:00:02Z",
        }
    )


def _trial_template() -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "training-container",
                            "image": "python:3.12",
                            "command": [
                                "x",
                                "--lr=${trialParameters.lr}",
                                "--optimizer=${trialParameters.optimizer}",
                            ],
                        }
                    ],
                }
            }
        },
    }


def add_experiment(store: Store, name: str = "tune", namespace: str = "default") -> None:
    """An Experiment maximizing accuracy over lr (double) and optimizer (categorical) with
    four trials: two succeeded (0.8 and 0.9, the best), one early-stopped (0.5) and one
    failed without metrics."""
    params = [
        {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.001", "max": "1"}},
        {
            "name": "optimizer",
            "parameterType": "categorical",
            "feasibleSpace": {"list": ["sgd", "adam"]},
        },
    ]
    objective = {"type": "maximize", "objectiveMetricName": "accuracy"}
    with_status(
        store,
        {
            "apiVersion": KATIB,
            "kind": "Experiment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "objective": objective,
                "algorithm": {"algorithmName": "random"},
                "parameters": params,
                "maxTrialCount": 4,
                "parallelTrialCount": 2,
                "trialTemplate": {
                    "primaryContainerName": "training-container",
                    "trialParameters": [
                        {"name": "lr", "reference": "lr"},
                        {"name": "optimizer", "reference": "optimizer"},
                    ],
                    "trialSpec": _trial_template(),
                },
            },
        },
        {
            "conditions": [
                {"type": "Created", "status": "True", "reason": "ExperimentCreated"},
                {"type": "Running", "status": "True", "reason": "ExperimentRunning"},
            ],
            "currentOptimalTrial": {
                "bestTrialName": f"{name}-b",
                "parameterAssignments": [
                    {"name": "lr", "value": "0.1"},
                    {"name": "optimizer", "value": "adam"},
                ],
                "observation": {
                    "metrics": [{"name": "accuracy", "min": "0.7", "max": "0.9", "latest": "0.9"}]
                },
            },
            "trials": 4,
            "trialsSucceeded": 2,
            "trialsFailed": 1,
            "trialsEarlyStopped": 1,
            "trialsRunning": 0,
        },
    )
    trials = [
        ("a", "0.01", "sgd", "Succeeded", "0.8"),
        ("b", "0.1", "adam", "Succeeded", "0.9"),
        ("c", "0.5", "sgd", "EarlyStopped", "0.5"),
        ("d", "0.9", "adam", "Failed", None),
    ]
    for suffix, lr, opt, state, accuracy in trials:
        observation: Obj = {}
        if accuracy is not None:
            observation = {
                "metrics": [{"name": "accuracy", "min": "0.1", "max": accuracy, "latest": accuracy}]
            }
        with_status(
            store,
            {
                "apiVersion": KATIB,
                "kind": "Trial",
                "metadata": {
                    "name": f"{name}-{suffix}",
                    "namespace": namespace,
                    "labels": {"katib.kubeflow.org/experiment": name},
                },
                "spec": {
                    "objective": objective,
                    "parameterAssignments": [
                        {"name": "lr", "value": lr},
                        {"name": "optimizer", "value": opt},
                    ],
                    "primaryContainerName": "training-container",
                    "runSpec": _trial_template(),
                },
            },
            {
                "conditions": [
                    {"type": "Created", "status": "True", "reason": "TrialCreated"},
                    {"type": state, "status": "True", "reason": f"Trial{state}"},
                ],
                **({"observation": observation} if observation else {}),
            },
        )
