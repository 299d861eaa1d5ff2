"""MLflow's tracking server as a platform component, run lean (see :mod:`mlflow_process`).

:class:`TrackingServer` listens on ``bind:mlflow_port`` (5000, MLflow's default, so MLflow
clients need no configuration) with a plain TCP relay, the *front*. The lean MLflow process
behind it runs on a private port and only while it is used:

- the first connection (or :meth:`TrackingServer.wake`) starts it; connections opened
  while it starts are held, their bytes buffered up to a limit, until ``GET /health``
  answers, then relayed; when it cannot start they get a 503 naming the log file;
- after ``mlflow_idle_seconds`` without a relayed byte it is stopped (SIGTERM to its
  process group, SIGKILL after a grace), like a revision scaled to zero.

The process has its own process group, writes to ``<home>/mlflow/server.log`` and dies with
the daemon (``PR_SET_PDEATHSIG``). Its backend is SQLite in ``<home>/mlflow`` unless
``mlflow_backend_store_uri`` names another (PostgreSQL); one process is the one writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from wonderland.ports import free_port
from wonderland.probes import http_ok
from wonderland.runtime.containers import SETPRIV, die_with_parent
from wonderland.settings import Settings
from wonderland.tracking.client import TrackingUnavailable
from wonderland.tracking.front import FrontConnection

__all__ = [
    "EXTRA_HINT",
    "PLATFORM_NAMESPACE",
    "TrackingServer",
    "TrackingStatus",
    "lean_command",
    "lean_environment",
    "mlflow_installed",
    "redact_uri",
    "service_hosts",
    "with_driver",
]

log = logging.getLogger("wonderland.tracking")

# where the platform's components live on a cluster (Katib's DB manager is
# katib-db-manager.kubeflow too)
PLATFORM_NAMESPACE = "kubeflow"
SERVICE_NAME = "mlflow"
EXTRA_HINT = "pip install 'wonderland[mlflow]'"
# what one connection may send while the server starts before it is paused (backpressure)
MAX_HELD_BYTES = 1 << 20
START_TIMEOUT = 120.0
STOP_GRACE = 5.0
HEALTH_INTERVAL = 0.02


def lean_environment(
    *,
    backend_store_uri: str,
    artifacts_dir: Path,
    port: int,
    host: str = "127.0.0.1",
    allowed_hosts: Iterable[str] = (),
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of ``python -m wonderland.tracking.mlflow_process``: what ``mlflow
    server --workers 1 --serve-artifacts`` sets for its workers, with the job runner off."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "_MLFLOW_SERVER_FILE_STORE": backend_store_uri,
            "_MLFLOW_SERVER_REGISTRY_STORE": backend_store_uri,
            "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/",
            "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
            "_MLFLOW_SERVER_ARTIFACT_DESTINATION": str(artifacts_dir),
            "_MLFLOW_SGI_NAME": "uvicorn",
            "_MLFLOW_IN_JOB_EXECUTOR": "false",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "WONDERLAND_MLFLOW_HOST": host,
            "WONDERLAND_MLFLOW_LISTEN_PORT": str(port),
        }
    )
    hosts = [h for h in allowed_hosts if h]
    if hosts:
        # MLflow's DNS-rebinding check: loopback is allowed by default; the gateway's
        # host names (mlflow.<domain>, mlflow.<ns>.svc.cluster.local) are added
        loopback = ["localhost", "127.0.0.1", "[::1]", "localhost:*", "127.0.0.1:*", "[[]::1]:*"]
        extra = [p for h in hosts for p in (h, f"{h}:*")]
        env["MLFLOW_SERVER_ALLOWED_HOSTS"] = ",".join(loopback + extra)
    # the server never goes through a proxy meant for workloads
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "grpc_proxy"):
        env.pop(var, None)
    return env


def lean_command(python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", "wonderland.tracking.mlflow_process"]


def service_hosts(domain: str) -> tuple[str, ...]:
    """The host names the gateway routes to the tracking server: ``mlflow.<domain>`` (the
    UI in a browser) and the cluster-local names workloads use."""
    svc = f"{SERVICE_NAME}.{PLATFORM_NAMESPACE}"
    return (f"{SERVICE_NAME}.{domain}", svc, f"{svc}.svc", f"{svc}.svc.cluster.local")


def redact_uri(uri: str) -> str:
    """``uri`` with its password (``postgresql://user:secret@host/db``) replaced by ``***``."""
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return uri
    if password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def with_driver(uri: str) -> str:
    """``postgresql://`` with the driver that is installed: SQLAlchemy 2.1 reads a bare
    ``postgresql://`` as psycopg 3, and many installs have psycopg2 (``psycopg2-binary``)."""
    scheme, sep, rest = uri.partition("://")
    if scheme not in ("postgresql", "postgres") or not sep:
        return uri
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        with contextlib.suppress(ImportError, ValueError):
            if importlib.util.find_spec(module) is not None:
                return f"postgresql+{driver}://{rest}"
    return uri


def mlflow_installed() -> bool:
    """Whether ``import mlflow`` would work, without importing it (a second of import time
    the daemon does not need)."""
    try:
        return importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class TrackingStatus:
    """What ``daemon.json``, the banner and ``wonderland get cs`` show."""

    url: str
    state: str
    gateway_url: str = ""
    cluster_url: str = ""
    backend: str = ""
    log: str = ""

    def as_info(self) -> dict[str, str]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v}


