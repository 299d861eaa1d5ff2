"""The data the Overview and Apps pages show, from a real store and a real MetricsHub."""

from __future__ import annotations

from pathlib import Path

import orjson
from console_objects import add_broken, add_service

from wonderland.console.views import HubMetrics, apps, overview, summarize_traffic
from wonderland.monitoring.hub import HttpRequest, HttpResponse, MetricsHub
from wonderland.store import Store


def _store(tmp_path: Path) -> Store:
    import wonderland.platform

    for name in wonderland.platform.PLUGINS:
        __import__(name)
    return Store.open(tmp_path)


def test_overview_counts_unhealthy_and_newest_events_first(tmp_path: Path) -> None:
    store = _store(tmp_path)
    add_service(store)
    add_broken(store)
    page = overview(store)
    counts = {c.label: (c.total, c.unhealthy) for c in page.counts}
    assert counts["Services"] == (1, 0)
    assert counts["Revisions"] == (2, 0)
    assert counts["InferenceServices"] == (1, 1)
    assert counts["TrainJobs"] == (0, 0)
    assert [(u.kind, u.name, u.reason) for u in page.unhealthy] == [
        ("InferenceService", "iris", "ModelLoadFailed")
    ]
    assert [e.reason for e in page.events] == ["ModelLoadFailed", "Created"]
    assert page.events[0].type == "Warning" and page.events[0].count == 3
    assert page.events[0].object == "InferenceService/iris"
    assert page.resource_version == store.resource_version


async def test_apps_split_revisions_and_metrics_from_top(tmp_path: Path) -> None:
    store = _store(tmp_path)
    add_service(store)
    hub = MetricsHub()

    async def top(request: HttpRequest) -> HttpResponse:
        assert request.params()["kind"] == ["revisions"]
        body = {
            "kind": "revisions",
            "items": [
                {
                    "namespace": "default",
                    "name": "hello-00002",
                    "values": {
                        "request_rate": 4.5,
                        "latency_p50": 0.002,
                        "latency_p95": 0.01,
                        "latency_p99": 0.05,
                        "replicas": 1.0,
                    },
                }
            ],
        }
        return HttpResponse(200, orjson.dumps(body), "application/json")

    hub.add_route("/wonderland/v1/top", top)
    metrics = await HubMetrics(hub).top("revisions")
    page = apps(store, metrics)
    assert page.metrics_available
    (app,) = page.apps
    assert (app.name, app.ready.status, app.latest_ready) == ("hello", "True", "hello-00002")
    assert app.url == "http://hello.default.127.0.0.1.sslip.io"
    assert summarize_traffic(app.traffic) == "hello-00002 90%, hello-00001 10% (tag old)"
    newest, oldest = app.revisions
    assert (newest.name, newest.traffic, newest.image) == ("hello-00002", 90, "example/hello:2")
    assert (newest.request_rate, newest.latency_p95, newest.replicas) == (4.5, 0.01, 1.0)
    assert (oldest.name, oldest.traffic, oldest.request_rate) == ("hello-00001", 10, None)
    assert app.request_rate == 4.5


async def test_apps_without_metrics_history_and_by_namespace(tmp_path: Path) -> None:
    store = _store(tmp_path)
    add_service(store, "hello", "default")
    add_service(store, "other", "team")
    assert await HubMetrics(MetricsHub()).top("revisions") == {}
    page = apps(store, {}, "team")
    assert not page.metrics_available
    assert [a.name for a in page.apps] == ["other"]
    assert [a.name for a in apps(store, {}).apps] == ["hello", "other"]


def test_apps_pages_and_searches_building_only_the_page(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.transaction():
        for i in range(23):
            add_service(store, f"svc-{i:02d}", "default" if i % 2 else "team")
    page = apps(store, {}, per_page=10, page=3)
    assert (page.total, page.pages, page.page) == (23, 3, 3)
    # by namespace, then name: default holds the odd ones, team the even ones
    assert [a.name for a in page.apps] == ["svc-18", "svc-20", "svc-22"]
    assert [r.name for r in page.apps[0].revisions] == ["svc-18-00002", "svc-18-00001"]
    assert apps(store, {}, per_page=10, page=99).page == 3  # past the end: the last page
    found = apps(store, {}, query=" SVC-1", per_page=10)
    assert found.query == "SVC-1" and found.total == 10
    assert [a.name for a in apps(store, {}, "default", query="svc-1").apps] == [
        f"svc-{i}" for i in (11, 13, 15, 17, 19)
    ]
    assert apps(store, {}, query="nothing").apps == []
