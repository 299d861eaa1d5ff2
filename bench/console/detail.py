"""Console benchmark of the Service and InferenceService pages: server time per page.

A :class:`~wonderland.console.server.ConsoleServer` on a loopback socket over a real store
holding 100 Knative Services (two revisions each) and 20 InferenceServices, with a real
metrics history (a HistoryStore with the daemon's defaults, 10 s step and 24 h, read in
process as the daemon's console reads it; the monitoring endpoint's routes for the rest)
that has every revision's eleven series written for 24 hours. Measures, from an HTTP
client on the same machine, ``GET /apps/default/svc-050`` for the 5 m, 1 h and 24 h ranges, and
``GET /models/default/model-10``: p50/p95/p99 over N requests (issue 17's aim: p95 <= 50 ms
with 100 services) and the process's CPU time per request (server and client together:
less sensitive than wall time to other work on a shared machine), and the bytes of the page, its stylesheet and scripts on a first load.

Run: ``python bench/console/detail.py [--requests N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from seed_objects import seed_services

import wonderland.platform
from wonderland.console.app_pages import AppPages
from wonderland.console.model_pages import ModelPages
from wonderland.console.server import ConsoleServer
from wonderland.console.sources import GatewayModelClient, HubSources
from wonderland.console.views import HubMetrics
from wonderland.monitoring.history import HistoryStore, SeriesKey
from wonderland.monitoring.history_api import HistoryApi
from wonderland.monitoring.hub import MetricsHub
from wonderland.monitoring.recorder import MetricsRecorder
from wonderland.monitoring.scrape import MetricsScraper
from wonderland.store import Store

TOKEN = "bench-token"
STEP = 10.0
HOURS = 24
SERIES = (  # what the daemon keeps of a serving revision that answered some 4xx
    "request_rate",
    "error_rate",
    "rate_4xx",
    "concurrency_stable",
    "concurrency_panic",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "replicas",
    "desired_replicas",
    "cold_starts",
)


def _seed(store: Store) -> list[str]:
    with store.transaction():
        revisions = seed_services(store)
        for i in range(20):
            store.create(
                {
                    "apiVersion": "serving.kserve.io/v1beta1",
                    "kind": "InferenceService",
                    "metadata": {"name": f"model-{i:02d}", "namespace": "default"},
                    "spec": {
                        "predictor": {
                            "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "file:///m"}
                        }
                    },
                }
            )
        for i in range(200):
            store.create(
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": f"ev-{i:03d}", "namespace": "default"},
                    "involvedObject": {"kind": "Service", "name": f"svc-{i % 100:03d}"},
                    "reason": "Created",
                    "message": "created",
                    "type": "Normal",
                    "lastTimestamp": f"2026-12-03T07:{i // 60:02d}:{i % 60:02d}Z",
                }
            )
    return revisions


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(name: str, ms: list[float]) -> str:
    return (
        f"{name:<44} p50 {statistics.median(ms):6.2f} ms  p95 {_pct(ms, 0.95):6.2f} ms  "
        f"p99 {_pct(ms, 0.99):6.2f} ms  (n={len(ms)})"
    )


async def _run(requests: int) -> None:
    for name in wonderland.platform.PLUGINS:
        importlib.import_module(name)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp))
        revisions = _seed(store)
        # the daemon's defaults (10 s step, 24 h), room for every revision's series
        history = HistoryStore(step=STEP, max_series=len(revisions) * len(SERIES))
        now = time.time()
        keys = [SeriesKey("revisions", "default", r, s) for r in revisions for s in SERIES]
        for back in range(HOURS * 3600, 0, -int(STEP)):
            history.write(now - back, [(k, 1.0) for k in keys])
        scraper = MetricsScraper(lambda: [], None, lambda: "daemon")
        recorder = MetricsRecorder(scraper, history, None, interval=STEP)
        hub = MetricsHub()
        HistoryApi(recorder).install(hub)
        server = ConsoleServer(store, lambda: TOKEN, HubMetrics(hub))
        sources = HubSources(hub, history)
        AppPages(server, sources, history_step=STEP).install()
        ModelPages(server, sources, GatewayModelClient(lambda: None), history_step=STEP).install()
        await server.start()
        url = server.status.url
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                r = await client.post("/signin", data={"token": TOKEN}, headers={"origin": url})
                assert r.status_code == 303, r.text
                first = 0
                for path in (
                    "/apps/default/svc-050",
                    "/static/console.css",
                    "/static/console.js",
                    "/static/detail.js",
                    "/static/vendor/uplot.iife.min.js",
                    "/static/vendor/uplot.min.css",
                ):
                    first += len((await client.get(path)).content)
                print(f"first load of a Service page (page + css + scripts): {first / 1024:.1f} KB")
                for path in (
                    "/apps/default/svc-050?range=5m",
                    "/apps/default/svc-050?range=1h",
                    "/apps/default/svc-050?range=24h",
                    "/models/default/model-10",
                ):
                    await client.get(path)  # templates compiled
                    times: list[float] = []
                    size = 0
                    cpu = time.process_time()
                    for _ in range(requests):
                        start = time.perf_counter()
                        resp = await client.get(path)
                        times.append((time.perf_counter() - start) * 1000)
                        assert resp.status_code == 200, resp.text
                        size = len(resp.content)
                    cpu_ms = (time.process_time() - cpu) / requests * 1000
                    print(
                        _row(f"GET {path} ({size / 1024:.0f} KB)", times)
                        + f"  cpu {cpu_ms:.2f} ms/request (server and client)"
                    )
        finally:
            await server.stop()
            await scraper.close()
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(_run(args.requests))


if __name__ == "__main__":
    main()
