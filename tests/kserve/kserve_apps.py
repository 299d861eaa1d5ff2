"""Small apps the end-to-end tests run as InferenceService containers.

``python kserve_apps.py custom [--model_dir D]``: a custom predictor (V1 ``:predict``
answers the row sums, and the ``label.txt`` of its model folder when given).
``python kserve_apps.py transformer --model_name M --predictor_host H --http_port P``: a
transformer that scales centimetres given in millimetres, calls the predictor over V1 REST
(one keep-alive client, through the platform's proxy setting) and names the classes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import orjson
import uvicorn

CLASSES = ["setosa", "versicolor", "virginica"]


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


async def _send_json(send: Any, status: int, obj: Any, headers: list[Any] | None = None) -> None:
    body = orjson.dumps(obj)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


def custom_app(model_dir: str = "") -> Any:
    label = (Path(model_dir) / "label.txt").read_text().strip() if model_dir else ""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path.endswith(":predict"):
            req = orjson.loads(await _body(receive))
            preds = [round(sum(row), 3) for row in req["instances"]]
            out = {"predictions": preds, "served_by": "custom"}
            if label:
                out["label"] = label
            await _send_json(send, 200, out)
        else:
            await _send_json(send, 200, {"status": "alive"})

    return app


def transformer_app(model_name: str, predictor_host: str) -> Any:
    import httpx

    client = httpx.AsyncClient(timeout=60)  # keep-alive pool, honours HTTP_PROXY
    url = f"http://{predictor_host}/v1/models/{model_name}:predict"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"].endswith(":predict"):
            req = orjson.loads(await _body(receive))
            rows = [[v / 10 for v in row] for row in req["instances"]]  # mm -> cm
            resp = await client.post(url, json={"instances": rows})
            if resp.status_code != 200:
                await _send_json(send, resp.status_code, {"error": resp.text})
                return
            preds = resp.json()["predictions"]
            await _send_json(
                send,
                200,
                {"predictions": [CLASSES[int(p)] for p in preds]},
                [(b"x-predictor-host", predictor_host.encode())],
            )
        else:
            await _send_json(send, 200, {"status": "alive"})

    return app


def main(argv: list[str]) -> None:
    mode = argv[0]
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_name", default="model")
    parser.add_argument("--predictor_host", default="")
    parser.add_argument("--http_port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model_dir", default="")
    args = parser.parse_args(argv[1:])
    if mode == "custom":
        app = custom_app(args.model_dir)
    else:
        app = transformer_app(args.model_name, args.predictor_host)
    uvicorn.run(app, host="127.0.0.1", port=args.http_port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main(sys.argv[1:])
