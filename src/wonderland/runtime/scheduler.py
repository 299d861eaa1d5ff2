"""The scheduler of the one node: admits pods against its allocatable and hands out GPUs.

A pod's requests are what kube-scheduler counts: per resource, the larger of the sum over
its containers (and sidecars) and the largest init container; a container with a limit
and no request requests its limit. A pod that does not fit stays ``Pending`` with
``PodScheduled=False``, reason ``Unschedulable`` and the scheduler's message
(``0/1 nodes are available: 1 Insufficient nvidia.com/gpu.``), and is admitted as soon as
something frees up, oldest (then highest priority) first.

GPUs are devices, not amounts: each admitted pod gets GPU indexes no other running pod
holds, and each of its containers its own share of them (``CUDA_VISIBLE_DEVICES``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from wonderland.api import quantity
from wonderland.api.schemas.core import Container, NodeSelectorRequirement, PodSpec
from wonderland.errors import InvalidError
from wonderland.runtime.node import GPU, NodeInfo

__all__ = ["Admission", "Requests", "Scheduler", "container_requests", "pod_requests"]

_STANDARD = ("cpu", "memory", "ephemeral-storage")


@dataclass
class Requests:
    """Amounts in base units: millicores for cpu, bytes, devices."""

    amounts: dict[str, int] = field(default_factory=dict)

    def get(self, resource: str) -> int:
        return self.amounts.get(resource, 0)

    def add(self, other: Requests) -> Requests:
        out = dict(self.amounts)
        for key, value in other.amounts.items():
            out[key] = out.get(key, 0) + value
        return Requests(out)

    def maximum(self, other: Requests) -> Requests:
        out = dict(self.amounts)
        for key, value in other.amounts.items():
            out[key] = max(out.get(key, 0), value)
        return Requests(out)


def _amount(resource: str, value: str | int | float, where: str) -> int:
    if resource == "cpu":
        return quantity.millis(value, where)
    parsed = quantity.parse(value, where)
    whole = int(parsed)
    return whole + (1 if parsed > whole else 0)


def container_requests(container: Container, where: str = "") -> Requests:
    """The container's requests, defaulted from its limits as the API server does."""
    resources = container.resources
    if resources is None:
        return Requests()
    limits = resources.limits or {}
    requests = resources.requests or {}
    out: dict[str, int] = {}
    for name in {*limits, *requests}:
        value = requests.get(name, limits.get(name))
        if value is None:
            continue
        out[name] = _amount(name, value, f"{where}.resources.requests[{name}]")
    return Requests(out)


def container_limits(container: Container, where: str = "") -> dict[str, int]:
    limits = (container.resources.limits if container.resources else None) or {}
    return {k: _amount(k, v, f"{where}.resources.limits[{k}]") for k, v in limits.items()}


def pod_requests(spec: PodSpec) -> Requests:
    """What kube-scheduler counts for a pod (see the module docstring)."""
    running = Requests()
    for i, c in enumerate(spec.containers):
        running = running.add(container_requests(c, f"spec.containers[{i}]"))
    init_peak = Requests()
    sidecars = Requests()
    for i, c in enumerate(spec.initContainers or []):
        req = container_requests(c, f"spec.initContainers[{i}]")
        if c.restartPolicy == "Always":
            sidecars = sidecars.add(req)
            init_peak = init_peak.maximum(sidecars)
        else:
            init_peak = init_peak.maximum(sidecars.add(req))
    total = running.add(sidecars).maximum(init_peak)
    for name, value in (spec.overhead or {}).items():
        total = total.add(Requests({name: _amount(name, value, f"spec.overhead[{name}]")}))
    return total


def validate_resources(spec: PodSpec, path: str = "spec") -> None:
    """The API server's checks: quantities parse, requests do not exceed limits, GPUs
    (and other extended resources) have equal request and limit."""
    groups = (("containers", spec.containers), ("initContainers", spec.initContainers or []))
    for group, containers in groups:
        for i, c in enumerate(containers):
            at = f"{path}.{group}[{i}].resources"
            if c.resources is None:
                continue
            limits = c.resources.limits or {}
            requests = c.resources.requests or {}
            for name, value in limits.items():
                amount = _amount(name, value, f"{at}.limits[{name}]")
                if amount < 0:
                    raise InvalidError(f"{at}.limits[{name}]", "must be greater than or equal to 0")
            for name, value in requests.items():
                amount = _amount(name, value, f"{at}.requests[{name}]")
                if amount < 0:
                    raise InvalidError(
                        f"{at}.requests[{name}]", "must be greater than or equal to 0"
                    )
                extended = name not in _STANDARD and "/" in name
                if extended and name not in limits:
                    raise InvalidError(
                        f"{at}.limits",
                        f"Required value: Limit must be set for non overcommitable resources "
                        f"({name})",
                    )
                if name in limits:
                    limit = _amount(name, limits[name], f"{at}.limits[{name}]")
                    if extended and amount != limit:
                        raise InvalidError(
                            f"{at}.requests[{name}]",
                            f'Invalid value: "{value}": must be equal to {name} limit of '
                            f"{limits[name]}",
                        )
                    if amount > limit:
                        raise InvalidError(
                            f"{at}.requests[{name}]",
                            f'Invalid value: "{value}": must be less than or equal to '
                            f"{name} limit of {limits[name]}",
                        )


