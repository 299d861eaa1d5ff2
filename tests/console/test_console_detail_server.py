"""The Service and InferenceService pages on a real socket: rendering, the chart data
island, the log stream, and the try-it request sent through a gateway address."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.servers import asgi_replica
from detail_support import Metrics, Scaler, add_ready_model, metrics, open_store, write_history

from wonderland.console.app_pages import AppPages
from wonderland.console.examples import FileExamples
from wonderland.console.live import LiveFeed
from wonderland.console.model_pages import ModelPages
from wonderland.console.server import ConsoleServer
from wonderland.console.sources import GatewayModelClient, HubSources
from wonderland.console.views import HubMetrics
from wonderland.control.sources import LogQuery
from wonderland.errors import NotFoundError
from wonderland.store import Store

TOKEN = "s3cret-platform-token"


class Logs:
    """A PodLogSource of one Pod whose container printed three lines, one of them split
    across two writes, and then ended."""

    def read(self, namespace: str, pod: str, query: LogQuery) -> bytes:
        return b""

    async def follow(self, namespace: str, pod: str, query: LogQuery) -> AsyncIterator[bytes]:
        if pod != "hello-00002-deployment-1":
            raise NotFoundError(f'pods "{pod}" not found')
        assert query.follow and query.container == "user-container"
        for chunk in (b"starting\nlisten", b"ing on 8080\n", b"GET / 200\n"):
            yield chunk


class Gateway:
    """What the gateway would pass on to a model: V2 metadata and inference, by Host."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        host = dict(scope["headers"]).get(b"host", b"").decode()
        self.seen.append((host, scope["path"], body))
        status, doc = 404, {"error": "no route"}
        if host == "flowers.default.127.0.0.1.sslip.io":
            if scope["path"] == "/v2/models/flowers":
                status, doc = (
                    200,
                    {
                        "name": "flowers",
                        "platform": "sklearn",
                        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
                        "outputs": [{"name": "output-0", "datatype": "INT64", "shape": [-1]}],
                    },
                )
            elif scope["path"] == "/v2/models/flowers/infer":
                inputs = json.loads(body)["inputs"]
                status, doc = (
                    200,
                    {
                        "model_name": "flowers",
                        "outputs": [
                            {
                                "name": "output-0",
                                "datatype": "INT64",
                                "shape": [len(inputs)],
                                "data": [1],
                            }
                        ],
                    },
                )
        data = json.dumps(doc).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})


@dataclass
class Console:
    store: Store
    url: str
    metrics: Metrics
    gateway: Gateway
    examples: Path

    @contextlib.asynccontextmanager
    async def signed_in(self) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            r = await client.post(
                "/signin", data={"token": TOKEN, "next": "/"}, headers={"origin": self.url}
            )
            assert r.status_code == 303, r.text
            yield client


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    store = open_store(tmp_path)
    add_ready_model(store)
    m = metrics()
    gateway = Gateway()
    server = ConsoleServer(store, lambda: TOKEN, HubMetrics(m.hub), poll_seconds=1)
    server.feed = LiveFeed(store, heartbeat=0.5)
    sources = HubSources(m.hub)
    AppPages(server, sources, scaler=Scaler(), logs=Logs(), history_step=1).install()
    async with asgi_replica(gateway) as port:
        client = GatewayModelClient(lambda: f"http://127.0.0.1:{port}")
        examples = FileExamples(tmp_path / "examples", max_examples=3)
        ModelPages(server, sources, client, examples=examples, history_step=1).install()
        await server.start()
        try:
            yield Console(store, server.status.url, m, gateway, tmp_path / "examples")
        finally:
            await server.stop()
            await m.scraper.close()
            store.close()


def _chart_data(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html, re.S)
    assert match is not None, "no chart data island"
    return json.loads(match.group(1))  # type: ignore[no-any-return]


