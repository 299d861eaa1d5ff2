"""A small process that forks the containers which need work between fork and exec.

Forking the daemon is slow: its page tables are large (numpy, uvicorn, the controllers),
and a fork of it costs about 9 ms on a small virtual machine. A container with volumes
needs code between fork and exec (it enters its private mount namespace), so it cannot take
the ``vfork`` path of :mod:`wonderland.runtime.containers`. The spawner is a Python process
that imports almost nothing: it forks cheaply, and its child joins the container's cgroups,
enters the mount namespace, switches user, takes the container's pipes as its standard
streams and execs the program.

The daemon (:class:`Spawner`) talks to it over a ``SOCK_SEQPACKET`` socketpair: a request
(JSON) with the pipes' write ends (``SCM_RIGHTS``); the answer is the pid, or why the process
could not be set up; when the process ends, its exit status follows. The spawner dies with
the daemon (``PR_SET_PDEATHSIG``), and the containers it started die with it.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import ctypes
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
from typing import Any

from wonderland.runtime import sandbox

__all__ = ["SpawnError", "Spawner", "main"]

_MAX = 1 << 20


class SpawnError(Exception):
    """The spawner could not start the process; the message says why."""


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


# -- the spawner process ------------------------------------------------------------------


def _child(request: dict[str, Any], out_fd: int, err_fd: int, error_w: int) -> None:
    """In the forked child: become the container process (never returns)."""
    try:
        os.setsid()
        _die_with_parent()
        pid = str(os.getpid()).encode()
        for procs in request.get("cgroups") or []:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        mounts = request.get("mounts")
        if mounts is not None:
            sandbox.enter(
                sandbox.MountPlan(
                    tuple(sandbox.Mount(m[0], m[1], bool(m[2])) for m in mounts["mounts"]),
                    mounts["scratch"],
                    mounts.get("cwd"),
                )
            )
        elif request.get("cwd"):
            os.chdir(request["cwd"])
        gid = request.get("gid")
        uid = request.get("uid")
        if gid is not None:
            os.setgroups([gid, *(request.get("groups") or [])])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.closerange(3, error_w)
        os.closerange(error_w + 1, 65536)
        argv = [str(a) for a in request["argv"]]
        os.execvpe(argv[0], argv, {str(k): str(v) for k, v in request["env"].items()})
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, FileNotFoundError) and exc.filename in (None, request["argv"][0]):
            message = f'exec: "{request["argv"][0]}": executable file not found in $PATH'
        with contextlib.suppress(OSError):
            os.write(error_w, message.encode()[:2000])
    os._exit(127)


def _spawn(request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
    error_r, error_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(error_r)
        _child(request, fds[0], fds[1], error_w)
    os.close(error_w)
    for fd in fds:
        os.close(fd)
    chunks = []
    while chunk := os.read(error_r, 4096):
        chunks.append(chunk)
    os.close(error_r)
    if chunks:
        os.waitpid(pid, 0)
        return {"id": request["id"], "error": b"".join(chunks).decode("utf-8", "replace")}
    return {"id": request["id"], "pid": pid}


def main(fd: int) -> int:
    """Serve the daemon on the socket ``fd`` until it closes it."""
    _die_with_parent()
    sock = socket.socket(fileno=fd)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: set[int] = set()
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, "request")
    sel.register(wake_r, selectors.EVENT_READ, "child")
    while True:
        for key, _ in sel.select():
            if key.data == "child":
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
                while children:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    children.discard(pid)
                    code = os.waitstatus_to_exitcode(status)
                    sock.send(json.dumps({"exit": pid, "code": code}).encode())
                continue
            fds = array.array("i")
            data, ancdata, _flags, _addr = sock.recvmsg(_MAX, socket.CMSG_SPACE(2 * fds.itemsize))
            if not data:
                return 0
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            answer = _spawn(json.loads(data), list(fds))
            if "pid" in answer:
                children.add(int(answer["pid"]))
            sock.send(json.dumps(answer).encode())


# -- the daemon's side ----------------------------------------------------------------------


class Spawner:
    """The daemon's handle on the spawner process (started on first use)."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._next = 0
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._early: dict[int, int] = {}

    def _start(self) -> socket.socket:
        if self._sock is not None and self._proc is not None and self._proc.poll() is None:
            return self._sock
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "wonderland.runtime.spawner", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        theirs.close()
        ours.setblocking(False)
        asyncio.get_running_loop().add_reader(ours.fileno(), self._read)
        self._sock = ours
        return ours

    def _read(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(_MAX)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            message = json.loads(data)
            if "exit" in message:
                pid, code = int(message["exit"]), int(message["code"])
                waiter = self._exits.get(pid)
                if waiter is None:
                    self._early[pid] = code  # before spawn() saw its pid
                elif not waiter.done():
                    waiter.set_result(code)
            else:
                answer = self._answers.pop(int(message["id"]), None)
                if answer is not None and not answer.done():
                    answer.set_result(message)

    def _lost(self) -> None:
        """The spawner died: its children died with it (SIGKILL)."""
        if self._sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for waiter in self._answers.values():
            if not waiter.done():
                waiter.set_exception(SpawnError("the spawner process died"))
        for exit_waiter in self._exits.values():
            if not exit_waiter.done():
                exit_waiter.set_result(-signal.SIGKILL)
        self._answers.clear()
        self._exits.clear()

    async def spawn(self, request: dict[str, Any], stdout_w: int, stderr_w: int) -> int:
        """Start a process as ``request`` says; its pid (raises :class:`SpawnError`)."""
        sock = self._start()
        self._next += 1
        ident = self._next
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._answers[ident] = answer
        payload = json.dumps({**request, "id": ident}).encode()
        if len(payload) > _MAX:
            raise SpawnError("the container's environment and command are over 1 MiB")
        fds = array.array("i", [stdout_w, stderr_w])
        sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
        result = await answer
        if "error" in result:
            raise SpawnError(str(result["error"]))
        pid = int(result["pid"])
        exited: asyncio.Future[int] = loop.create_future()
        if pid in self._early:
            exited.set_result(self._early.pop(pid))
        self._exits[pid] = exited
        return pid

    async def wait(self, pid: int) -> int:
        """The exit status of a process :meth:`spawn` started (once, when it ends)."""
        waiter = self._exits.get(pid)
        if waiter is None:
            return self._early.pop(pid, -signal.SIGKILL)
        code = await asyncio.shield(waiter)
        self._exits.pop(pid, None)
        return code

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.kill()
            self._proc.wait()
            self._proc = None


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1])))
