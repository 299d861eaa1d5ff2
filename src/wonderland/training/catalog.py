"""The ClusterTrainingRuntimes Kubeflow Trainer v2.3 installs, installed here the same way.

The manifests in ``runtimes/`` are upstream's (``manifests/base/runtimes``), byte for byte
with their licence headers, so ``TrainerClient().list_runtimes()`` and ``kubectl get
clustertrainingruntimes`` show the names, labels and images a cluster shows, and a
TrainJob that names one exports unchanged. They are created when missing and never
overwritten: a user's edits stay, as after ``kubectl edit`` on a cluster.

Also created: the ``kubeflow-system`` namespace with the ``kubeflow-trainer-public``
ConfigMap the SDK reads the Trainer version from.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from wonderland.errors import AlreadyExistsError
from wonderland.store import Store

__all__ = ["TRAINER_VERSION", "default_runtimes", "ensure_defaults"]

TRAINER_VERSION = "v2.3.0"
SYSTEM_NAMESPACE = "kubeflow-system"


def default_runtimes() -> list[dict[str, Any]]:
    """The shipped ClusterTrainingRuntime manifests, parsed."""
    folder = resources.files("wonderland.training") / "runtimes"
    out: list[dict[str, Any]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            out.append(yaml.safe_load(entry.read_text()))
    return out


def ensure_defaults(store: Store) -> None:
    """Create the shipped runtimes and the SDK's version ConfigMap where missing."""
    objects: list[dict[str, Any]] = [
        *default_runtimes(),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kubeflow-trainer-public", "namespace": SYSTEM_NAMESPACE},
            "data": {"kubeflow_trainer_version": TRAINER_VERSION},
        },
    ]
    for obj in objects:
        try:
            store.create(obj)
        except AlreadyExistsError:
            continue
