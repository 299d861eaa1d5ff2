"""frontend: the conference web page and the API it calls.

The page's API calls the other services over their cluster-local URLs
(``C4P_SERVICE_URL``, ``AGENDA_SERVICE_URL``, ``NOTIFICATIONS_SERVICE_URL``), reads its
feature flags through the Dapr configuration API and receives every event of the events
topic through the Dapr Subscription (route ``/api/new-events/``).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DAPR = f"http://127.0.0.1:{os.environ.get('DAPR_HTTP_PORT', '3500')}/v1.0"
CONFIG_STORE = os.environ.get("FEATURE_FLAGS_STORE", "feature-flags")
FLAGS = {"callForProposalsEnabled": "true", "eventsEnabled": "all", "debugEnabled": "false"}
SERVICES = {
    "c4p": os.environ.get("C4P_SERVICE_URL", "http://c4p-service.default.svc.cluster.local"),
    "agenda": os.environ.get(
        "AGENDA_SERVICE_URL", "http://agenda-service.default.svc.cluster.local"
    ),
    "notifications": os.environ.get(
        "NOTIFICATIONS_SERVICE_URL", "http://notifications-service.default.svc.cluster.local"
    ),
}
PAGE = Path(__file__).with_name("index.html")
EVENTS: list[dict[str, Any]] = []
LOCK = threading.Lock()


def call(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        message = f"{url} is not reachable: {getattr(exc, 'reason', exc)}"
        return 502, json.dumps({"error": message}).encode()


def features() -> dict[str, str]:
    """The feature flags, read through the Dapr configuration API (defaults if absent)."""
    query = urllib.parse.urlencode([("key", k) for k in FLAGS])
    status, body = call("GET", f"{DAPR}/configuration/{CONFIG_STORE}?{query}")
    flags = dict(FLAGS)
    if status == 200 and body:
        for key, item in json.loads(body).items():
            if key in flags and isinstance(item, dict):
                flags[key] = str(item.get("value", flags[key]))
    return flags


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, value: Any) -> None:
        self.send_body(status, json.dumps(value).encode(), "application/json")

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self.send_body(200, PAGE.read_bytes(), "text/html; charset=utf-8")
        elif path in ("/healthz", "/health"):
            self.send_json(200, {"status": "ok"})
        elif path == "/api/info":
            self.send_json(
                200,
                {
                    "conference": os.environ.get("CONFERENCE_NAME", "Conference"),
                    "revision": os.environ.get("K_REVISION", ""),
                    "service": os.environ.get("K_SERVICE", ""),
                    "pod": os.environ.get("POD_NAME", ""),
                    "namespace": os.environ.get("POD_NAMESPACE", ""),
                    "node": os.environ.get("POD_NODENAME", ""),
                },
            )
        elif path == "/api/features":
            self.send_json(200, features())
        elif path == "/api/events":
            with LOCK:
                self.send_json(200, list(EVENTS))
        elif path == "/api/proposals":
            self.proxy("GET", "c4p", "/proposals")
        elif path == "/api/agenda":
            self.proxy("GET", "agenda", "/agenda")
        elif path == "/api/notifications":
            self.proxy("GET", "notifications", "/notifications")
        else:
            self.send_json(404, {"error": f"no route GET {path}"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        # Read the body first, always: an unread body would corrupt the kept-alive connection.
        body = self.body()
        if path.rstrip("/") == "/api/new-events":
            self.receive_event(body)
        elif path == "/api/proposals":
            if features()["callForProposalsEnabled"].lower() != "true":
                self.send_json(403, {"error": "the call for proposals is closed"})
                return
            self.proxy("POST", "c4p", "/proposals", body)
        elif path.startswith("/api/proposals/") and path.endswith("/decision"):
            self.proxy("POST", "c4p", path.removeprefix("/api"), body)
        else:
            self.send_json(404, {"error": f"no route POST {path}"})

    def proxy(self, method: str, service: str, path: str, body: bytes | None = None) -> None:
        status, answer = call(method, SERVICES[service] + path, body)
        self.send_body(status, answer, "application/json")

    def receive_event(self, body: bytes) -> None:
        try:
            envelope = json.loads(body or b"{}")
        except ValueError:
            self.send_json(200, {"status": "DROP"})
            return
        data = envelope.get("data") if "specversion" in envelope else envelope
        if isinstance(data, dict):
            with LOCK:
                EVENTS.append({**data, "receivedAt": time.time(), "id": envelope.get("id", "")})
                del EVENTS[:-200]
        self.send_json(200, {"status": "SUCCESS"})

    def log_message(self, format: str, *args: Any) -> None:
        return


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"frontend listening on {port}; services: {SERVICES}")
    ThreadingHTTPServer(
        (os.environ.get("BIND_ADDRESS", "127.0.0.1"), port), Handler
    ).serve_forever()
