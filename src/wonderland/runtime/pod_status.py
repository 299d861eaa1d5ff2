"""A pod's ``status`` as the kubelet writes it: phase, conditions, container statuses.

Conditions keep their ``lastTransitionTime`` until their status changes, as the kubelet
does; the order is the kubelet's (``PodReadyToStartContainers``, ``Initialized``, ``Ready``,
``ContainersReady``, ``PodScheduled``). Readiness-gate conditions belong to whoever sets
them and are kept as they are.
"""

from __future__ import annotations

from typing import Any, Protocol

from wonderland.api.schemas.core import PodObject, qos_class
from wonderland.runtime.container_runner import ContainerRunner, now
from wonderland.runtime.scheduler import Admission

__all__ = ["Conditions", "PodView", "build", "refresh_conditions"]

Obj = dict[str, Any]

_ORDER = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
    "DisruptionTarget",
)


class Conditions:
    """The kubelet's conditions of one pod, with stable transition times."""

    def __init__(self) -> None:
        self.items: dict[str, Obj] = {}

    def set(self, ctype: str, status: str, reason: str = "", message: str = "") -> None:
        current = self.items.get(ctype)
        if current is not None and (
            current["status"],
            current.get("reason", ""),
            current.get("message", ""),
        ) == (status, reason, message):
            return
        changed = current is None or current["status"] != status
        cond: Obj = {
            "type": ctype,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": now()
            if changed or current is None
            else current["lastTransitionTime"],
        }
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        self.items[ctype] = cond

    def true(self, ctype: str) -> bool:
        cond = self.items.get(ctype)
        return bool(cond and cond["status"] == "True")

    def ordered(self) -> list[Obj]:
        return [self.items[c] for c in _ORDER if c in self.items]


class PodView(Protocol):
    """What the status is made of (a pod worker)."""

    raw: Obj
    pod: PodObject
    phase: str
    reason: str
    message: str
    conditions: Conditions
    admission: Admission | None
    sandbox_ready: bool
    initialized: bool
    start_time: str | None
    init: list[ContainerRunner]
    apps: list[ContainerRunner]
    disruption: tuple[str, str] | None


def refresh_conditions(view: PodView) -> None:
    """Bring the conditions up to date with the containers' states."""
    conditions = view.conditions
    terminal = view.phase in ("Succeeded", "Failed")
    scheduled = view.admission is not None or conditions.true("PodScheduled")
    if scheduled:
        conditions.set(
            "PodReadyToStartContainers",
            "True" if view.sandbox_ready and not terminal else "False",
        )
    if scheduled or view.sandbox_ready:
        if view.initialized:
            conditions.set("Initialized", "True", "PodCompleted" if terminal and view.init else "")
        else:
            pending = [
                r.name for r in view.init if r.kind == "init" and not r.state.get("terminated")
            ]
            conditions.set(
                "Initialized",
                "False",
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending)}]",
            )
        sidecars = [r for r in view.init if r.kind == "sidecar"]
        unready = [r.name for r in [*sidecars, *view.apps] if not r.ready]
        if terminal:
            conditions.set("ContainersReady", "False", "PodCompleted")
            conditions.set("Ready", "False", "PodCompleted")
        elif unready:
            message = f"containers with unready status: [{' '.join(unready)}]"
            conditions.set("ContainersReady", "False", "ContainersNotReady", message)
            conditions.set("Ready", "False", "ContainersNotReady", message)
        else:
            gates = [g.conditionType for g in view.pod.spec.readinessGates or []]
            stored = {
                c.get("type"): c.get("status")
                for c in (view.raw.get("status") or {}).get("conditions") or []
            }
            missing = [g for g in gates if stored.get(g) != "True"]
            conditions.set("ContainersReady", "True")
            if missing:
                conditions.set(
                    "Ready",
                    "False",
                    "ReadinessGatesNotReady",
                    f'corresponding condition of pod readiness gate "{missing[0]}" does not exist.',
                )
            else:
                conditions.set("Ready", "True")
    if view.disruption is not None:
        conditions.set("DisruptionTarget", "True", *view.disruption)


def build(view: PodView) -> Obj:
    """The ``status`` object."""
    refresh_conditions(view)
    stored = (view.raw.get("status") or {}).get("conditions") or []
    conditions = view.conditions.ordered()
    conditions += [c for c in stored if c.get("type") not in view.conditions.items]
    out: Obj = {"phase": view.phase, "conditions": conditions, "qosClass": qos_class(view.pod)}
    if view.admission is not None or view.start_time:
        out["hostIP"] = "127.0.0.1"
        out["hostIPs"] = [{"ip": "127.0.0.1"}]
    if view.sandbox_ready:
        out["podIP"] = "127.0.0.1"
        out["podIPs"] = [{"ip": "127.0.0.1"}]
    if view.start_time:
        out["startTime"] = view.start_time
    if view.init:
        out["initContainerStatuses"] = [r.status() for r in view.init]
    if view.start_time:
        out["containerStatuses"] = [r.status() for r in view.apps]
    if view.reason:
        out["reason"] = view.reason
        out["message"] = view.message
    return out
