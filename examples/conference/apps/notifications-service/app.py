"""notifications-service: tells authors about decisions on their proposals.

Events arrive through the Dapr Subscription on the events topic (route
``/api/new-events/``): no broker client in the code. Notifications are kept in memory,
which is why the service has ``min-scale: "1"``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NOTIFICATIONS: list[dict[str, Any]] = []
LOCK = threading.Lock()


def on_event(event: dict[str, Any]) -> dict[str, Any] | None:
    """A notification for a decision event; other events need none."""
    if event.get("type") != "proposal-decision":
        return None
    proposal = event.get("payload") or {}
    verdict = "approved" if proposal.get("status") == "APPROVED" else "rejected"
    note = {
        "to": proposal.get("email") or proposal.get("author", ""),
        "author": proposal.get("author", ""),
        "proposalId": proposal.get("id", ""),
        "title": f"Your proposal was {verdict}",
        "message": f"Dear {proposal.get('author', 'speaker')}, your proposal "
        f"'{proposal.get('title', '')}' was {verdict}.",
        "sentAt": time.time(),
    }
    with LOCK:
        NOTIFICATIONS.append(note)
    print(f"notification to {note['to']}: {note['title']}", flush=True)
    return note


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send_json(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/healthz", "/health"):
            self.send_json(200, {"status": "ok", "revision": os.environ.get("K_REVISION", "")})
        elif path in ("", "/notifications"):
            with LOCK:
                self.send_json(200, list(NOTIFICATIONS))
        else:
            self.send_json(404, {"error": f"no route GET {self.path}; try GET /notifications"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path != "/api/new-events":
            self.send_json(404, {"error": f"no route POST {self.path}"})
            return
        try:
            envelope = json.loads(raw or b"{}")
        except ValueError:
            # A malformed event would never get better: tell the sidecar to drop it.
            self.send_json(200, {"status": "DROP"})
            return
        data = envelope.get("data") if "specversion" in envelope else envelope
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                data = {}
        on_event(data if isinstance(data, dict) else {})
        self.send_json(200, {"status": "SUCCESS"})

    def log_message(self, format: str, *args: Any) -> None:
        return


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"notifications-service listening on {port}")
    ThreadingHTTPServer(
        (os.environ.get("BIND_ADDRESS", "127.0.0.1"), port), Handler
    ).serve_forever()
