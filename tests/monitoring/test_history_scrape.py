"""The scrape loop against real HTTP targets, in process: a healthy replica is recorded,
every kind of failing one is marked down with its error and stops nothing, and the
monitoring endpoint answers /federate, top, history and targets (400 for bad input)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.daemon import free_port
from _support.servers import asgi_replica
from prometheus_client import CollectorRegistry, Gauge

from wonderland.monitoring.history import HistoryStore
from wonderland.monitoring.history_api import HistoryApi
from wonderland.monitoring.hub import MetricsHub
from wonderland.monitoring.recorder import MetricsRecorder
from wonderland.monitoring.scrape import MetricsScraper
from wonderland.monitoring.server import MonitoringServer
from wonderland.monitoring.targets import ScrapeTarget

REV = 'k8s_namespace_name="default",kn_revision_name="hello-00001"'


def _app(body: Any, status: int = 200, delay: float = 0.0) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if delay:
            await asyncio.sleep(delay)
        data = body() if callable(body) else body
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": data})

    return app


class Replica:
    """Knative's queue-proxy histogram, 10 more requests at each scrape."""

    def __init__(self) -> None:
        self.requests = 0

    def __call__(self) -> bytes:
        self.requests += 10
        n = self.requests
        lines = [
            f'kn_serving_invocation_duration_seconds_bucket{{{REV},http_response_status_code="200",le="0.1"}} {n}',
            f'kn_serving_invocation_duration_seconds_bucket{{{REV},http_response_status_code="200",le="+Inf"}} {n}',
            f'kn_serving_invocation_duration_seconds_count{{{REV},http_response_status_code="200"}} {n}',
            f'kn_serving_invocation_duration_seconds_count{{{REV},http_response_status_code="404"}} {n // 10}',
            f"kn_revision_pods_count{{{REV}}} 2",
            f"kn_revision_concurrency_stable{{{REV}}} 1.5",
        ]
        return ("\n".join(lines) + "\n").encode()


def _target(port: int, path: str = "/metrics") -> ScrapeTarget:
    return ScrapeTarget("pods", f"127.0.0.1:{port}", path, (("namespace", "default"),))


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[tuple[str, MetricsRecorder]]:
    registry = CollectorRegistry()
    Gauge(
        "wonderland_trainjob_progress_percentage", "", ["namespace", "trainjob"], registry=registry
    ).labels("default", "train-1").set(40)
    async with (
        asgi_replica(_app(Replica())) as good,
        asgi_replica(_app(b"this is { not metrics\n")) as garbage,
        asgi_replica(_app(b"x" * 5000)) as huge,
        asgi_replica(_app(b"gone", status=404)) as missing,
        asgi_replica(_app(b"up 1\n", delay=3)) as slow,
    ):
        refused = free_port()
        targets = [_target(p) for p in (good, garbage, huge, missing, slow, refused)]
        scraper = MetricsScraper(
            lambda: targets, registry, lambda: "127.0.0.1:9", timeout=0.5, max_bytes=1000
        )
        recorder = MetricsRecorder(
            scraper, HistoryStore(step=1, slots=600), tmp_path / "history.npz", interval=1
        )
        hub = MetricsHub()
        HistoryApi(recorder).install(hub)
        server = MonitoringServer(hub, "127.0.0.1", 0)
        await server.start()
        try:
            for _ in range(3):
                await recorder.round()
                await asyncio.sleep(1.0)  # the next round lands in the next 1 s slot
            yield server.url, recorder
        finally:
            await server.stop()
            await scraper.close()


