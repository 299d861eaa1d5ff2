"""The gateway's part in tracing: its mode and where its spans go.

The request path only calls :func:`~wonderland.tracing.context.child_bytes` and keeps a
4-tuple; at the end of a request ``record_*`` appends one tuple to the sink (the daemon's
:class:`~wonderland.tracing.store.TraceStore`). Names and attributes are built there,
from what the request already holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import time_ns
from typing import TYPE_CHECKING

from wonderland.tracing.runtime import SpanSink

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
        if self.sink is None:
            return
        trace_id, span_id, parent_id, start = span
        path = url.split(b"?", 1)[0].decode("latin-1")
        attrs = {
            "http.request.method": method.decode("latin-1"),
            "url.path": path,
            "server.address": host.decode("latin-1"),
            "network.protocol.version": "1.1",
        }
        if target is not None:
            attrs["k8s.namespace.name"] = target.namespace
            attrs["knative.revision"] = target.name
        name = f"{attrs['http.request.method']} {path}"
        self.sink(
            (
                trace_id,
                span_id,
                parent_id,
                name,
                "SERVER",
                SERVICE_NAME,
                start,
                time_ns(),
                attrs,
                failed,
            )
        )

    def record_h2(
        self,
        span: tuple[str, str, str, int],
        headers: list[tuple[str, str]],
        target: RevisionTarget | None,
        failed: bool,
    ) -> None:
        if self.sink is None:
            return
        trace_id, span_id, parent_id, start = span
        pseudo = {n: v for n, v in headers if n.startswith(":")}
        path = pseudo.get(":path", "").split("?", 1)[0]
        method = pseudo.get(":method", "")
        attrs = {
            "http.request.method": method,
            "url.path": path,
            "server.address": pseudo.get(":authority", ""),
            "network.protocol.version": "2",
        }
        if target is not None:
            attrs["k8s.namespace.name"] = target.namespace
            attrs["knative.revision"] = target.name
        self.sink(
            (
                trace_id,
                span_id,
                parent_id,
                f"{method} {path}",
                "SERVER",
                SERVICE_NAME,
                start,
                time_ns(),
                attrs,
                failed,
            )
        )
