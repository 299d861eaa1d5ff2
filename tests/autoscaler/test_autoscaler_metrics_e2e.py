"""The autoscaler's and the gateway's Knative metrics through a real `wonderland up`
daemon, scraped where Prometheus scrapes them (``<home>/monitoring/targets.json``):
pods follow a load up and back to zero, request counts match what was sent, a cold start
counts once, and WONDERLAND_METRICS_LEGACY=off drops the legacy names."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _support.daemon import READY_TIMEOUT, WonderlandDaemon, daemon_env, wait_for, wait_until
from _support.manifests import SHORT_AUTOSCALER
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APP = str(Path(__file__).parent.parent / "runtime" / "runtime_app.py")
DOMAIN = "127.0.0.1.sslip.io"
MANIFESTS = f"""
{SHORT_AUTOSCALER}---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: busy
  namespace: default
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/target: "1"
        autoscaling.knative.dev/max-scale: "3"
    spec:
      containers:
        - image: runtime-app
          command: ["{sys.executable}", "{APP}"]
"""
REV = {
    "k8s_namespace_name": "default",
    "kn_service_name": "busy",
    "kn_configuration_name": "busy",
    "kn_revision_name": "busy-00001",
}
LEGACY = {
    "namespace_name": "default",
    "service_name": "busy",
    "configuration_name": "busy",
    "revision_name": "busy-00001",
}
HOST = {"Host": f"busy.default.{DOMAIN}"}
Samples = dict[str, list[tuple[dict[str, str], float]]]


def start(tmp: Path, **env: str) -> WonderlandDaemon:
    manifests = tmp / "manifests.yaml"
    manifests.write_text(MANIFESTS)
    d = WonderlandDaemon(tmp / "home", daemon_env(tmp, **env), tmp / "daemon.log")
    return d.start("-f", str(manifests))


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[WonderlandDaemon]:
    d = start(tmp_path)
    try:
        yield d
    finally:
        d.stop()


def gateway_target(d: WonderlandDaemon) -> str:
    """The gateway's /metrics URL as targets.json gives it to Prometheus."""
    path = d.home / "monitoring" / "targets.json"

    def listed() -> str:
        if not path.exists():
            return ""
        for group in json.loads(path.read_text() or "[]"):
            if group["labels"].get("component") == "gateway":
                return f"http://{group['targets'][0]}{group['labels']['__metrics_path__']}"
        return ""

    url: str = wait_for(listed, READY_TIMEOUT, "the gateway in targets.json")
    return url


def scrape(url: str) -> tuple[str, Samples]:
    """One scrape, as Prometheus would make it, parsed."""
    text = httpx.get(url, timeout=30).text
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return text, out


def value(found: Samples, name: str, **labels: str) -> float:
    return sum(v for ls, v in found.get(name, []) if labels.items() <= ls.items())


async def ready(client: httpx.AsyncClient) -> None:
    async def answers() -> bool:
        return (await client.get("/", headers=HOST)).status_code == 200

    await wait_until(answers, READY_TIMEOUT, "busy to answer", interval=0.2)


async def test_pods_follow_load_up_and_down_to_zero_and_requests_are_counted(
    daemon: WonderlandDaemon,
) -> None:
    url = gateway_target(daemon)
    assert url == daemon.gateway + "/metrics"
    async with httpx.AsyncClient(base_url=daemon.gateway, timeout=60) as client:
        await ready(client)
        _, before = scrape(url)
        counted = "kn_serving_invocation_duration_seconds_count"
        start_count = value(before, counted, **REV)
        start_legacy = value(before, "activator_request_count_total", **LEGACY)
        sent = 0
        stop = asyncio.Event()

        async def load() -> None:
            nonlocal sent
            while not stop.is_set():
                r = await client.get("/sleep/0.5", headers=HOST)
                assert r.status_code == 200
                sent += 1

        workers = [asyncio.create_task(load()) for _ in range(4)]
        try:
            found = await wait_until(
                lambda: (
                    (f := scrape(url)[1]) and value(f, "kn_revision_pods_desired", **REV) >= 2 and f
                ),
                60,
                "kn_revision_pods_desired to rise above 1",
                interval=0.5,
            )
            stable = value(found, "kn_revision_concurrency_stable", **REV)
            assert stable > 0.5, stable
            assert value(found, "kn_revision_concurrency_target", **REV) == pytest.approx(0.7)
            assert value(found, "autoscaler_desired_pods", **LEGACY) >= 2
            assert value(found, "autoscaler_target_concurrency_per_pod", **LEGACY) == 0.7
            assert value(found, "kn_revision_pods_requested", **REV) >= 2
        finally:
            stop.set()
            await asyncio.gather(*workers)
        _, after = scrape(url)
        assert value(after, counted, **REV) - start_count == sent
        assert value(after, "activator_request_count_total", **LEGACY) - start_legacy == sent
        assert value(after, "kn_autoscaler_scrape_duration_seconds_count", **REV) > 0
        assert value(after, "kn_revision_pods_count", **REV) >= 1

        # idle: the stable window (6 s) and the grace period (1 s) take it to zero
        def at_zero() -> Samples | None:
            found = scrape(url)[1]
            desired = value(found, "kn_revision_pods_desired", **REV)
            ready = value(found, "kn_revision_pods_count", **REV)
            return found if desired == 0 and ready == 0 else None

        idle = await wait_until(at_zero, 90, "pods_desired back to zero", interval=0.5)
        assert value(idle, "autoscaler_actual_pods", **LEGACY) == 0
        colds = value(idle, "faas_coldstarts_total", **REV)

        # one request wakes it: one cold start, timed, its wait in the activator buffer
        waits = "wonderland_activator_buffer_wait_seconds_count"
        waited = value(idle, waits, **REV)
        assert (await client.get("/", headers=HOST)).status_code == 200
        _, woke = scrape(url)
        assert value(woke, "faas_coldstarts_total", **REV) == colds + 1
        assert value(woke, "faas_init_duration_seconds_count", **REV) == colds + 1
        assert value(woke, waits, **REV) == waited + 1
        assert value(woke, "kn_revision_pods_count", **REV) == 1
        assert value(woke, "kn_revision_pods_desired", **REV) >= 1


async def test_legacy_switch_off_keeps_only_the_opentelemetry_names(tmp_path: Path) -> None:
    d = start(tmp_path, WONDERLAND_METRICS_LEGACY="off")
    try:
        url = gateway_target(d)
        async with httpx.AsyncClient(base_url=d.gateway, timeout=60) as client:
            await ready(client)

            await wait_until(
                lambda: value(scrape(url)[1], "kn_revision_pods_desired", **REV) >= 1,
                30,
                "kn_revision_pods_desired",
                interval=0.5,
            )
            text, found = scrape(url)
        assert value(found, "kn_serving_invocation_duration_seconds_count", **REV) >= 1
        for name in (
            "revision_request_count",
            "activator_request_count",
            "autoscaler_desired_pods",
            "autoscaler_panic_mode",
            "revision_queue_depth",
        ):
            assert name not in text
    finally:
        d.stop()
