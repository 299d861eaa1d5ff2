"""The ASGI host in process: health checks, life cycle, errors, CloudEvents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from wonderland.errors import InvalidError, NotFoundError
from wonderland.functions.asgi import FunctionApp
from wonderland.functions.create import create_function
from wonderland.functions.funcyaml import load_config
from wonderland.functions.loader import load_function


class Probe:
    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.healthy = True

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        if scope["path"] == "/boom":
            raise RuntimeError("kaput")
        body = json.dumps({"path": scope["path"], "body": message["body"].decode()}).encode()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": body})

    def start(self, cfg: dict[str, str]) -> None:
        self.calls.append(("start", "PATH" in cfg))

    def stop(self) -> None:
        self.calls.append("stop")

    def alive(self) -> bool:
        return self.healthy

    def ready(self) -> tuple[bool, str]:
        return self.healthy, "warming up" if not self.healthy else "set"


def client(app: FunctionApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fn")


async def test_requests_reach_handle_and_health_comes_from_alive_and_ready() -> None:
    probe = Probe()
    async with client(FunctionApp(probe)) as c:
        r = await c.post("/orders?x=1", content=b"hi")
        assert (r.status_code, r.json()) == (201, {"path": "/orders", "body": "hi"})
        assert (await c.get("/health/liveness")).status_code == 200
        ready = await c.get("/health/readiness")
        assert (ready.status_code, ready.text) == (200, "set")
        probe.healthy = False
        assert (await c.get("/health/liveness")).status_code == 500
        ready = await c.get("/health/readiness")
        assert (ready.status_code, ready.text) == (500, "warming up")


async def test_a_handler_that_raises_gets_500_with_the_error_and_the_app_keeps_serving() -> None:
    async with client(FunctionApp(Probe())) as c:
        r = await c.get("/boom")
        assert r.status_code == 500
        assert "RuntimeError: kaput" in r.text
        assert (await c.post("/fine", content=b"")).status_code == 201


async def test_lifespan_calls_start_with_the_environment_then_stop() -> None:
    probe = Probe()
    app = FunctionApp(probe)
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert probe.calls == [("start", True), "stop"]


async def test_a_start_that_raises_fails_startup_with_its_message() -> None:
    class Broken(Probe):
        def start(self, cfg: dict[str, str]) -> None:
            raise ValueError("missing DB_URL")

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        sent.append(message)

    await FunctionApp(Broken())({"type": "lifespan"}, receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "missing DB_URL" in sent[0]["message"]


async def test_cloudevents_template_decodes_the_event_and_replies_with_one(tmp_path: Path) -> None:
    created = create_function(tmp_path / "ev", template="cloudevents")
    loaded = load_function(created.root, load_config(created.root))
    async with client(loaded.app) as c:
        binary = await c.post(
            "/",
            content=b'{"n": 1}',
            headers={
                "ce-specversion": "1.0",
                "ce-id": "abc",
                "ce-type": "com.example",
                "ce-source": "/test",
                "content-type": "application/json",
            },
        )
        assert binary.status_code == 200
        assert binary.headers["content-type"] == "application/cloudevents+json"
        reply = binary.json()
        assert reply["id"] == "response-abc"
        assert reply["data"] == {"message": "OK"}

        structured = await c.post(
            "/",
            content=json.dumps(
                {"specversion": "1.0", "id": "s1", "type": "t", "source": "/s", "data": {}}
            ),
            headers={"content-type": "application/cloudevents+json"},
        )
        assert structured.json()["id"] == "response-s1"

        plain = await c.post("/", content=b"not an event")
        assert plain.status_code == 400
        assert "expects a CloudEvent" in plain.text


async def test_static_handle_module_is_served(tmp_path: Path) -> None:
    created = create_function(tmp_path / "static")
    (created.root / "function" / "__init__.py").write_text(
        "async def handle(scope, receive, send):\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'static'})\n"
    )
    loaded = load_function(created.root, load_config(created.root))
    assert loaded.layout == "static"
    async with client(loaded.app) as c:
        assert (await c.get("/")).text == "static"
        assert (await c.get("/health/readiness")).status_code == 200


def test_loader_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no function found"):
        load_function(tmp_path)
    created = create_function(tmp_path / "bad")
    (created.root / "function" / "func.py").write_text("import no_such_module_xyz\n")
    with pytest.raises(InvalidError, match=r"func.py:1: importing the function failed"):
        load_function(created.root)
    (created.root / "function" / "func.py").write_text("def new():\n    return object()\n")
    with pytest.raises(InvalidError, match="no handle"):
        load_function(created.root)


async def test_a_cloudevents_handler_that_raises_answers_an_error_event(tmp_path: Path) -> None:
    created = create_function(tmp_path / "failing", template="cloudevents")
    func_py = created.root / "function" / "func.py"
    func_py.write_text(
        func_py.read_text().replace(
            '        request = scope["event"]\n',
            '        request = scope["event"]\n        raise LookupError("no such order")\n',
        )
    )
    loaded = load_function(created.root, load_config(created.root))
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-type": "t", "ce-source": "/s"}
    async with client(loaded.app) as c:
        r = await c.post("/", json={}, headers=headers)
        assert r.status_code == 500
        assert r.headers["content-type"] == "application/cloudevents+json"
        body = r.json()
        assert body["type"] == "dev.functions.error"
        assert body["data"] == {"message": "Error: LookupError: no such order"}
        assert (await c.get("/health/liveness")).status_code == 200
