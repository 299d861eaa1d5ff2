"""Metrics collectors without sidecars: plain functions over what a trial's primary pod
left behind, writing through the observation log.

- ``StdOut``: the primary container's log, as the kubelet keeps it; lines parsed with
  Katib's default regex or ``source.filter.metricsFormat``, as Katib's collector does
  (``parseLogsInTextFormat``: a line counts when it contains a metric's name, and only the
  objective and additional metrics are kept).
- ``File``: the file at ``source.fileSystemPath.path`` in the pod's filesystem view (a path
  under one of the container's volume mounts is read from that volume), ``TEXT`` parsed as
  above, ``JSON`` one object per line with string values, as Katib's file collector reads it.
- TrainJob trials: ``status.trainerStatus.metrics``, the values the training code
  reported to Trainer's status endpoint.
- ``Push``: the code reports through Katib's DB manager API; nothing to read here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wonderland.api.schemas.core import PodObject
from wonderland.errors import NotFoundError, WonderlandError
from wonderland.runtime.kubelet import Kubelet
from wonderland.runtime.logs import LogOptions
from wonderland.tuning.observations import MetricLog
from wonderland.workloads.views import parse_time

__all__ = [
    "DEFAULT_FILTER",
    "METRICS_VOLUME",
    "CollectedMetrics",
    "PodFiles",
    "parse_json",
    "parse_text",
    "trainer_status_metrics",
]

Obj = dict[str, Any]

DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
METRICS_VOLUME = "metrics-volume"
ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
TAIL_LINES = 5
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass
class CollectedMetrics:
    """What one read of a collector's source found, and what to tell a user when the
    objective metric is not among it."""

    logs: list[MetricLog] = field(default_factory=list)
    source: str = ""
    tail: list[str] = field(default_factory=list)

    def describe_tail(self) -> str:
        if not self.tail:
            return "it read nothing"
        return "the last lines it read: " + " | ".join(line[:200] for line in self.tail)


def _timestamp(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("Z", "+00:00")))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_text(
    lines: Iterable[str], metrics: Sequence[str], filters: Sequence[str] | None = None
) -> list[MetricLog]:
    """Katib's ``parseLogsInTextFormat``: ``name=value`` pairs of the wanted metrics; a line
    that starts with an RFC 3339 timestamp gives its values that time."""
    patterns = [re.compile(f) for f in (filters or [DEFAULT_FILTER])]
    out: list[MetricLog] = []
    for line in lines:
        if not any(m in line for m in metrics):
            continue
        stamp = ZERO_TIME
        head, _, _rest = line.partition(" ")
        parsed = _timestamp(head) if head else None
        if parsed is not None:
            stamp = parsed
        for pattern in patterns:
            for match in pattern.finditer(line):
                if pattern.groups < 2:
                    continue
                name = (match.group(1) or "").strip()
                value = (match.group(2) or "").strip()
                if name in metrics and value:
                    out.append(MetricLog(stamp, name, value))
    return out


def parse_json(lines: Iterable[str], metrics: Sequence[str]) -> list[MetricLog]:
    """Katib's ``parseLogsInJsonFormat``: one JSON object per line; a metric counts when its
    value is a string (``{"loss": "0.25", "timestamp": ...}``)."""
    out: list[MetricLog] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise WonderlandError(f"line {number} is not JSON ({exc}): {line[:200]}") from None
        if not isinstance(obj, dict):
            continue
        stamp = ZERO_TIME
        raw = obj.get("timestamp")
        if isinstance(raw, int | float):
            stamp = datetime.fromtimestamp(float(raw), UTC)
        elif isinstance(raw, str):
            stamp = _timestamp(raw) or ZERO_TIME
        for name in metrics:
            value = obj.get(name)
            if isinstance(value, str):
                out.append(MetricLog(stamp, name, value))
    return out


def trainer_status_metrics(run: Obj, metrics: Sequence[str]) -> list[MetricLog]:
    """The wanted metrics of a TrainJob's ``status.trainerStatus``, at its update time."""
    trainer = (run.get("status") or {}).get("trainerStatus") or {}
    stamp = parse_time(trainer.get("lastUpdatedTime")) or ZERO_TIME
    return [
        MetricLog(stamp, str(m.get("name")), str(m.get("value")))
        for m in trainer.get("metrics") or []
        if m.get("name") in metrics
    ]


class PodFiles:
    """Reads a trial's primary pod: its container's log, and files in its filesystem view."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet

    def log_lines(self, pod: Obj, container: str) -> list[str]:
        meta = pod["metadata"]
        try:
            data = self.kubelet.read_log(
                meta["namespace"], meta["name"], container, False, LogOptions(timestamps=True)
            )
        except (WonderlandError, OSError):
            return []
        return data.decode(errors="replace").splitlines()

    def host_path(self, pod: Obj, container: str, path: str) -> Path:
        """Where ``path`` (as the container sees it) is on this machine."""
        typed = PodObject.model_validate(pod)
        match = next((c for c in typed.spec.containers if c.name == container), None)
        mounts = sorted(
            (m for m in (match.volumeMounts or []) if match is not None)
            if match is not None
            else [],
            key=lambda m: len(m.mountPath),
            reverse=True,
        )
        for mount in mounts:
            prefix = mount.mountPath.rstrip("/")
            if path != prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) :].lstrip("/")
            volume = next((v for v in typed.spec.volumes or [] if v.name == mount.name), None)
            if volume is None:
                break
            base = self._volume_path(typed, volume.name)
            if base is None:
                break
            if mount.subPath:
                base = base / mount.subPath
            return base / rest if rest else base
        return Path(path)

    def _volume_path(self, pod: PodObject, name: str) -> Path | None:
        volume = next(v for v in pod.spec.volumes or [] if v.name == name)
        manager = self.kubelet.volumes
        if volume.emptyDir is not None:
            if volume.emptyDir.medium == "Memory":
                return manager.memory_dir(pod) / "empty-dir" / name
            return manager.pod_dir(pod) / "volumes" / "kubernetes.io~empty-dir" / name
        if volume.hostPath is not None:
            return Path(volume.hostPath.path)
        if volume.persistentVolumeClaim is not None:
            try:
                return self.kubelet.pv_path(
                    str(pod.metadata["namespace"]), volume.persistentVolumeClaim.claimName
                )
            except (WonderlandError, NotFoundError):
                return None
        return None

    def file_lines(self, pod: Obj, container: str, path: str) -> tuple[list[str], Path]:
        host = self.host_path(pod, container, path)
        try:
            return host.read_text(errors="replace").splitlines(), host
        except OSError:
            return [], host
