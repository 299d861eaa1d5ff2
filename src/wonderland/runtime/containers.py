"""Starting one container instance as a process: its cgroup, mounts, user and pipes.

What has to happen between fork and exec (die with the daemon, join the container's
cgroups, switch to ``runAsUser``, enter a private mount namespace) is done one of two ways:

- **fast**: the process is spawned with ``vfork`` (``subprocess.Popen``, no Python in the
  child), through a two-step wrapper: ``/bin/sh`` writes its own pid into the container's
  ``cgroup.procs`` files and execs ``setpriv --pdeathsig KILL`` (util-linux), which switches
  user if asked and execs the program. No instruction of the program runs outside its
  cgroup, and the daemon's size does not matter: about 2 ms instead of the 6-8 ms a fork of
  the daemon costs (``bench/workloads/run.py``).
- **in the child**: a container with mounts (or a host without ``setpriv``) runs
  :func:`_child_setup` between fork and exec; a failure there is written to an error pipe,
  so the kubelet can say why the container did not start (``StartError``).

The process is watched through a pidfd in the event loop, its pipes read by the
container's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from wonderland.runtime import cgroups, sandbox
from wonderland.runtime.logs import ContainerLog
from wonderland.runtime.spawner import Spawner, SpawnError

__all__ = [
    "ContainerProcess",
    "Launch",
    "StartError",
    "die_with_parent",
    "forget_group",
    "kill_leftover_groups",
    "launch",
    "record_group",
    "signal_group",
    "terminate_group",
]

SETPRIV = shutil.which("setpriv")
# $0 names the process in errors; "$1".. up to "--" are cgroup.procs files to join.
_WRAPPER = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@"'


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


class ContainerProcess:
    """A container's main process, awaited in the event loop (``pid``, ``returncode``,
    ``await wait()``): a child of the daemon watched through a pidfd, or a child of the
    spawner whose exit status the spawner reports."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._popen = popen
        self._exited = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._pidfd = -1
        if popen is None:
            return
        try:
            self._pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            # no pidfd (Linux < 5.3): a thread waits instead
            self._loop.run_in_executor(None, popen.wait).add_done_callback(
                lambda _: self._loop.call_soon_threadsafe(self._reap)
            )
        else:
            self._loop.add_reader(self._pidfd, self._reap)

    @classmethod
    def spawned(cls, pid: int, spawner: Spawner) -> ContainerProcess:
        proc = cls(pid)

        async def watch() -> None:
            proc._ended(await spawner.wait(pid))

        task = proc._loop.create_task(watch())
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
        return proc

    def _reap(self) -> None:
        assert self._popen is not None
        code = self._popen.poll()
        if code is None:
            return
        if self._pidfd >= 0:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        self._ended(code)

    def _ended(self, code: int) -> None:
        self.returncode = code
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode


def _missing_executable(spec: Launch) -> str | None:
    """The runtime's message when the program cannot be found (checked before spawning, as
    the wrapper would only report it in the container's log)."""
    program = spec.argv[0] if spec.argv else ""
    if not program:
        return "exec: no command given"
    if "/" in program:
        path = (
            program
            if os.path.isabs(program) or spec.cwd is None
            else os.path.join(spec.cwd, program)
        )
        if not os.path.exists(path):
            return f'exec: "{program}": no such file or directory'
        if not os.access(path, os.X_OK) or os.path.isdir(path):
            return f'exec: "{program}": permission denied'
        return None
    if shutil.which(program, path=spec.env.get("PATH", os.defpath)) is None:
        return f'exec: "{program}": executable file not found in $PATH'
    return None


