"""The legacy (parliament) template: main(context) and @event."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import httpx

from wonderland.functions.funcyaml import load_config
from wonderland.functions.loader import load_function

FUNC_YAML = "specVersion: 0.35.0\nname: {name}\nruntime: python\ncreated: 2024-01-01T00:00:00Z\n"

HTTP_FUNC = textwrap.dedent(
    """
    from parliament import Context
    from flask import Request


    def main(context: Context):
        req = context.request
        if req.method == "POST" and req.is_json:
            return {"got": req.json, "q": req.args.get("q")}, 202
        if "boom" in req.path:
            raise KeyError("no such thing")
        return "hello " + req.args.get("name", "world"), 200
    """
)

EVENT_FUNC = textwrap.dedent(
    """
    from parliament import Context, event


    @event
    def main(context: Context):
        return {"echo": context.cloud_event.data, "type": context.cloud_event["type"]}
    """
)


def legacy(tmp_path: Path, name: str, code: str) -> httpx.AsyncClient:
    root = tmp_path / name
    root.mkdir()
    (root / "func.yaml").write_text(FUNC_YAML.format(name=name))
    (root / "func.py").write_text(code)
    (root / "requirements.txt").write_text("parliament-functions==0.1.0\n")
    loaded = load_function(root, load_config(root))
    assert loaded.layout == "legacy"
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=loaded.app), base_url="http://fn")


async def test_legacy_http_main_gets_a_flask_like_request(tmp_path: Path) -> None:
    async with legacy(tmp_path, "old-http", HTTP_FUNC) as c:
        r = await c.get("/", params={"name": "alice"})
        assert (r.status_code, r.text) == (200, "hello alice")
        r = await c.post("/?q=7", json={"a": 1})
        assert (r.status_code, r.json()) == (202, {"got": {"a": 1}, "q": "7"})
        r = await c.get("/boom")
        assert r.status_code == 500
        assert "KeyError" in r.text
        assert (await c.get("/health/liveness")).status_code == 200


async def test_legacy_event_main_replies_with_a_cloudevent(tmp_path: Path) -> None:
    async with legacy(tmp_path, "old-event", EVENT_FUNC) as c:
        r = await c.post(
            "/",
            content=json.dumps({"n": 5}),
            headers={
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-type": "order.created",
                "ce-source": "/shop",
                "content-type": "application/json",
            },
        )
        assert r.status_code == 200
        assert r.headers["ce-type"] == "dev.knative.function.response"
        assert r.headers["ce-source"] == "https://knative.dev/python.event"
        assert r.json() == {"echo": {"n": 5}, "type": "order.created"}
        plain = await c.post("/", content=b"{}")
        assert plain.status_code == 400
