"""Console benchmark: server time per page, bytes per first load, change-to-stream latency.

A :class:`~wonderland.console.server.ConsoleServer` on a loopback socket over a real store
holding 100 Knative Services (two revisions each, traffic split 90/10), 50 TrainJobs and
200 events, as issue 17 sizes it. Measures, from an HTTP client on the same machine:

- the server time of every page (Overview, Apps: its first and last page with a traffic
  form open and a search, Models, Objects, a kind's list, one object, Events, Apply,
  Training, Experiments, a Trial, the New Experiment form, the Registry without MLflow,
  Traces over a full store of 1000 traces and one Service's traces, field docs, and a
  dry-run ``POST /apply``), p50/p95/p99 over N requests (the
  issue's aim: p95 <= 50 ms);
- the bytes of each page's first load: the page and the stylesheets and scripts it links
  (aim <= 300 KB);
- the time from a store write to its ``change`` event on an open ``/live`` stream, p50/p95;
- with ``--browser`` (Debian's Chromium through Playwright): the time from a store write
  to the browser showing the new object on an open page (aim <= 250 ms), and the CPU the
  console's process spends while 5 consoles stay open and idle, against the same time with
  none open.

Run: ``python bench/console/run.py [--requests N] [--changes N] [--browser]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from seed_objects import seed_services

import wonderland.platform
from wonderland.console.server import ConsoleServer
from wonderland.console.trace_pages import TracePages
from wonderland.console.views import HubMetrics
from wonderland.monitoring.hub import MetricsHub
from wonderland.store import Store
from wonderland.tracing.store import Span, TraceStore

TOKEN = "bench-token"


def _seed(store: Store) -> None:
    with store.transaction():
        seed_services(store)
        for i in range(50):
            job = store.create(
                {
                    "apiVersion": "trainer.kubeflow.org/v1alpha1",
                    "kind": "TrainJob",
                    "metadata": {"name": f"job-{i:02d}", "namespace": "default"},
                    "spec": {"runtimeRef": {"name": "torch-distributed"}},
                }
            )
            job["status"] = {
                "trainerStatus": {
                    "progressPercentage": i * 2,
                    "estimatedRemainingSeconds": 600 - i,
                    "metrics": [
                        {"name": "loss", "value": "0.25"},
                        {"name": "accuracy", "value": "0.9"},
                    ],
                    "lastUpdatedTime": "2026-12-03T07:00:00Z",
                }
            }
            store.update_status(job)
        _seed_experiment(store)
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


def _traces(count: int = 1000) -> TraceStore:
    """A full trace store (the daemon keeps 1000): per trace, the gateway's span to one of
    the 200 revisions and the app's span under it."""
    traces = TraceStore()
    now = time.time_ns()
    for i in range(count):
        trace = f"{i:032x}"
        revision = f"svc-{i % 100:03d}-0000{1 + i % 2}"
        attrs = {"knative.revision": revision, "k8s.namespace.name": "default"}
        start = now + i * 1_000_000
        traces.add(
            [
                Span(trace, f"{i:016x}", "", "GET /", "SERVER", "wonderland-gateway",
                     start, start + 900_000, attrs),
                Span(trace, f"{i + 1:016x}", f"{i:016x}", "handle", "SERVER",
                     f"svc-{i % 100:03d}", start + 100_000, start + 800_000),
            ]
        )  # fmt: skip
    return traces


def _seed_experiment(store: Store, trials: int = 30) -> None:
    """One Katib Experiment with ``trials`` finished trials over two parameters."""
    template = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "training-container", "image": "x", "command": ["x"]}],
                }
            }
        },
    }
    objective = {"type": "minimize", "objectiveMetricName": "loss"}
    params = [
        {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
        {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
    ]
    store.create(
        {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Experiment",
            "metadata": {"name": "tune", "namespace": "default"},
            "spec": {
                "objective": objective,
                "algorithm": {"algorithmName": "random"},
                "parameters": params,
                "trialTemplate": {
                    "primaryContainerName": "training-container",
                    "trialParameters": [{"name": "lr", "reference": "lr"}],
                    "trialSpec": template,
                },
            },
        }
    )
    for i in range(trials):
        trial = store.create(
            {
                "apiVersion": "kubeflow.org/v1beta1",
                "kind": "Trial",
                "metadata": {
                    "name": f"tune-{i:02d}",
                    "namespace": "default",
                    "labels": {"katib.kubeflow.org/experiment": "tune"},
                },
                "spec": {
                    "objective": objective,
                    "parameterAssignments": [
                        {"name": "lr", "value": f"{i / trials:.3f}"},
                        {"name": "opt", "value": "sgd" if i % 2 else "adam"},
                    ],
                    "primaryContainerName": "training-container",
                    "runSpec": template,
                },
            }
        )
        loss = f"{abs(i / trials - 0.3):.4f}"
        trial["status"] = {
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "TrialSucceeded"}],
            "observation": {
                "metrics": [{"name": "loss", "min": loss, "max": loss, "latest": loss}]
            },
        }
        store.update_status(trial)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(name: str, ms: list[float]) -> str:
    return (
        f"{name:<28} p50 {statistics.median(ms):6.2f} ms  p95 {_pct(ms, 0.95):6.2f} ms  "
        f"p99 {_pct(ms, 0.99):6.2f} ms  (n={len(ms)})"
    )