async def test_failing_targets_are_down_with_their_error_and_the_rest_is_recorded(
    endpoint: tuple[str, MetricsRecorder],
) -> None:
    url, _ = endpoint
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        answer = (await client.get("/wonderland/v1/targets")).json()
        by_port = {t["scrapeUrl"].split(":")[2].split("/")[0]: t for t in answer["targets"]}
        assert answer["scrapeInterval"] == 1
        health = sorted((t["health"], t["lastError"]) for t in answer["targets"])
        errors = " | ".join(e for _, e in health)
        assert [h for h, _ in health].count("up") == 2  # the replica and the registry
        assert "not the Prometheus text format" in errors
        assert "over 1000 bytes" in errors
        assert "answered 404" in errors
        assert "timed out after 0.5s" in errors
        assert sum(h == "down" for h, _ in health) == 5
        assert all(t["lastScrape"] for t in by_port.values())

        top = (await client.get("/wonderland/v1/top", params={"kind": "revisions"})).json()
        (row,) = top["items"]
        assert (row["namespace"], row["name"]) == ("default", "hello-00001")
        # 11 requests per round over the round's length (a sleep of 1 s plus the timeouts)
        assert 0 < row["values"]["request_rate"] <= 11
        # the status classes and autoscaler windows are history for charts, not columns
        assert "rate_4xx" not in top["columns"] and "concurrency_stable" not in row["values"]
        assert row["values"]["replicas"] == 2
        assert row["values"]["latency_p99"] == pytest.approx(0.099)
        jobs = (await client.get("/wonderland/v1/top", params={"kind": "jobs"})).json()
        assert [(i["name"], i["values"]["progress"]) for i in jobs["items"]] == [("train-1", 40)]

        history = await client.get(
            "/wonderland/v1/history",
            params={"kind": "revisions", "name": "hello-00001", "since": "1m"},
        )
        assert history.status_code == 200
        series = history.json()["series"]
        assert {"request_rate", "replicas", "latency_p50", "rate_4xx"} <= set(series)
        assert [v for _, v in series["concurrency_stable"] if v is not None] == [1.5] * 3
        assert [v for _, v in series["replicas"] if v is not None] == [2, 2, 2]


async def test_federate_serves_matching_series_with_job_and_instance(
    endpoint: tuple[str, MetricsRecorder],
) -> None:
    url, _ = endpoint
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        answer = await client.get(
            "/federate",
            params=[
                ("match[]", 'kn_revision_pods_count{kn_revision_name=~"hello-.*"}'),
                ("match[]", '{__name__="wonderland_trainjob_progress_percentage"}'),
            ],
        )
        assert answer.status_code == 200
        lines = answer.text.splitlines()
        assert "# TYPE kn_revision_pods_count untyped" in lines
        (pods,) = [line for line in lines if line.startswith("kn_revision_pods_count{")]
        assert 'job="pods"' in pods and 'namespace="default"' in pods
        assert 'instance="127.0.0.1:' in pods and " 2.0 " not in pods and " 2 " in pods
        (progress,) = [line for line in lines if line.startswith("wonderland_trainjob_progress")]
        assert 'job="wonderland",' in progress and 'instance="127.0.0.1:9"' in progress
        up = await client.get("/federate", params={"match[]": 'up{job="pods"}'})
        values = sorted(line.split()[1] for line in up.text.splitlines() if line[0] != "#")
        assert values == ["0", "0", "0", "0", "0", "1"]  # one replica answers, five do not
        none = await client.get("/federate", params={"match[]": 'up{job="nothing"}'})
        assert none.status_code == 200 and none.text == ""
        for bad in ('up{job="pods"', "{}", 'up{job=~"["}'):
            answer = await client.get("/federate", params={"match[]": bad})
            assert answer.status_code == 400, bad
            assert "selector" in answer.json()["error"]


BAD_HISTORY = [
    ({"kind": "pods", "name": "x"}, "kind='pods' is not one of revisions"),
    ({"kind": "revisions"}, "name is missing"),
    ({"kind": "revisions", "name": "hello-00001", "series": "nope"}, "series='nope'"),
    ({"kind": "revisions", "name": "hello-00001", "since": "soon"}, "since='soon'"),
    ({"kind": "revisions", "name": "hello-00001", "step": "0.5"}, "below the history's"),
    ({"kind": "revisions", "name": "hello-00001", "since": "30d"}, "more than 11000"),
    ({"kind": "revisions", "name": "hello-00001", "step": "1", "since": ["1m", "2m"]}, "once"),
]


async def test_bad_history_parameters_are_a_400_that_names_them(
    endpoint: tuple[str, MetricsRecorder],
) -> None:
    url, _ = endpoint
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for params, says in BAD_HISTORY:
            answer = await client.get("/wonderland/v1/history", params=params)
            assert answer.status_code == 400, params
            assert says in answer.json()["error"], (params, answer.text)
        missing = await client.get(
            "/wonderland/v1/history", params={"kind": "models", "name": "iris"}
        )
        assert missing.status_code == 404
        assert "no history of models 'iris'" in missing.json()["error"]