class _Pipes:
    """The read ends of a process's stdout and stderr, owned here until the event loop
    takes them (so no one else closes a descriptor the loop still watches)."""

    def __init__(self) -> None:
        self.out_r, self.out_w = os.pipe2(os.O_CLOEXEC)
        self.err_r, self.err_w = os.pipe2(os.O_CLOEXEC)

    def close_write_ends(self) -> None:
        for fd in (self.out_w, self.err_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def close_all(self) -> None:
        self.close_write_ends()
        for fd in (self.out_r, self.err_r):
            with contextlib.suppress(OSError):
                os.close(fd)

    async def readers(self) -> tuple[asyncio.StreamReader, asyncio.StreamReader]:
        loop = asyncio.get_running_loop()
        readers = []
        for fd in (self.out_r, self.err_r):
            reader = asyncio.StreamReader(limit=2**20)
            protocol = asyncio.StreamReaderProtocol(reader)
            # the transport owns the file object and closes it with the pipe
            pipe = open(fd, "rb", buffering=0)  # noqa: SIM115
            await loop.connect_read_pipe(lambda p=protocol: p, pipe)  # type: ignore[misc]
            readers.append(reader)
        return readers[0], readers[1]


async def launch(
    spec: Launch, log: ContainerLog, spawner: Spawner | None = None
) -> ContainerProcess:
    """Start the process with its output going to ``log``; raises :class:`StartError`.

    A container with mounts goes through ``spawner`` when there is one (a cheap fork), else
    the daemon forks it."""
    if spec.mounts is None:
        missing = _missing_executable(spec)
        if missing is not None:
            raise StartError(missing)
        if spec.cwd and not os.path.isdir(spec.cwd):
            raise StartError(
                f"failed to start the container process: chdir to cwd ({spec.cwd!r}) set in "
                "the container spec failed: no such file or directory"
            )
    pipes = _Pipes()
    try:
        if spec.mounts is None and SETPRIV is not None:
            popen = _spawn_fast(spec, pipes)
            proc = ContainerProcess(popen.pid, popen)
        elif spawner is not None:
            pid = await _spawn_through(spawner, spec, pipes)
            proc = ContainerProcess.spawned(pid, spawner)
        else:
            popen = _spawn_in_child(spec, pipes)
            proc = ContainerProcess(popen.pid, popen)
    except BaseException:
        pipes.close_all()
        raise
    pipes.close_write_ends()
    stdout, stderr = await pipes.readers()
    log.attach(stdout, stderr)
    return proc


async def _spawn_through(spawner: Spawner, spec: Launch, pipes: _Pipes) -> int:
    request: dict[str, object] = {
        "argv": list(spec.argv),
        "env": spec.env,
        "cwd": spec.cwd,
        "cgroups": list(spec.cgroup_procs),
        "uid": spec.uid,
        "gid": spec.gid,
        "groups": list(spec.supplemental_groups),
    }
    if spec.mounts is not None:
        request["mounts"] = {
            "mounts": [[m.source, m.target, m.read_only] for m in spec.mounts.mounts],
            "scratch": spec.mounts.scratch,
            "cwd": spec.mounts.cwd,
        }
    try:
        return await spawner.spawn(request, pipes.out_w, pipes.err_w)
    except SpawnError as exc:
        raise StartError(f"the container process could not be set up: {exc}") from exc


def _spawn_fast(spec: Launch, pipes: _Pipes) -> subprocess.Popen[bytes]:
    assert SETPRIV is not None
    setpriv = [SETPRIV, "--pdeathsig", "KILL"]
    if spec.gid is not None:
        groups = ",".join(str(g) for g in (spec.gid, *spec.supplemental_groups))
        setpriv += ["--regid", str(spec.gid), "--groups", groups]
    if spec.uid is not None:
        setpriv += ["--reuid", str(spec.uid)]
    argv = [*setpriv, "--", *spec.argv]
    if spec.cgroup_procs:
        argv = ["/bin/sh", "-c", _WRAPPER, "wonderland-container", *spec.cgroup_procs, "--", *argv]
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=pipes.out_w,
            stderr=pipes.err_w,
            cwd=spec.cwd,
            env=spec.env,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise StartError(f"the container process could not be started: {exc}") from exc


def _spawn_in_child(spec: Launch, pipes: _Pipes) -> subprocess.Popen[bytes]:
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        try:
            return subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=pipes.out_w,
                stderr=pipes.err_w,
                cwd=None if spec.mounts is not None else spec.cwd,
                env=spec.env,
                start_new_session=True,
                close_fds=False,  # _child_setup marks every descriptor close-on-exec itself
                preexec_fn=lambda: _child_setup(spec, write_fd),
            )
        except FileNotFoundError as exc:
            raise StartError(f'exec: "{spec.argv[0]}": executable file not found in $PATH') from exc
        except PermissionError as exc:
            raise StartError(f'exec: "{spec.argv[0]}": permission denied') from exc
        except subprocess.SubprocessError as exc:
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


# -- process groups left behind by a daemon that was killed ---------------------------------
#
# A container's first process dies with the daemon (PR_SET_PDEATHSIG), but what it started
# (a shell's child, a server's workers) would live on, holding the replica's port. Each
# running container's process group is written to a ``group`` file in its pod's folder (its
# leader's pid and start time); the file goes when the container ends. A daemon starting on
# the same state directory kills the groups those files still name, before it runs a pod.

GROUP_FILE = "group"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def record_group(folder: Path, pid: int) -> Path:
    """Write the container's process group (led by ``pid``) into ``folder``; the file."""
    path = folder / GROUP_FILE
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{pid} {_start_time(pid) or ''}")
    return path


def forget_group(path: Path) -> None:
    """The container ended and its group was killed: nothing to clean after a restart."""
    path.unlink(missing_ok=True)


def kill_leftover_groups(pods_dir: Path) -> list[int]:
    """SIGKILL the process groups of containers from a daemon that died; their leaders' pids.

    A group is killed only when its leader is gone (a pid is not reused while a group still
    carries it) or is the very process that was recorded (same start time), never a process
    that merely reuses the pid.
    """
    killed = []
    for path in pods_dir.glob(f"*/*/{GROUP_FILE}"):
        try:
            pid_text, _, started = path.read_text().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        now_started = _start_time(pid)
        if now_started is None or (started and now_started == started.strip()):
            try:
                os.killpg(pid, signal.SIGKILL)
                killed.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
        path.unlink(missing_ok=True)
    return killed


def signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


async def terminate_group(
    proc: ContainerProcess,
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
