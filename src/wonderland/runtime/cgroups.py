"""Resource limits for container processes: cgroup v2, cgroup v1, or a memory watchdog.

The kubelet gives every container its own cgroup, as a container runtime does:

- **cgroup v2** where the daemon's own cgroup is writable (a delegated subtree, such as a
  systemd user session, or root): ``memory.max``, ``cpu.max``, ``cpu.weight``; an OOM kill
  shows in ``memory.events``.
- **cgroup v1** where its memory hierarchy is writable (root on a v1 host):
  ``memory.limit_in_bytes``, ``cpu.cfs_quota_us``, ``cpu.shares``; an OOM kill shows in
  ``memory.oom_control``.
- **neither**: memory limits are enforced by a watchdog that sums the resident memory of
  the container's processes every :data:`WATCHDOG_PERIOD` seconds and kills the container
  (``OOMKilled``) above its limit; CPU limits are not enforced. (An address-space rlimit
  was tried and left out: it counts reserved, untouched memory, so PyTorch or JAX cannot
  even import under a limit they would run in.)

The child process joins its cgroup itself, between fork and exec (:meth:`CgroupDriver.join`),
so no instruction of the program runs outside its limits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "WATCHDOG_PERIOD",
    "CgroupDriver",
    "ContainerCgroup",
    "Limits",
    "NoCgroups",
    "detect",
    "join_same",
    "process_tree",
    "tree_usage",
]

log = logging.getLogger("wonderland.runtime.cgroups")

WATCHDOG_PERIOD = 0.25
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Limits:
    """A container's resources: bytes of memory, millicores of CPU (``None``: unlimited)."""

    memory: int | None = None
    cpu_limit: int | None = None
    cpu_request: int | None = None


class ContainerCgroup(Protocol):
    """One container's cgroup (or its stand-in)."""

    enforced: bool

    def join_paths(self) -> list[Path]:
        """``cgroup.procs`` files the child writes its pid into before exec."""
        ...

    def usage(self, pid: int | None) -> tuple[int, int]:
        """(CPU time in nanoseconds, working-set memory in bytes)."""
        ...

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this cgroup for memory."""
        ...

    def kill_all(self) -> None:
        """SIGKILL every process left in the cgroup."""
        ...

    def remove(self) -> None: ...


class CgroupDriver(Protocol):
    """Makes a cgroup per container; ``name`` says which kind (``v2``, ``v1``, ``none``)."""

    name: str

    def create(self, key: str, limits: Limits) -> ContainerCgroup: ...


def join(paths: list[Path]) -> None:
    """In the child before exec: move this process into the container's cgroups."""
    pid = str(os.getpid()).encode()
    for path in paths:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, pid)
        finally:
            os.close(fd)


