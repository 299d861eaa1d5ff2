"""The kubelet's read-only API for the control plane: ``pods/log`` and ``metrics.k8s.io``.

CPU use is a rate: as metrics-server does, two samples of the cumulative CPU time are
compared. The previous request's sample is reused when it is recent; otherwise a second
sample is taken :data:`SAMPLE_WINDOW` seconds after the first. A window is never shorter
than :data:`SAMPLE_WINDOW`. Memory is the working set
(cgroup usage less inactive file pages; resident memory of the process tree without
cgroups). Node figures come from ``/proc/stat`` and ``/proc/meminfo``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from wonderland.control.sources import LogQuery
from wonderland.runtime.kubelet import Kubelet
from wonderland.runtime.logs import LogOptions
from wonderland.runtime.pod_worker import now

__all__ = ["KubeletAPI"]

SAMPLE_WINDOW = 0.5
MAX_SAMPLE_AGE = 60.0

Sample = tuple[float, dict[str, dict[str, tuple[int, int, float]]], tuple[int, int]]


def _options(query: LogQuery) -> LogOptions:
    return LogOptions(
        tail_lines=query.tail_lines,
        timestamps=query.timestamps,
        since=query.since,
        limit_bytes=query.limit_bytes,
    )


def _node_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def _node_memory() -> int:
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return values.get("MemTotal", 0) - values.get("MemAvailable", 0)


class KubeletAPI:
    """Implements the control API's PodLogSource and ResourceMetricsSource."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet
        self._last: Sample | None = None
        self._lock = asyncio.Lock()

    # -- logs --------------------------------------------------------------------------

    def read(self, namespace: str, pod: str, query: LogQuery) -> bytes:
        return self.kubelet.read_log(
            namespace, pod, query.container, query.previous, _options(query)
        )

    def follow(self, namespace: str, pod: str, query: LogQuery) -> AsyncIterator[bytes]:
        return self.kubelet.follow_log(namespace, pod, query.container, _options(query))

    # -- metrics -----------------------------------------------------------------------

    def _sample(self) -> Sample:
        return time.monotonic(), self.kubelet.usage(), _node_cpu()

    async def _window(self) -> tuple[Sample, Sample]:
        async with self._lock:
            previous = self._last
            if previous is None or time.monotonic() - previous[0] > MAX_SAMPLE_AGE:
                previous = self._sample()
                await asyncio.sleep(SAMPLE_WINDOW)
            current = self._sample()
            short = SAMPLE_WINDOW - (current[0] - previous[0])
            if short > 0:
                # a window shorter than a few CPU-quota periods (CFS: 100 ms) catches a
                # throttled container's burst, not its rate: 30 ms of a 300m quota in a
                # 60 ms window would read as 500m
                await asyncio.sleep(short)
                current = self._sample()
            self._last = current
            return previous, current

    async def node_metrics(self) -> list[dict[str, Any]]:
        before, after = await self._window()
        busy = after[2][0] - before[2][0]
        total = after[2][1] - before[2][1]
        cpus = self.kubelet.node.cpu_millis / 1000
        nanocores = int(busy / total * cpus * 1e9) if total > 0 else 0
        elapsed = after[0] - before[0]
        return [
            {
                "kind": "NodeMetrics",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {
                    "name": self.kubelet.node.name,
                    "labels": self.kubelet.scheduler.labels,
                    "creationTimestamp": now(),
                },
                "timestamp": now(),
                "window": f"{elapsed:.3f}s",
                "usage": {"cpu": f"{nanocores}n", "memory": f"{_node_memory() // 1024}Ki"},
            }
        ]

    async def pod_metrics(self, namespace: str | None) -> list[dict[str, Any]]:
        before, after = await self._window()
        elapsed = max(after[0] - before[0], 1e-6)
        out: list[dict[str, Any]] = []
        for uid, containers in after[1].items():
            worker = self.kubelet.workers.get(uid)
            if worker is None or (namespace and worker.namespace != namespace):
                continue
            earlier = before[1].get(uid, {})
            rows = []
            for name, (cpu_ns, memory, started) in containers.items():
                before_this = earlier.get(name)
                if before_this is not None and before_this[2] == started:
                    nanocores = max(int((cpu_ns - before_this[0]) / elapsed), 0)
                elif after[0] - started >= SAMPLE_WINDOW:
                    # started within the window: its whole CPU time over its whole life
                    nanocores = int(cpu_ns / (after[0] - started))
                else:
                    continue  # too young for a rate; metrics-server too lists it later
                rows.append(
                    {
                        "name": name,
                        "usage": {"cpu": f"{nanocores}n", "memory": f"{memory // 1024}Ki"},
                    }
                )
            if not rows:
                continue
            out.append(
                {
                    "kind": "PodMetrics",
                    "apiVersion": "metrics.k8s.io/v1beta1",
                    "metadata": {
                        "name": worker.name,
                        "namespace": worker.namespace,
                        "labels": worker.raw["metadata"].get("labels") or {},
                        "creationTimestamp": now(),
                    },
                    "timestamp": now(),
                    "window": f"{elapsed:.3f}s",
                    "containers": rows,
                }
            )
        out.sort(key=lambda m: (m["metadata"]["namespace"], m["metadata"]["name"]))
        return out
