"""A Knative Service replica instrumented with the OpenTelemetry SDK and nothing else:
the kubelet's OTEL_EXPORTER_OTLP_ENDPOINT sends its spans to the daemon. Each request is
a SERVER span that continues the received traceparent; the answer is that header and the
exporter's endpoint."""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

provider = TracerProvider(resource=Resource.create({"service.name": "otel-app"}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("otel-app")
propagator = TraceContextTextMapPropagator()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        carrier = {k.lower(): v for k, v in self.headers.items()}
        with tracer.start_as_current_span(
            "handle", context=propagator.extract(carrier), kind=trace.SpanKind.SERVER
        ):
            body = json.dumps(
                {
                    "traceparent": carrier.get("traceparent"),
                    "endpoint": os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
                }
            ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    print("listening on", server.server_address, flush=True)
    server.serve_forever()
