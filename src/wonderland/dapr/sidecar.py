"""The sidecar process: HTTP and gRPC APIs, the app channel, subscriptions, the app command.

Use :class:`Sidecar` in-process (``async with Sidecar(options) as sidecar``) or
:class:`SidecarProcess` to run ``wonderland sidecar`` as a child process (a context
manager that also works as a pytest fixture body).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from wonderland.dapr.errors import DaprError
from wonderland.dapr.resources import ComponentResource, MetadataValue, ResourceSet
from wonderland.dapr.runtime import DaprRuntime, RuntimeOptions
from wonderland.ports import free_port

__all__ = [
    "DEFAULT_METRICS_PORT",
    "Sidecar",
    "SidecarProcess",
    "default_resources",
    "free_port",
]

#: daprd's ``--metrics-port`` default.
DEFAULT_METRICS_PORT = 9090

log = logging.getLogger("wonderland.dapr")


def default_resources(state_dir: Path) -> ResourceSet:
    """What ``dapr init`` would give: ``statestore`` (here state.sqlite) and ``pubsub`` (in-memory)."""
    return ResourceSet(
        components=[
            ComponentResource(
                name="statestore",
                type="state.sqlite",
                version="v1",
                metadata=[
                    MetadataValue("connectionString", str(state_dir / "state.db")),
                    MetadataValue("actorStateStore", "true"),
                ],
                source="(embedded default)",
            ),
            ComponentResource(
                name="pubsub",
                type="pubsub.in-memory",
                version="v1",
                metadata=[],
                source="(embedded default)",
            ),
        ]
    )


class Sidecar:
    """One sidecar in this event loop. ``start`` returns once both APIs listen."""

    def __init__(
        self, options: RuntimeOptions, resolver: Any = None, host: str = "127.0.0.1"
    ) -> None:
        self.options = options
        self.host = host
        self.runtime = DaprRuntime(options)
        self.http_port = options.http_port
        self.grpc_port = options.grpc_port
        #: The bound metrics port; None when metrics are off (no endpoint is served).
        self.metrics_port: int | None = None
        self._metrics_server: Any = None
        self._resolver = resolver
        self._file_resolver: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._http: Any = None
        self._grpc: Any = None
        self.channel: Any = None
        self.subs: Any = None
        self.invoker: Any = None

    async def __aenter__(self) -> Sidecar:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        from wonderland.dapr.app_channel import AppChannel
        from wonderland.dapr.grpc_api import build_server
        from wonderland.dapr.http_api import HTTPAPI
        from wonderland.dapr.http_server import serve
        from wonderland.dapr.invocation import FileNameResolver, Invoker
        from wonderland.dapr.subscriptions import SubscriptionManager
        from wonderland.dapr.tracing import from_configuration

        opts = self.options
        await self.runtime.start()
        if opts.app_port:
            self.channel = AppChannel(
                opts.app_channel_address,
                opts.app_port,
                opts.app_api_token,
                max_concurrency=opts.app_max_concurrency,
                metrics=self.runtime.metrics,
            )
            await self.channel.start()
        if self._resolver is None:
            self._file_resolver = FileNameResolver(
                opts.name_resolution_dir or opts.state_dir / "apps", opts.namespace
            )
            self._resolver = self._file_resolver
        cfg = opts.resources.configuration
        try:
            tracing = from_configuration(opts.app_id, cfg.spec if cfg is not None else None)
        except ValueError as exc:
            raise DaprError(str(exc)) from None
        self.invoker = Invoker(
            opts.app_id,
            self.channel,
            self._resolver,
            self.runtime.resiliency,
            opts.api_token,
            opts.namespace,
            tracing,
            metrics=self.runtime.metrics,
        )
        self.subs = SubscriptionManager(self.runtime, self.channel)
        api = HTTPAPI(
            self.runtime, self.invoker, lambda: self.channel is None or self.channel.ready
        )
        api.config_sink = self._config_to_app if self.channel is not None else None

        self._grpc = build_server(self.runtime, self.invoker, self.subs)
        try:
            self.grpc_port = await self._grpc.start(self.host, opts.grpc_port)
        except OSError as exc:
            raise DaprError(
                f"cannot serve the gRPC API on {self.host}:{opts.grpc_port}: {exc.strerror}; "
                "pick another port with --dapr-grpc-port"
            ) from None

        metrics = self.runtime.metrics
        if metrics.enabled:
            from wonderland.dapr.metrics_server import measured, metrics_handler

            port = DEFAULT_METRICS_PORT if opts.metrics_port is None else opts.metrics_port
            try:
                try:
                    self._metrics_server = await serve(
                        metrics_handler(metrics), "127.0.0.1", port, 64 * 1024
                    )
                except OSError:
                    if opts.metrics_port is not None:
                        raise
                    log.warning(
                        "metrics port %d is taken; serving metrics on a free port instead",
                        port,
                    )
                    port = 0
                    self._metrics_server = await serve(
                        metrics_handler(metrics), "127.0.0.1", 0, 64 * 1024
                    )
            except OSError as exc:
                raise DaprError(
                    f"cannot serve metrics on 127.0.0.1:{port}: {exc.strerror}; "
                    "pick another port with --metrics-port (or --enable-metrics=false)"
                ) from None
            self.metrics_port = int(self._metrics_server.sockets[0].getsockname()[1])
            handler = measured(api.handle, metrics)
        else:
            handler = api.handle
        try:
            self._http = await serve(handler, self.host, opts.http_port, opts.max_body_bytes)
        except OSError as exc:
            raise DaprError(
                f"cannot serve the HTTP API on {self.host}:{opts.http_port}: {exc.strerror}; "
                "pick another port with --dapr-http-port"
            ) from None
        self.http_port = int(self._http.sockets[0].getsockname()[1])
        if self._file_resolver is not None:
            self._file_resolver.register(opts.app_id, self.http_port, self.grpc_port)
        self._tasks.append(asyncio.get_running_loop().create_task(self._connect_app()))

    async def _connect_app(self) -> None:
        from wonderland.dapr.app_channel import wait_for_port

        if self.channel is not None:
            while not await wait_for_port(self.channel.address, self.channel.port, 5.0):
                log.info("waiting for the app on port %d", self.channel.port)
            self.channel.ready = True
        try:
            await self.subs.start(self.options.resources.subscriptions)
        except Exception:
            log.exception("starting subscriptions failed")
        if self.channel is not None and self.options.app_health_check:
            await self._watch_app_health()

    async def _watch_app_health(self) -> None:
        """Probe the app; after ``threshold`` failures stop deliveries until it is healthy again."""
        opts = self.options
        failures = 0
        healthy = True
        while True:
            await asyncio.sleep(opts.app_health_interval)
            try:
                status, _h, _b = await self.channel.request(
                    "GET", opts.app_health_path, timeout=opts.app_health_timeout
                )
                ok = 200 <= status < 300
            except (TimeoutError, OSError):
                ok = False
            if ok:
                failures = 0
                if not healthy:
                    healthy = True
                    await self.subs.resume()
                    log.info("the app is healthy again; deliveries resumed")
                continue
            failures += 1
            if healthy and failures >= opts.app_health_threshold:
                healthy = False
                await self.subs.pause()
                log.warning(
                    "the app failed %d health checks on %s; deliveries paused",
                    failures,
                    opts.app_health_path,
                )

    async def _config_to_app(self, store: str, sub_id: str, items: dict[str, Any]) -> None:
        import orjson

        for key, item in items.items():
            body = orjson.dumps({"id": sub_id, "items": {key: item.to_json()}})
            try:
                status, _h, _b = await self.channel.request(
                    "POST",
                    f"/configuration/{store}/{key}",
                    headers=[("Content-Type", "application/json")],
                    body=body,
                )
            except OSError as exc:
                log.warning("configuration update for %s not delivered: %s", key, exc)
                continue
            if status != 200:
                log.warning("app answered %d to the configuration update for %s", status, key)

    async def wait_for_shutdown(self) -> None:
        await self.runtime.shutdown_requested.wait()

    async def stop(self) -> None:
        if self._file_resolver is not None:
            self._file_resolver.unregister(self.options.app_id)
        if self.subs is not None:
            await self.subs.close()
        if self._http is not None:
            self._http.close()
        if self._metrics_server is not None:
            self._metrics_server.close()
        if self._grpc is not None:
            await self._grpc.stop(grace=1.0)
        for task in self._tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5.0)
        for task in self._tasks:
            task.cancel()
        if self.invoker is not None:
            await self.invoker.close()
        if self.channel is not None:
            await self.channel.close()
        await self.runtime.close()


class SidecarProcess:
    """Runs ``wonderland sidecar`` as a child process in its own process group.

    ``with SidecarProcess("myapp", resources_path=...) as sc:`` waits until
    ``/v1.0/healthz/outbound`` answers and sets ``sc.http_port``/``sc.grpc_port``;
    leaving the block kills the whole group, even after a failure.
    """

    def __init__(
        self,
        app_id: str,
        *,
        resources_path: Sequence[str | Path] = (),
        app_port: int | None = None,
        http_port: int | None = None,
        grpc_port: int | None = None,
        config: str | Path | None = None,
        env: dict[str, str] | None = None,
        command: Sequence[str] = (),
        ready_timeout: float = 30.0,
        log_file: str | Path | None = None,
        extra_args: Sequence[str] = (),
        metrics_port: int | None = None,
    ) -> None:
        self.app_id = app_id
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        #: The /metrics port; pass ``--enable-metrics=false`` in ``extra_args`` to serve none.
        self.metrics_port = metrics_port or free_port()
        self.args = [
            sys.executable,
            "-m",
            "wonderland",
            "sidecar",
            "--app-id",
            app_id,
            "--dapr-http-port",
            str(self.http_port),
            "--dapr-grpc-port",
            str(self.grpc_port),
            "--metrics-port",
            str(self.metrics_port),
        ]
        for p in resources_path:
            self.args += ["--resources-path", str(p)]
        if app_port:
            self.args += ["--app-port", str(app_port)]
        if config:
            self.args += ["--config", str(config)]
        self.args += list(extra_args)
        if command:
            self.args += ["--", *command]
        self.env = {**os.environ, **(env or {})}
        self.ready_timeout = ready_timeout
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> SidecarProcess:
        out: Any = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.args,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT if self.log_file else None,
            start_new_session=True,
        )
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DaprError(
                    f"the sidecar {self.app_id!r} exited with code {self.proc.returncode} before it "
                    f"was ready: {self._log_tail()}"
                )

            try:
                with urllib.request.urlopen(
                    f"{self.http_url}/v1.0/healthz/outbound", timeout=2
                ) as resp:
                    if resp.status // 100 == 2:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise DaprError(f"the sidecar did not become ready within {self.ready_timeout:.0f}s")

    def _log_tail(self) -> str:
        if not self.log_file:
            return "see its output above"
        try:
            lines = Path(self.log_file).read_text(errors="replace").strip().splitlines()
        except OSError:
            return f"see {self.log_file}"
        return " | ".join(lines[-3:]) or f"see {self.log_file}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def kill(self) -> None:
        """``kill -9`` the whole group (used to test durability)."""
        self.stop(signal.SIGKILL)

    def __enter__(self) -> SidecarProcess:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