async def test_service_page_renders_charts_autoscaler_and_links(console: Console) -> None:
    write_history(
        console.metrics.recorder,
        [("revisions", "hello-00002", "request_rate", 7.0)],
        ago=(3, 2, 1),
    )
    async with console.signed_in() as client:
        r = await client.get("/apps/default/hello?range=5m")
        assert r.status_code == 200
        assert "script-src 'self'" in r.headers["content-security-policy"]
        html = r.text
        assert "<h1>hello" in html and 'href="/apps/default/hello?range=24h"' in html
        assert 'aria-current="true">5m</a>' in html
        data = _chart_data(html)
        requests = next(c for c in data["charts"] if c["id"] == "chart-requests")
        assert requests["series"][-1]["label"] == "hello-00002"
        assert 7.0 in requests["series"][-1]["values"]
        assert 'id="chart-requests-figure" data-points="3"' in html
        assert "hello-00002: now 7.00/s" in html  # the chart's text summary
        assert '<script src="/static/detail.js" defer></script>' in html
        assert "⚠ panic" in html and "<td>9.25</td>" in html
        # its traces, and each revision's
        assert 'id="service-traces" href="/traces?namespace=default&amp;ksvc=hello"' in html
        assert 'href="/traces?namespace=default&amp;revision=hello-00001"' in html
        # the live refresh answers the same content as a fragment
        fragment = await client.get("/apps/default/hello?range=5m&fragment=main")
        assert fragment.status_code == 200 and "<html" not in fragment.text
        again = _chart_data(fragment.text)["charts"]
        assert [c["id"] for c in again] == [c["id"] for c in data["charts"]]
        assert [v for v in again[1]["series"][-1]["values"] if v is not None] == [7.0] * 3
        # Apps links to it
        apps = await client.get("/apps")
        assert 'href="/apps/default/hello"' in apps.text
        missing = await client.get("/apps/default/nope")
        assert missing.status_code == 404 and "no Service default/nope" in missing.text
        functions = await client.get("/apps/functions")
        assert functions.status_code == 200 and 'id="functions-empty"' in functions.text
        assert 'href="/apps/functions"' in apps.text
        r = await client.get("/static/detail.js")
        assert r.status_code == 200 and "uPlot" in r.text


async def test_model_page_builds_the_form_from_metadata_and_try_it_answers(
    console: Console,
) -> None:
    async with console.signed_in() as client:
        r = await client.get("/models/default/flowers")
        assert r.status_code == 200, r.text
        html = r.text
        assert 'data-name="input-0" data-datatype="FP64" data-shape="-1,4" data-width="4"' in html
        assert "shape [any, 4]" in html
        assert "&#34;datatype&#34;: &#34;FP64&#34;" in html  # the example request, escaped
        assert "canary: flowers-predictor-00002 10%, previous flowers-predictor-00001 90%" in html
        assert 'id="model-traces" href="/traces?namespace=default&amp;isvc=flowers"' in html
        # the metadata is read once per revision, not on every refresh
        await client.get("/models/default/flowers?fragment=main")
        paths = [p for _, p, _ in console.gateway.seen]
        assert paths == ["/v2/models/flowers"]
        # the models list links to it
        assert 'href="/models/default/flowers"' in (await client.get("/models")).text

        body = {
            "inputs": [
                {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}
            ]
        }
        origin = {"origin": console.url, "content-type": "application/json"}
        r = await client.post(
            "/models/default/flowers/infer", content=json.dumps(body), headers=origin
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["status"] == 200 and answer["error"] == ""
        assert json.loads(answer["body"])["outputs"][0]["data"] == [1]
        assert answer["milliseconds"] > 0
        assert answer["curl"].startswith("curl -sS -H 'Host: flowers.default.127.0.0.1.sslip.io'")
        assert answer["curl"].endswith("/v2/models/flowers/infer")
        host, path, sent = console.gateway.seen[-1]
        assert (host, path) == ("flowers.default.127.0.0.1.sslip.io", "/v2/models/flowers/infer")
        assert json.loads(sent) == body

        # client mistakes are 4xx with what to do, and nothing is sent
        before = len(console.gateway.seen)
        r = await client.post("/models/default/flowers/infer", content=b"{not json", headers=origin)
        assert r.status_code == 422 and "not JSON" in r.json()["error"]
        r = await client.post("/models/default/flowers/infer", content=b"[1, 2]", headers=origin)
        assert r.status_code == 422 and '"inputs" list' in r.json()["error"]
        r = await client.post("/models/default/flowers/infer", content=b"", headers=origin)
        assert r.status_code == 400
        r = await client.post(
            "/models/default/nope/infer", content=json.dumps(body), headers=origin
        )
        assert r.status_code == 404
        r = await client.post(  # no Origin: refused like every state-changing request
            "/models/default/flowers/infer",
            content=json.dumps(body),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 403
        assert len(console.gateway.seen) == before


async def test_a_model_that_is_not_ready_says_why_there_is_no_form(console: Console) -> None:
    async with console.signed_in() as client:
        r = await client.get("/models/default/iris")
        assert r.status_code == 200
        assert "The model is not ready yet" in r.text and 'id="try-json"' in r.text
        assert "logs no payloads" in r.text
        assert (await client.get("/models/default/nope")).status_code == 404
        # the drift detector's reference sample, once its gauges are in a scrape
        await console.metrics.recorder.round()
        r = await client.get("/models/default/iris")
        assert (
            '<p id="reference-shape">150 rows, 2 features, the training sample of '
            "registered version 7.</p>" in r.text
        )
        assert '<th scope="row">petal_length</th><td>numeric</td><td>3.758</td>' in r.text
        assert 'id="chart-model-stages"' in r.text
    assert console.gateway.seen == []


async def test_a_models_examples_are_saved_bounded_and_deleted(console: Console) -> None:
    request = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [1]}]}
    origin = {"origin": console.url, "content-type": "application/json"}
    url = "/models/default/flowers/examples"

    def form(name: str, body: object = request) -> str:
        return json.dumps({"name": name, "body": json.dumps(body)})

    async with console.signed_in() as client:
        page = (await client.get("/models/default/flowers")).text
        assert 'id="examples-list"' in page and "No saved example yet" in page
        r = await client.post(url, content=form("two rows"), headers=origin)
        assert r.status_code == 200, r.text
        assert [e["name"] for e in r.json()["examples"]] == ["two rows"]
        # the same name again replaces it
        changed = {**request, "parameters": {"x": 1}}
        r = await client.post(url, content=form("two rows", changed), headers=origin)
        (saved,) = r.json()["examples"]
        assert json.loads(saved["body"]) == changed and saved["saved"].endswith("Z")
        page = (await client.get("/models/default/flowers?fragment=main")).text
        assert '<li data-name="two rows">' in page and "&#34;parameters&#34;" in page

        # mistakes: 4xx with what to fix, nothing saved
        for body, status, says in (
            (form("../etc"), 422, "must be 1 to 64 letters"),
            (form("x", {"instances": [1]}), 422, '"inputs" list'),
            (json.dumps({"name": "x", "body": "{not json"}), 422, "not JSON"),
            (b"[1]", 422, '{"name"'),
            (b"", 400, "empty"),
        ):
            r = await client.post(url, content=body, headers=origin)
            assert r.status_code == status, r.text
            assert says in r.json()["error"]
        r = await client.post("/models/default/nope/examples", content=form("a"), headers=origin)
        assert r.status_code == 404
        r = await client.post(url, content=form("a"), headers={"content-type": "application/json"})
        assert r.status_code == 403  # no Origin

        # bounded: this console keeps 3 per model and refuses a 4th
        for name in ("b", "c"):
            assert (await client.post(url, content=form(name), headers=origin)).status_code == 200
        r = await client.post(url, content=form("d"), headers=origin)
        assert r.status_code == 409 and "delete one first" in r.json()["error"]

        r = await client.delete(f"{url}/two%20rows", headers={"origin": console.url})
        assert r.status_code == 200 and [e["name"] for e in r.json()["examples"]] == ["b", "c"]
        r = await client.delete(f"{url}/two%20rows", headers={"origin": console.url})
        assert r.status_code == 404 and "no saved example" in r.json()["error"]
    # kept in the state directory: a restarted console finds them
    again = FileExamples(console.examples)
    assert [e.name for e in again.examples("default", "flowers")] == ["b", "c"]


