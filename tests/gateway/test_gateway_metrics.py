"""The gateway's Knative metrics (queue-proxy and activator names, OpenTelemetry and legacy,
and the cold-start ones) after real requests through the gateway to real replicas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from _support.daemon import wait_until
from _support.servers import asgi_replica
from prometheus_client.parser import text_string_to_metric_families

from wonderland.errors import ConfigError
from wonderland.gateway import GatewayServer, HostRoute, RoutingTable
from wonderland.settings import Settings

HOST = {"Host": "hello.default.127.0.0.1.sslip.io"}
KN = {
    "k8s_namespace_name": "default",
    "kn_service_name": "hello",
    "kn_configuration_name": "hello",
    "kn_revision_name": "hello-00001",
}


async def status_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/<code>`` answers that status; anything else 200."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    tail = scope["path"].strip("/")
    code = int(tail) if tail.isdigit() else 200
    await send({"type": "http.response.start", "status": code, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@contextlib.asynccontextmanager
async def gateway(table: RoutingTable, legacy: bool = True) -> AsyncIterator[str]:
    gw = GatewayServer(table, port=0, legacy_metrics=legacy)
    await gw.start()
    try:
        yield f"http://127.0.0.1:{gw.port}"
    finally:
        await gw.stop()


def route(table: RoutingTable) -> None:
    target = table.revision("default", "hello-00001")
    target.service = target.configuration = "hello"
    table.set_route("default/hello", {HOST["Host"]: HostRoute("default/hello", [(target, 100)])})


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample by its name, parsed as Prometheus parses the exposition."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for ls, v in found.get(name, []) if labels.items() <= ls.items())


async def test_request_metrics_count_every_request_with_knative_labels() -> None:
    table = RoutingTable()
    route(table)
    async with asgi_replica(status_app) as port, gateway(table) as url:
        table.revisions["default/hello-00001"].set_endpoints([("127.0.0.1", port, "hello-pod-a")])
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for _ in range(7):
                assert (await client.get("/", headers=HOST)).status_code == 200
            for _ in range(3):
                assert (await client.get("/404", headers=HOST)).status_code == 404
            text = (await client.get("/metrics")).text
    found = samples(text)
    name = "kn_serving_invocation_duration_seconds"
    assert value(found, f"{name}_count", **KN) == 10
    assert value(found, f"{name}_count", http_response_status_code="200") == 7
    assert value(found, f"{name}_count", http_response_status_code="404") == 3
    ok = [ls for ls, _ in found[f"{name}_count"] if ls["http_response_status_code"] == "200"]
    assert ok == [
        {
            **KN,
            "k8s_pod_name": "hello-pod-a",
            "container_name": "queue-proxy",
            "http_response_status_code": "200",
        }
    ]
    buckets = {
        ls["le"]: v for ls, v in found[f"{name}_bucket"] if ls["http_response_status_code"] == "200"
    }
    assert next(iter(buckets)) == "0.005" and buckets["10.0"] <= buckets["+Inf"] == 7
    assert 0 < value(found, f"{name}_sum", **KN) < 10 * 5  # seconds, not milliseconds
    assert value(found, "kn_serving_queue_depth", **KN) == 0
    assert value(found, "kn_revision_request_concurrency", **KN) == 0
    assert value(found, "faas_coldstarts_total", **KN) == 0
    # the legacy (OpenCensus) names, as its exporter wrote them; the parser (as Prometheus
    # does) reads a counter sample without the suffix as <name>_total
    legacy = {"namespace_name": "default", "service_name": "hello", "revision_name": "hello-00001"}
    assert value(found, "revision_request_count_total", **legacy) == 10
    assert value(found, "revision_request_count_total", response_code_class="4xx") == 3
    assert value(found, "revision_app_request_count_total", pod_name="hello-pod-a") == 10
    assert value(found, "activator_request_count_total", response_code="200") == 7
    assert value(found, "revision_request_latencies_count", **legacy) == 10
    assert "# TYPE revision_request_count counter" in text
    assert (
        'revision_request_count{configuration_name="hello",container_name="queue-proxy",'
        'namespace_name="default",pod_name="hello-pod-a",response_code="200",'
        'response_code_class="2xx",revision_name="hello-00001",service_name="hello"} 7\n'
    ) in text  # as the Go exporter wrote it: sorted labels, no _total, integer values
    assert (
        "revision_request_count_total" not in text and "activator_request_count_total" not in text
    )
    assert "revision_request_latencies_bucket{" in text and ',le="5"}' in text
    assert "# TYPE revision_queue_depth gauge" in text


async def test_legacy_switch_removes_the_legacy_names() -> None:
    table = RoutingTable()
    route(table)
    async with asgi_replica(status_app) as port, gateway(table, legacy=False) as url:
        table.revisions["default/hello-00001"].set_endpoints([("127.0.0.1", port, "r1")])
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await client.get("/", headers=HOST)).status_code == 200
            text = (await client.get("/metrics")).text
    found = samples(text)
    assert value(found, "kn_serving_invocation_duration_seconds_count", **KN) == 1
    for legacy in (
        "revision_request_count",
        "revision_request_latencies",
        "activator_request_count",
        "activator_request_concurrency",
        "revision_queue_depth",
    ):
        assert legacy not in text


async def test_a_cold_start_counts_once_and_times_the_held_requests() -> None:
    table = RoutingTable()
    route(table)
    target = table.revisions["default/hello-00001"]
    async with gateway(table) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        held = asyncio.gather(*(client.get("/", headers=HOST) for _ in range(4)))
        await wait_until(lambda: len(target.waiters) == 4, 30, "4 held requests")
        mid = samples((await client.get("/metrics")).text)
        assert value(mid, "kn_serving_queue_depth", **KN) == 4
        assert value(mid, "kn_revision_request_concurrency", **KN) == 4
        await asyncio.sleep(0.2)  # the replica takes a while to come up
        async with asgi_replica(status_app) as port:
            target.set_endpoints([("127.0.0.1", port, "r1")])
            assert [r.status_code for r in await held] == [200] * 4
            assert (await client.get("/", headers=HOST)).status_code == 200  # warm now
            text = (await client.get("/metrics")).text
    found = samples(text)
    assert value(found, "faas_coldstarts_total", **KN) == 1
    assert value(found, "faas_init_duration_seconds_count", **KN) == 1
    assert value(found, "faas_init_duration_seconds_sum", **KN) >= 0.2
    waits = "wonderland_activator_buffer_wait_seconds"
    assert value(found, f"{waits}_count", **KN) == 4  # the warm request was not held
    assert value(found, f"{waits}_sum", **KN) >= 4 * 0.2
    assert value(found, "kn_serving_invocation_duration_seconds_count", **KN) == 5
    assert "wonderland_revision_cold_start_seconds" not in text


async def test_gateway_answers_are_counted_with_their_status() -> None:
    table = RoutingTable()
    route(table)
    target = table.revisions["default/hello-00001"]
    target.timeout = 1.0
    async with gateway(table) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        r = await client.get("/", headers=HOST)  # no replica comes: 504 after timeoutSeconds
        assert r.status_code == 504
        text = (await client.get("/metrics")).text
    found = samples(text)
    assert (
        value(
            found, "kn_serving_invocation_duration_seconds_count", http_response_status_code="504"
        )
        == 1
    )
    assert value(found, "revision_request_count_total", response_code_class="5xx") == 1
    assert value(found, "revision_app_request_count_total") == 0


async def test_a_gone_replicas_series_go_after_one_last_read_and_totals_stay() -> None:
    table = RoutingTable()
    route(table)
    target = table.revisions["default/hello-00001"]
    async with (
        asgi_replica(status_app) as p1,
        asgi_replica(status_app) as p2,
        gateway(table) as url,
    ):
        target.set_endpoints([("127.0.0.1", p1, "pod-old")])
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for _ in range(3):
                assert (await client.get("/", headers=HOST)).status_code == 200
            target.set_endpoints([("127.0.0.1", p2, "pod-new")])
            for _ in range(2):
                assert (await client.get("/", headers=HOST)).status_code == 200
            last = samples((await client.get("/metrics")).text)
            later = samples((await client.get("/metrics")).text)
    name = "kn_serving_invocation_duration_seconds_count"
    assert value(last, name, k8s_pod_name="pod-old") == 3  # read once more after it went
    assert value(later, name, k8s_pod_name="pod-old") == 0
    assert not [ls for ls, _ in later[name] if ls["k8s_pod_name"] == "pod-old"]
    assert value(later, name, k8s_pod_name="pod-new") == 2
    # the activator's counter (one per revision) never goes down
    assert value(later, "activator_request_count_total", response_code="200") == 5
    assert value(later, "activator_request_latencies_count", response_code="200") == 5


async def test_http2_clients_are_counted_too() -> None:
    table = RoutingTable()
    route(table)
    async with asgi_replica(status_app) as port, gateway(table) as url:
        table.revisions["default/hello-00001"].set_endpoints([("127.0.0.1", port, "r1")])
        async with httpx.AsyncClient(base_url=url, timeout=30, http1=False, http2=True) as h2:
            for path in ("/", "/", "/503"):
                r = await h2.get(path, headers=HOST)
                assert r.http_version == "HTTP/2"
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            text = (await client.get("/metrics")).text
    found = samples(text)
    name = "kn_serving_invocation_duration_seconds_count"
    assert value(found, name, http_response_status_code="200", k8s_pod_name="r1") == 2
    assert value(found, name, http_response_status_code="503", k8s_pod_name="r1") == 1


def test_the_legacy_setting_takes_on_or_off_and_says_so() -> None:
    assert Settings.from_env({}).metrics_legacy == "on"
    assert Settings.from_env({"WONDERLAND_METRICS_LEGACY": "off"}).metrics_legacy == "off"
    with pytest.raises(ConfigError, match='WONDERLAND_METRICS_LEGACY="no" must be on or off'):
        Settings.from_env({"WONDERLAND_METRICS_LEGACY": "no"})
