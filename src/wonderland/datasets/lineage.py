"""Which datasets a workload reads: the dataset claims its pod templates mount.

A TrainJob and a Katib Trial record them in their status, ``status.datasets`` as
``[{"name", "digest", "source"}]`` (a TrainJob when its JobSet is made, a Trial from its
``runSpec``), and, with tracking on, log each as an MLflow dataset input of their run
(:func:`mlflow_input`), so a registered model version's run names the exact data it was
trained on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from wonderland.datasets.onboard import PVCS, Dataset, is_dataset, short_digest
from wonderland.errors import NotFoundError

__all__ = [
    "DIGEST_TAG",
    "ClaimReader",
    "DatasetInput",
    "claim_names",
    "mlflow_input",
    "mounted_datasets",
    "run_spec_pod_specs",
]

Obj = dict[str, Any]
# the input tag holding the full digest (MLflow's own digest field takes 36 characters)
DIGEST_TAG = "wonderland.dataset.digest"


class ClaimReader(Protocol):
    """Reads a claim: the store in the daemon."""

    def get(self, resource: str, namespace: str | None, name: str) -> Obj: ...


@dataclass(frozen=True)
class DatasetInput:
    """One dataset a workload mounts, as recorded in its status."""

    name: str
    digest: str
    source: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "digest": self.digest, "source": self.source}


def claim_names(pod_specs: Iterable[Obj]) -> list[str]:
    """The claims the pod specs mount, in order, each once."""
    seen: list[str] = []
    for spec in pod_specs:
        for volume in spec.get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if isinstance(claim, str) and claim and claim not in seen:
                seen.append(claim)
    return seen


def run_spec_pod_specs(run_spec: Obj) -> list[Obj]:
    """The pod specs a Katib trial's ``runSpec`` writes: a Job's template, or the pod specs
    of a TrainJob's ``runtimePatches`` (the runtime's own volumes are added by the
    TrainJob, which records what its JobSet mounts)."""
    spec = run_spec.get("spec") or {}
    if run_spec.get("kind") == "Job":
        pod = (spec.get("template") or {}).get("spec")
        return [pod] if isinstance(pod, dict) else []
    specs: list[Obj] = []
    for patch in spec.get("runtimePatches") or []:
        template = ((patch or {}).get("trainingRuntimeSpec") or {}).get("template") or {}
        for rjob in (template.get("spec") or {}).get("replicatedJobs") or []:
            job_spec = ((rjob or {}).get("template") or {}).get("spec") or {}
            pod = (job_spec.get("template") or {}).get("spec")
            if isinstance(pod, dict):
                specs.append(pod)
    return specs


def mounted_datasets(
    reader: ClaimReader, namespace: str, pod_specs: Iterable[Obj]
) -> list[DatasetInput]:
    """The datasets (claims labelled by ``wonderland data add``) among the claims the pod
    specs mount; other claims and missing ones are left out."""
    found: list[DatasetInput] = []
    for claim in claim_names(pod_specs):
        try:
            pvc = reader.get(PVCS, namespace, claim)
        except NotFoundError:
            continue
        if not is_dataset(pvc):
            continue
        dataset = Dataset.from_claim(pvc)
        if dataset.digest:
            found.append(DatasetInput(dataset.name, dataset.digest, dataset.source))
    return found


def mlflow_input(dataset: DatasetInput, context: str = "training") -> Obj:
    """The dataset as one entry of MLflow's ``runs/log-inputs`` ``datasets``: named as the
    claim, MLflow's digest the short one ``wonderland get datasets`` shows, the full digest
    in the input tag :data:`DIGEST_TAG` and the profile, and ``mlflow.data.context``."""
    return {
        "tags": [
            {"key": "mlflow.data.context", "value": context},
            {"key": DIGEST_TAG, "value": dataset.digest},
        ],
        "dataset": {
            "name": dataset.name,
            "digest": short_digest(dataset.digest),
            "source_type": "local",
            "source": json.dumps({"uri": dataset.source or f"pvc://{dataset.name}"}),
            "profile": json.dumps({"digest": dataset.digest}),
        },
    }