PAGES = (
    "/",
    "/apps",
    "/apps?page=5&edit=default/svc-099",
    "/apps?q=svc-05",
    "/models",
    "/objects",
    "/objects/services.serving.knative.dev",
    "/object/services.serving.knative.dev/default/svc-000",
    "/events",
    "/apply",
    "/training",
    "/training/default/job-00",
    "/experiments",
    "/experiments/default/tune",
    "/experiments/new",
    "/trials/default/tune-00",
    "/registry",
    "/traces",
    "/traces?namespace=default&ksvc=svc-050",
    "/fields?apiVersion=serving.knative.dev/v1&kind=Service&field=spec.traffic",
)
ONE_DOC = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-dry\ndata:\n  k: v\n"
_ASSET = re.compile(r'(?:href|src)="(/static/[^"]+)"')


async def _first_load(client: httpx.AsyncClient, path: str) -> int:
    page = (await client.get(path)).content
    total = len(page)
    for asset in sorted(set(_ASSET.findall(page.decode()))):
        total += len((await client.get(asset)).content)
    return total


async def _run(requests: int, changes: int, browser: bool) -> None:
    for name in wonderland.platform.PLUGINS:
        importlib.import_module(name)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp))
        _seed(store)
        server = ConsoleServer(store, lambda: TOKEN, HubMetrics(MetricsHub()))
        server.add_pages(TracePages(_traces(), objects=store))
        await server.start()
        url = server.status.url
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                r = await client.post("/signin", data={"token": TOKEN}, headers={"origin": url})
                assert r.status_code == 303, r.text
                for path in PAGES:
                    first = await _first_load(client, path)
                    print(f"first load of {path} (page + linked css/js): {first / 1024:.1f} KB")
                for path in PAGES:
                    await client.get(path)  # templates compiled
                    times: list[float] = []
                    size = 0
                    for _ in range(requests):
                        start = time.perf_counter()
                        resp = await client.get(path)
                        times.append((time.perf_counter() - start) * 1000)
                        size = len(resp.content)
                    print(_row(f"GET {path} ({size / 1024:.0f} KB)", times))
                times = []
                form = {"yaml": ONE_DOC, "mode": "check"}
                for _ in range(requests):
                    start = time.perf_counter()
                    resp = await client.post("/apply", data=form, headers={"origin": url})
                    times.append((time.perf_counter() - start) * 1000)
                    assert resp.status_code == 200, resp.text
                print(_row("POST /apply (dry run)", times))
                latencies = await _changes(client, store, changes)
                print(_row("store write -> SSE change", latencies))
            if browser:
                await _browser(url, store, changes)
        finally:
            await server.stop()
            store.close()


async def _changes(client: httpx.AsyncClient, store: Store, count: int) -> list[float]:
    out: list[float] = []
    async with client.stream("GET", "/live") as resp:
        lines = resp.aiter_lines()
        async for line in lines:  # the hello message
            if line.startswith("event: hello"):
                break
        for i in range(count):
            start = time.perf_counter()
            obj: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"bench-{i}", "namespace": "default"},
                "data": {"k": "v"},
            }
            store.create(obj)
            async for line in lines:
                if line.startswith("event: change"):
                    out.append((time.perf_counter() - start) * 1000)
                    break
    return out


async def _browser(url: str, store: Store, changes: int, idle_seconds: float = 20.0) -> None:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True)
        try:
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(url + "/signin?next=/objects/configmaps")
            await page.fill("#token", TOKEN)
            await page.click("button[type=submit]")
            await page.wait_for_selector("#live-status:text('live')")
            out: list[float] = []
            for i in range(min(changes, 50)):
                name = f"shown-{i}"
                # the moment the name appears in the page, on the browser's clock (epoch ms,
                # the same clock as time.time() on this machine)
                await page.evaluate(
                    """name => { window.__seen = 0; const main = document.getElementById('main');
                    new MutationObserver((_, obs) => { if (main.textContent.includes(name)) {
                      window.__seen = Date.now(); obs.disconnect(); } })
                      .observe(main, {childList: true, subtree: true}); }""",
                    name,
                )
                start = time.time() * 1000
                store.create(
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": name, "namespace": "default"},
                        "data": {"k": "v"},
                    }
                )
                for _ in range(500):
                    seen = await page.evaluate("window.__seen")
                    if seen:
                        out.append(seen - start)
                        break
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.4)  # a quiet spell, as between a user's changes
            print(_row("store write -> shown in Chromium", out))
            await context.close()

            # CPU of this process (the console's server) with no console open, then 5 idle
            base = await _cpu_over(idle_seconds)
            contexts = []
            for _ in range(5):
                ctx = await browser.new_context()
                p = await ctx.new_page()
                await p.goto(url + "/signin?next=/")
                await p.fill("#token", TOKEN)
                await p.click("button[type=submit]")
                await p.wait_for_selector("#live-status:text('live')")
                contexts.append(ctx)
            busy = await _cpu_over(idle_seconds)
            print(
                f"console process CPU over {idle_seconds:.0f} s: none open {base:.2f}%, "
                f"5 Overviews open and idle {busy:.2f}% of one core"
            )
            for ctx in contexts:
                await ctx.close()
        finally:
            await browser.close()


async def _cpu_over(seconds: float) -> float:
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    return 100.0 * (time.process_time() - cpu) / (time.monotonic() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--browser", action="store_true", help="also measure in Chromium")
    args = parser.parse_args()
    asyncio.run(_run(args.requests, args.changes, args.browser))


if __name__ == "__main__":
    main()