def test_examples_are_kept_for_a_bounded_number_of_models(tmp_path: Path) -> None:
    from wonderland.console.examples import Example
    from wonderland.errors import ConflictError

    store = FileExamples(tmp_path, max_models=2)
    for model in ("a", "b"):
        store.save("default", model, Example("one", '{"inputs": []}', "t"))
    with pytest.raises(ConflictError, match="at most 2 models"):
        store.save("default", "c", Example("one", '{"inputs": []}', "t"))
    store.delete("default", "a", "one")  # the last example of a model frees its place
    store.save("default", "c", Example("one", '{"inputs": []}', "t"))
    assert not (tmp_path / "default" / "a.json").exists()


async def test_a_dapr_apps_page_shows_the_resiliency_policies_it_gets(console: Console) -> None:
    svc = console.store.get("services.serving.knative.dev", "default", "hello")
    svc["spec"]["template"]["metadata"] = {"annotations": {"dapr.io/enabled": "true"}}
    console.store.update(svc)
    async with console.signed_in() as client:
        page = (await client.get("/apps/default/hello")).text
        assert 'id="resiliency-none"' in page
        console.store.create(
            {
                "apiVersion": "dapr.io/v1alpha1",
                "kind": "Resiliency",
                "metadata": {"name": "calls", "namespace": "default"},
                "spec": {
                    "policies": {"timeouts": {"DefaultAppTimeoutPolicy": "3s"}},
                    "targets": {},
                },
                "scopes": ["hello"],
            }
        )
        page = (await client.get("/apps/default/hello")).text
        assert "<caption>The policies this app's sidecar applies (from calls)</caption>" in page
        assert '<th scope="row">calls to any other app</th><td>3s</td>' in page
        assert 'href="/yaml/resiliencies.dapr.io/default/calls"' in page
