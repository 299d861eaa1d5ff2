"""c4p-service: the call for proposals. Proposals live in a Dapr state store; a decision
adds the talk to the agenda (agenda-service, over its cluster-local URL) and is announced
on the events topic, where notifications-service tells the author.

It has no min-scale: with nothing to review it scales to zero, and the first request
wakes it (the gateway holds the request meanwhile).
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
AGENDA = os.environ.get("AGENDA_SERVICE_URL", "http://agenda-service.default.svc.cluster.local")
KEY = "proposals"


def call(method: str, url: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def load() -> tuple[list[dict[str, Any]], str | None]:
    status, headers, body = call("GET", f"{DAPR}/state/{STATESTORE}/{KEY}")
    if status == 204 or not body:
        return [], None
    if status != 200:
        raise RuntimeError(f"state store answered {status}: {body[:200]!r}")
    return json.loads(body), headers.get("ETag") or headers.get("etag")


def change(update: Any) -> Any:
    """Read, change and write the proposals with optimistic concurrency; returns update's result."""
    for _ in range(20):
        items, etag = load()
        result = update(items)
        entry: dict[str, Any] = {"key": KEY, "value": items}
        if etag:
            entry.update(etag=etag, options={"concurrency": "first-write"})
        status, _, body = call("POST", f"{DAPR}/state/{STATESTORE}", [entry])
        if status in (200, 204):
            return result
        if status != 409:
            raise RuntimeError(f"state store answered {status}: {body[:200]!r}")
    raise RuntimeError("too many concurrent writers; try again")


def publish(event_type: str, payload: dict[str, Any]) -> None:
    event = {"type": event_type, "source": "c4p-service", "payload": payload}
    status, _, body = call("POST", f"{DAPR}/publish/{PUBSUB}/{TOPIC}", event)
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
        elif path in ("", "/proposals"):
            self.send_json(200, load()[0])
        else:
            self.send_json(404, {"error": f"no route GET {self.path}; try GET /proposals"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            body = self.read_json()
        except ValueError:
            self.send_json(400, {"error": "the body must be JSON"})
            return
        if not isinstance(body, dict):
            self.send_json(400, {"error": "the body must be a JSON object"})
            return
        try:
            if path in ("", "/proposals"):
                self.submit(body)
            elif path.startswith("/proposals/") and path.endswith("/decision"):
                self.decide(path.split("/")[2], body)
            else:
                self.send_json(404, {"error": f"no route POST {self.path}"})
        except RuntimeError as exc:
            self.send_json(503, {"error": str(exc)})

    def submit(self, body: dict[str, Any]) -> None:
        missing = [f for f in ("title", "author") if not str(body.get(f, "")).strip()]
        if missing:
            self.send_json(400, {"error": f"missing field(s): {', '.join(missing)}"})
            return
        proposal = {
            "id": str(uuid.uuid4()),
            "title": str(body["title"]),
            "description": str(body.get("description", "")),
            "author": str(body["author"]),
            "email": str(body.get("email", "")),
            "status": "PENDING",
            "submittedAt": time.time(),
        }
        change(lambda items: items.append(proposal))
        publish("new-proposal", proposal)
        self.send_json(201, proposal)

    def decide(self, proposal_id: str, body: dict[str, Any]) -> None:
        if not isinstance(body.get("approved"), bool):
            self.send_json(400, {"error": 'the body must be {"approved": true|false}'})
            return
        approved = body["approved"]

        def update(items: list[dict[str, Any]]) -> dict[str, Any] | None:
            for item in items:
                if item["id"] == proposal_id:
                    item["status"] = "APPROVED" if approved else "REJECTED"
                    item["decidedAt"] = time.time()
                    return item
            return None

        proposal = change(update)
        if proposal is None:
            self.send_json(404, {"error": f"no proposal {proposal_id}"})
            return
        if approved:
            item = {
                "proposalId": proposal["id"],
                "title": proposal["title"],
                "author": proposal["author"],
            }
            status, _, text = call("POST", f"{AGENDA}/agenda", item)
            if status != 201:
                self.send_json(502, {"error": f"agenda-service answered {status}: {text[:200]!r}"})
                return
        publish("proposal-decision", proposal)
        self.send_json(200, proposal)

    def log_message(self, format: str, *args: Any) -> None:
        return


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"c4p-service listening on {port} (state {STATESTORE}, agenda at {AGENDA})")
    ThreadingHTTPServer(
        (os.environ.get("BIND_ADDRESS", "127.0.0.1"), port), Handler
    ).serve_forever()
