"""Traces: the daemon's last traces and one trace's spans as a waterfall.

The spans are the daemon's own :class:`~wonderland.tracing.store.TraceStore` (the
gateway's and the sidecars' spans, and what OpenTelemetry SDKs and Dapr export to the
monitoring endpoint's ``/v1/traces`` and ``/api/v2/spans``), read in process: the data of
``GET /wonderland/v1/traces`` and ``/wonderland/v1/traces/<traceId>``, as the .NET Aspire
dashboard shows them, with no collector or Jaeger to run.

``GET /traces`` (``?service=`` keeps the traces a service took part in, ``?errors=1`` those
with a failed span) lists the newest 100; ``GET /traces/<traceId>`` shows every span in
waterfall order (depth first, siblings by start) with its service, kind, offset, duration,
status and attributes, and a bar drawn to the trace's scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wonderland.console.pages import Answer, Refused, Rendered, Request
from wonderland.tracing.store import TraceStore

__all__ = ["SpanRow", "TracePage", "TracePages", "TraceRow", "TracesPage", "trace_page", "traces"]

LIMIT = 100
BAR_WIDTH = 1000  # the waterfall bars' viewBox width


@dataclass(frozen=True)
class TraceRow:
    trace_id: str
    name: str
    root_service: str
    services: list[str]
    started: str
    duration_ms: float
    spans: int
    errors: int


@dataclass(frozen=True)
class TracesPage:
    traces: list[TraceRow]
    services: list[str]  # every service of the kept traces, for the filter
    service: str
    errors_only: bool
    kept: int  # traces the daemon keeps now
    enabled: bool  # False: this daemon keeps no traces
    recording: bool = True  # False: the gateway and sidecars only propagate trace context


@dataclass(frozen=True)
class SpanRow:
    span_id: str
    parent_id: str
    name: str
    service: str
    kind: str
    depth: int
    offset_ms: float
    duration_ms: float
    status: str
    status_message: str
    attributes: list[tuple[str, str]] = field(default_factory=list)
    bar_x: int = 0  # on a 0..BAR_WIDTH scale of the whole trace
    bar_width: int = 1


@dataclass(frozen=True)
class TracePage:
    trace_id: str
    started: str
    duration_ms: float
    spans: list[SpanRow]
    services: list[str]


def _iso(nanos: str | int) -> str:
    try:
        at = int(nanos) / 1e9
    except (TypeError, ValueError):
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def traces(
    store: TraceStore | None,
    service: str = "",
    errors_only: bool = False,
    *,
    recording: bool = True,
) -> TracesPage:
    """The newest traces, newest first (of ``service``, or with errors only)."""
    if store is None:
        return TracesPage([], [], service, errors_only, 0, False, recording)
    every = store.summaries(limit=max(1, store.max_traces))
    services = sorted({s for t in every for s in t.get("services") or []})
    rows: list[TraceRow] = []
    for t in every:
        if service and service not in (t.get("services") or []):
            continue
        if errors_only and not t.get("errorCount"):
            continue
        rows.append(
            TraceRow(
                str(t["traceId"]),
                str(t.get("name") or ""),
                str(t.get("rootService") or ""),
                list(t.get("services") or []),
                _iso(t.get("startTimeUnixNano") or 0),
                float(t.get("durationMs") or 0.0),
                int(t.get("spanCount") or 0),
                int(t.get("errorCount") or 0),
            )
        )
        if len(rows) >= LIMIT:
            break
    return TracesPage(rows, services, service, errors_only, len(every), True, recording)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def trace_page(store: TraceStore | None, trace_id: str) -> TracePage | None:
    """One trace's spans in waterfall order, or None when it is not kept."""
    found = store.trace(trace_id) if store is not None else None
    if found is None:
        return None
    total = max(float(found.get("durationMs") or 0.0), 1e-6)
    rows: list[SpanRow] = []
    for span in found.get("spans") or []:
        offset = float(span.get("offsetMs") or 0.0)
        duration = float(span.get("durationMs") or 0.0)
        status: Mapping[str, Any] = span.get("status") or {}
        attrs = span.get("attributes") or {}
        rows.append(
            SpanRow(
                str(span.get("spanId") or ""),
                str(span.get("parentSpanId") or ""),
                str(span.get("name") or ""),
                str(span.get("service") or ""),
                str(span.get("kind") or ""),
                int(span.get("depth") or 0),
                offset,
                duration,
                str(status.get("code") or "UNSET"),
                str(status.get("message") or ""),
                sorted((str(k), _text(v)) for k, v in attrs.items()),
                min(BAR_WIDTH - 1, round(offset / total * BAR_WIDTH)),
                max(1, round(duration / total * BAR_WIDTH)),
            )
        )
    services = sorted({r.service for r in rows if r.service})
    return TracePage(
        str(found.get("traceId") or trace_id),
        _iso(found.get("startTimeUnixNano") or 0),
        float(found.get("durationMs") or 0.0),
        rows,
        services,
    )


class TracePages:
    """``GET /traces`` and ``GET /traces/<traceId>`` (see the module docstring)."""

    def __init__(
        self, store: TraceStore | None, poll_seconds: float = 10.0, *, recording: bool = True
    ) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.recording = recording  # WONDERLAND_TRACING=on

    async def answer(self, request: Request) -> Answer | None:
        path = request.path
        if request.method != "GET" or not (path == "/traces" or path.startswith("/traces/")):
            return None
        poll = max(1, round(self.poll_seconds))  # spans are not objects: refresh per scrape
        if path == "/traces":
            page = traces(
                self.store,
                request.arg("service"),
                request.arg("errors") == "1",
                recording=self.recording,
            )
            return Rendered("traces.html", {"nav": "traces", "page": page, "poll": poll})
        trace_id = path.removeprefix("/traces/")
        found = trace_page(self.store, trace_id)
        if found is None:
            kept = len(self.store) if self.store is not None else 0
            return Refused(
                404,
                f"no trace {trace_id!r} among the last {kept} traces the daemon keeps; "
                "pick one on the Traces page",
            )
        context = {"nav": "traces", "trace": found, "bar_width": BAR_WIDTH}
        return Rendered("trace.html", context)