def join_same(pid: int) -> None:
    """Move this process into every cgroup process ``pid`` is in (a process forked by
    someone else on behalf of a container: the model server's fork server). Hierarchies
    this process may not write are left as they are."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return
    me = str(os.getpid()).encode()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            procs = _CGROUP_ROOT / path.lstrip("/") / "cgroup.procs"
            if not procs.exists():
                procs = _CGROUP_ROOT / "unified" / path.lstrip("/") / "cgroup.procs"
        else:
            first = controllers.split(",")[0].removeprefix("name=")
            procs = _CGROUP_ROOT / first / path.lstrip("/") / "cgroup.procs"
        try:
            fd = os.open(procs, os.O_WRONLY)
        except OSError:
            continue
        try:
            os.write(fd, me)
        except OSError:
            pass
        finally:
            os.close(fd)


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _keyed(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _kill_procs(path: Path) -> None:
    try:
        pids = [int(p) for p in path.read_text().split()]
    except (OSError, ValueError):
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _rmdir(path: Path) -> None:
    # A cgroup whose processes are gone can be removed; retry briefly while they exit.
    for _ in range(20):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            _kill_procs(path / "cgroup.procs")
            time.sleep(0.01)


# -- cgroup v2 -----------------------------------------------------------------------


class _V2Cgroup:
    enforced = True

    def __init__(self, path: Path) -> None:
        self.path = path

    def join_paths(self) -> list[Path]:
        return [self.path / "cgroup.procs"]

    def usage(self, pid: int | None) -> tuple[int, int]:
        cpu = _keyed(self.path / "cpu.stat", "usage_usec") * 1000
        memory = _read_int(self.path / "memory.current")
        inactive = _keyed(self.path / "memory.stat", "inactive_file")
        return cpu, max(memory - inactive, 0)

    def oom_killed(self) -> bool:
        return _keyed(self.path / "memory.events", "oom_kill") > 0

    def kill_all(self) -> None:
        kill = self.path / "cgroup.kill"
        if kill.exists():
            with contextlib.suppress(OSError):
                _write(kill, "1")
                return
        _kill_procs(self.path / "cgroup.procs")

    def remove(self) -> None:
        _rmdir(self.path)


class CgroupV2Driver:
    """Per-container cgroups under ``<daemon cgroup>/wonderland-pods`` (v2)."""

    name = "v2"

    def __init__(self, base: Path) -> None:
        self.base = base

    @classmethod
    def detect(cls) -> CgroupV2Driver | None:
        if not (_CGROUP_ROOT / "cgroup.controllers").exists():
            return None
        own = ""
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                if line.startswith("0::"):
                    own = line[3:]
        if not own:
            return None
        here = _CGROUP_ROOT / own.lstrip("/")
        try:
            controllers = (here / "cgroup.controllers").read_text().split()
            if "memory" not in controllers or not os.access(here, os.W_OK):
                return None
            # No process may stay in a cgroup whose children get controllers: the daemon
            # moves itself into a leaf first.
            leaf = here / "wonderland-daemon"
            leaf.mkdir(exist_ok=True)
            _write(leaf / "cgroup.procs", str(os.getpid()))
            wanted = [c for c in ("memory", "cpu") if c in controllers]
            _write(here / "cgroup.subtree_control", " ".join("+" + c for c in wanted))
            base = here / "wonderland-pods"
            base.mkdir(exist_ok=True)
            _write(base / "cgroup.subtree_control", " ".join("+" + c for c in wanted))
        except OSError as exc:
            log.debug("cgroup v2 is not usable here: %s", exc)
            return None
        return cls(base)

    def create(self, key: str, limits: Limits) -> ContainerCgroup:
        path = self.base / key
        path.mkdir(exist_ok=True)
        if limits.memory is not None:
            _write(path / "memory.max", str(limits.memory))
            with contextlib.suppress(OSError):
                _write(path / "memory.swap.max", "0")
        if limits.cpu_limit is not None and (path / "cpu.max").exists():
            _write(path / "cpu.max", f"{max(limits.cpu_limit * 100, 1000)} 100000")
        if limits.cpu_request is not None and (path / "cpu.weight").exists():
            shares = max(2, limits.cpu_request * 1024 // 1000)
            _write(path / "cpu.weight", str(1 + ((shares - 2) * 9999) // 262142))
        return _V2Cgroup(path)


# -- cgroup v1 -----------------------------------------------------------------------


class _V1Cgroup:
    enforced = True

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths

    def join_paths(self) -> list[Path]:
        return [p / "cgroup.procs" for p in dict.fromkeys(self.paths.values())]

    def usage(self, pid: int | None) -> tuple[int, int]:
        cpu = 0
        if "cpuacct" in self.paths:
            cpu = _read_int(self.paths["cpuacct"] / "cpuacct.usage")
        memory = _read_int(self.paths["memory"] / "memory.usage_in_bytes")
        inactive = _keyed(self.paths["memory"] / "memory.stat", "total_inactive_file")
        return cpu, max(memory - inactive, 0)

    def oom_killed(self) -> bool:
        return _keyed(self.paths["memory"] / "memory.oom_control", "oom_kill") > 0

    def kill_all(self) -> None:
        _kill_procs(self.paths["memory"] / "cgroup.procs")

    def remove(self) -> None:
        for path in dict.fromkeys(self.paths.values()):
            _rmdir(path)


class CgroupV1Driver:
    """Per-container cgroups in the memory, cpu and cpuacct hierarchies (v1)."""

    name = "v1"

    def __init__(self, bases: dict[str, Path]) -> None:
        self.bases = bases

    @classmethod
    def detect(cls) -> CgroupV1Driver | None:
        own: dict[str, str] = {}
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                _, controllers, path = line.split(":", 2)
                for controller in controllers.split(","):
                    if controller:
                        own[controller] = path
        bases: dict[str, Path] = {}
        for controller in ("memory", "cpu", "cpuacct"):
            mount = _CGROUP_ROOT / controller
            if controller not in own or not (mount / "cgroup.procs").exists():
                continue
            here = mount / own[controller].lstrip("/")
            base = here / "wonderland-pods"
            try:
                base.mkdir(exist_ok=True)
            except OSError:
                continue
            bases[controller] = base
        if "memory" not in bases:
            return None
        return cls(bases)

    def create(self, key: str, limits: Limits) -> ContainerCgroup:
        paths: dict[str, Path] = {}
        for controller, base in self.bases.items():
            path = base / key
            with contextlib.suppress(FileExistsError):
                path.mkdir()
            paths[controller] = path
        memory = paths["memory"]
        if limits.memory is not None:
            _write(memory / "memory.limit_in_bytes", str(limits.memory))
            with contextlib.suppress(OSError):
                _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory))
        cpu = paths.get("cpu")
        if cpu is not None:
            if limits.cpu_limit is not None:
                _write(cpu / "cpu.cfs_period_us", "100000")
                _write(cpu / "cpu.cfs_quota_us", str(max(limits.cpu_limit * 100, 1000)))
            if limits.cpu_request is not None:
                _write(cpu / "cpu.shares", str(max(2, limits.cpu_request * 1024 // 1000)))
        return _V1Cgroup(paths)


# -- no cgroups: a watchdog --------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and every process in its session (containers start in their own session)."""
    pids = [root]
    try:
        entries = os.listdir("/proc")
    except OSError:
        return pids
    for entry in entries:
        if not entry.isdigit() or int(entry) == root:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields[3] is the session id (stat field 6)
        if len(fields) > 3 and int(fields[3]) == root:
            pids.append(int(entry))
    return pids


