"""agenda-service: the conference agenda, kept in a Dapr state store; new items become events.

No Redis or Kafka client here: state and events go through the Dapr sidecar's HTTP API
(``DAPR_HTTP_PORT``), and the Components decide which backend holds them.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DAPR = f"http://127.0.0.1:{os.environ.get('DAPR_HTTP_PORT', '3500')}/v1.0"
STATESTORE = os.environ.get("STATESTORE_NAME", "statestore")
PUBSUB = os.environ.get("PUBSUB_NAME", "pubsub")
TOPIC = os.environ.get("PUBSUB_TOPIC", "events-topic")
KEY = "agenda-items"


def dapr(method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(DAPR + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def load() -> tuple[list[dict[str, Any]], str | None]:
    status, headers, body = dapr("GET", f"/state/{STATESTORE}/{KEY}")
    if status == 204 or not body:
        return [], None
    if status != 200:
        raise RuntimeError(f"state store answered {status}: {body[:200]!r}")
    return json.loads(body), headers.get("ETag") or headers.get("etag")


def add(item: dict[str, Any]) -> dict[str, Any]:
    """Append with optimistic concurrency: two replicas never lose each other's items."""
    for _ in range(20):
        items, etag = load()
        entry = {"key": KEY, "value": [*items, item]}
        if etag:
            entry.update(etag=etag, options={"concurrency": "first-write"})
        status, _, body = dapr("POST", f"/state/{STATESTORE}", [entry])
        if status in (200, 204):
            return item
        if status != 409:
            raise RuntimeError(f"state store answered {status}: {body[:200]!r}")
    raise RuntimeError("too many concurrent writers; try again")


def publish(event_type: str, payload: dict[str, Any]) -> None:
    event = {"type": event_type, "source": "agenda-service", "payload": payload}
    status, _, body = dapr("POST", f"/publish/{PUBSUB}/{TOPIC}", event)
    if status not in (200, 204):
        print(f"publishing {event_type} failed: {status} {body[:200]!r}", flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send_json(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/healthz", "/health"):
            self.send_json(200, {"status": "ok", "revision": os.environ.get("K_REVISION", "")})
        elif path in ("", "/agenda"):
            self.send_json(200, load()[0])
        else:
            self.send_json(404, {"error": f"no route GET {self.path}; try GET /agenda"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            body = self.read_json()
        except ValueError:
            self.send_json(400, {"error": "the body must be JSON"})
            return
        if path not in ("", "/agenda"):
            self.send_json(404, {"error": f"no route POST {self.path}; try POST /agenda"})
            return
        if not isinstance(body, dict) or not str(body.get("title", "")).strip():
            self.send_json(400, {"error": 'the body must be {"title": ..., "author": ...}'})
            return
        item = {
            "id": str(body.get("id") or uuid.uuid4()),
            "title": str(body["title"]),
            "author": str(body.get("author", "")),
            "proposalId": str(body.get("proposalId", "")),
            "day": str(body.get("day", "Monday")),
            "time": str(body.get("time", "10:00")),
            "addedAt": time.time(),
        }
        try:
            add(item)
        except RuntimeError as exc:
            self.send_json(503, {"error": str(exc)})
            return
        publish("new-agenda-item", item)
        self.send_json(201, item)

    def log_message(self, format: str, *args: Any) -> None:
        return


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"agenda-service listening on {port} (state {STATESTORE}, events {PUBSUB}/{TOPIC})")
    ThreadingHTTPServer(
        (os.environ.get("BIND_ADDRESS", "127.0.0.1"), port), Handler
    ).serve_forever()
