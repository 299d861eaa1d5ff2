"""Traces: the daemon's last traces and one trace's spans as a waterfall.

The spans are the daemon's own :class:`~wonderland.tracing.store.TraceStore` (the
gateway's and the sidecars' spans, and what OpenTelemetry SDKs and Dapr export to the
monitoring endpoint's ``/v1/traces`` and ``/api/v2/spans``), read in process: the data of
``GET /wonderland/v1/traces`` and ``/wonderland/v1/traces/<traceId>``, as the .NET Aspire
dashboard shows them, with no collector or Jaeger to run.

``GET /traces`` (``?service=`` keeps the traces a service took part in, ``?errors=1`` those
with a failed span, ``?attr=KEY=VALUE`` those with a span whose attribute ``KEY`` is
``VALUE``, ``?attr=KEY`` those with a span that has it) lists the newest 100. ``?namespace=NS`` with ``ksvc=NAME``,
``revision=NAME`` or ``isvc=NAME`` keeps the traces of one Knative Service, Revision or
InferenceService, as its page links them: those with a span of it, that is a gateway span
whose ``knative.revision`` is one of its revisions (an InferenceService's are those of its
components' Knative Services), or a span whose service is one of its names (the
Service's, its Dapr app id, an InferenceService's components').

``GET /traces/<traceId>`` shows every span in waterfall order (depth first, siblings by
start) with its service, kind, offset, duration, status and attributes, and a bar drawn to
the trace's scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wonderland.console.pages import Answer, Refused, Rendered, Request
from wonderland.errors import NotFoundError
from wonderland.store import Store
from wonderland.tracing.store import Span, TraceStore

__all__ = [
    "AttributeFilter",
    "SpanRow",
    "TracePage",
    "TracePages",
    "TraceRow",
    "TraceScope",
    "TracesPage",
    "trace_page",
    "trace_scope",
    "traces",
]

LIMIT = 100
BAR_WIDTH = 1000  # the waterfall bars' viewBox width


KSVC = "services.serving.knative.dev"
REVISION = "revisions.serving.knative.dev"
ISVC = "inferenceservices.serving.kserve.io"
L_SERVICE = "serving.knative.dev/service"
L_ISVC = "serving.kserve.io/inferenceservice"
SCOPES = {"ksvc": ("Service", KSVC), "revision": ("Revision", REVISION), "isvc": ("Model", ISVC)}


@dataclass(frozen=True)
class TraceScope:
    """The object whose traces a page shows: its revisions (as the gateway's spans name
    them) and the service names its own spans carry."""

    arg: str  # ksvc | revision | isvc
    namespace: str
    name: str
    revisions: frozenset[str]
    services: frozenset[str]

    @property
    def label(self) -> str:
        return f"{SCOPES[self.arg][0]} {self.namespace}/{self.name}"

    @property
    def page(self) -> str:
        """The object's own console page."""
        if self.arg == "ksvc":
            return f"/apps/{self.namespace}/{self.name}"
        if self.arg == "isvc":
            return f"/models/{self.namespace}/{self.name}"
        return f"/object/{REVISION}/{self.namespace}/{self.name}"

    def matches(self, span: Span) -> bool:
        attrs = span.attributes
        revision = attrs.get("knative.revision")
        if revision in self.revisions and attrs.get("k8s.namespace.name") == self.namespace:
            return True
        return span.service in self.services


@dataclass(frozen=True)
class AttributeFilter:
    """``KEY=VALUE`` (the attribute as text equals VALUE) or ``KEY`` (a span has it)."""

    key: str
    value: str | None

    @classmethod
    def parse(cls, text: str) -> AttributeFilter:
        key, sep, value = text.partition("=")
        if not key.strip():
            raise ValueError(f"{text!r} names no attribute: write KEY=VALUE or KEY")
        return cls(key.strip(), value.strip() if sep else None)

    def matches(self, span: Span) -> bool:
        if self.key not in span.attributes:
            return False
        return self.value is None or _text(span.attributes[self.key]) == self.value

    def __str__(self) -> str:
        return self.key if self.value is None else f"{self.key}={self.value}"


