"""A CloudEvents receiver for the benches: POST anything (202), GET /received lists the
events' types and arrival times (time.time())."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import uvicorn

received: list[dict[str, Any]] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    status, body = 202, b""
    if scope["method"] == "POST":
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        received.append({"type": headers.get("ce-type", ""), "at": time.time()})
    else:
        status, body = 200, json.dumps(received).encode()
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
