"""``wonderland sidecar ... -- CMD``: run the sidecar and the app together, stop them together.

The app dies with the sidecar even when the sidecar is killed with SIGKILL, so a restarted
sidecar never finds the old app still holding its port: on Linux the app's first process
gets ``PR_SET_PDEATHSIG`` (the kernel sends it SIGKILL when the sidecar dies), and on every
platform a watchdog process holds the read end of a pipe whose write end only the sidecar
has; when the pipe closes (the sidecar ended, however it ended) the watchdog sends SIGTERM to
the app's whole process group, then SIGKILL to what is left after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from wonderland.dapr.runtime import RuntimeOptions
from wonderland.dapr.sidecar import Sidecar

__all__ = ["AppRun", "run", "run_apps"]

log = logging.getLogger("wonderland.dapr")


#: What the watchdog runs (``python -c``): wait for EOF on stdin, then end the app's group.
_WATCHDOG = """
import os, signal, sys, time
pgid, grace = int(sys.argv[1]), float(sys.argv[2])
while os.read(0, 512):
    pass
def alive():
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
if alive():
    os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive():
        os.killpg(pgid, signal.SIGKILL)
"""

#: How long the app's group has after SIGTERM when the sidecar died under it.
WATCHDOG_GRACE_SECONDS = 2.0


def _die_with_sidecar() -> None:
    """In the app's process before exec: SIGKILL when the sidecar dies (Linux only)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class _Watchdog:
    """A process that ends the app's process group when this sidecar's end of a pipe closes."""

    def __init__(self, proc: asyncio.subprocess.Process, write_fd: int) -> None:
        self.proc = proc
        self._write_fd: int | None = write_fd

    @classmethod
    async def start(cls, pgid: int) -> _Watchdog:
        read_fd, write_fd = os.pipe()  # not inherited: only this process holds write_fd
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _WATCHDOG,
                str(pgid),
                str(WATCHDOG_GRACE_SECONDS),
                stdin=read_fd,
                start_new_session=True,  # a Ctrl-C at the terminal is for the sidecar
            )
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        return cls(proc, write_fd)

    async def release(self) -> None:
        """The app is stopped: close the pipe and let the watchdog exit."""
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), WATCHDOG_GRACE_SECONDS + 3)


async def _stop_process(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


@dataclass(slots=True)
class AppRun:
    """One app of a run: its sidecar options, its command, where and with what env it runs."""

    options: RuntimeOptions
    command: list[str] = field(default_factory=list)
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)


async def run(options: RuntimeOptions, command: Sequence[str]) -> int:
    """Serve until SIGINT/SIGTERM, ``/v1.0/shutdown``, or the app command exits; return its code."""
    return await run_apps([AppRun(options, list(command))], stop_when_an_app_exits=True)


def _app_env(app: AppRun, sidecar: Sidecar) -> dict[str, str]:
    opts = app.options
    env = {
        **os.environ,
        **app.env,
        "APP_ID": opts.app_id,
        "DAPR_HTTP_PORT": str(sidecar.http_port),
        "DAPR_GRPC_PORT": str(sidecar.grpc_port),
        "APP_PROTOCOL": opts.app_protocol,
        "APP_CHANNEL_ADDRESS": opts.app_channel_address,
    }
    if opts.app_port:
        env["APP_PORT"] = str(opts.app_port)
    return env


async def run_apps(apps: Sequence[AppRun], *, stop_when_an_app_exits: bool = False) -> int:
    """Run one sidecar (in this process) and one command per app until a signal.

    With ``stop_when_an_app_exits`` (a single ``-- CMD``) the first app to exit stops
    everything and its exit code is returned; otherwise (a multi-app run file) the run
    ends when every app has exited, with the highest exit code.
    """
    sidecars: list[Sidecar] = []
    procs: list[asyncio.subprocess.Process] = []
    watchdogs: list[_Watchdog] = []
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        for app in apps:
            sidecar = Sidecar(app.options)
            await sidecar.start()
            sidecars.append(sidecar)
            opts = app.options
            print(
                f"wonderland sidecar: app id {opts.app_id!r}, HTTP API on 127.0.0.1:{sidecar.http_port}, "
                f"gRPC API on 127.0.0.1:{sidecar.grpc_port}"
                + (f", app port {opts.app_port}" if opts.app_port else "")
                + (
                    f", metrics on 127.0.0.1:{sidecar.metrics_port}/metrics"
                    if sidecar.metrics_port
                    else ""
                ),
                file=sys.stderr,
                flush=True,
            )
        for app, sidecar in zip(apps, sidecars, strict=True):
            if not app.command:
                continue
            try:
                proc = await asyncio.create_subprocess_exec(
                    *app.command,
                    env=_app_env(app, sidecar),
                    cwd=app.cwd,
                    start_new_session=True,
                    preexec_fn=_die_with_sidecar,
                )
            except OSError as exc:
                from wonderland.errors import ConfigError

                raise ConfigError(
                    f"app {app.options.app_id!r}: cannot start {app.command[0]!r}: {exc.strerror}"
                ) from None
            procs.append(proc)
            watchdogs.append(await _Watchdog.start(proc.pid))
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
        waiters += [asyncio.ensure_future(s.wait_for_shutdown()) for s in sidecars]
        if procs:
            if stop_when_an_app_exits:
                waiters += [asyncio.ensure_future(p.wait()) for p in procs]
            else:
                waiters.append(asyncio.ensure_future(asyncio.gather(*(p.wait() for p in procs))))
        _done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        exited = [p.returncode for p in procs if p.returncode is not None]
        if exited:
            code = max(exited)
            log.info("app exited with code %d; stopping", code)
    finally:
        await asyncio.gather(*(_stop_process(p) for p in procs), return_exceptions=True)
        await asyncio.gather(*(w.release() for w in watchdogs), return_exceptions=True)
        for sidecar in reversed(sidecars):
            await sidecar.stop()
    return code
