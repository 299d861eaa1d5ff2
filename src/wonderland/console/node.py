"""The node's use and what runs on it, for the Overview's "Node" panel.

CPU and memory are the kubelet's ``metrics.k8s.io`` figures (the numbers ``kubectl top
node`` and ``kubectl top pod`` show), read through the control API's
:class:`~wonderland.control.sources.ResourceMetricsSource` seam; capacity is the Node
object's. The process table lists every running container the kubelet published as a Pod:
its PID (the container ID ``wonderland://<pid>``), port (``containerPort``), CPU (from
PodMetrics), resident memory (``VmRSS`` of ``/proc/<pid>/status``) and age. The GPU line
comes from ``nvidia-smi`` when it is installed; without it the panel says so.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wonderland.api import quantity
from wonderland.control.sources import ResourceMetricsSource
from wonderland.errors import InvalidError, NotFoundError
from wonderland.store import Store

__all__ = ["GpuUse", "NodePanel", "NodeUsage", "ProcessRow", "gpu_use", "node_panel"]

NVIDIA_SMI_TIMEOUT = 3.0
GPU_QUERY = "index,name,utilization.gpu,memory.used,memory.total"


@dataclass(frozen=True)
class GpuUse:
    index: str
    name: str
    percent: float | None
    memory_used: int  # bytes
    memory_total: int


@dataclass(frozen=True)
class NodeUsage:
    name: str
    cpus: float  # capacity, in CPUs
    cpu_used: float | None  # CPUs in use now (None: no kubelet in this daemon)
    memory_total: int  # bytes
    memory_used: int | None

    @property
    def cpu_percent(self) -> float | None:
        if self.cpu_used is None or not self.cpus:
            return None
        return 100.0 * self.cpu_used / self.cpus

    @property
    def memory_percent(self) -> float | None:
        if self.memory_used is None or not self.memory_total:
            return None
        return 100.0 * self.memory_used / self.memory_total


@dataclass(frozen=True)
class ProcessRow:
    namespace: str
    pod: str
    container: str
    pid: int
    port: str
    cpu: float | None  # CPUs (1.0 = one core)
    rss: int | None  # bytes
    age_seconds: float | None
    owner: str  # Kind/name of the pod's owner ("" for a bare pod)


@dataclass
class NodePanel:
    usage: NodeUsage | None
    gpus: list[GpuUse] = field(default_factory=list)
    gpu_note: str = ""
    processes: list[ProcessRow] = field(default_factory=list)
    note: str = ""  # why figures are missing


def _rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _age(started: str) -> float | None:
    if not started:
        return None
    try:
        when = datetime.fromisoformat(started.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max((datetime.now(UTC) - when).total_seconds(), 0.0)


def _quantity(value: Any) -> float | None:
    try:
        return float(quantity.parse(str(value)))
    except (InvalidError, ValueError):
        return None


def _container_cpu(metrics: list[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
    out: dict[tuple[str, str, str], float] = {}
    for item in metrics:
        meta = item.get("metadata") or {}
        for row in item.get("containers") or []:
            value = _quantity((row.get("usage") or {}).get("cpu", "0"))
            if value is not None:
                key = (str(meta.get("namespace")), str(meta.get("name")), str(row.get("name")))
                out[key] = value
    return out


def processes(store: Store, cpu: Mapping[tuple[str, str, str], float]) -> list[ProcessRow]:
    """Every running container the kubelet published, with its PID and port."""
    try:
        pods, _ = store.list("pods", None)
    except NotFoundError:
        return []
    rows: list[ProcessRow] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        spec = pod.get("spec") or {}
        ports: dict[str, str] = {}
        for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            numbers = [str(p.get("containerPort")) for p in container.get("ports") or []]
            ports[str(container.get("name"))] = ", ".join(n for n in numbers if n != "None")
        owners = meta.get("ownerReferences") or []
        owner = f"{owners[0].get('kind')}/{owners[0].get('name')}" if owners else ""
        status = pod.get("status") or {}
        for cstatus in [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]:
            running = (cstatus.get("state") or {}).get("running")
            cid = str(cstatus.get("containerID") or "")
            if not running or not cid.startswith("wonderland://"):
                continue
            try:
                pid = int(cid.removeprefix("wonderland://"))
            except ValueError:
                continue
            container = str(cstatus.get("name") or "")
            rows.append(
                ProcessRow(
                    ns,
                    name,
                    container,
                    pid,
                    ports.get(container, ""),
                    cpu.get((ns, name, container)),
                    _rss(pid),
                    _age(str(running.get("startedAt") or "")),
                    owner,
                )
            )
    rows.sort(key=lambda r: (r.namespace, r.pod, r.container))
    return rows


def _node_usage(store: Store, node_metrics: list[dict[str, Any]] | None) -> NodeUsage | None:
    try:
        nodes, _ = store.list("nodes", None)
    except NotFoundError:
        return None
    if not nodes:
        return None
    node = nodes[0]
    capacity = (node.get("status") or {}).get("capacity") or {}
    cpus = _quantity(capacity.get("cpu", "0")) or 0.0
    memory = int(_quantity(capacity.get("memory", "0")) or 0)
    used_cpu: float | None = None
    used_memory: int | None = None
    for item in node_metrics or []:
        usage = item.get("usage") or {}
        used_cpu = _quantity(usage.get("cpu", "0"))
        mem = _quantity(usage.get("memory", "0"))
        used_memory = int(mem) if mem is not None else None
    return NodeUsage(
        str((node.get("metadata") or {}).get("name")), cpus, used_cpu, memory, used_memory
    )


def _parse_smi(text: str) -> list[GpuUse]:
    out: list[GpuUse] = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            continue

        def number(raw: str) -> float | None:
            try:
                return float(raw)
            except ValueError:  # "[N/A]"
                return None

        used, total = number(parts[3]), number(parts[4])
        out.append(
            GpuUse(
                parts[0],
                parts[1],
                number(parts[2]),
                int((used or 0) * 1024 * 1024),
                int((total or 0) * 1024 * 1024),
            )
        )
    return out


async def gpu_use() -> tuple[list[GpuUse], str]:
    """Each GPU's use from ``nvidia-smi``, or ([], why there is none)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [], "no GPU use to show: nvidia-smi is not installed on this machine"
    try:
        proc = await asyncio.create_subprocess_exec(
            smi,
            f"--query-gpu={GPU_QUERY}",
            "--format=csv,noheader,nounits",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), NVIDIA_SMI_TIMEOUT)
    except (OSError, TimeoutError):
        return [], f"nvidia-smi did not answer within {NVIDIA_SMI_TIMEOUT:.0f} s"
    if proc.returncode != 0:
        reason = err.decode(errors="replace").strip().splitlines()[:1] or ["no output"]
        return [], f"nvidia-smi failed: {reason[0]}"
    gpus = _parse_smi(out.decode(errors="replace"))
    return gpus, "" if gpus else "nvidia-smi lists no GPU"