class TrackingServer:
    """MLflow's tracking server behind a front on ``bind:mlflow_port``, started on demand
    and stopped when idle (see the module docstring). A :class:`~wonderland.tracking.access
    .TrackingAccess` and a platform service (``start()``/``stop()``).

    ``state``: ``stopped``, ``starting``, ``running``, ``failed: <reason>``,
    ``unavailable: <reason>`` (the front cannot listen), ``off`` or ``not installed: ...``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        installed: bool | None = None,
        python: str | None = None,
        on_status: Callable[[TrackingStatus], None] | None = None,
        on_listening: Callable[[int], None] | None = None,
        start_timeout: float = START_TIMEOUT,
        max_held_bytes: int = MAX_HELD_BYTES,
    ) -> None:
        self.settings = settings
        self.host = settings.bind
        self.port = settings.mlflow_port
        self.root = settings.state_dir / "mlflow"
        self.log_path = self.root / "server.log"
        self.backend_store_uri = (
            settings.mlflow_backend_store_uri or f"sqlite:///{self.root / 'mlflow.db'}"
        )
        self.idle_seconds = settings.mlflow_idle_seconds
        self.python = python or sys.executable
        self.on_status = on_status
        self.on_listening = on_listening
        self.start_timeout = start_timeout
        self.max_held_bytes = max_held_bytes
        self.gateway_url = ""  # http://mlflow.<domain>:<gateway port>, once routed
        if settings.mlflow == "off":
            self._state = "off"
        elif not (mlflow_installed() if installed is None else installed):
            self._state = f"not installed: {EXTRA_HINT}"
        else:
            self._state = "stopped"
        self.available = self._state == "stopped"
        self.proc: subprocess.Popen[bytes] | None = None
        self.backend_port = 0  # the running process's private port; 0 when not running
        self.connections: set[FrontConnection] = set()
        self.held: list[FrontConnection] = []
        # set by every relayed chunk and wake(); the idle timer clears it
        self.active = False
        self._last_active = 0.0
        self._server: asyncio.Server | None = None
        self._starting: asyncio.Task[bool] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._idle_task: asyncio.Task[None] | None = None

    # -- TrackingAccess ----------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self.available

    @property
    def client_uri(self) -> str:
        host = (
            "127.0.0.1"
            if self.host in ("", "0.0.0.0")
            else "::1"
            if self.host == "::"
            else self.host
        )
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def backend_url(self) -> str:
        return f"http://127.0.0.1:{self.backend_port}"

    async def wake(self) -> str:
        if not self.available or self._server is None:
            raise TrackingUnavailable(
                f"MLflow's tracking server is not running here ({self._state})"
            )
        self.active = True
        if not self._running():
            if not await asyncio.shield(self._ensure_starting()):
                raise TrackingUnavailable(
                    f"MLflow's tracking server could not start ({self._state}); see {self.log_path}"
                )
            self.active = True
        return self.backend_url

    def running_uri(self) -> str | None:
        return self.backend_url if self._running() else None

    # -- status ------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    def status(self) -> TrackingStatus:
        listening = self._server is not None
        return TrackingStatus(
            url=self.client_uri if listening else "",
            state=self._state,
            gateway_url=self.gateway_url,
            cluster_url=f"http://{service_hosts(self.settings.domain)[-1]}" if listening else "",
            backend=redact_uri(self.backend_store_uri) if self.available else "",
            log=str(self.log_path) if self.available else "",
        )

    def _set_state(self, state: str) -> None:
        self._state = state
        if self.on_status is not None:
            try:
                self.on_status(self.status())
            except Exception:
                log.exception("publishing the tracking server's state failed")

    def _running(self) -> bool:
        return self._state == "running" and self.proc is not None and self.proc.poll() is None

    # -- platform service --------------------------------------------------------------

    async def start(self) -> None:
        if not self.available:
            self._set_state(self._state)
            return
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: FrontConnection(self), self.host, self.port, reuse_address=True
            )
        except OSError as exc:
            self.available = False
            why = "in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            log.warning(
                "MLflow's tracking server cannot listen on %s:%d (%s); the platform runs "
                "without it. Set WONDERLAND_MLFLOW_PORT to a free port (0 picks one).",
                self.host,
                self.port,
                why,
            )
            self._set_state(f"unavailable: port {self.port} {why}")
            return
        self.port = int(self._server.sockets[0].getsockname()[1])
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._idle_task = loop.create_task(self._idle_loop())
        log.info(
            "MLflow tracking on %s (started on the first request, backend %s)",
            self.client_uri,
            redact_uri(self.backend_store_uri),
        )
        if self.on_listening is not None:
            self.on_listening(self.port)
        self._set_state("stopped")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in (self._idle_task, self._starting):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._idle_task = None
        for conn in list(self.connections):
            conn.close()
        await self._stop_process()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    # -- the process -------------------------------------------------------------------

    def hold(self, conn: FrontConnection) -> None:
        """Keep ``conn`` until the process answers; start it if it is not starting."""
        self.held.append(conn)
        self._ensure_starting()

    def _ensure_starting(self) -> asyncio.Task[bool]:
        if self._starting is None or self._starting.done():
            self._starting = asyncio.get_running_loop().create_task(self._start_process())
        return self._starting

    async def _start_process(self) -> bool:
        if self._stopping is not None:
            await self._stopping
        self._set_state("starting")
        started = time.monotonic()
        port = free_port()
        env = lean_environment(
            backend_store_uri=with_driver(self.backend_store_uri),
            artifacts_dir=self.root / "artifacts",
            port=port,
            allowed_hosts=service_hosts(self.settings.domain),
        )
        argv = lean_command(self.python)
        preexec: Callable[[], None] | None = die_with_parent
        if SETPRIV is not None:
            # setpriv sets the death signal and execs: no Python runs between fork and exec
            argv = [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
            preexec = None
        reason = ""
        with self.log_path.open("ab") as out:
            out.write(
                f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting on 127.0.0.1:{port}, "
                f"backend {redact_uri(self.backend_store_uri)}\n".encode()
            )
            out.flush()
            try:
                self.proc = subprocess.Popen(
                    argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    preexec_fn=preexec,
                )
            except OSError as exc:
                reason = f"cannot run {argv[0]}: {exc.strerror or exc}"
        proc = self.proc
        if proc is not None:
            deadline = started + self.start_timeout
            while True:
                if proc.poll() is not None:
                    reason = f"the process exited with status {proc.returncode}"
                    break
                if await http_ok("127.0.0.1", port, "/health", 5.0):
                    break
                if time.monotonic() > deadline:
                    reason = f"no answer on /health after {self.start_timeout:.0f}s"
                    break
                await asyncio.sleep(HEALTH_INTERVAL)
        if reason:
            await self._stop_process(f"failed: {reason}")
            message = (
                f"MLflow's tracking server could not start: {reason}. Its log: {self.log_path}"
            )
            log.error("%s", message)
            held, self.held = self.held, []
            for conn in held:
                conn.refuse(503, "Service Unavailable", message)
            return False
        self.backend_port = port
        self.active = True
        self._last_active = asyncio.get_running_loop().time()
        log.info("MLflow's tracking server started in %.2fs", time.monotonic() - started)
        self._set_state("running")
        held, self.held = self.held, []
        for conn in held:
            conn.connect()
        return True

    async def _stop_process(self, state: str = "") -> None:
        proc, self.proc = self.proc, None
        self.backend_port = 0
        if state:
            self._set_state(state)
        elif self._state in ("running", "starting"):
            self._set_state("stopped")
        if proc is None:
            return
        for conn in list(self.connections):
            if conn not in self.held:
                conn.close()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.get_running_loop().run_in_executor(None, proc.wait)
        # what the group may have left (the process is its leader)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def upstream_failed(self, conn: FrontConnection, exc: OSError) -> None:
        """A relayed connection could not reach the process: hold it again if the process
        is gone (it starts again), else answer 502."""
        if self.proc is None or self.proc.poll() is not None:
            if self._state == "running":
                self._set_state("stopped")
            self.backend_port = 0
            self.hold(conn)
            return
        conn.refuse(502, "Bad Gateway", f"MLflow's tracking server did not answer: {exc}")

    async def _idle_loop(self) -> None:
        loop = asyncio.get_running_loop()
        tick = max(0.05, min(1.0, self.idle_seconds / 5))
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            if self.active:
                self.active = False
                self._last_active = now
                continue
            if self._state != "running" or (self._starting and not self._starting.done()):
                continue
            proc = self.proc
            if proc is None or proc.poll() is not None:
                code = proc.returncode if proc is not None else None
                log.warning(
                    "MLflow's tracking server exited (status %s); it starts again on the next "
                    "request. Its log: %s",
                    code,
                    self.log_path,
                )
                await self._stop_process("stopped")
                continue
            if now - self._last_active >= self.idle_seconds:
                log.info(
                    "MLflow's tracking server was idle for %.0fs; stopping it", self.idle_seconds
                )
                self._stopping = loop.create_task(self._stop_process())
                try:
                    await self._stopping
                finally:
                    self._stopping = None
