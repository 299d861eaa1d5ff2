"""The daemon's trace endpoints on the monitoring endpoint.

- ``POST /v1/traces``: OTLP/HTTP, JSON (``application/json``) or protobuf
  (``application/x-protobuf``), gzip allowed; what ``OTEL_EXPORTER_OTLP_ENDPOINT`` points
  OpenTelemetry SDKs at.
- ``POST /v1/metrics``, ``POST /v1/logs``: accepted and dropped (the kubelet's generic
  OTLP endpoint must not make an SDK's other exporters fail).
- ``POST /api/v2/spans``: Zipkin v2 JSON (Dapr's ``zipkin.endpointAddress``).
- ``GET /wonderland/v1/traces[?limit=&service=]``: the newest traces, summarised.
- ``GET /wonderland/v1/traces/{traceId}``: one trace's spans in waterfall order.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass

import orjson

from wonderland.monitoring.hub import HttpRequest, HttpResponse, MetricsHub
from wonderland.tracing.receive import (
    SpanDecodeError,
    decode_otlp_json,
    decode_otlp_proto,
    decode_zipkin,
)
from wonderland.tracing.store import Span, TraceStore

__all__ = ["MAX_SPANS_BODY", "TRACES_PATH", "TraceEndpoint", "install_routes"]

MAX_SPANS_BODY = 4 * 1024 * 1024  # one export request, after decompression
TRACES_PATH = "/wonderland/v1/traces"


def _json(status: int, doc: object) -> HttpResponse:
    return HttpResponse(status, orjson.dumps(doc), "application/json")


def _fail(status: int, message: str) -> HttpResponse:
    return _json(status, {"error": message})


@dataclass
class TraceEndpoint:
    """The daemon's span receiver (a :class:`~wonderland.tracing.runtime.TraceCollector`):
    ``base_url`` is filled in once the monitoring endpoint serves."""

    store: TraceStore
    mode: str = "on"
    base_url: str = ""

    @property
    def otlp_endpoint(self) -> str:
        return self.base_url


def _body(request: HttpRequest) -> bytes | HttpResponse:
    body = request.body
    if len(body) > MAX_SPANS_BODY:
        return _fail(
            413, f"span exports are limited to {MAX_SPANS_BODY} bytes; send smaller batches"
        )
    encoding = request.headers.get("content-encoding", "").lower()
    if encoding in ("gzip", "deflate"):
        try:
            inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
            out = inflater.decompress(body, MAX_SPANS_BODY + 1)
        except (zlib.error, gzip.BadGzipFile) as exc:
            return _fail(400, f"the body is not valid {encoding}: {exc}")
        if len(out) > MAX_SPANS_BODY:
            return _fail(413, f"span exports are limited to {MAX_SPANS_BODY} bytes uncompressed")
        return out
    if encoding not in ("", "identity"):
        return _fail(415, f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    return body


def install_routes(hub: MetricsHub, store: TraceStore) -> None:
    async def otlp(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return _fail(405, "POST OTLP/HTTP span exports to /v1/traces")
        body = _body(request)
        if isinstance(body, HttpResponse):
            return body
        kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        try:
            if kind == "application/x-protobuf":
                store.add(decode_otlp_proto(body))
                return HttpResponse(200, b"", "application/x-protobuf")
            if kind in ("application/json", ""):
                store.add(decode_otlp_json(body))
                return _json(200, {"partialSuccess": {}})
        except SpanDecodeError as exc:
            return _fail(400, f"bad OTLP span export: {exc}")
        return _fail(
            415,
            f"Content-Type {kind!r} is not OTLP; use application/json or application/x-protobuf",
        )

    async def zipkin(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return _fail(405, "POST Zipkin v2 JSON spans to /api/v2/spans")
        body = _body(request)
        if isinstance(body, HttpResponse):
            return body
        try:
            spans: list[Span] = decode_zipkin(body)
        except SpanDecodeError as exc:
            return _fail(400, f"bad Zipkin v2 spans: {exc}")
        store.add(spans)
        return HttpResponse(202, b"")

    async def traces(request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return _fail(405, f"GET {TRACES_PATH} or {TRACES_PATH}/{{traceId}}")
        rest = request.path[len(TRACES_PATH) :].strip("/")
        if not rest:
            params = request.params()
            raw = (params.get("limit") or ["100"])[0]
            if not raw.isdigit() or int(raw) < 1:
                return _fail(400, f"limit={raw!r} must be a whole number of traces, 1 or more")
            service = (params.get("service") or [""])[0]
            summaries = store.summaries(int(raw), service)
            return _json(200, {"traces": summaries, "count": len(summaries)})
        found = store.trace(rest)
        if found is None:
            return _fail(
                404,
                f"no trace {rest!r} among the last {len(store)} traces; "
                f"list them with GET {TRACES_PATH}",
            )
        return _json(200, found)

    async def other_signal(request: HttpRequest) -> HttpResponse:
        # Pods get the generic OTEL_EXPORTER_OTLP_ENDPOINT, so an SDK that also exports
        # metrics or logs sends them here: accept and drop them (saying so) rather than
        # have every export fail; metrics come from scraping /metrics instead.
        if request.method != "POST":
            return _fail(405, f"POST OTLP exports to {request.path}")
        note = "wonderland keeps traces only; metrics are scraped, logs are in 'wonderland logs'"
        kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind == "application/x-protobuf":
            return HttpResponse(200, b"", "application/x-protobuf")
        return _json(200, {"partialSuccess": {"errorMessage": note}})

    hub.add_route("/v1/traces", otlp)
    hub.add_route("/v1/metrics", other_signal)
    hub.add_route("/v1/logs", other_signal)
    hub.add_route("/api/v2/spans", zipkin)
    hub.add_route(TRACES_PATH, traces)
    hub.add_route(TRACES_PATH + "/", traces, prefix=True)
