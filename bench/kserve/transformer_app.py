"""A pass-through V1 transformer for the chain benchmark (the same work KServe's default
``Model.predict`` does: forward to ``--predictor_host`` over one keep-alive client)."""

from __future__ import annotations

import argparse
import os
from typing import Any

import httpx
import uvicorn


def make_app(model_name: str, predictor_host: str) -> Any:
    client = httpx.AsyncClient(timeout=60)
    url = f"http://{predictor_host}/v1/models/{model_name}:predict"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        if scope["path"].endswith(":predict"):
            resp = await client.post(
                url, content=body, headers={"content-type": "application/json"}
            )
            status, out = resp.status_code, resp.content
        else:
            status, out = 200, b'{"status": "alive"}'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": out})

    return app


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--model_name", required=True)
    p.add_argument("--predictor_host", required=True)
    p.add_argument("--http_port", type=int, default=int(os.environ.get("PORT", "8080")))
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args()
    uvicorn.run(
        make_app(a.model_name, a.predictor_host),
        host="127.0.0.1",
        port=a.http_port,
        log_level="warning",
        lifespan="off",
        http="httptools",
        loop="uvloop",
    )
