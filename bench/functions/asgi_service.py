"""The comparison service: a plain ASGI app under uvicorn, as a typical Python Knative
Service runs (same server as the function host, without the function layer)."""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"OK"})
