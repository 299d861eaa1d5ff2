"""Idle culling, as the notebook controller's ``culling_controller.go`` does it.

With culling on (``WONDERLAND_ENABLE_CULLING=true``), every ``IDLENESS_CHECK_PERIOD``
minutes a running Notebook's kernels are read from its server's ``/api/kernels``; the
annotation ``notebooks.kubeflow.org/last-activity`` becomes now when a kernel is busy, else
the newest kernel ``last_activity``; when it is older than ``CULL_IDLE_TIME`` minutes the
Notebook is annotated ``kubeflow-resource-stopped`` and its pod goes (the kernel state is
lost, the volumes stay). A stopped Notebook, or one without a pod, loses both culling
annotations. A server that does not answer, or has no kernels, leaves last-activity as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from wonderland.controllers import Result
from wonderland.errors import ConflictError, NotFoundError
from wonderland.notebooks.controller import (
    NOTEBOOKS,
    PODS,
    SECRETS,
    STOP_ANNOTATION,
    TOKEN_KEY,
    notebook_prefix,
    token_secret_name,
)
from wonderland.store import Store

__all__ = [
    "LAST_ACTIVITY",
    "LAST_CHECK",
    "CullingReconciler",
    "HTTPKernels",
    "Kernel",
    "KernelSource",
    "last_activity",
]

Obj = dict[str, Any]
LAST_ACTIVITY = "notebooks.kubeflow.org/last-activity"
LAST_CHECK = "notebooks.kubeflow.org/last_activity_check_timestamp"


@dataclass(frozen=True)
class Kernel:
    """One entry of Jupyter Server's ``GET /api/kernels``."""

    id: str
    execution_state: str
    last_activity: str


class KernelSource(Protocol):
    """The kernels of a notebook's server, or None when it does not answer."""

    async def kernels(self, notebook: Obj, pod: Obj) -> list[Kernel] | None: ...


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def last_activity(kernels: list[Kernel], now: datetime) -> datetime | None:
    """``updateTimestampFromKernelsActivity``: now when any kernel is not idle, else the
    newest ``last_activity`` (None for no kernels or an unreadable time)."""
    if not kernels:
        return None
    if any(k.execution_state != "idle" for k in kernels):
        return now
    times = [_parse(k.last_activity) for k in kernels]
    if any(t is None for t in times):
        return None
    return max(t for t in times if t is not None)


class HTTPKernels:
    """Reads ``<NB_PREFIX>/api/kernels`` from the pod's port with the notebook's token."""

    def __init__(self, store: Store, timeout: float = 10.0) -> None:
        self.store = store
        self.timeout = timeout

    async def kernels(self, notebook: Obj, pod: Obj) -> list[Kernel] | None:
        meta = notebook["metadata"]
        ports = (pod["spec"]["containers"][0].get("ports") or [{}])[0]
        port = ports.get("containerPort")
        if not port:
            return None
        headers = {}
        try:
            secret = self.store.get(SECRETS, meta["namespace"], token_secret_name(meta["name"]))
            import base64

            token = base64.b64decode((secret.get("data") or {}).get(TOKEN_KEY, "")).decode()
            headers["Authorization"] = f"token {token}"
        except NotFoundError:
            pass
        url = (
            f"http://127.0.0.1:{port}{notebook_prefix(meta['namespace'], meta['name'])}/api/kernels"
        )
        try:
            async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as client:
                response = await client.get(url, headers=headers)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        try:
            body = response.json()
        except ValueError:
            return None
        return [
            Kernel(
                str(k.get("id", "")),
                str(k.get("execution_state", "")),
                str(k.get("last_activity", "")),
            )
            for k in body
            if isinstance(k, dict)
        ]


class CullingReconciler:
    """Stops idle Notebooks (module docstring); ``clock`` is replaced in tests."""

    resource: str = NOTEBOOKS
    owns: tuple[str, ...] = ()
    watches: tuple[str, ...] = ()

    def __init__(
        self,
        store: Store,
        kernels: KernelSource,
        cull_idle_minutes: float,
        check_period_minutes: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.source = kernels
        self.idle = timedelta(minutes=cull_idle_minutes)
        self.period = timedelta(minutes=check_period_minutes)
        self.clock = clock

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        try:
            nb = self.store.get(NOTEBOOKS, namespace, name)
        except NotFoundError:
            return None
        meta = nb["metadata"]
        annotations: dict[str, str] = dict(meta.get("annotations") or {})
        if STOP_ANNOTATION in annotations:
            return self._drop_annotations(nb, annotations)
        try:
            pod = self.store.get(PODS, namespace, f"{name}-0")
        except NotFoundError:
            return self._drop_annotations(nb, annotations)
        now = self.clock()
        if LAST_ACTIVITY not in annotations or LAST_CHECK not in annotations:
            annotations[LAST_ACTIVITY] = annotations[LAST_CHECK] = _stamp(now)
            return self._write(nb, annotations) or Result(requeue_after=self.period.total_seconds())
        checked = _parse(annotations[LAST_CHECK])
        if checked is not None and now < checked + self.period:
            wait = (checked + self.period - now).total_seconds()
            return Result(requeue_after=max(wait, 0.05))
        kernels = await self.source.kernels(nb, pod)
        activity = last_activity(kernels or [], now)
        if activity is not None:
            annotations[LAST_ACTIVITY] = _stamp(activity)
        annotations[LAST_CHECK] = _stamp(now)
        last = _parse(annotations[LAST_ACTIVITY])
        if last is not None and now > last + self.idle:
            annotations[STOP_ANNOTATION] = _stamp(now)
        retry = self._write(nb, annotations)
        if retry is not None or STOP_ANNOTATION in annotations:
            return retry
        return Result(requeue_after=self.period.total_seconds())

    def _drop_annotations(self, nb: Obj, annotations: dict[str, str]) -> Result | None:
        if LAST_ACTIVITY not in annotations and LAST_CHECK not in annotations:
            return None
        annotations.pop(LAST_ACTIVITY, None)
        annotations.pop(LAST_CHECK, None)
        return self._write(nb, annotations)

    def _write(self, nb: Obj, annotations: dict[str, str]) -> Result | None:
        nb["metadata"]["annotations"] = annotations
        try:
            self.store.update(nb)
        except ConflictError:
            return Result(requeue_after=0.1)
        except NotFoundError:
            return None
        return None
