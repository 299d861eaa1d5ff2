"""The seam between the monitoring endpoint and the parts that feed it.

A :class:`MetricsHub` holds the daemon's one Prometheus registry and the routes of the
monitoring endpoint. Parts of the daemon register collectors and routes on it; the
:class:`~wonderland.monitoring.server.MonitoringServer` serves them. Handlers are plain
async functions from an :class:`HttpRequest` to an :class:`HttpResponse`, so the routes
know nothing of the server that carries them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["HttpRequest", "HttpResponse", "MetricsHub", "RouteHandler"]


@dataclass(frozen=True)
class HttpRequest:
    """One request to the monitoring endpoint, read whole (bodies are capped)."""

    method: str
    path: str
    query_string: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def params(self) -> dict[str, list[str]]:
        """Query parameters, and form fields of an urlencoded POST (as Prometheus reads them)."""
        out = parse_qs(self.query_string, keep_blank_values=True)
        kind = self.headers.get("content-type", "")
        if self.method == "POST" and kind.startswith("application/x-www-form-urlencoded"):
            for key, values in parse_qs(
                self.body.decode("latin-1"), keep_blank_values=True
            ).items():
                out.setdefault(key, []).extend(values)
        return out


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


RouteHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class MetricsHub:
    """The daemon's Prometheus registry and the monitoring endpoint's routes.

    ``add_route("/federate", handler)`` serves one path; ``prefix=True`` serves every path
    under it (``"/api/v1/"``). ``/metrics`` is built in: the registry's exposition.
    ``add_host(names, handler)`` serves every path of requests for a platform service's
    host name (``payload-logger.wonderland-system.svc.cluster.local``), which the gateway
    forwards from Pods; the endpoint otherwise answers loopback host names only.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._exact: dict[str, RouteHandler] = {"/metrics": self._metrics}
        self._prefixes: list[tuple[str, RouteHandler]] = []
        self._hosts: dict[str, RouteHandler] = {}

    def add_host(self, names: tuple[str, ...], handler: RouteHandler) -> None:
        for name in names:
            self._hosts[name.lower()] = handler

    def host_route(self, host: str) -> RouteHandler | None:
        """The handler of a service host name (``Host`` header, port dropped), or None."""
        if not self._hosts:
            return None
        return self._hosts.get(host.rsplit(":", 1)[0].lower())

    def add_route(self, path: str, handler: RouteHandler, *, prefix: bool = False) -> None:
        if not path.startswith("/"):
            raise ValueError(f"route {path!r} must start with /")
        if prefix:
            self._prefixes.append((path, handler))
            self._prefixes.sort(key=lambda item: -len(item[0]))
        elif path in self._exact:
            raise ValueError(f"route {path} is already served")
        else:
            self._exact[path] = handler

    def route(self, path: str) -> RouteHandler | None:
        handler = self._exact.get(path)
        if handler is not None:
            return handler
        for prefix, candidate in self._prefixes:
            if path.startswith(prefix):
                return candidate
        return None

    def exposition(self) -> bytes:
        """The daemon's own metrics in the Prometheus text format."""
        data: bytes = generate_latest(self.registry)
        return data

    async def _metrics(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, self.exposition(), CONTENT_TYPE_LATEST)