@dataclass
class _Cached:
    at: float
    panel: NodePanel


class NodeSampler:
    """Builds the node panel; figures are re-measured at most every ``min_seconds``, so
    several open consoles share one measurement."""

    def __init__(
        self, store: Store, metrics: ResourceMetricsSource | None, min_seconds: float = 2.0
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.min_seconds = min_seconds
        self._cached: _Cached | None = None
        self._lock = asyncio.Lock()

    @property
    def latest(self) -> NodePanel | None:
        return self._cached.panel if self._cached is not None else None

    async def panel(self) -> NodePanel:
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached.at < self.min_seconds:
                return self._cached.panel
            panel = await node_panel(self.store, self.metrics)
            self._cached = _Cached(time.monotonic(), panel)
            return panel


async def node_panel(store: Store, metrics: ResourceMetricsSource | None) -> NodePanel:
    """The node's use, its GPUs and the process table, measured now."""
    if metrics is None:
        usage = _node_usage(store, None)
        panel = NodePanel(usage, note="no kubelet runs in this daemon: no CPU or memory figures")
        panel.processes = processes(store, {})
    else:
        node_metrics, pod_metrics = await asyncio.gather(
            metrics.node_metrics(), metrics.pod_metrics(None)
        )
        panel = NodePanel(_node_usage(store, node_metrics))
        panel.processes = processes(store, _container_cpu(pod_metrics))
    panel.gpus, panel.gpu_note = await gpu_use()
    return panel
