"""An app that uses its Dapr sidecar, for the platform tests (run as a Knative Service).

Routes: ``POST/GET /state/<key>``, ``GET /secret/<name>`` (the ``kubernetes`` store),
``GET /call/<app-id>/<path>`` (service invocation), ``GET /hello`` (its app id),
``POST /publish/<topic>``, ``POST /orders`` (subscription target), ``GET /received``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import uvicorn
from dapr_asgi import read_body

received: list[Any] = []


def sidecar() -> str:
    return f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/v1.0"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    parts = scope["path"].strip("/").split("/")
    method = scope["method"]
    status, payload = 200, b""
    async with httpx.AsyncClient(timeout=20) as client:
        if parts[0] == "state" and method == "POST":
            r = await client.post(
                f"{sidecar()}/state/statestore", json=[{"key": parts[1], "value": body.decode()}]
            )
            status = r.status_code
        elif parts[0] == "state":
            r = await client.get(f"{sidecar()}/state/statestore/{parts[1]}")
            status, payload = r.status_code, r.content
        elif parts[0] == "secret":
            r = await client.get(f"{sidecar()}/secrets/kubernetes/{parts[1]}")
            status, payload = r.status_code, r.content
        elif parts[0] == "call":
            r = await client.get(f"{sidecar()}/invoke/{parts[1]}/method/{'/'.join(parts[2:])}")
            status, payload = r.status_code, r.content
        elif parts[0] == "publish":
            r = await client.post(
                f"{sidecar()}/publish/pubsub/{parts[1]}",
                content=body,
                headers={"content-type": "application/json"},
            )
            status = r.status_code
        elif parts[0] == "hello":
            payload = os.environ.get("APP_ID", "").encode()
        elif parts[0] == "orders":
            received.append(json.loads(body))
        elif parts[0] == "received":
            payload = json.dumps(received).encode()
        else:
            status = 404
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
