"""Where a process's spans go, and the tracing mode.

``WONDERLAND_TRACING``: ``on`` continues traces and records spans, ``propagate`` only
forwards/creates ``traceparent``, ``off`` leaves the headers alone. In the daemon the
gateway records into the :class:`~wonderland.tracing.store.TraceStore` directly; a
process outside it (a sidecar, a model server) exports over OTLP/HTTP with the
OpenTelemetry SDK when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the kubelet sets it for
every Pod to the daemon's monitoring endpoint).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Protocol

from wonderland.errors import ConfigError
from wonderland.tracing.store import RawSpan, describe

__all__ = [
    "DEFAULT_MODE",
    "MODES",
    "OTLP_ENDPOINT_ENV",
    "OTLP_TRACES_ENDPOINT_ENV",
    "TRACES_ANNOTATION",
    "SpanSink",
    "TraceCollector",
    "TracesPodEnv",
    "ZipkinSink",
    "check_mode",
    "mode_from_env",
    "process_sink",
]

log = logging.getLogger("wonderland.tracing")

MODES = ("on", "propagate", "off")
DEFAULT_MODE = "propagate"
MODE_ENV = "WONDERLAND_TRACING"
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTLP_TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


class SpanSink(Protocol):
    """Takes one finished span; must be cheap (a deque append)."""

    def __call__(self, span: RawSpan, /) -> None: ...


class TraceCollector(Protocol):
    """The daemon's span receiver as the kubelet sees it: the OTLP endpoint Pods send to
    (empty while the monitoring endpoint is not serving) and the mode."""

    @property
    def otlp_endpoint(self) -> str: ...

    @property
    def mode(self) -> str: ...


def check_mode(value: str, where: str = MODE_ENV) -> str:
    mode = value.strip().lower()
    if mode not in MODES:
        raise ConfigError(f'{where}="{value}" must be on, propagate or off')
    return mode


def mode_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The mode of a process outside the daemon; a bad value is an error naming it."""
    env = os.environ if environ is None else environ
    return check_mode(env.get(MODE_ENV, DEFAULT_MODE) or DEFAULT_MODE)


class _OtlpSink:
    """Spans as OpenTelemetry SDK ``ReadableSpan`` objects through a batch processor and
    the OTLP/HTTP exporter (``OTEL_EXPORTER_OTLP_*`` configure it as usual)."""

    def __init__(self, service: str, endpoint: str) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        self._readable = ReadableSpan
        self._context = SpanContext
        self._flags = TraceFlags(1)
        self._kinds = {k.name: k for k in SpanKind}
        self._error = Status(StatusCode.ERROR)
        self._unset = Status(StatusCode.UNSET)
        self.resource = Resource.create({"service.name": service})
        self.processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))

    def __call__(self, span: RawSpan, /) -> None:
        trace_id, span_id, parent_id, name, kind, _, start, end, attrs, error = span
        if isinstance(attrs, tuple):
            name, attrs = describe(attrs, name)

        def num(v: str | bytes) -> int:
            return int(v, 16)

        parent = (
            self._context(num(trace_id), num(parent_id), is_remote=True, trace_flags=self._flags)
            if parent_id
            else None
        )
        readable = self._readable(
            name=name,
            context=self._context(num(trace_id), num(span_id), False, self._flags),
            parent=parent,
            resource=self.resource,
            attributes=attrs or {},
            kind=self._kinds.get(kind, self._kinds["INTERNAL"]),
            start_time=start,
            end_time=end,
            status=self._error if error else self._unset,
        )
        self.processor.on_end(readable)

    def shutdown(self) -> None:
        self.processor.shutdown()  # type: ignore[no-untyped-call]


