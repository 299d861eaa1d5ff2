"""W3C Trace Context propagation and the daemon's span store, with no SDK on the hot path.

:mod:`~wonderland.tracing.context` parses and writes ``traceparent``;
:mod:`~wonderland.tracing.store` keeps the last traces; :mod:`~wonderland.tracing.receive`
decodes OTLP and Zipkin span exports; :mod:`~wonderland.tracing.runtime` holds the mode
(``WONDERLAND_TRACING``) and sends a process's spans on (OTLP with the ``otel`` extra).
"""

from __future__ import annotations

from wonderland.tracing.context import (
    TraceParent,
    child,
    child_bytes,
    format_traceparent,
    new_span_id,
    new_trace_id,
    parse_traceparent,
)
from wonderland.tracing.store import Span, TraceStore

__all__ = [
    "Span",
    "TraceParent",
    "TraceStore",
    "child",
    "child_bytes",
    "format_traceparent",
    "new_span_id",
    "new_trace_id",
    "parse_traceparent",
]
