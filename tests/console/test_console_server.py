"""The console's HTTP server on a real socket: security rules, pages and the live stream."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from console_objects import add_broken, add_service

import wonderland.platform
from wonderland.console.live import LiveFeed
from wonderland.console.security import COOKIE_NAME, sign_in_ticket
from wonderland.console.server import ConsoleServer
from wonderland.console.views import HubMetrics
from wonderland.monitoring.hub import MetricsHub
from wonderland.store import Store

TOKEN = "s3cret-platform-token"


@dataclass
class Console:
    server: ConsoleServer
    store: Store
    url: str

    @property
    def origin(self) -> dict[str, str]:
        return {"origin": self.url}

    def client(self, **kw: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, **kw)  # type: ignore[arg-type]

    @contextlib.asynccontextmanager
    async def signed_in(self) -> AsyncIterator[httpx.AsyncClient]:
        async with self.client() as client:
            r = await client.post(
                "/signin", data={"token": TOKEN, "next": "/"}, headers=self.origin
            )
            assert r.status_code == 303, r.text
            yield client


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    for name in wonderland.platform.PLUGINS:
        importlib.import_module(name)  # every kind the platform registers
    store = Store.open(tmp_path)
    server = ConsoleServer(store, lambda: TOKEN, HubMetrics(MetricsHub()))
    server.feed = LiveFeed(store, heartbeat=0.5)
    await server.start()
    try:
        assert server.status.state == "running"
        yield Console(server, store, server.status.url)
    finally:
        await server.stop()
        store.close()


async def test_foreign_host_and_origin_are_refused(console: Console) -> None:
    async with console.client() as client:
        r = await client.get("/", headers={"host": "evil.example"})
        assert r.status_code == 403 and "DNS rebinding" in r.text
        r = await client.get("/", headers={"origin": "http://evil.example"})
        assert r.status_code == 403
        r = await client.post("/signin", data={"token": TOKEN})  # no Origin
        assert r.status_code == 403
        r = await client.post(
            "/signin", data={"token": TOKEN}, headers={"origin": "http://evil.example"}
        )
        assert r.status_code == 403 and "set-cookie" not in r.headers


async def test_without_a_session_pages_redirect_and_data_is_401(console: Console) -> None:
    async with console.client() as client:
        r = await client.get("/apps")
        assert r.status_code == 303 and r.headers["location"] == "/signin?next=/apps"
        assert (await client.get("/live")).status_code == 401
        assert (await client.get("/yaml/configmaps/default/x")).status_code == 401
        r = await client.get("/signin?next=/apps")
        assert r.status_code == 200
        assert '<label for="token">' in r.text and 'value="/apps"' in r.text
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
    async with console.client(cookies={COOKIE_NAME: "1.2.3"}) as forged:
        assert (await forged.get("/")).status_code == 303


async def test_wrong_token_is_a_401_page_right_token_a_strict_cookie(console: Console) -> None:
    async with console.client() as client:
        r = await client.post(
            "/signin", data={"token": "guess", "next": "/apps"}, headers=console.origin
        )
        assert r.status_code == 401
        assert "not the platform&#39;s token" in r.text and 'aria-invalid="true"' in r.text
        assert "set-cookie" not in r.headers
        r = await client.post(
            "/signin",
            data={"token": TOKEN, "next": "https://evil.example/"},
            headers=console.origin,
        )
        assert r.status_code == 303 and r.headers["location"] == "/"  # no open redirect
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=")
        for flag in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="):
            assert flag in cookie
        assert TOKEN not in cookie
        assert (await client.get("/")).status_code == 200
        r = await client.post("/signout", headers=console.origin)
        assert r.status_code == 303 and "Max-Age=0" in r.headers["set-cookie"]
    old = cookie.split(";")[0].split("=", 1)[1]
    async with console.client(cookies={COOKIE_NAME: old}) as stale:
        assert (await stale.get("/")).status_code == 303  # the signed-out session is gone
    # the one-time link `wonderland console` opens: signed in at once, and only once
    link = "/signin?" + urlencode({"ticket": sign_in_ticket(TOKEN), "next": "/apps"})
    async with console.client() as client:
        r = await client.get(link)
        assert r.status_code == 303 and r.headers["location"] == "/apps"
        assert (
            "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
        )
        assert (await client.get("/apps")).status_code == 200
    async with console.client() as client:
        r = await client.get(link)
        assert r.status_code == 401 and "set-cookie" not in r.headers
        assert "used already or has expired" in r.text
        r = await client.get("/signin?ticket=" + sign_in_ticket("another-platform"))
        assert r.status_code == 401


async def test_overview_apps_and_yaml_pages(console: Console) -> None:
    add_service(console.store)
    add_broken(console.store)
    console.store.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "default"},
            "stringData": {"password": "hunter2"},
        }
    )
    async with console.signed_in() as client:
        r = await client.get("/")
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        html = r.text
        assert "<h1>Overview</h1>" in html and '<main id="main"' in html
        assert '<nav aria-label="Pages">' in html and 'href="#main"' in html
        assert "ModelLoadFailed" in html and "iris" in html
        r = await client.get("/apps")
        assert "hello-00002 90%, hello-00001 10% (tag old)" in r.text
        assert 'data-revision="hello-00001"' in r.text and "No request metrics yet" in r.text
        assert 'data-poll="10"' in r.text  # the metrics refresh once per scrape
        fragment = (await client.get("/apps?fragment=main")).text
        assert "<h1>Apps</h1>" in fragment and "<html" not in fragment
        r = await client.get("/yaml/services.serving.knative.dev/default/hello")
        assert r.status_code == 200 and "kind: Service" in r.text
        secret = (await client.get("/yaml/secrets/default/creds")).text
        assert "hunter2" not in secret and "aHVudGVyMg" not in secret and "(hidden)" in secret
        assert (await client.get("/yaml/secrets/default/nope")).status_code == 404
        assert (await client.get("/nope")).status_code == 404
        js = await client.get("/static/console.js")
        assert js.status_code == 200 and "EventSource" in js.text
        assert (await client.get("/static/../server.py")).status_code == 404


async def _events(lines: AsyncIterator[str], count: int) -> list[dict[str, str]]:
    """The next ``count`` SSE messages (comments skipped) as {id, event, data}."""
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async for line in lines:
        if line.startswith(":"):
            continue
        if not line:
            if current.get("event"):
                out.append(current)
                if len(out) == count:
                    return out
            current = {}
            continue
        field, _, value = line.partition(": ")
        current[field] = value
    return out


def _configmap(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"k": "v"},
    }


async def test_live_stream_ids_are_resource_versions_and_resume(console: Console) -> None:
    async with console.signed_in() as client:
        async with client.stream("GET", "/live") as r:
            lines = r.aiter_lines()
            assert r.headers["content-type"].startswith("text/event-stream")
            (hello,) = await _events(lines, 1)
            assert hello["event"] == "hello"
            created = console.store.create(_configmap("one"))
            (change,) = await asyncio.wait_for(_events(lines, 1), 10)
            assert change["event"] == "change"
            assert change["id"] == created["metadata"]["resourceVersion"]
            assert '"name":"one"' in change["data"] and '"type":"ADDED"' in change["data"]
        last = change["id"]
        missed = console.store.create(_configmap("two"))  # while disconnected
        async with client.stream("GET", "/live", headers={"last-event-id": last}) as r:
            lines = r.aiter_lines()
            hello, change = await asyncio.wait_for(_events(lines, 2), 10)
            assert change["id"] == missed["metadata"]["resourceVersion"]
            assert '"name":"two"' in change["data"]
        async with client.stream("GET", "/live", headers={"last-event-id": "999999"}) as r:
            lines = r.aiter_lines()
            (resync,) = await _events(lines, 1)
            assert resync["event"] == "resync" and "future" in resync["data"]


async def test_too_old_last_event_id_resyncs(console: Console) -> None:
    store = console.store
    with store.transaction():  # more writes than the store's event history keeps
        obj = store.create(_configmap("busy"))
        for i in range(25_000):
            obj["data"] = {"k": str(i)}
            obj = store.update(obj)
    async with (
        console.signed_in() as client,
        client.stream("GET", "/live", headers={"last-event-id": "1"}) as r,
    ):
        lines = r.aiter_lines()
        _hello, resync = await asyncio.wait_for(_events(lines, 2), 10)
        assert resync["event"] == "resync" and "too old" in resync["data"]
        assert resync["id"] == store.resource_version
        store.create(_configmap("after"))
        (change,) = await asyncio.wait_for(_events(lines, 1), 10)
        assert '"name":"after"' in change["data"]


async def test_a_slow_reader_gets_a_resync_not_an_unbounded_queue(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        feed = LiveFeed(store, heartbeat=0.2, queue_size=4)
        stream = feed.stream("")
        assert (await anext(stream)).startswith(b"retry:")
        assert b"event: hello" in await anext(stream)
        waiting = asyncio.ensure_future(anext(stream))  # starts the watch
        first = store.create(_configmap("c0"))
        assert f"id: {first['metadata']['resourceVersion']}".encode() in await waiting
        for i in range(1, 40):  # at once: more than the queue holds before the page reads
            store.create(_configmap(f"c{i}"))
        seen = [await asyncio.wait_for(anext(stream), 10) for _ in range(5)]
        assert any(b"event: resync" in s and b"too slowly" in s for s in seen), seen
        await stream.aclose()
    finally:
        store.close()
