"""The Traces pages: the daemon's TraceStore (in process) on the console's real server."""

from __future__ import annotations

import re
import time

from test_console_server import Console, console  # noqa: F401  (the server fixture)

from wonderland.console.trace_pages import AttributeFilter, TracePages, trace_page, traces
from wonderland.tracing.store import Span, TraceStore

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _store() -> TraceStore:
    store = TraceStore()
    now = time.time_ns()
    ms = 1_000_000
    store.add(
        [
            Span(
                TRACE,
                "a" * 16,
                "",
                "GET /",
                "SERVER",
                "gateway",
                now,
                now + 40 * ms,
                {"http.status_code": 200, "http.host": "hello.default"},
            ),
            Span(
                TRACE,
                "b" * 16,
                "a" * 16,
                "invoke orders",
                "CLIENT",
                "hello",
                now + 10 * ms,
                now + 30 * ms,
                {},
                "ERROR",
                "connection refused",
            ),
            Span(
                "1" * 32,
                "c" * 16,
                "",
                "POST /v1/infer",
                "SERVER",
                "iris",
                now + 50 * ms,
                now + 52 * ms,
            ),
        ]
    )
    return store


def test_traces_and_one_trace_as_a_waterfall() -> None:
    store = _store()
    page = traces(store)
    assert [t.name for t in page.traces] == ["POST /v1/infer", "GET /"]
    assert page.services == ["gateway", "hello", "iris"] and page.kept == 2
    assert [t.name for t in traces(store, "hello").traces] == ["GET /"]
    assert [t.errors for t in traces(store, errors_only=True).traces] == [1]
    found = trace_page(store, TRACE)
    assert found is not None and found.duration_ms == 40.0
    root, child = found.spans
    assert (root.depth, child.depth, child.offset_ms) == (0, 1, 10.0)
    assert (child.bar_x, child.bar_width) == (250, 500)  # 10..30 ms of 40 ms on 0..1000
    assert child.status == "ERROR" and child.status_message == "connection refused"
    assert ("http.status_code", "200") in root.attributes
    assert trace_page(store, "f" * 32) is None
    # by a span's attribute: its value as text, or only that it has it
    by = AttributeFilter.parse
    assert [t.name for t in traces(store, attribute=by("http.status_code=200")).traces] == ["GET /"]
    assert traces(store, attribute=by("http.status_code=500")).traces == []
    assert [t.name for t in traces(store, attribute=by("http.host")).traces] == ["GET /"]
    assert not traces(None).enabled
    assert not traces(store, recording=False).recording


async def test_traces_pages_on_the_server(console: Console) -> None:  # noqa: F811
    console.server.add_pages(TracePages(_store()))
    async with console.signed_in() as client:
        html = (await client.get("/traces")).text
        assert '<a href="/traces" aria-current="page">Traces</a>' in html
        assert f'href="/traces/{TRACE}">GET /</a>' in html and "⚠ 1" in html
        assert "2 shown of the 2 traces kept" in html and "traces-propagate" not in html
        only = (await client.get("/traces?service=iris")).text
        assert "POST /v1/infer" in only and f'data-trace="{TRACE}"' not in only
        one = (await client.get(f"/traces/{TRACE}")).text
        assert "invoke orders" in one and "✗ error: connection refused" in one
        assert '<rect x="250" y="0" width="500"' in one and "http.host" in one
        found = (await client.get("/traces?attr=http.host%3Dhello.default")).text
        assert f'data-trace="{TRACE}"' in found and 'data-trace="' + "1" * 32 not in found
        assert 'value="http.host=hello.default"' in found  # the filter as it was sent
        bad = await client.get("/traces?attr=%3Dx")
        assert bad.status_code == 400 and "names no attribute" in bad.text
        missing = await client.get("/traces/" + "f" * 32)
        assert missing.status_code == 404 and "pick one on the Traces page" in missing.text
        fragment = (await client.get("/traces?fragment=main")).text
        assert "<h1>Traces</h1>" in fragment and "<html" not in fragment


async def test_the_traces_of_one_service_revision_or_model(console: Console) -> None:  # noqa: F811
    from console_objects import _with_status, add_broken, add_service, ready

    add_service(console.store)  # hello, revisions hello-00001 and hello-00002
    add_broken(console.store)  # the InferenceService iris
    for kind, name, labels in (
        ("Service", "iris-predictor", {"serving.kserve.io/inferenceservice": "iris"}),
        ("Revision", "iris-predictor-00001", {"serving.knative.dev/service": "iris-predictor"}),
    ):
        body = {"template": {"spec": {"containers": [{"image": "m"}]}}}
        _with_status(
            console.store,
            {
                "apiVersion": "serving.knative.dev/v1",
                "kind": kind,
                "metadata": {"name": name, "namespace": "default", "labels": labels},
                "spec": body if kind == "Service" else body["template"]["spec"],
            },
            {"conditions": ready()},
        )
    store = TraceStore()
    now = time.time_ns()

    def gateway(trace: str, revision: str, namespace: str = "default") -> Span:
        attrs = {"knative.revision": revision, "k8s.namespace.name": namespace}
        return Span(trace, trace[:16], "", f"GET /{revision}", "SERVER", "wonderland-gateway",
                    now, now + 1_000_000, attrs)  # fmt: skip

    store.add(
        [
            gateway("1" * 32, "hello-00001"),
            gateway("2" * 32, "hello-00001", "other"),  # a namesake in another namespace
            gateway("3" * 32, "iris-predictor-00001"),
            Span("4" * 32, "4" * 16, "", "predict", "SERVER", "iris-predictor", now, now + 5),
        ]
    )
    console.server.add_pages(TracePages(store, objects=console.store))
    async with console.signed_in() as client:

        async def shown(query: str) -> set[str]:
            r = await client.get("/traces?" + query)
            assert r.status_code == 200, r.text
            return set(re.findall(r'data-trace="([0-9a-f]{32})"', r.text))

        assert await shown("namespace=default&ksvc=hello") == {"1" * 32}
        assert await shown("namespace=default&revision=hello-00001") == {"1" * 32}
        assert await shown("namespace=default&revision=hello-00002") == set()
        assert await shown("namespace=default&isvc=iris") == {"3" * 32, "4" * 32}
        # with an attribute too: both must hold (here, in different spans of the trace)
        assert await shown("namespace=default&isvc=iris&attr=knative.revision") == {"3" * 32}
        page = (await client.get("/traces?namespace=default&isvc=iris")).text
        assert "<h1>Traces of Model default/iris</h1>" in page
        assert 'href="/models/default/iris"' in page and "iris-predictor-00001" in page
        missing = await client.get("/traces?namespace=default&ksvc=nope")
        assert missing.status_code == 404 and "no Service default/nope" in missing.text
