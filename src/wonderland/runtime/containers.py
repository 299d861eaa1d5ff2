"""Starting one container instance as a process: its cgroup, mounts, user and pipes.

Everything that has to happen between fork and exec happens in :func:`_child_setup`, in
this order: die with the daemon (``PR_SET_PDEATHSIG``), join the container's cgroups, enter
the private mount namespace, switch to ``runAsUser``/``runAsGroup`` (when the daemon is
root), and mark every inherited descriptor close-on-exec so the program gets only its
standard streams. A failure there is written to an error pipe, so the kubelet can say why
the container did not start (``StartError``) instead of a bare "preexec_fn failed".
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from wonderland.runtime import cgroups, sandbox
from wonderland.runtime.logs import ContainerLog

__all__ = ["Launch", "StartError", "die_with_parent", "launch", "terminate_group"]


class StartError(Exception):
    """The process could not be started; the message says why, as a runtime would."""


def die_with_parent() -> None:
    """In a child before exec: die when the daemon dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _cloexec_all(keep: int) -> None:
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):
                flags = fcntl.fcntl(fd, fcntl.F_GETFD)
                fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)


@dataclass(frozen=True)
class Launch:
    """What the kubelet decided for one container instance."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str | None
    cgroup_procs: tuple[str, ...] = ()
    mounts: sandbox.MountPlan | None = None
    uid: int | None = None
    gid: int | None = None
    supplemental_groups: tuple[int, ...] = ()


def _child_setup(spec: Launch, error_fd: int) -> None:
    try:
        die_with_parent()
        if spec.cgroup_procs:
            cgroups.join([Path(p) for p in spec.cgroup_procs])
        if spec.mounts is not None:
            sandbox.enter(spec.mounts)
        if spec.uid is not None or spec.gid is not None:
            if spec.gid is not None:
                os.setgroups([spec.gid, *spec.supplemental_groups])
                os.setgid(spec.gid)
            if spec.uid is not None:
                os.setuid(spec.uid)
        _cloexec_all(error_fd)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(error_fd, f"{type(exc).__name__}: {exc}".encode()[:2000])
        raise


async def launch(spec: Launch, log: ContainerLog) -> asyncio.subprocess.Process:
    """Start the process with its output going to ``log``; raises :class:`StartError`."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=None if spec.mounts is not None else spec.cwd,
                env=spec.env,
                start_new_session=True,
                preexec_fn=lambda: _child_setup(spec, write_fd),
            )
        except FileNotFoundError as exc:
            missing = spec.argv[0] if spec.argv else ""
            if spec.cwd and not os.path.isdir(spec.cwd) and spec.mounts is None:
                raise StartError(
                    f"failed to start the container process: chdir to cwd ({spec.cwd!r}) "
                    "set in the container spec failed: no such file or directory"
                ) from exc
            raise StartError(
                f'exec: "{missing}": executable file not found in $PATH'
                if "/" not in missing
                else f'exec: "{missing}": no such file or directory'
            ) from exc
        except PermissionError as exc:
            raise StartError(f'exec: "{spec.argv[0]}": permission denied') from exc
        except Exception as exc:
            os.close(write_fd)
            write_fd = -1
            detail = b""
            with contextlib.suppress(OSError):
                detail = os.read(read_fd, 4096)
            raise StartError(
                "the container process could not be set up: "
                + (detail.decode("utf-8", "replace") or str(exc))
            ) from exc
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
    assert proc.stdout is not None
    log.attach(proc.stdout, proc.stderr)
    return proc


def signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


async def terminate_group(
    proc: asyncio.subprocess.Process,
    grace: float,
    stop_signal: int = signal.SIGTERM,
    cgroup: cgroups.ContainerCgroup | None = None,
) -> None:
    """``stop_signal`` to the process group, SIGKILL after ``grace`` seconds; then kill what
    is left in the group and the cgroup (a container ends with its main process)."""
    if proc.returncode is None:
        signal_group(proc.pid, stop_signal)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
    signal_group(proc.pid, signal.SIGKILL)
    if cgroup is not None:
        cgroup.kill_all()
