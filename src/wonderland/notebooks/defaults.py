"""The PodDefaults the platform ships: what a notebook (or any pod) opts into by label.

- ``access-mlflow`` (label ``access-mlflow: "true"``): ``MLFLOW_TRACKING_URI`` of the
  platform's tracking server;
- ``access-kube-api`` (label ``access-kube-api: "true"``): API credentials
  (``automountServiceAccountToken``), which here is the platform's kubeconfig in
  ``KUBECONFIG``, so ``TrainerClient()`` and the ``kubernetes`` client work in the pod.

They are created in the ``default`` namespace when absent; a PodDefault a user changed
(no ``app.kubernetes.io/managed-by: wonderland`` label) is left as it is.
"""

from __future__ import annotations

from typing import Any

from wonderland.errors import AlreadyExistsError, NotFoundError
from wonderland.notebooks.poddefaults import PODDEFAULTS
from wonderland.store import Store

__all__ = ["MANAGED_BY", "ensure_shipped", "shipped"]

Obj = dict[str, Any]
MANAGED_BY = {"app.kubernetes.io/managed-by": "wonderland"}


def _poddefault(name: str, desc: str, spec: Obj) -> Obj:
    return {
        "apiVersion": "kubeflow.org/v1alpha1",
        "kind": "PodDefault",
        "metadata": {"name": name, "namespace": "default", "labels": dict(MANAGED_BY)},
        "spec": {"selector": {"matchLabels": {name: "true"}}, "desc": desc, **spec},
    }


def shipped(tracking_uri: str | None) -> list[Obj]:
    """The shipped PodDefaults; ``access-mlflow`` only when tracking is on."""
    out = [
        _poddefault(
            "access-kube-api",
            "Allow access to the platform's Kubernetes API (TrainerClient, kubernetes client)",
            {"automountServiceAccountToken": True},
        )
    ]
    if tracking_uri:
        out.append(
            _poddefault(
                "access-mlflow",
                "Allow access to the MLflow tracking server",
                {"env": [{"name": "MLFLOW_TRACKING_URI", "value": tracking_uri}]},
            )
        )
    return out


def ensure_shipped(store: Store, tracking_uri: str | None) -> None:
    """Create the shipped PodDefaults, or bring ours up to date (the tracking URI moves
    with the gateway's port); never touch one a user took over."""
    for pd in shipped(tracking_uri):
        meta = pd["metadata"]
        try:
            current = store.get(PODDEFAULTS, meta["namespace"], meta["name"])
        except NotFoundError:
            try:
                store.create(pd)
            except AlreadyExistsError:
                pass
            continue
        labels = current["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/managed-by") != "wonderland":
            continue
        if current.get("spec") != pd["spec"]:
            store.update({**current, "spec": pd["spec"]})
