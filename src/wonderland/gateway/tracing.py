"""The gateway's part in tracing: its mode and where its spans go.

The request path only calls :func:`~wonderland.tracing.context.child_bytes` and keeps a
4-tuple; at the end of a request ``record_*`` appends one tuple to the sink (the daemon's
:class:`~wonderland.tracing.store.TraceStore`). Names and attributes are built there,
from what the request already holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import time_ns
from typing import TYPE_CHECKING, Any

from wonderland.tracing.runtime import SpanSink
from wonderland.tracing.store import register_describer

if TYPE_CHECKING:
    from wonderland.gateway.table import RevisionTarget

__all__ = ["SERVICE_NAME", "GatewayTracing"]

SERVICE_NAME = "wonderland-gateway"


@dataclass(frozen=True)
class GatewayTracing:
    """``mode``: on, propagate or off; ``sink``: where spans go (None: not recorded)."""

    mode: str = "propagate"
    sink: SpanSink | None = None

    def record_h1(
        self,
        span: tuple[bytes, bytes, bytes, int],
        method: bytes,
        url: bytes,
        host: bytes,
        target: RevisionTarget | None,
        failed: bool,
    ) -> None:
        """One tuple of bytes and str appended; the name and attributes are made when the
        store is read."""
        sink = self.sink
        if sink is not None:
            where = (target.namespace, target.name) if target is not None else ("", "")
            _emit(sink, span, (_H1, method, url, host, *where), failed)

    def record_h2(
        self,
        span: tuple[str, str, str, int],
        headers: list[tuple[str, str]],
        target: RevisionTarget | None,
        failed: bool,
    ) -> None:
        sink = self.sink
        if sink is not None:
            method = path = authority = ""
            for name, value in headers:
                if name == ":method":
                    method = value
                elif name == ":path":
                    path = value
                elif name == ":authority":
                    authority = value
            where = (target.namespace, target.name) if target is not None else ("", "")
            _emit(sink, span, (_H2, method, path, authority, *where), failed)


def _emit(
    sink: SpanSink, span: tuple[Any, Any, Any, int], details: tuple[Any, ...], failed: bool
) -> None:
    """The gateway's SERVER span as the store keeps it (ids as the protocol had them)."""
    trace_id, span_id, parent_id, start = span
    sink(
        (
            trace_id,
            span_id,
            parent_id,
            "",
            "SERVER",
            SERVICE_NAME,
            start,
            time_ns(),
            details,
            failed,
        )
    )


_H1 = "wonderland.gateway.h1"
_H2 = "wonderland.gateway.h2"


def _details(
    protocol: str, method: str, url: str, host: str, namespace: str, revision: str
) -> tuple[str, dict[str, Any]]:
    path = url.split("?", 1)[0]
    attrs: dict[str, Any] = {
        "http.request.method": method,
        "url.path": path,
        "server.address": host,
        "network.protocol.version": protocol,
    }
    if revision:
        attrs["k8s.namespace.name"] = namespace
        attrs["knative.revision"] = revision
    return f"{method} {path}", attrs


def _h1_details(
    method: bytes, url: bytes, host: bytes, namespace: str, revision: str
) -> tuple[str, dict[str, Any]]:
    return _details(
        "1.1",
        method.decode("latin-1"),
        url.decode("latin-1"),
        host.decode("latin-1"),
        namespace,
        revision,
    )


def _h2_details(
    method: str, path: str, authority: str, namespace: str, revision: str
) -> tuple[str, dict[str, Any]]:
    return _details("2", method, path, authority, namespace, revision)


register_describer(_H1, _h1_details)
register_describer(_H2, _h2_details)
