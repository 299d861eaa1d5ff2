"""What the plain-ASGI test apps (app_server.py, dapr_app.py) share; they run as scripts, so
this sits next to them and is imported by file name."""

from __future__ import annotations

from typing import Any


async def read_body(receive: Any) -> bytes:
    """The whole request body, however many ``http.request`` messages carry it."""
    out = b""
    while True:
        msg = await receive()
        out += msg.get("body", b"")
        if not msg.get("more_body"):
            return out