def process_sink(
    service: str, mode: str, environ: Mapping[str, str] | None = None
) -> SpanSink | None:
    """The span sink of a process outside the daemon: OTLP export when ``mode`` is on and
    an OTLP endpoint is set, else None (spans are not recorded; headers still flow). A
    missing ``otel`` extra is logged once, naming it, and leaves propagation on."""
    env = os.environ if environ is None else environ
    endpoint = env.get(OTLP_TRACES_ENDPOINT_ENV, "")
    if not endpoint and env.get(OTLP_ENDPOINT_ENV):
        endpoint = env[OTLP_ENDPOINT_ENV].rstrip("/") + "/v1/traces"
    if mode != "on" or not endpoint:
        return None
    try:
        sink: Any = _OtlpSink(service, endpoint)
    except ImportError as exc:
        log.warning(
            "%s is set but spans cannot be exported: %s; install the extra with "
            "pip install 'wonderland[otel]' (traceparent is still propagated)",
            OTLP_ENDPOINT_ENV,
            exc,
        )
        return None
    result: SpanSink = sink
    return result


class ZipkinSink:
    """Spans as Zipkin v2 JSON, POSTed in batches to ``url`` (Dapr's
    ``zipkin.endpointAddress``, e.g. ``http://localhost:9411/api/v2/spans``) from a
    background thread about once a second; at most ``max_queued`` wait, the oldest are
    dropped. A failing endpoint is logged once until it answers again."""

    def __init__(self, service: str, url: str, max_queued: int = 2048) -> None:
        import collections
        import threading

        self.service = service
        self.url = url
        self.queue: collections.deque[RawSpan] = collections.deque(maxlen=max_queued)
        self._failing = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zipkin-export", daemon=True)
        self._thread.start()

    def __call__(self, span: RawSpan, /) -> None:
        self.queue.append(span)

    def _run(self) -> None:
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        import urllib.error
        import urllib.request

        import orjson

        batch = []
        while self.queue:
            batch.append(self._zipkin(self.queue.popleft()))
        if not batch:
            return
        request = urllib.request.Request(
            self.url,
            data=orjson.dumps(batch),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except (OSError, urllib.error.URLError) as exc:
            if not self._failing:
                log.warning("spans not sent to Zipkin at %s: %s", self.url, exc)
            self._failing = True
        else:
            self._failing = False

    def _zipkin(self, span: RawSpan) -> dict[str, Any]:
        trace_id, span_id, parent_id, name, kind, _, start, end, attrs, error = span
        if isinstance(attrs, tuple):
            name, attrs = describe(attrs, name)
        tags = {k: str(v) for k, v in (attrs or {}).items()}
        if error:
            tags["error"] = "true"
        out: dict[str, Any] = {
            "traceId": trace_id.decode() if isinstance(trace_id, bytes) else trace_id,
            "id": span_id.decode() if isinstance(span_id, bytes) else span_id,
            "name": name,
            "timestamp": start // 1000,
            "duration": max(1, (end - start) // 1000),
            "localEndpoint": {"serviceName": self.service},
            "tags": tags,
        }
        if parent_id:
            out["parentId"] = parent_id.decode() if isinstance(parent_id, bytes) else parent_id
        if kind in ("SERVER", "CLIENT", "PRODUCER", "CONSUMER"):
            out["kind"] = kind
        return out


TRACES_ANNOTATION = "monitoring.wonderland.dev/traces"


class TracesPodEnv:
    """The kubelet's ``PodEnvSource`` for traces: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the
    daemon's monitoring endpoint) and ``WONDERLAND_TRACING`` for every container, so an
    OpenTelemetry SDK in a Pod exports to the daemon with no configuration (in modes on
    and propagate: the mode governs wonderland's own spans). No endpoint when tracing is
    off, the endpoint is not serving, or the pod is annotated
    ``monitoring.wonderland.dev/traces: "off"``. A container's own ``env`` still wins."""

    def __init__(self, collector: TraceCollector) -> None:
        self.collector = collector

    def __call__(self, annotations: Mapping[str, str]) -> Mapping[str, str]:
        if annotations.get(TRACES_ANNOTATION, "").strip().lower() == "off":
            return {}
        mode = self.collector.mode
        endpoint = self.collector.otlp_endpoint
        if mode == "off":
            return {MODE_ENV: mode}
        env = {MODE_ENV: mode}
        if endpoint:  # the Pods' own SDKs export in both modes
            env[OTLP_ENDPOINT_ENV] = endpoint
        return env