def _names(items: list[dict[str, Any]]) -> set[str]:
    return {str(i["metadata"]["name"]) for i in items}


def trace_scope(store: Store, arg: str, namespace: str, name: str) -> TraceScope:
    """The scope of one Knative Service (``ksvc``), Revision or InferenceService (``isvc``);
    :class:`NotFoundError` when there is no such object."""
    resource = SCOPES[arg][1]
    obj = store.get(resource, namespace, name)
    if arg == "revision":
        return TraceScope(arg, namespace, name, frozenset({name}), frozenset())
    if arg == "ksvc":
        ksvcs = [obj]
    else:
        ksvcs, _ = store.list(KSVC, namespace, {L_ISVC: name})
    revisions: set[str] = set()
    services = {name}
    for ksvc in ksvcs:
        ksvc_name = str(ksvc["metadata"]["name"])
        services.add(ksvc_name)
        found, _ = store.list(REVISION, namespace, {L_SERVICE: ksvc_name})
        revisions |= _names(found)
        template = (ksvc.get("spec") or {}).get("template") or {}
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        if str(annotations.get("dapr.io/enabled", "")).lower() == "true":
            services.add(str(annotations.get("dapr.io/app-id") or ksvc_name))
    return TraceScope(arg, namespace, name, frozenset(revisions), frozenset(services))


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
    scope: TraceScope | None = None  # the one object whose traces these are
    attribute: AttributeFilter | None = None


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
    scope: TraceScope | None = None,
    attribute: AttributeFilter | None = None,
) -> TracesPage:
    """The newest traces, newest first (of ``service``, of ``scope``'s object, with a span
    ``attribute`` accepts, or with errors only)."""
    if store is None:
        return TracesPage([], [], service, errors_only, 0, False, recording, scope, attribute)
    every = store.summaries(limit=max(1, store.max_traces))
    services = sorted({s for t in every for s in t.get("services") or []})
    tests = [f.matches for f in (scope, attribute) if f is not None]
    if tests:

        def where(spans: list[Span]) -> bool:
            return all(any(test(s) for s in spans) for test in tests)

        every = store.summaries(limit=max(1, store.max_traces), where=where)
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
    kept = len(store)
    return TracesPage(rows, services, service, errors_only, kept, True, recording, scope, attribute)


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
        self,
        store: TraceStore | None,
        poll_seconds: float = 10.0,
        *,
        recording: bool = True,
        objects: Store | None = None,
    ) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.recording = recording  # WONDERLAND_TRACING=on
        self.objects = objects  # the platform's store: which revisions an object has

    async def answer(self, request: Request) -> Answer | None:
        path = request.path
        if request.method != "GET" or not (path == "/traces" or path.startswith("/traces/")):
            return None
        poll = max(1, round(self.poll_seconds))  # spans are not objects: refresh per scrape
        if path == "/traces":
            scope = None
            for arg in SCOPES:
                name = request.arg(arg)
                if not name:
                    continue
                if self.objects is None:
                    return Refused(400, f"?{arg}= needs the platform's objects")
                namespace = request.arg("namespace") or "default"
                try:
                    scope = trace_scope(self.objects, arg, namespace, name)
                except NotFoundError:
                    return Refused(
                        404,
                        f"no {SCOPES[arg][0]} {namespace}/{name}: "
                        "open the traces from the object's own page",
                    )
                break
            attribute = None
            if request.arg("attr").strip():
                try:
                    attribute = AttributeFilter.parse(request.arg("attr"))
                except ValueError as exc:
                    return Refused(400, str(exc))
            page = traces(
                self.store,
                request.arg("service"),
                request.arg("errors") == "1",
                recording=self.recording,
                scope=scope,
                attribute=attribute,
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
