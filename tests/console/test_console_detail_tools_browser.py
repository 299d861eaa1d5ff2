"""The Service and InferenceService pages' tools in headless Chromium against a console on a
real socket (its event loop in a thread): the log panel's level filter and JSON field view
over a followed Pod log, a function's invoke box sending a CloudEvent to a real function
(the cloudevents template behind a gateway address), and a model's saved examples.
Screenshots ``console-log-tools.png``, ``console-invoke.png`` and ``console-examples.png``
in the test's tmp directory."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from _support.browser import chromium_page
from _support.servers import asgi_replica
from console_objects import _with_status, ready
from detail_support import add_ready_model, metrics, open_store

from wonderland.console.app_pages import AppPages
from wonderland.console.examples import FileExamples
from wonderland.console.mlops_pages import MlopsPages
from wonderland.console.model_pages import ModelPages
from wonderland.console.server import ConsoleServer
from wonderland.console.sources import GatewayModelClient, HubSources
from wonderland.console.views import HubMetrics
from wonderland.control.sources import LogQuery
from wonderland.errors import NotFoundError
from wonderland.functions.create import create_function
from wonderland.functions.loader import load_function
from wonderland.store import Store

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "s3cret-platform-token"
POD = "hello-00002-deployment-1"
LOG = [
    "INFO:     Started server process [42]",
    '{"time": "2026-12-03T10:00:00Z", "level": "info", "msg": "ready", "port": 8080}',
    '{"time": "2026-12-03T10:00:01Z", "level": "warning", "msg": "slow request",'
    ' "path": "/orders", "ms": 812}',
    "ERROR:    Exception in ASGI application",
    "Traceback (most recent call last):",
    '  File "app.py", line 3, in handler',
    "DEBUG:    ping",
]
T = TypeVar("T")


class Logs:
    """A PodLogSource: the Pod's container printed ``LOG`` and ended."""

    def read(self, namespace: str, pod: str, query: LogQuery) -> bytes:
        return b""

    async def follow(self, namespace: str, pod: str, query: LogQuery) -> AsyncIterator[bytes]:
        if pod != POD:
            raise NotFoundError(f'pods "{pod}" not found')
        for line in LOG:
            yield (line + "\n").encode()


@dataclass
class Hosted:
    url: str
    store: Store


def _add_pod(store: Store) -> None:
    store.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": POD,
                "namespace": "default",
                "labels": {"serving.knative.dev/revision": "hello-00002"},
            },
            "spec": {"containers": [{"name": "user-container", "image": "x"}]},
        }
    )


def _add_function(store: Store, root: Path) -> None:
    """The Service `wonderland func deploy` makes of a cloudevents function in ``root``."""
    container = {"image": "dev.local/fn:latest", "args": ["--invoke", "cloudevent", str(root)]}
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
            "spec": {"template": {"spec": {"containers": [container]}}},
        },
        {"conditions": ready(), "url": "http://fn.default.127.0.0.1.sslip.io"},
    )


