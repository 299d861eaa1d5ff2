"""A replica that counts its requests and serves them at a path of its own,
``/stats/prometheus`` (what ``prometheus.io/path`` names), on ``$PORT``."""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

SERVED = Counter("metrics_app_requests", "Requests the app answered")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/stats/prometheus":
            body, kind = generate_latest(), CONTENT_TYPE_LATEST
        else:
            SERVED.inc()
            body, kind = b"hello\n", "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Handler)
    print("listening on", server.server_address, flush=True)
    server.serve_forever()
