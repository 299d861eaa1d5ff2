"""The benchmark's replica: a uvicorn (uvloop + httptools) ASGI app answering "hello"."""

from __future__ import annotations

import os
from typing import Any

BODY = b"hello"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"5")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    import uvicorn

    port = int(os.environ.get("PORT", "8080"))
    print("listening on", port, "pid", os.getpid(), flush=True)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="off",
    )
