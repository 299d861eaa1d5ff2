"""The notebook controller: a ``kubeflow.org/v1`` Notebook runs as one pod, as Kubeflow's
``components/notebook-controller`` runs it through a one-replica StatefulSet.

- the pod is ``<name>-0`` with the labels ``statefulset`` and ``notebook-name`` and the
  Notebook's own labels (so PodDefaults select it), its annotations but those naming
  ``kubectl`` or ``notebook``, and ``spec.template.spec``; the first container gets
  ``NB_PREFIX=/notebook/<namespace>/<name>`` and, without ports, the ``notebook-port``;
- on this machine the port is a free loopback port (``PORT`` in the container, the
  ``containerPort``) rather than 8888, so notebooks do not collide, and a per-notebook
  token (the Secret ``<name>-notebook-token``, ``JUPYTER_TOKEN``) keeps JupyterLab closed
  to anyone but the platform;
- ``kubeflow-resource-stopped`` (any value) scales to zero: the pod is deleted, the kernel
  state is lost and the volumes (PVCs) stay; removing it starts a new pod;
- ``status`` is the controller's: ``readyReplicas``, ``containerState`` (of the container
  named as the Notebook) and ``conditions`` (the pod's, type by type).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
from collections.abc import Callable
from typing import Any

from wonderland.api.owners import controller_ref
from wonderland.api.schemas.kubeflow import NotebookObject
from wonderland.controllers import Result
from wonderland.errors import ConflictError, InvalidError, NotFoundError, WonderlandError
from wonderland.ports import free_port
from wonderland.store import Store
from wonderland.tracking.access import TRACKING_URI_ENV, TrackingAccess

log = logging.getLogger("wonderland.notebooks")

__all__ = [
    "NOTEBOOKS",
    "PREFIX_ENV",
    "STOP_ANNOTATION",
    "NotebookReconciler",
    "check_notebook",
    "notebook_prefix",
    "token_secret_name",
]

Obj = dict[str, Any]
NOTEBOOKS = "notebooks.kubeflow.org"
PODS = "pods"
SECRETS = "secrets"
STOP_ANNOTATION = "kubeflow-resource-stopped"
PREFIX_ENV = "NB_PREFIX"
DEFAULT_PORT_NAME = "notebook-port"
TOKEN_KEY = "token"


def notebook_prefix(namespace: str, name: str) -> str:
    return f"/notebook/{namespace}/{name}"


def token_secret_name(name: str) -> str:
    return f"{name}-notebook-token"


def check_notebook(new: Obj, old: Obj | None) -> None:
    """The CRD's validation patches: at least one container, each with name and image."""
    containers = (((new.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    if not containers:
        raise InvalidError(
            "spec.template.spec.containers", "Required value: should have at least 1 items"
        )
    for i, container in enumerate(containers):
        for field in ("name", "image"):
            if not container.get(field):
                raise InvalidError(f"spec.template.spec.containers[{i}].{field}", "Required value")


def build_pod(nb: Obj, port: int) -> Obj:
    """The notebook's pod (``generateStatefulSet``'s template, named as its replica 0)."""
    meta = nb["metadata"]
    name, namespace = meta["name"], meta.get("namespace") or "default"
    spec: Obj = copy.deepcopy(nb["spec"]["template"]["spec"])
    labels = {"statefulset": name, "notebook-name": name, **(meta.get("labels") or {})}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if "kubectl" not in k and "notebook" not in k and k != STOP_ANNOTATION
    }
    container = spec["containers"][0]
    env = [e for e in container.get("env") or [] if e.get("name") not in (PREFIX_ENV, "PORT")]
    env.append({"name": PREFIX_ENV, "value": notebook_prefix(namespace, name)})
    env.append({"name": "PORT", "value": str(port)})
    if not any(e.get("name") == "JUPYTER_TOKEN" for e in env):
        env.append(
            {
                "name": "JUPYTER_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": token_secret_name(name), "key": TOKEN_KEY}},
            }
        )
    container["env"] = env
    ports = container.get("ports")
    if not ports:
        container["ports"] = [{"containerPort": port, "name": DEFAULT_PORT_NAME, "protocol": "TCP"}]
    else:
        ports[0]["containerPort"] = port
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-0",
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [controller_ref(nb)],
        },
        "spec": spec,
    }


def notebook_status(nb: Obj, pod: Obj | None) -> Obj:
    """``createNotebookStatus``: readyReplicas, containerState, conditions from the pod."""
    name = nb["metadata"]["name"]
    previous = (nb.get("status") or {}).get("containerState") or {}
    status: Obj = {"conditions": [], "readyReplicas": 0, "containerState": {}}
    if pod is None or not pod.get("status"):
        return status
    pod_status = pod["status"]
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod_status.get("conditions") or []
    )
    status["readyReplicas"] = 1 if ready and not pod["metadata"].get("deletionTimestamp") else 0
    states = pod_status.get("containerStatuses") or []
    found = [c for c in states if c.get("name") == name]
    if not found and states:
        # the controller looks for the container named as the Notebook; when the template
        # names it otherwise, the first (the notebook's) container stands in
        found = [states[0]]
    status["containerState"] = (found[0].get("state") or {}) if found else previous
    status["conditions"] = [
        {
            k: v
            for k, v in {
                "type": c.get("type"),
                "status": c.get("status"),
                "reason": c.get("reason"),
                "message": c.get("message"),
                "lastProbeTime": c.get("lastProbeTime") or c.get("lastTransitionTime"),
                "lastTransitionTime": c.get("lastTransitionTime"),
            }.items()
            if v
        }
        for c in pod_status.get("conditions") or []
    ]
    return status


