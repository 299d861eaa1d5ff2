"""A real Prometheus as a platform component (``wonderland up --prometheus``).

:class:`PrometheusServer` runs the ``prometheus`` on PATH (Debian's package: ``apt-get
install prometheus``) with the configuration of :mod:`~wonderland.monitoring.promconfig`
(one job over the daemon's file service discovery), its TSDB in ``<home>/prometheus/data``,
on ``bind:prometheus_port`` (9091). The process has its own process group, writes to
``<home>/prometheus/prometheus.log``, dies with the daemon (``PR_SET_PDEATHSIG``) and is
stopped with it (SIGTERM, SIGKILL after a grace). When it exits on its own it is started
again after a back-off (1 s, doubled up to a minute). Its URL and state are published as
``info["prometheus"]`` (daemon.json, the banner, ``wonderland get cs``).

No binary, a taken port or a Prometheus that cannot start leave the platform running: the
state is ``failed`` and ``reason`` says what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from wonderland.monitoring.promconfig import (
    CONFIG_NAME,
    INSTALL_HINT,
    prometheus_binary,
    prometheus_command,
    prometheus_config,
)
from wonderland.ports import free_port
from wonderland.probes import http_ok
from wonderland.runtime.containers import SETPRIV, die_with_parent
from wonderland.settings import Settings

__all__ = ["INFO_KEY", "PrometheusServer", "PrometheusStatus"]

log = logging.getLogger("wonderland.monitoring.prometheus")

INFO_KEY = "prometheus"
# how long start() waits for the first /-/ready (the banner shows the outcome)
READY_TIMEOUT = 20.0
STOP_GRACE = 10.0
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
# a process that ran this long without exiting starts its next back-off from the first step
STEADY_SECONDS = 60.0


@dataclass(frozen=True)
class PrometheusStatus:
    """What ``daemon.json``, the banner and ``wonderland get cs`` show."""

    url: str
    state: str  # off | starting | running | restarting | failed | stopped
    reason: str = ""
    log: str = ""
    config: str = ""

    def as_info(self) -> dict[str, str]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v or k in ("url", "state")}


def _port_free(host: str, port: int) -> str:
    """ "" when ``host:port`` can be listened on, else why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return ""


async def _ready(url: str) -> bool:
    """Whether Prometheus at ``url`` answers ``GET /-/ready`` with 200."""
    parts = urlsplit(url)
    return await http_ok(parts.hostname or "127.0.0.1", parts.port or 80, "/-/ready", 2.0)


class PrometheusServer:
    """The managed ``prometheus`` process; a :class:`~wonderland.platform.PlatformService`."""

    def __init__(
        self,
        settings: Settings,
        targets_file: Path,
        *,
        binary: str | None = None,
        on_status: Callable[[PrometheusStatus], None] | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.targets_file = targets_file
        self.root = settings.state_dir / "prometheus"
        self.config_path = self.root / CONFIG_NAME
        self.log_path = self.root / "prometheus.log"
        self.host = settings.bind
        self.port = settings.prometheus_port
        self.binary = binary
        self.on_status = on_status
        self.ready_timeout = ready_timeout
        self.restarts = 0
        self.proc: asyncio.subprocess.Process | None = None
        self._state = "stopped"
        self._reason = ""
        self._supervisor: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()  # first ready, or gave up
        self._stopping = False

    @property
    def url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def status(self) -> PrometheusStatus:
        return PrometheusStatus(
            url=self.url,
            state=self._state,
            reason=self._reason,
            log=str(self.log_path) if self.log_path.exists() else "",
            config=str(self.config_path) if self.config_path.exists() else "",
        )

    def _set(self, state: str, reason: str = "") -> None:
        self._state, self._reason = state, reason
        if self.on_status is not None:
            try:
                self.on_status(self.status())
            except Exception:
                log.exception("publishing Prometheus's state failed")

    def _fail(self, reason: str) -> None:
        log.warning("Prometheus not running: %s; the platform runs without it", reason)
        self._set("failed", reason)

    # -- platform service --------------------------------------------------------------

    async def start(self) -> None:
        binary = self.binary or prometheus_binary()
        if binary is None:
            self._fail(f"prometheus is not installed: {INSTALL_HINT}")
            return
        self.binary = binary
        if self.port == 0:
            self.port = free_port(self.host)
        else:
            taken = _port_free(self.host, self.port)
            if taken:
                self._fail(
                    f"port {self.port} is not free ({taken}); set WONDERLAND_PROMETHEUS_PORT to "
                    "a free port (0 picks one)"
                )
                return
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = prometheus_config(self.targets_file, self.settings.prometheus_scrape_interval)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._set("starting")
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())
        # the banner shows the state: wait (a little) until Prometheus answers or gives up
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), self.ready_timeout)

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._kill()
        if self._state != "failed":
            self._set("stopped")

    # -- the process -------------------------------------------------------------------

    def _argv(self) -> list[str]:
        assert self.binary is not None
        host = f"[{self.host}]" if ":" in self.host else self.host
        argv = prometheus_command(
            self.binary,
            self.config_path,
            self.root / "data",
            f"{host}:{self.port}",
            self.settings.prometheus_retention,
        )
        if SETPRIV is not None:
            # setpriv sets the death signal and execs: no Python runs between fork and exec
            return [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
        return argv

    async def _spawn(self) -> asyncio.subprocess.Process | None:
        argv = self._argv()
        self.proc = None
        with self.log_path.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
            out.flush()
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=None if SETPRIV is not None else die_with_parent,
                )
            except OSError as exc:
                self._fail(f"cannot run {argv[0]}: {exc.strerror or exc}")
        return self.proc

    async def _until_ready(self, proc: asyncio.subprocess.Process) -> None:
        """Poll ``/-/ready`` until it answers (state ``running``) or the process exits."""
        while proc.returncode is None:
            if await _ready(self.url):
                log.info("Prometheus on %s (log %s)", self.url, self.log_path)
                self._set("running")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.1)

    async def _supervise(self) -> None:
        """Run Prometheus; start it again, after a growing back-off, whenever it exits."""
        backoff = FIRST_BACKOFF
        try:
            while not self._stopping:
                proc = await self._spawn()
                if proc is None:
                    return  # it cannot even be spawned: failed, nothing to restart
                started = time.monotonic()
                await self._until_ready(proc)
                self._settled.set()
                code = await proc.wait()
                if self._stopping:
                    return
                if time.monotonic() - started >= STEADY_SECONDS:
                    backoff = FIRST_BACKOFF
                self._set(
                    "restarting",
                    f"it exited with status {code}; starting again in {backoff:.0f}s "
                    f"(log: {self.log_path})",
                )
                log.warning(
                    "Prometheus exited (status %s); starting it again in %.0fs", code, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                self.restarts += 1
        finally:
            self._settled.set()

    async def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