@pytest.fixture
def hosted(tmp_path: Path) -> Iterator[Hosted]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

    store = open_store(tmp_path / "state")
    _add_pod(store)
    add_ready_model(store, "flowers")
    root = tmp_path / "fn"
    create_function(root, template="cloudevents", name="fn")
    _add_function(store, root)
    replica = asgi_replica(load_function(root, invoke="cloudevent").app)
    port = call(replica.__aenter__())
    client = GatewayModelClient(lambda: f"http://127.0.0.1:{port}")
    m = metrics()
    logs = Logs()
    server = ConsoleServer(
        store,
        lambda: TOKEN,
        HubMetrics(m.hub),
        poll_seconds=1,
        mlops=MlopsPages(store, logs=logs),  # the followed log, /logs/<namespace>/<pod>
    )
    sources = HubSources(m.hub, m.recorder.store)
    AppPages(server, sources, logs=logs, client=client, history_step=1).install()
    examples = FileExamples(tmp_path / "examples")
    ModelPages(server, sources, client, examples=examples, history_step=1).install()
    call(server.start())
    try:
        yield Hosted(server.status.url, store)
    finally:
        call(server.stop())
        call(replica.__aexit__(None, None, None))
        call(m.scraper.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        store.close()


def _sign_in(page: Any, url: str, path: str) -> None:
    page.goto(url + path)
    page.get_by_label("Platform token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()


def test_the_log_panel_filters_by_level_and_shows_json_fields(
    hosted: Hosted, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with chromium_page() as page:
        _sign_in(page, hosted.url, "/apps/default/hello")
        page.get_by_role("button", name="Follow user-container").click()
        lines = page.locator("#log-lines")
        expect(page.locator("#log-title")).to_contain_text("(ended)")
        expect(page.locator("#log-count")).to_have_text("7 lines")
        assert (lines.text_content() or "").splitlines() == LOG

        page.get_by_label("Show").select_option(label="warnings and errors")
        expect(page.locator("#log-count")).to_have_text("4 of 7 lines at warning or above")
        # the traceback's lines have the level of the ERROR line before them
        assert (lines.text_content() or "").splitlines() == LOG[2:6]

        page.get_by_label("JSON lines as fields").check()
        text = lines.text_content() or ""
        assert text.splitlines()[:3] == [
            "2026-12-03T10:00:01Z  WARNING  slow request",
            "    path: /orders",
            "    ms: 812",
        ]
        page.get_by_label("Show").select_option(label="errors only")
        expect(page.locator("#log-count")).to_have_text("3 of 7 lines at error or above")
        page.get_by_label("Show").select_option(label="every line")
        expect(lines).to_contain_text("ready\n    port: 8080")
        page.screenshot(path=str(tmp_path / "console-log-tools.png"), full_page=True)


def test_a_function_is_invoked_and_a_models_examples_are_kept(
    hosted: Hosted, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with chromium_page() as page:
        _sign_in(page, hosted.url, "/apps/default/fn")
        expect(page.get_by_label("a CloudEvent (binary mode)")).to_be_checked()
        page.get_by_label("CloudEvent type").fill("order.created")
        page.get_by_role("button", name="Invoke", exact=True).click()
        summary = page.locator("#invoke-summary")
        expect(summary).to_contain_text("HTTP 200 in")
        expect(summary).to_contain_text("CloudEvent id")
        expect(page.locator("#invoke-answer")).to_contain_text('"message": "OK"')
        expect(page.locator("#invoke-curl")).to_contain_text("-H 'ce-type: order.created'")
        expect(page.locator("#invoke-func")).to_contain_text("--type order.created")
        page.screenshot(path=str(tmp_path / "console-invoke.png"), full_page=True)

        page.goto(hosted.url + "/models/default/flowers")
        editor = page.get_by_label("V2 request (JSON)")
        original = editor.input_value()
        expect(page.locator("#examples-empty")).to_be_visible()
        page.get_by_label("Save the editor's request as").fill("zeros")
        page.get_by_role("button", name="Save example").click()
        expect(page.locator("#example-status")).to_have_text("Saved zeros.")
        expect(page.locator("#examples-list li")).to_have_count(1)
        expect(page.locator("#examples-empty")).to_be_hidden()
        editor.fill('{"inputs": []}')
        page.get_by_role("button", name=re.compile(r"^Put into the editor\s*: zeros$")).click()
        assert editor.input_value() == original
        page.get_by_label("Save the editor's request as").fill("bad/name")
        page.get_by_role("button", name="Save example").click()
        expect(page.locator("#example-status")).to_contain_text("Refused: example name")
        page.reload()  # kept by the daemon, not the page
        expect(page.locator("#examples-list li")).to_have_count(1)
        page.screenshot(path=str(tmp_path / "console-examples.png"), full_page=True)
        page.get_by_role("button", name=re.compile(r"^Delete\s+zeros$")).click()
        expect(page.locator("#examples-list li")).to_have_count(0)
        expect(page.locator("#examples-empty")).to_be_visible()