class NotebookReconciler:
    """Keeps each Notebook's pod and token Secret, and its status (module docstring)."""

    resource: str = NOTEBOOKS
    owns: tuple[str, ...] = (PODS, SECRETS)
    watches: tuple[str, ...] = ()

    def __init__(
        self,
        store: Store,
        record: Any,
        on_change: Callable[[Obj, Obj | None], None] | None = None,
        tracking: TrackingAccess | None = None,
    ) -> None:
        self.store = store
        self.record = record
        # told the Notebook and its pod (None when it has none) after each reconcile: the
        # gateway's route to it follows
        self.on_change = on_change
        self.tracking = tracking
        self._waking: set[asyncio.Task[Any]] = set()

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        try:
            nb = self.store.get(NOTEBOOKS, namespace, name)
        except NotFoundError:
            return None  # its pod and Secret go with it (owned)
        if nb["metadata"].get("deletionTimestamp"):
            return None
        NotebookObject.model_validate(nb)
        self._ensure_token(nb)
        pod = self._pod(namespace, name)
        stopped = STOP_ANNOTATION in (nb["metadata"].get("annotations") or {})
        if stopped:
            if pod is not None and not pod["metadata"].get("deletionTimestamp"):
                try:
                    self.store.delete(PODS, namespace, pod["metadata"]["name"])
                except NotFoundError:
                    pass
                self.record(self.store, nb, "Normal", "Stopped", "Stopped the notebook's pod")
        elif pod is None:
            try:
                pod = self.store.create(build_pod(nb, free_port()))
            except WonderlandError as exc:
                self.record(self.store, nb, "Warning", "FailedCreate", f"Error creating: {exc}")
                raise
            self.record(self.store, nb, "Normal", "SuccessfulCreate", f"Created pod: {name}-0")
            self._wake_tracking(pod)
        elif pod["metadata"].get("deletionTimestamp") is None and _finished(pod):
            # a StatefulSet replaces a pod that ended; the notebook server should not end
            self.store.delete(PODS, namespace, pod["metadata"]["name"])
            return Result(requeue_after=0.5)
        if self.on_change is not None:
            self.on_change(nb, None if stopped else pod)
        status = notebook_status(nb, None if stopped and pod is None else pod)
        if nb.get("status") != status:
            nb["status"] = status
            try:
                self.store.update_status(nb)
            except ConflictError:
                return Result(requeue_after=0.1)
            except NotFoundError:
                return None
        return None

    def _pod(self, namespace: str, name: str) -> Obj | None:
        try:
            return self.store.get(PODS, namespace, f"{name}-0")
        except NotFoundError:
            return None

    def _wake_tracking(self, pod: Obj) -> None:
        """Start MLflow's server, without waiting, for a pod given the platform's tracking
        URI (the ``access-mlflow`` PodDefault): it starts while JupyterLab does, so the
        notebook's first run (a TrainJob's, a trial's, ``mlflow.start_run()``) does not
        wait for it. Starting is all; the idle timer stops it as ever."""
        tracking = self.tracking
        if tracking is None or not tracking.enabled:
            return
        uri = tracking.client_uri.rstrip("/")
        env = [
            e for c in (pod.get("spec") or {}).get("containers") or [] for e in c.get("env") or []
        ]
        if not any(
            e.get("name") == TRACKING_URI_ENV and str(e.get("value", "")).rstrip("/") == uri
            for e in env
        ):
            return

        async def wake() -> None:
            try:
                await tracking.wake()
            except Exception as exc:  # the notebook runs on; its first run says why
                log.warning("starting MLflow's tracking server for a notebook failed: %s", exc)

        task = asyncio.get_running_loop().create_task(wake(), name="wake MLflow for a notebook")
        self._waking.add(task)
        task.add_done_callback(self._waking.discard)

    def _ensure_token(self, nb: Obj) -> None:
        meta = nb["metadata"]
        try:
            self.store.get(SECRETS, meta["namespace"], token_secret_name(meta["name"]))
            return
        except NotFoundError:
            pass
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": token_secret_name(meta["name"]),
                "namespace": meta["namespace"],
                "labels": {"notebook-name": meta["name"]},
                "ownerReferences": [controller_ref(nb)],
            },
            "type": "Opaque",
            "stringData": {TOKEN_KEY: secrets.token_urlsafe(32)},
        }
        try:
            self.store.create(secret)
        except ConflictError:
            pass


def _finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
