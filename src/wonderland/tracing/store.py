"""The daemon's last traces: a bounded ring of spans, by traces and by bytes.

Recording must cost the request path next to nothing, so :meth:`TraceStore.record` is a
``deque.append`` of a tuple; the tuples become :class:`Span` objects, are grouped by
trace and evicted only when someone reads (or when spans arrive over OTLP/Zipkin, which
is off the request path anyway).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "KINDS",
    "MAX_SPANS_PER_TRACE",
    "RawSpan",
    "Span",
    "TraceStore",
    "describe",
    "register_describer",
]

KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")

# (trace id, span id, parent span id, name, kind, service, start ns, end ns, attributes,
# error): ids as hex str or bytes, kind one of KINDS. ``attributes`` is a dict, None, or
# -- to keep the recorder's work to building one tuple -- a tuple ``(key, *args)`` of
# str/bytes/int only, whose describer (``register_describer(key, fn)``) gives ``(name,
# attributes)`` when the store is read. Such tuples hold no containers, so the garbage
# collector untracks them instead of carrying thousands of them into older generations.
RawSpan = tuple[
    "str | bytes",
    "str | bytes",
    "str | bytes",
    str,
    str,
    str,
    int,
    int,
    "dict[str, Any] | tuple[Any, ...] | None",
    bool,
]

Describer = Callable[..., tuple[str, dict[str, Any]]]
_DESCRIBERS: dict[str, Describer] = {}


def register_describer(key: str, describe: Describer) -> None:
    """``describe(*args)`` names a recorded span whose attributes are ``(key, *args)``."""
    _DESCRIBERS[key] = describe


# bytes a span costs beyond its strings, and per attribute (dict entry, str headers):
# measured with tracemalloc, a gateway span takes about 1150 bytes; this counts ~1250
MAX_SPANS_PER_TRACE = 10_000
_SPAN_OVERHEAD = 600
_ATTRIBUTE_OVERHEAD = 80


@dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str = "INTERNAL"
    service: str = ""
    start_ns: int = 0
    end_ns: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str = "UNSET"  # UNSET | OK | ERROR
    status_message: str = ""

    def size(self) -> int:
        n = _SPAN_OVERHEAD + len(self.name) + len(self.service) + len(self.status_message)
        for key, value in self.attributes.items():
            n += _ATTRIBUTE_OVERHEAD + len(key) + (len(value) if isinstance(value, str) else 16)
        return n

    def as_json(self, trace_start: int, depth: int) -> dict[str, Any]:
        return {
            "traceId": self.trace_id,
            "spanId": self.span_id,
            "parentSpanId": self.parent_id,
            "name": self.name,
            "kind": self.kind,
            "service": self.service,
            "startTimeUnixNano": str(self.start_ns),
            "endTimeUnixNano": str(self.end_ns),
            "offsetMs": round((self.start_ns - trace_start) / 1e6, 3),
            "durationMs": round(max(0, self.end_ns - self.start_ns) / 1e6, 3),
            "depth": depth,
            "status": {"code": self.status, "message": self.status_message},
            "attributes": self.attributes,
        }


class _Trace:
    __slots__ = ("bytes", "spans")

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.bytes = 0


def _hex(value: str | bytes) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


class TraceStore:
    """The last ``max_traces`` traces, ``max_bytes`` of spans at most; the oldest trace
    goes first. ``record`` is the in-process way in (the gateway, the sidecars), ``add``
    the one for spans decoded from OTLP or Zipkin."""

    def __init__(self, max_traces: int = 1000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_traces = max_traces
        self.max_bytes = max_bytes
        self.max_spans_per_trace = MAX_SPANS_PER_TRACE
        self.dropped = 0  # spans not kept because their trace was full
        # raw records waiting to be grouped; bounded so a store nobody reads stays small
        # (older ones would be evicted at the next read anyway: dropping them here is free)
        self.pending: deque[RawSpan] = deque(maxlen=max(256, max_traces * 2))
        self.record = self.pending.append
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        self._bytes = 0

    def add(self, spans: Iterable[Span]) -> int:
        """Keep ``spans``; how many were kept."""
        self._drain()
        return self._add(spans)

    def _add(self, spans: Iterable[Span]) -> int:
        n = 0
        traces = self._traces
        for span in spans:
            trace = traces.get(span.trace_id)
            if trace is None:
                trace = traces[span.trace_id] = _Trace()
            elif len(trace.spans) >= self.max_spans_per_trace:
                self.dropped += 1  # e.g. a client sending the same traceparent forever
                continue
            size = span.size()
            trace.spans.append(span)
            trace.bytes += size
            self._bytes += size
            n += 1
        while traces and (len(traces) > self.max_traces or self._bytes > self.max_bytes):
            _, old = traces.popitem(last=False)
            self._bytes -= old.bytes
        return n

    def _drain(self) -> None:
        pending = self.pending
        if not pending:
            return
        raw = list(pending)
        pending.clear()
        self._add(_span(r) for r in raw)

    def __len__(self) -> int:
        self._drain()
        return len(self._traces)

    @property
    def bytes(self) -> int:
        self._drain()
        return self._bytes

    def summaries(
        self,
        limit: int = 100,
        service: str = "",
        where: Callable[[list[Span]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """The newest traces first: root span name, services, start, duration, counts.
        ``service`` keeps the traces it took part in, ``where`` those whose spans it
        accepts."""
        self._drain()
        out: list[dict[str, Any]] = []
        for trace_id in reversed(self._traces):
            spans = self._traces[trace_id].spans
            services = sorted({s.service for s in spans if s.service})
            if service and service not in services:
                continue
            if where is not None and not where(spans):
                continue
            start = min(s.start_ns for s in spans)
            end = max(s.end_ns for s in spans)
            root = _roots(spans)[0]
            out.append(
                {
                    "traceId": trace_id,
                    "name": root.name,
                    "rootService": root.service,
                    "services": services,
                    "startTimeUnixNano": str(start),
                    "durationMs": round(max(0, end - start) / 1e6, 3),
                    "spanCount": len(spans),
                    "errorCount": sum(1 for s in spans if s.status == "ERROR"),
                }
            )
            if len(out) >= limit:
                break
        return out

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace's spans in waterfall order (depth first, siblings by start time),
        each with its ``depth`` and ``offsetMs`` from the trace's start; None if unknown."""
        self._drain()
        found = self._traces.get(trace_id.lower())
        if found is None:
            return None
        spans = found.spans
        start = min(s.start_ns for s in spans)
        children: dict[str, list[Span]] = {}
        ids = {s.span_id for s in spans}
        for s in spans:
            if s.parent_id and s.parent_id in ids and s.parent_id != s.span_id:
                children.setdefault(s.parent_id, []).append(s)
        ordered: list[dict[str, Any]] = []
        seen: set[int] = set()
        stack = [(r, 0) for r in reversed(_roots(spans))]
        while stack:
            span, depth = stack.pop()
            if id(span) in seen:
                continue
            seen.add(id(span))
            ordered.append(span.as_json(start, depth))
            kids = sorted(children.get(span.span_id, ()), key=lambda k: k.start_ns)
            stack.extend((k, depth + 1) for k in reversed(kids))
        end = max(s.end_ns for s in spans)
        return {
            "traceId": found.spans[0].trace_id,
            "startTimeUnixNano": str(start),
            "durationMs": round(max(0, end - start) / 1e6, 3),
            "spans": ordered,
        }


def describe(details: tuple[Any, ...], name: str = "") -> tuple[str, dict[str, Any]]:
    """The name and attributes of a span recorded with ``(key, *args)`` attributes."""
    fn = _DESCRIBERS.get(details[0]) if details else None
    return fn(*details[1:]) if fn is not None else (name, {})


def _span(raw: RawSpan) -> Span:
    trace_id, span_id, parent_id, name, kind, service, start, end, attrs, error = raw
    if isinstance(attrs, tuple):
        name, attrs = describe(attrs, name)
    return Span(
        _hex(trace_id),
        _hex(span_id),
        _hex(parent_id),
        name,
        kind,
        service,
        start,
        end,
        attrs or {},
        "ERROR" if error else "UNSET",
    )


def _roots(spans: list[Span]) -> list[Span]:
    """Spans whose parent is not in the trace (yet), earliest first."""
    ids = {s.span_id for s in spans}
    roots = [
        s for s in spans if not s.parent_id or s.parent_id not in ids or s.parent_id == s.span_id
    ]
    return sorted(roots or spans, key=lambda s: s.start_ns)
