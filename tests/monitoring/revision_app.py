"""A replica that reports its requests as Knative's queue-proxy does, with
``kn_serving_invocation_duration_seconds{kn_revision_name,http_response_status_code}``
at ``/metrics``; ``/fail`` answers 500. It listens on ``$PORT`` and names itself by
``$K_REVISION``, as a Knative revision's container."""

from __future__ import annotations

import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest

REVISION = os.environ.get("K_REVISION", "unknown")
SERVED = Histogram(
    "kn_serving_invocation_duration_seconds",
    "The time each request took in the replica",
    ["kn_revision_name", "http_response_status_code"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        started = time.perf_counter()
        if self.path == "/metrics":
            body, kind, code = generate_latest(), CONTENT_TYPE_LATEST, 200
        else:
            code = 500 if self.path == "/fail" else 200
            body, kind = b"hello\n", "text/plain"
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.path != "/metrics":
            SERVED.labels(REVISION, str(code)).observe(time.perf_counter() - started)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Handler)
    print("listening on", server.server_address, flush=True)
    server.serve_forever()
