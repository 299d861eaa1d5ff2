"""A small app for the sidecar tests: records what the sidecar sends and answers on cue.

Run as ``python app_server.py`` with ``APP_PORT`` set. ``SUBSCRIPTIONS`` (JSON) is the
answer to ``GET /dapr/subscribe`` (404 when unset). Paths decide the answer to a
delivery: ``/fail-twice/...`` fails the first two tries of each event id, ``/gone/...``
answers 404, ``/retry/...`` answers ``{"status": "RETRY"}``, ``/drop/...`` answers
``{"status": "DROP"}``, ``/error/...`` always 500; anything else succeeds.
``GET /received`` returns every recorded request; ``/echo/...`` echoes the request;
``/slow/<seconds>`` answers after a delay; ``/healthz`` answers the status last POSTed
to ``/set-health``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import uvicorn
from dapr_asgi import read_body

received: list[dict[str, Any]] = []
health = {"status": 200}
tries: Counter[str] = Counter()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    path = scope["path"]
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    status, payload, ctype = 200, b"", b"application/json"
    if path == "/healthz":
        status = health["status"]
    elif path == "/set-health":
        health["status"] = int(body or b"200")
    elif path == "/dapr/subscribe":
        subs = os.environ.get("SUBSCRIPTIONS")
        status, payload = (200, subs.encode()) if subs else (404, b"")
    elif path == "/received":
        payload = json.dumps(received).encode()
    elif path.startswith("/slow"):
        import asyncio

        await asyncio.sleep(float(path.rsplit("/", 1)[-1]))
        payload = b'{"slow": true}'
    elif path.startswith("/echo"):
        payload = json.dumps(
            {
                "method": scope["method"],
                "path": path,
                "query": scope["query_string"].decode(),
                "headers": headers,
                "body": body.decode("utf-8", "replace"),
            }
        ).encode()
        status = int(headers.get("x-status", "200"))
    else:
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = body.decode("utf-8", "replace")
        received.append({"path": path, "headers": headers, "body": doc})
        event_id = doc.get("id", "") if isinstance(doc, dict) else ""
        tries[event_id] += 1
        if path.startswith("/fail-twice") and tries[event_id] <= 2:
            status = 500
        elif path.startswith("/gone"):
            status = 404
        elif path.startswith("/retry"):
            payload = b'{"status": "RETRY"}'
        elif path.startswith("/drop"):
            payload = b'{"status": "DROP"}'
        elif path.startswith("/error"):
            status = 500
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]}
    )
    await send({"type": "http.response.body", "body": payload})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["APP_PORT"]), log_level="warning")