@dataclass
class Admission:
    """A pod admitted to the node: what it holds and its GPUs, per container name."""

    uid: str
    requests: Requests
    gpus: tuple[str, ...] = ()
    container_gpus: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _matches(req: NodeSelectorRequirement, labels: Mapping[str, str]) -> bool:
    value = labels.get(req.key)
    values = req.values or []
    if req.operator == "In":
        return value is not None and value in values
    if req.operator == "NotIn":
        return value is None or value not in values
    if req.operator == "Exists":
        return value is not None
    if req.operator == "DoesNotExist":
        return value is None
    try:
        number = int(value or "")
        bound = int(values[0])
    except (ValueError, IndexError):
        return False
    return number > bound if req.operator == "Gt" else number < bound


def node_matches(spec: PodSpec, node_name: str, labels: Mapping[str, str]) -> bool:
    """nodeSelector and required node affinity against this node."""
    for key, value in (spec.nodeSelector or {}).items():
        if labels.get(key) != value:
            return False
    affinity = spec.affinity.nodeAffinity if spec.affinity else None
    required = affinity.requiredDuringSchedulingIgnoredDuringExecution if affinity else None
    if required is None:
        return True
    fields = {"metadata.name": node_name}
    for term in required.nodeSelectorTerms:
        exprs = term.matchExpressions or []
        field_exprs = term.matchFields or []
        if not exprs and not field_exprs:
            continue
        if all(_matches(e, labels) for e in exprs) and all(
            _matches(e, fields) for e in field_exprs
        ):
            return True
    return False


class Scheduler:
    """Accounting of what admitted pods hold on the node."""

    def __init__(self, node: NodeInfo) -> None:
        self.node = node
        self.admitted: dict[str, Admission] = {}
        self.unschedulable = False
        self.taints: list[dict[str, str]] = []
        self.labels: dict[str, str] = {}

    def allocatable(self) -> dict[str, int]:
        return {
            "cpu": self.node.cpu_millis,
            "memory": self.node.allocatable_memory,
            "ephemeral-storage": self.node.ephemeral_storage,
            "pods": self.node.max_pods,
            GPU: len(self.node.gpus),
        }

    def used(self) -> Requests:
        total = Requests()
        for admission in self.admitted.values():
            total = total.add(admission.requests)
        return total

    def free_gpus(self) -> list[str]:
        held = {g for a in self.admitted.values() for g in a.gpus}
        return [g for g in self.node.gpus if g not in held]

    def reasons(self, spec: PodSpec, requests: Requests) -> list[str]:
        """Why the pod does not fit now (empty: it fits), as the scheduler words them."""
        if self.unschedulable and not _tolerates_unschedulable(spec):
            return ["node(s) were unschedulable"]
        if not node_matches(spec, self.node.name, self.labels):
            return ["node(s) didn't match Pod's node affinity/selector"]
        for taint in self.taints:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(spec, taint):
                value = taint.get("value")
                shown = f"{taint['key']}: {value}" if value else taint["key"]
                return [f"node(s) had untolerated taint {{{shown}}}"]
        allocatable = self.allocatable()
        used = self.used()
        out: list[str] = []
        if len(self.admitted) + 1 > allocatable["pods"]:
            out.append("Too many pods")
        for name, amount in sorted(requests.amounts.items()):
            if amount <= 0:
                continue
            have = allocatable.get(name, 0)
            if amount + used.get(name) > have:
                out.append(f"Insufficient {name}")
        return out

    def message(self, reasons: Sequence[str]) -> str:
        return "0/1 nodes are available: " + ", ".join(f"1 {r}" for r in sorted(reasons)) + "."

    def admit(self, uid: str, spec: PodSpec) -> Admission | list[str]:
        """Admit the pod (idempotent) or say why it does not fit."""
        if uid in self.admitted:
            return self.admitted[uid]
        requests = pod_requests(spec)
        reasons = self.reasons(spec, requests)
        if reasons:
            return reasons
        wanted = requests.get(GPU)
        gpus = tuple(self.free_gpus()[:wanted])
        admission = Admission(uid, requests, gpus, _split_gpus(spec, gpus))
        self.admitted[uid] = admission
        return admission

    def release(self, uid: str) -> bool:
        return self.admitted.pop(uid, None) is not None


def _split_gpus(spec: PodSpec, gpus: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Each app container its own GPUs; init containers reuse the pod's from the start."""
    out: dict[str, tuple[str, ...]] = {}
    pos = 0
    for c in spec.containers:
        n = container_requests(c).get(GPU)
        out[c.name or ""] = gpus[pos : pos + n]
        pos += n
    for c in spec.initContainers or []:
        n = container_requests(c).get(GPU)
        out[c.name or ""] = gpus[:n]
    return out


def _tolerated(spec: PodSpec, taint: Mapping[str, str]) -> bool:
    for tol in spec.tolerations or []:
        if tol.effect and tol.effect != taint.get("effect"):
            continue
        if tol.operator == "Exists" and (not tol.key or tol.key == taint.get("key")):
            return True
        if tol.key == taint.get("key") and (tol.value or "") == (taint.get("value") or ""):
            return True
    return False


def _tolerates_unschedulable(spec: PodSpec) -> bool:
    return _tolerated(
        spec, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "value": ""}
    )
