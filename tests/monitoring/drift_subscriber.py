"""A Dapr subscriber for the drift e2e test: records the events delivered to ``/drift``;
``GET /received`` returns them. Listens on ``$PORT``."""

from __future__ import annotations

import json
import os
from typing import Any

import uvicorn

received: list[Any] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    status, payload = 200, b"{}"
    if scope["method"] == "POST" and scope["path"] == "/drift":
        received.append(json.loads(body))
        payload = b'{"status": "SUCCESS"}'
    elif scope["path"] == "/received":
        payload = json.dumps(received).encode()
    elif scope["path"] == "/dapr/subscribe":
        payload = b"[]"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
