"""The monitoring endpoint: a small HTTP server in the daemon on ``bind:metrics_port``.

It serves what the :class:`~wonderland.monitoring.hub.MetricsHub` holds: ``/metrics`` (the
daemon's own registry) and the routes other parts added. Like Prometheus it has no token
and listens on loopback; requests whose ``Host`` is not an address or ``localhost`` are
refused (DNS rebinding), bodies are capped at :data:`MAX_BODY`. A taken port leaves the
platform running: the state (``info["monitoring"]``) says why.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

import orjson

from wonderland.asgi import Receive, Scope, Send, SocketServer, listening_socket
from wonderland.monitoring.hub import HttpRequest, HttpResponse, MetricsHub

__all__ = ["MAX_BODY", "MonitoringServer", "MonitoringStatus"]

log = logging.getLogger("wonderland.monitoring")

MAX_BODY = 8 * 1024 * 1024


@dataclass(frozen=True)
class MonitoringStatus:
    url: str
    state: str  # running | failed
    reason: str = ""

    def as_info(self) -> dict[str, str]:
        out = {"url": self.url, "state": self.state}
        if self.reason:
            out["reason"] = self.reason
        return out


def _host_allowed(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    if name in ("localhost", ""):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _error(status: int, message: str) -> HttpResponse:
    return HttpResponse(
        status,
        orjson.dumps({"status": "error", "errorType": "bad_data", "error": message}),
        "application/json",
    )


class MonitoringServer:
    """The ASGI app and its uvicorn server; a :class:`~wonderland.platform.PlatformService`."""

    def __init__(self, hub: MetricsHub, host: str, port: int) -> None:
        self.hub = hub
        self.host = host
        self.port = port
        self.status = MonitoringStatus(url="", state="stopped")
        self._server: SocketServer | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        response = await self._answer(scope, receive, headers)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"content-type", response.content_type.encode()),
                    (b"content-length", str(len(response.body)).encode()),
                    *((k.encode(), v.encode()) for k, v in response.headers),
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    async def _answer(
        self, scope: Scope, receive: Receive, headers: dict[str, str]
    ) -> HttpResponse:
        handler = self.hub.host_route(headers.get("host", ""))
        if handler is None and not _host_allowed(headers.get("host", "")):
            return _error(403, "the monitoring endpoint answers loopback addresses only")
        handler = handler or self.hub.route(scope["path"])
        if handler is None:
            return _error(404, f"no such path: {scope['path']}")
        declared = headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > MAX_BODY:
            return _error(413, f"request bodies are limited to {MAX_BODY} bytes")
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return _error(400, "client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                return _error(413, f"request bodies are limited to {MAX_BODY} bytes")
            chunks.append(chunk)
            more = bool(message.get("more_body"))
        request = HttpRequest(
            scope["method"],
            scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
            headers,
            b"".join(chunks),
        )
        try:
            return await handler(request)
        except ValueError as exc:
            return _error(400, str(exc))

    async def start(self) -> None:
        try:
            sock = listening_socket(self.host, self.port)
        except OSError as exc:
            reason = (
                f"port {self.port} is taken ({exc.strerror}); set WONDERLAND_METRICS_PORT "
                "to a free port (0 picks one)"
            )
            log.warning("monitoring endpoint not started: %s", reason)
            self.status = MonitoringStatus(url=self.url, state="failed", reason=reason)
            return
        self.port = int(sock.getsockname()[1])
        self._server = SocketServer(self, sock)
        await self._server.start()
        self.status = MonitoringStatus(url=self.url, state="running")

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
        self._server = None
