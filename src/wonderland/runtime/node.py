"""This machine as one Kubernetes Node: its name, capacity, allocatable and GPUs.

``kubectl get nodes`` shows it Ready with the capacity a kubelet reports: ``cpu`` (the
CPUs this process may use), ``memory`` (``MemTotal``), ``pods`` (110, the kubelet's
default), ``ephemeral-storage`` (the state directory's filesystem) and ``nvidia.com/gpu``
(``nvidia-smi -L``, or ``WONDERLAND_GPUS`` for tests). Allocatable keeps back what the
kubelet keeps back by default: the ``memory.available<100Mi`` eviction threshold.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wonderland import __version__
from wonderland.errors import ConfigError

__all__ = ["GPU", "KUBELET_VERSION", "NodeInfo", "detect_gpus", "discover", "node_name"]

KUBELET_VERSION = "v1.32.0"
EVICTION_RESERVE = 100 * 1024 * 1024
MAX_PODS = 110
GPU = "nvidia.com/gpu"


@dataclass(frozen=True)
class NodeInfo:
    """What the node offers, in base units (millicores, bytes, devices)."""

    name: str
    cpu_millis: int
    memory: int
    ephemeral_storage: int
    gpus: tuple[str, ...] = ()
    gpu_names: tuple[str, ...] = ()
    max_pods: int = MAX_PODS
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def allocatable_memory(self) -> int:
        return max(self.memory - EVICTION_RESERVE, 0)

    def capacity(self) -> dict[str, str]:
        out = {
            "cpu": _cpu(self.cpu_millis),
            "memory": f"{self.memory // 1024}Ki",
            "pods": str(self.max_pods),
            "ephemeral-storage": f"{self.ephemeral_storage // 1024}Ki",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
        }
        if self.gpus:
            out[GPU] = str(len(self.gpus))
        return out

    def allocatable(self) -> dict[str, str]:
        out = self.capacity()
        out["memory"] = f"{self.allocatable_memory // 1024}Ki"
        return out

    def node_object(self, created: str | None = None) -> dict[str, Any]:
        """The Node as the kubelet registers it (status is filled by the kubelet)."""
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": _arch(),
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": _arch(),
            "node-role.kubernetes.io/control-plane": "",
            **self.labels,
        }
        if self.gpus:
            labels["nvidia.com/gpu.present"] = "true"
            labels["nvidia.com/gpu.count"] = str(len(self.gpus))
            if self.gpu_names:
                labels["nvidia.com/gpu.product"] = _label_value(self.gpu_names[0])
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
            "spec": {},
        }

    def status(self, ready: bool, heartbeat: str, since: str) -> dict[str, Any]:
        uname = platform.uname()

        def cond(ctype: str, status: str, reason: str, message: str) -> dict[str, str]:
            return {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": heartbeat,
                "lastTransitionTime": since,
            }

        return {
            "capacity": self.capacity(),
            "allocatable": self.allocatable(),
            "conditions": [
                cond(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                cond(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                cond(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                cond(
                    "Ready",
                    "True" if ready else "False",
                    "KubeletReady" if ready else "KubeletNotReady",
                    "kubelet is posting ready status" if ready else "the daemon is stopping",
                ),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": _machine_id(),
                "systemUUID": _machine_id(),
                "bootID": _boot_id(),
                "kernelVersion": uname.release,
                "osImage": _os_image(),
                "containerRuntimeVersion": f"wonderland://{__version__}",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": _arch(),
            },
        }


def _cpu(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-._")
    return value[:63].rstrip("-._")


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _machine_id() -> str:
    return _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")


def _boot_id() -> str:
    return _read("/proc/sys/kernel/random/boot_id")


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.platform()


def node_name() -> str:
    """The hostname as a DNS-1123 name (lower case, ``-`` for anything else)."""
    raw = socket.gethostname().lower()
    name = re.sub(r"[^a-z0-9.-]+", "-", raw).strip("-.")
    return name or "localhost"


def _memory_total() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _cpus() -> int:
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def detect_gpus(override: str = "") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(device indexes, product names): ``override`` (a count) or ``nvidia-smi -L``."""
    if override.strip():
        try:
            count = int(override)
        except ValueError:
            raise ConfigError(
                f'WONDERLAND_GPUS="{override}" is not a number of GPUs; use 0, 1, 2, ...'
            ) from None
        return tuple(str(i) for i in range(count)), ()
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return (), ()
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return (), ()
    indexes: list[str] = []
    names: list[str] = []
    for line in out.splitlines():
        match = re.match(r"GPU (\d+): (.+?)(?: \(UUID: ([^)]+)\))?$", line.strip())
        if match:
            indexes.append(match.group(1))
            names.append(match.group(2))
    return tuple(indexes), tuple(names)


def discover(state_dir: Path, gpus_override: str = "", max_pods: int = MAX_PODS) -> NodeInfo:
    """This machine's node."""
    try:
        disk = shutil.disk_usage(state_dir).total
    except OSError:
        disk = 0
    gpus, names = detect_gpus(gpus_override)
    return NodeInfo(
        name=node_name(),
        cpu_millis=_cpus() * 1000,
        memory=_memory_total(),
        ephemeral_storage=disk,
        gpus=gpus,
        gpu_names=names,
        max_pods=max_pods,
    )
