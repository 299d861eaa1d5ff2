"""The gateway server: one listening socket, HTTP/1.1 and h2c (prior knowledge)."""

from __future__ import annotations

import asyncio
import logging
import socket

from wonderland.gateway.h2 import H2ClientConnection
from wonderland.gateway.limits import GatewayLimits
from wonderland.gateway.metrics import GatewayMetrics
from wonderland.gateway.proxy import ClientConnection
from wonderland.gateway.table import RevisionTarget, RoutingTable
from wonderland.gateway.tracing import GatewayTracing

__all__ = ["GatewayServer"]

log = logging.getLogger("wonderland.gateway")


class GatewayServer:
    """Serves a ``RoutingTable`` on ``host:port``; ``start()``/``stop()`` as a platform
    service. ``port=0`` picks a free port (read it back from ``.port``). ``tracing``: the
    mode and the sink of the gateway's spans (default: propagate ``traceparent``, record
    nothing). ``legacy_metrics`` adds Knative's legacy metric names to ``/metrics``
    (``WONDERLAND_METRICS_LEGACY``). ``limits``: what one client may make the gateway
    hold (``GatewayLimits``; docs/security.md lists them)."""

    def __init__(
        self,
        table: RoutingTable,
        host: str = "127.0.0.1",
        port: int = 8080,
        tracing: GatewayTracing | None = None,
        *,
        legacy_metrics: bool = True,
        limits: GatewayLimits | None = None,
    ) -> None:
        self.table = table
        self.limits = limits = limits or GatewayLimits()
        self.tracing = tracing or GatewayTracing()
        self.host = host
        self.port = port
        self.metrics = GatewayMetrics(table, legacy=legacy_metrics)
        self._server: asyncio.base_events.Server | None = None
        self._sock: socket.socket | None = None
        previous = table.on_new_revision

        def hook(target: RevisionTarget) -> None:
            target.max_queue_bytes = limits.queue_max_bytes
            self.metrics.bind(target)
            if previous is not None:
                previous(target)

        table.on_new_revision = hook
        for target in table.revisions.values():
            target.max_queue_bytes = limits.queue_max_bytes
            self.metrics.bind(target)

    def bind(self) -> None:
        """Claim ``host:port`` now (listening, not yet serving), so that no process the
        platform starts before the gateway serves is handed its port; ``start()`` serves the
        claimed socket. ConfigError when the port is taken."""
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            from wonderland.errors import ConfigError

            raise ConfigError(
                f"the gateway cannot listen on {self.host}:{self.port}: {exc.strerror}; "
                "free the port or choose another with WONDERLAND_GATEWAY_PORT"
            ) from None
        sock.listen(1024)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        table, metrics, tracing, limits = self.table, self.metrics, self.tracing, self.limits

        def h2_factory(default_authority: str) -> H2ClientConnection:
            proto = H2ClientConnection(table, tracing, limits)
            proto.default_authority = default_authority
            return proto

        self.bind()
        sock, self._sock = self._sock, None
        assert sock is not None  # bind() claimed it
        self._server = await loop.create_server(
            lambda: ClientConnection(table, metrics, h2_factory, tracing, limits), sock=sock
        )
        log.info("gateway listening on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._sock is not None:  # claimed, never served
            self._sock.close()
            self._sock = None
        if self._server is not None:
            self._server.close()
            self._server = None
        for target in self.table.revisions.values():
            for ep in target.endpoints:
                ep.close_idle()
