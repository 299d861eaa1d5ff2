"""Trace context through the sidecar, as daprd carries it.

- Service invocation continues the caller's trace: the ``traceparent`` header (HTTP) or
  the ``traceparent``/``grpc-trace-bin`` metadata (gRPC) becomes the parent of the
  sidecar's span, whose id goes on to the callee (and to its sidecar) in ``traceparent``.
- Publishing puts the publisher's trace into the CloudEvent's ``traceparent``,
  ``tracestate`` and ``traceid`` (unless ``metadata.cloudevent.traceparent`` sets them);
  delivery hands the event's ``traceparent`` to the app.
- ``spec.tracing`` of the Dapr Configuration: ``samplingRate`` (``"0"``: never sample new
  traces; headers still flow) and ``otel.endpointAddress`` (OTLP/HTTP) or
  ``zipkin.endpointAddress`` (Zipkin v2 JSON, e.g. to the daemon's ``/api/v2/spans``).
  Without either, the process's ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the kubelet sets it) is
  used.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from time import time_ns
from typing import Any

from wonderland.tracing.context import (
    TraceParent,
    from_grpc_trace_bin,
    new_span_id,
    new_trace_id,
    parse_traceparent,
)
from wonderland.tracing.runtime import (
    OTLP_ENDPOINT_ENV,
    OTLP_TRACES_ENDPOINT_ENV,
    SpanSink,
    ZipkinSink,
    mode_from_env,
    process_sink,
)

__all__ = ["SidecarTracing", "from_configuration"]


@dataclass
class SidecarTracing:
    """The sidecar's mode, sampling rate and span sink."""

    app_id: str = ""
    mode: str = "propagate"
    sampling_rate: float = 1.0
    sink: SpanSink | None = None
    _rand: random.Random = field(default_factory=random.Random, repr=False)

    def incoming(self, headers: list[tuple[str, Any]]) -> tuple[TraceParent | None, str]:
        """The caller's context from HTTP headers or gRPC metadata, and its tracestate."""
        tp: TraceParent | None = None
        state = ""
        for name, value in headers:
            lname = name.lower()
            if lname == "traceparent":
                tp = parse_traceparent(value) or tp
            elif lname == "grpc-trace-bin" and tp is None:
                tp = from_grpc_trace_bin(value)
            elif lname == "tracestate" and isinstance(value, str):
                state = value
        return tp, state

    def start(self, parent: TraceParent | None) -> TraceParent:
        """A new span: a child of ``parent``, or the root of a new trace (sampled at
        ``samplingRate``)."""
        if parent is not None:
            return TraceParent(parent.trace_id, new_span_id(), parent.flags)
        sampled = self.sampling_rate >= 1 or self._rand.random() < self.sampling_rate
        return TraceParent(new_trace_id(), new_span_id(), 1 if sampled else 0)

    def forward(
        self, headers: list[tuple[str, str]]
    ) -> tuple[list[tuple[str, str]], TraceParent | None, str]:
        """``headers`` with the sidecar's span as ``traceparent`` (``tracestate`` passes
        through); also the span and its parent span id. Mode off changes nothing."""
        if self.mode == "off":
            return headers, None, ""
        parent, _ = self.incoming(headers)
        span = self.start(parent)
        out = [(k, v) for k, v in headers if k.lower() not in ("traceparent", "grpc-trace-bin")]
        out.append(("traceparent", span.header()))
        return out, span, parent.parent_id if parent is not None else ""

    def publish_metadata(
        self, headers: list[tuple[str, Any]], metadata: Mapping[str, str]
    ) -> tuple[dict[str, str], TraceParent | None, str]:
        """Publish metadata with ``cloudevent.traceparent``/``tracestate``/``traceid`` set
        from the publisher's trace (what the caller set itself wins)."""
        meta = dict(metadata)
        if self.mode == "off" or meta.get("cloudevent.traceparent"):
            return meta, None, ""
        parent, state = self.incoming(headers)
        span = self.start(parent)
        meta["cloudevent.traceparent"] = span.header()
        meta.setdefault("cloudevent.traceid", span.header())
        if state:
            meta.setdefault("cloudevent.tracestate", state)
        return meta, span, parent.parent_id if parent is not None else ""

    def record(
        self,
        span: TraceParent | None,
        parent_id: str,
        name: str,
        kind: str,
        start_ns: int,
        attributes: dict[str, Any],
        error: bool = False,
    ) -> None:
        sink = self.sink
        if sink is None or span is None or not span.sampled or self.mode != "on":
            return
        attributes.setdefault("dapr.app_id", self.app_id)
        sink(
            (
                span.trace_id,
                span.parent_id,
                parent_id,
                name,
                kind,
                self.app_id,
                start_ns,
                time_ns(),
                attributes,
                error,
            )
        )


def _section(spec: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    node: Any = spec
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _otel_endpoint(spec: Mapping[str, Any]) -> str:
    otel = _section(spec, "tracing", "otel")
    address = str(otel.get("endpointAddress") or "")
    if address and "://" not in address:
        address = ("https://" if otel.get("isSecure") else "http://") + address
    return address.rstrip("/")


def _zipkin_url(spec: Mapping[str, Any]) -> str:
    address = str(_section(spec, "tracing", "zipkin").get("endpointAddress") or "")
    if address and "://" not in address:
        address = "http://" + address
    return address


def from_configuration(
    app_id: str, spec: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
) -> SidecarTracing:
    """The sidecar's tracing from ``WONDERLAND_TRACING`` and the Configuration's
    ``spec.tracing``; a bad ``samplingRate`` is a ValueError naming it."""
    env = dict(os.environ if environ is None else environ)
    mode = mode_from_env(env)
    spec = spec or {}
    tracing = _section(spec, "tracing")
    rate = 1.0
    raw = tracing.get("samplingRate")
    if raw not in (None, ""):
        try:
            rate = float(str(raw))
        except ValueError:
            raise ValueError(
                f'Configuration spec.tracing.samplingRate "{raw}" is not a number between 0 and 1'
            ) from None
        if not 0 <= rate <= 1:
            raise ValueError(
                f"Configuration spec.tracing.samplingRate {raw} must be between 0 and 1"
            )
    sink: SpanSink | None = None
    if rate > 0 and mode == "on":
        otel, zipkin = _otel_endpoint(spec), _zipkin_url(spec)
        if otel:
            env[OTLP_ENDPOINT_ENV] = otel
            env.pop(OTLP_TRACES_ENDPOINT_ENV, None)
            sink = process_sink(app_id or "daprd", mode, env)
        elif zipkin:
            sink = ZipkinSink(app_id or "daprd", zipkin)
        else:
            sink = process_sink(app_id or "daprd", mode, env)
    return SidecarTracing(app_id, mode, rate, sink)
