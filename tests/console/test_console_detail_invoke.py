"""A function's invoke box on a real socket: the console sends the form through a gateway
address to a real function (the cloudevents template, loaded by the function host's
loader and served by uvicorn), as ``wonderland func invoke`` does; bad forms are refused
with what to fix and nothing is sent."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.servers import asgi_replica
from console_objects import _with_status, ready
from detail_support import metrics, open_store

from wonderland.console.app_pages import AppPages
from wonderland.console.server import ConsoleServer
from wonderland.console.sources import GatewayModelClient, HubSources
from wonderland.console.views import HubMetrics
from wonderland.functions.create import create_function
from wonderland.functions.loader import load_function
from wonderland.store import Store

TOKEN = "s3cret-platform-token"
HOST = "fn.default.127.0.0.1.sslip.io"


@dataclass
class Recorder:
    """The function's ASGI app behind a recorder of what reached it (host, path, headers)."""

    app: Any
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            self.seen.append((headers.get("host", ""), scope["path"], headers))
        await self.app(scope, receive, send)


@dataclass
class Console:
    url: str
    store: Store
    function: Recorder
    root: Path

    @contextlib.asynccontextmanager
    async def signed_in(self) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            r = await client.post("/signin", data={"token": TOKEN}, headers={"origin": self.url})
            assert r.status_code == 303, r.text
            yield client


def _add_function(store: Store, root: Path) -> None:
    """The Service `wonderland func deploy` makes of a cloudevents function."""
    _with_status(
        store,
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {
                "name": "fn",
                "namespace": "default",
                "labels": {
                    "function.knative.dev/name": "fn",
                    "function.knative.dev/runtime": "python",
                },
            },
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "image": "dev.local/fn:latest",
                                "command": ["python", "-m", "wonderland.functions.host"],
                                "args": ["--invoke", "cloudevent", str(root)],
                            }
                        ]
                    }
                }
            },
        },
        {"conditions": ready(), "url": f"http://{HOST}"},
    )


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    root = tmp_path / "fn"
    create_function(root, template="cloudevents", name="fn")
    function = Recorder(load_function(root, invoke="cloudevent").app)
    store = open_store(tmp_path / "state")
    _add_function(store, root)
    m = metrics()
    server = ConsoleServer(store, lambda: TOKEN, HubMetrics(m.hub), poll_seconds=1)
    async with asgi_replica(function) as port:
        client = GatewayModelClient(lambda: f"http://127.0.0.1:{port}")
        AppPages(server, HubSources(m.hub, m.recorder.store), client=client).install()
        await server.start()
        try:
            yield Console(server.status.url, store, function, root)
        finally:
            await server.stop()
            await m.scraper.close()
            store.close()


async def test_the_invoke_box_sends_a_cloudevent_to_the_function(console: Console) -> None:
    async with console.signed_in() as client:
        page = (await client.get("/apps/default/fn")).text
        assert 'id="invoke-form"' in page
        assert 'value="cloudevent" checked' in page  # func.yaml's invoke, from the host's args
        assert f"(in <code>{console.root}</code>)" in page
        form = {
            "format": "cloudevent",
            "path": "/",
            "contentType": "application/json",
            "data": '{"message": "Hi"}',
            "type": "order.created",
            "source": "/console",
        }
        origin = {"origin": console.url, "content-type": "application/json"}
        r = await client.post("/apps/default/fn/invoke", content=json.dumps(form), headers=origin)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["status"] == 200 and answer["error"] == ""
        assert answer["milliseconds"] > 0 and answer["eventId"]
        # the function's structured CloudEvent names the id the console sent
        reply = json.loads(answer["body"])
        assert reply["id"] == f"response-{answer['eventId']}"
        assert reply["data"] == {"message": "OK"}
        assert answer["headers"]["content-type"].startswith("application/cloudevents+json")
        host, path, headers = console.function.seen[-1]
        assert (host, path) == (HOST, "/")
        assert headers["ce-type"] == "order.created" and headers["ce-source"] == "/console"
        assert headers["ce-specversion"] == "1.0" and headers["ce-id"] == answer["eventId"]
        assert answer["curl"].startswith(f"curl -sS -H 'Host: {HOST}'")
        assert "-H 'ce-type: order.created'" in answer["curl"]
        assert """-d '{"message":"Hi"}'""" in answer["curl"]
        assert answer["func"] == (
            f"wonderland func invoke -p {console.root} -n default --format cloudevent "
            """--data '{"message": "Hi"}' --type order.created --source /console"""
        )

        # plain HTTP to another path: no ce-* headers, the function's own refusal shows
        form = {"format": "http", "path": "/orders?id=1", "contentType": "text/plain", "data": "x"}
        r = await client.post("/apps/default/fn/invoke", content=json.dumps(form), headers=origin)
        assert r.status_code == 200, r.text
        assert r.json()["eventId"] == ""
        host, path, headers = console.function.seen[-1]
        assert path == "/orders" and not any(k.startswith("ce-") for k in headers)
        assert headers["content-type"] == "text/plain"


@pytest.mark.parametrize(
    ("form", "status", "says"),
    [
        ({"format": "grpc"}, 422, "is not http or cloudevent"),
        ({"path": "orders"}, 422, "start it with /"),
        ({"path": "/a b"}, 422, "use no spaces"),
        ({"contentType": "json\r\nX-Evil: 1"}, 422, "is not a media type"),
        ({"format": "cloudevent", "type": ""}, 422, "CloudEvent's type must be"),
        ({"data": "{not json"}, 422, "the body is not JSON"),
        ({"data": 5}, 422, "data must be a string"),
    ],
)
async def test_a_bad_invoke_form_is_refused_with_what_to_fix(
    console: Console, form: dict[str, Any], status: int, says: str
) -> None:
    async with console.signed_in() as client:
        origin = {"origin": console.url, "content-type": "application/json"}
        r = await client.post("/apps/default/fn/invoke", content=json.dumps(form), headers=origin)
        assert r.status_code == status, r.text
        assert says in r.json()["error"] and "fix it and send again" in r.json()["error"]
    assert console.function.seen == []


async def test_invoke_refuses_what_is_not_a_function_and_needs_origin(console: Console) -> None:
    async with console.signed_in() as client:
        origin = {"origin": console.url, "content-type": "application/json"}
        body = json.dumps({"format": "http"})
        r = await client.post("/apps/default/hello/invoke", content=body, headers=origin)
        assert r.status_code == 409 and "not a function" in r.json()["error"]
        r = await client.post("/apps/default/nope/invoke", content=body, headers=origin)
        assert r.status_code == 404
        r = await client.post("/apps/default/fn/invoke", content=b"", headers=origin)
        assert r.status_code == 400 and "empty" in r.json()["error"]
        r = await client.post("/apps/default/fn/invoke", content=b"[1]", headers=origin)
        assert r.status_code == 422 and "JSON object" in r.json()["error"]
        too_big = json.dumps({"data": "x" * 20_000})
        r = await client.post("/apps/default/fn/invoke", content=too_big, headers=origin)
        # the console's form limit answers first: 413, nothing sent
        assert r.status_code == 413 and "larger than" in r.text
        r = await client.get("/apps/default/fn/invoke")
        assert r.status_code == 405
        r = await client.post(  # no Origin: refused like every state-changing request
            "/apps/default/fn/invoke", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 403
        # a plain Service's page has no invoke box
        assert 'id="invoke-form"' not in (await client.get("/apps/default/hello")).text
    assert console.function.seen == []
