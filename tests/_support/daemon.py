"""A real `wonderland up` daemon for end-to-end tests, and the process helpers under it.

Every area that drives the platform as a user does (start the daemon on free ports with its
own ``WONDERLAND_HOME``, wait until it is up, run CLI commands against it, stop it) uses this
module, so the start, the readiness wait and the teardown behave the same everywhere:

- the daemon runs in its own process group (``start_new_session=True``), so a teardown
  reaches the replicas and sidecars it started;
- readiness is polled (``daemon.json`` appears once the control API and gateway listen),
  never a fixed sleep;
- ``stop()`` sends SIGTERM (the daemon stops its replicas) and SIGKILLs the group if it is
  stuck; fixtures call it in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from wonderland.ports import free_port

READY_TIMEOUT = 30.0
WONDERLAND = [sys.executable, "-m", "wonderland"]

__all__ = [
    "READY_TIMEOUT",
    "WONDERLAND",
    "WonderlandDaemon",
    "daemon_env",
    "free_port",
    "kill_group",
    "running_daemon",
    "wait_for",
    "wait_until",
]


def wait_for(
    check: Callable[[], Any],
    timeout: float = READY_TIMEOUT,
    what: str = "",
    *,
    interval: float = 0.05,
    log: Path | None = None,
) -> Any:
    """Poll ``check`` until it returns something truthy and return that; fail after ``timeout``
    with ``what`` and the tail of ``log``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = "\n" + log.read_text(errors="replace")[-3000:] if log is not None else ""
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what or check}{tail}"
            )
        time.sleep(interval)


async def wait_until(
    check: Callable[[], Any],
    timeout: float = READY_TIMEOUT,
    what: str = "",
    *,
    interval: float = 0.02,
) -> Any:
    """``wait_for`` for tests that run the platform in their own event loop: poll ``check``
    (without blocking the loop) until it returns something truthy and return that.
    ``check`` may be a coroutine function (e.g. one that scrapes an endpoint the loop
    serves)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or check}")
        await asyncio.sleep(interval)


def kill_group(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0
) -> None:
    """Send ``sig`` to the process group of ``proc`` and wait; SIGKILL the group if it is still
    running after ``timeout``. Safe to call on a process that already exited."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            pass
    # The leader may be gone while its group lives on (replicas it did not stop).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=timeout)


def daemon_env(
    tmp: Path, *, home: Path | None = None, gateway_port: int | None = None, **extra: str
) -> dict[str, str]:
    """The environment of a daemon (and of the CLI run against it) confined to ``tmp``:
    no inherited ``WONDERLAND_*`` settings or ``MLFLOW_TRACKING_URI``, its own home, the control API, MLflow's
    tracking front and the monitoring endpoint on ports the kernel picks and the gateway on ``gateway_port`` (0: the
    kernel picks)."""
    # nor the tracking URI another test's mlflow.set_tracking_uri() left in os.environ:
    # the daemon's own MLflow is the one its CLI must reach
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WONDERLAND_") and k != "MLFLOW_TRACKING_URI"
    }
    env.update(
        WONDERLAND_HOME=str(home if home is not None else tmp / "home"),
        WONDERLAND_API_PORT="0",
        WONDERLAND_GATEWAY_PORT=str(gateway_port if gateway_port is not None else 0),
        # never MLflow's 5000: a test daemon must not take (or find taken) a developer's port
        WONDERLAND_MLFLOW_PORT="0",
        WONDERLAND_METRICS_PORT="0",
        HOME=str(tmp),
    )
    env.update(extra)
    return env


class WonderlandDaemon:
    """One `wonderland up` process with its own state directory, log file and ports."""

    def __init__(self, home: Path, env: dict[str, str], log: Path, cwd: Path | None = None):
        self.home = home
        self.env = env
        self.log = log
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.server = ""
        port = env.get("WONDERLAND_GATEWAY_PORT", "0")
        self.gateway = f"http://127.0.0.1:{port}" if port != "0" else ""

    @staticmethod
    def in_tmp(
        tmp: Path, *, gateway_port: int | None = None, cwd: Path | None = None
    ) -> WonderlandDaemon:
        """A daemon under ``tmp`` (home ``tmp/home``, log ``tmp/daemon.log``) whose gateway
        listens on ``gateway_port`` or on a free port picked now."""
        port = free_port() if gateway_port is None else gateway_port
        return WonderlandDaemon(
            tmp / "home", daemon_env(tmp, gateway_port=port), tmp / "daemon.log", cwd
        )

    @property
    def gateway_port(self) -> int:
        return int(self.gateway.rsplit(":", 1)[1])

    def start(self, *args: str, timeout: float = READY_TIMEOUT) -> WonderlandDaemon:
        """Run `wonderland up ARGS` and return once ``daemon.json`` names its addresses."""
        info = self.home / "daemon.json"
        info.unlink(missing_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*WONDERLAND, "up", *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.cwd,
            )
        proc = self.proc

        def up() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise AssertionError(f"the daemon exited: {self.log.read_text(errors='replace')}")
            if not info.exists():
                return None
            try:
                data = json.loads(info.read_text())
                return {"server": data["server"], "gateway": data["gateway"]}
            except (ValueError, KeyError):
                return None  # written atomically, but an older daemon may be mid-write

        try:
            data = wait_for(up, timeout, "the daemon to start", log=self.log)
        except BaseException:
            self.stop()
            raise
        self.server = str(data["server"])
        if self.env.get("WONDERLAND_GATEWAY_PORT", "0") != "0":
            assert data["gateway"] == self.gateway, (data["gateway"], self.gateway)
        self.gateway = str(data["gateway"])
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the daemon's process group; SIGKILL it if it does not exit."""
        if self.proc is not None:
            kill_group(self.proc, sig)

    def stop(self) -> None:
        """SIGTERM (the daemon stops the replicas it started), then SIGKILL if stuck."""
        if self.proc is not None:
            kill_group(self.proc, signal.SIGTERM)

    def run(
        self, *args: str, stdin: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """`wonderland ARGS` against this daemon (its home, its token), output captured."""
        return subprocess.run(
            [*WONDERLAND, *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=stdin,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None, timeout: float = 60.0) -> str:
        """`wonderland ARGS`, asserted to succeed; its standard output."""
        result = self.run(*args, stdin=stdin, timeout=timeout)
        assert result.returncode == 0, f"wonderland {' '.join(args)}: {result.stderr}"
        return result.stdout


@contextlib.contextmanager
def running_daemon(daemon: WonderlandDaemon, *args: str) -> Iterator[WonderlandDaemon]:
    """Start ``daemon`` with `wonderland up ARGS` and always stop its group on the way out."""
    try:
        yield daemon.start(*args)
    finally:
        daemon.stop()