def tree_usage(root: int) -> tuple[int, int]:
    """(CPU nanoseconds, resident bytes) of ``root``'s session."""
    cpu = 0
    rss = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # utime and stime are stat fields 14 and 15; rss (pages) is field 24
        cpu += (int(fields[11]) + int(fields[12])) * 1_000_000_000 // _TICKS
        rss += int(fields[21]) * _PAGE
    return cpu, rss


class _Watched:
    enforced = False

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.killed_for_memory = False

    def join_paths(self) -> list[Path]:
        return []

    def usage(self, pid: int | None) -> tuple[int, int]:
        return tree_usage(pid) if pid else (0, 0)

    def oom_killed(self) -> bool:
        return self.killed_for_memory

    def kill_all(self) -> None:
        return None

    def remove(self) -> None:
        return None


class NoCgroups:
    """No writable cgroup here: memory limits through the kubelet's watchdog."""

    name = "none"

    def create(self, key: str, limits: Limits) -> ContainerCgroup:
        return _Watched(limits)


def detect(disabled: bool = False) -> CgroupDriver:
    """The best driver this host allows (``disabled`` forces the watchdog)."""
    if not disabled:
        for candidate in (CgroupV2Driver.detect, CgroupV1Driver.detect):
            driver = candidate()
            if driver is not None:
                return driver
    return NoCgroups()
