"""The sidecar's /metrics endpoint: daprd's names, tags and counts after real traffic."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from _support.daemon import wait_for
from dapr_testing import require_backend
from prometheus_client.parser import text_string_to_metric_families

from wonderland.dapr.metrics import DEFAULT_LATENCY_BUCKETS, SidecarMetrics, metrics_settings
from wonderland.dapr.sidecar import SidecarProcess

Sample = tuple[str, dict[str, str], float]

SUBSCRIPTIONS = [
    {"pubsubname": "pubsub", "topic": "orders", "route": "/orders"},
    {"pubsubname": "pubsub", "topic": "flaky", "route": "/fail-twice/flaky"},
    {"pubsubname": "pubsub", "topic": "dropme", "route": "/drop/x"},
]

EXTRA = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: redisstore}
spec:
  type: state.redis
  version: v1
  metadata:
  - {name: redisHost, value: "localhost:6379"}
  - {name: keyPrefix, value: "none"}
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: myresiliency}
spec:
  policies:
    retries:
      threetimes: {policy: constant, duration: 10ms, maxRetries: 3}
  targets:
    components:
      pubsub:
        inbound: {retry: threetimes}
"""

CONFIG = """
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: appconfig}
spec:
  metrics:
    enabled: true
    latencyDistributionBuckets: [5, 50, 500, 5000]
"""


def scrape(port: int) -> list[Sample]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    return [
        (s.name, dict(s.labels), s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    ]


def value(samples: list[Sample], metric: str, /, **labels: str) -> float:
    """The sum of ``metric`` over the series whose labels include ``labels``."""
    return sum(
        v
        for n, lab, v in samples
        if n == metric and all(lab.get(k) == x for k, x in labels.items())
    )


@pytest.fixture
def metered(
    sidecar_factory: Callable[..., SidecarProcess],
    resources: Callable[[str], Path],
    basic_resources: Path,
    app_factory: Callable[..., int],
    tmp_path: Path,
) -> Iterator[tuple[SidecarProcess, int]]:
    require_backend("redis")
    folder = resources(EXTRA)
    config = tmp_path / "appconfig.yaml"
    config.write_text(CONFIG)
    app = app_factory(subscriptions=SUBSCRIPTIONS)
    sc = sidecar_factory("meteredapp", resources_path=[folder], app_port=app, config=config)
    yield sc, app


@pytest.mark.e2e
def test_sidecar_metrics_after_real_traffic(
    metered: tuple[SidecarProcess, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    sc, _app = metered
    url = sc.http_url
    # state over HTTP (sqlite) and over gRPC with the Dapr SDK (redis)
    assert httpx.post(f"{url}/v1.0/state/statestore", json=[{"key": "k1", "value": 1}]).is_success
    assert httpx.get(f"{url}/v1.0/state/statestore/k1").json() == 1
    assert httpx.get(f"{url}/v1.0/state/statestore/k2").status_code == 204
    monkeypatch.setenv("DAPR_HTTP_PORT", str(sc.http_port))
    monkeypatch.setenv("DAPR_GRPC_PORT", str(sc.grpc_port))
    from dapr.clients import DaprClient

    with DaprClient() as client:
        client.save_state("redisstore", "metrics-k", "v")
        assert client.get_state("redisstore", "metrics-k").data == b"v"
        client.delete_state("redisstore", "metrics-k")
        # a server-streaming RPC is recorded when its stream ends (the SDK calls Alpha1)
        sub_id = client.subscribe_configuration("config", ["greeting"], lambda _i, _r: None)
        assert client.unsubscribe_configuration("config", sub_id)
        subscribe = "/dapr.proto.runtime.v1.Dapr/SubscribeConfigurationAlpha1"
        wait_for(
            lambda: (
                value(
                    scrape(sc.metrics_port),
                    "dapr_grpc_io_server_completed_rpcs",
                    grpc_server_method=subscribe,
                    grpc_server_status="OK",
                )
                == 1
            )
        )
    # pub/sub: publish, delivery, a retried delivery, a dropped one
    for topic in ("orders", "orders", "flaky", "dropme"):
        assert httpx.post(f"{url}/v1.0/publish/pubsub/{topic}", json={"t": topic}).is_success
    # invocation of the app, a configuration get, a secret get
    assert httpx.post(f"{url}/v1.0/invoke/meteredapp/method/echo/x", content=b"hi").is_success
    assert httpx.get(f"{url}/v1.0/configuration/config?key=greeting").is_success
    assert httpx.get(f"{url}/v1.0/secrets/localsecrets/conftestsecret").json() == {
        "conftestsecret": "abcd"
    }

    def delivered() -> list[Sample] | None:
        s = scrape(sc.metrics_port)
        done = value(s, "dapr_component_pubsub_ingress_count", topic="orders")
        flaky = value(
            s, "dapr_component_pubsub_ingress_count", topic="flaky", process_status="success"
        )
        drops = value(s, "dapr_component_pubsub_ingress_count", topic="dropme")
        return s if done == 2 and flaky == 1 and drops == 1 else None

    s = wait_for(delivered)
    app_id = {"app_id": "meteredapp"}
    # HTTP server: paths keep the store, drop the key (low cardinality)
    assert (
        value(
            s,
            "dapr_http_server_request_count",
            method="GET",
            path="/v1.0/state/statestore",
            **app_id,
        )
        == 2
    )
    assert (
        value(
            s,
            "dapr_http_server_response_count",
            method="GET",
            path="/v1.0/state/statestore",
            status="204",
        )
        == 1
    )
    assert value(s, "dapr_http_server_latency_count", path="/v1.0/publish/pubsub/orders") == 2
    assert value(s, "dapr_http_server_response_bytes_count", status="200") >= 1
    # the Configuration's buckets (milliseconds)
    les = {lab["le"] for n, lab, _v in s if n == "dapr_http_server_latency_bucket"}
    assert les == {"5", "50", "500", "5000", "+Inf"}
    # gRPC server (the SDK's calls)
    grpc_get = "/dapr.proto.runtime.v1.Dapr/GetState"
    assert (
        value(
            s,
            "dapr_grpc_io_server_completed_rpcs",
            grpc_server_method=grpc_get,
            grpc_server_status="OK",
        )
        == 1
    )
    assert value(s, "dapr_grpc_io_server_server_latency_count", grpc_server_method=grpc_get) == 1
    assert value(s, "dapr_grpc_io_server_received_bytes_per_rpc_count") >= 3
    # state: one record per operation, whichever API it came through
    state = {"component": "statestore", "namespace": "", "success": "true", **app_id}
    assert value(s, "dapr_component_state_count", operation="set", **state) == 1
    assert value(s, "dapr_component_state_count", operation="get", **state) == 2
    redis = {"component": "redisstore", "success": "true"}
    for op in ("set", "get", "delete"):
        assert value(s, "dapr_component_state_count", operation=op, **redis) == 1
        assert value(s, "dapr_component_state_latencies_count", operation=op, **redis) == 1
    # pub/sub egress and ingress with process_status
    assert (
        value(
            s,
            "dapr_component_pubsub_egress_count",
            component="pubsub",
            topic="orders",
            success="true",
        )
        == 2
    )
    assert (
        value(s, "dapr_component_pubsub_ingress_count", topic="orders", process_status="success")
        == 2
    )
    assert (
        value(s, "dapr_component_pubsub_ingress_count", topic="flaky", process_status="success")
        == 1
    )
    assert (
        value(s, "dapr_component_pubsub_ingress_count", topic="dropme", process_status="drop") == 1
    )
    # one ingress record per delivery attempt, as daprd: the two failed tries are retries
    assert (
        value(s, "dapr_component_pubsub_ingress_count", topic="flaky", process_status="retry") == 2
    )
    assert value(s, "dapr_component_pubsub_ingress_latencies_count", topic="orders") == 2
    # configuration and secrets
    assert (
        value(
            s,
            "dapr_component_configuration_count",
            component="config",
            operation="get",
            success="true",
        )
        == 1
    )
    assert (
        value(
            s,
            "dapr_component_secret_count",
            component="localsecrets",
            operation="get",
            success="true",
        )
        == 1
    )
    # Dapr -> app: invocation and deliveries (flaky: two failures, then success)
    assert value(s, "dapr_http_client_completed_count", method="POST", status="200") >= 5
    assert value(s, "dapr_http_client_completed_count", status="500") == 2
    assert value(s, "dapr_http_client_roundtrip_latency_count", method="POST") >= 7
    assert (
        value(s, "dapr_runtime_service_invocation_req_recv_total", source_app_id="meteredapp") == 1
    )
    assert value(s, "dapr_runtime_service_invocation_res_sent_total", status="200") == 1
    # runtime: the five components loaded and initialised
    assert value(s, "dapr_runtime_component_loaded", **app_id) == 5
    assert value(s, "dapr_runtime_component_init_total", component="state.redis") == 1
    assert value(s, "dapr_runtime_component_init_total", component="state.sqlite") == 1
    # resiliency: loaded, applied to each delivery, activated by the two retries
    res = {"name": "myresiliency", "flow_direction": "inbound", "target": "pubsub_pubsub"}
    assert value(s, "dapr_resiliency_loaded", name="myresiliency") == 1
    assert value(s, "dapr_resiliency_count", policy="retry", **res) == 4
    assert value(s, "dapr_resiliency_activations_total", policy="retry", **res) == 2


@pytest.mark.e2e
def test_invocation_between_sidecars_counts_both_sides(
    sidecar_factory: Callable[..., SidecarProcess],
    basic_resources: Path,
    app_factory: Callable[..., int],
) -> None:
    app = app_factory()
    callee = sidecar_factory("callee", resources_path=[basic_resources], app_port=app)
    caller = sidecar_factory("caller", resources_path=[basic_resources])
    r = httpx.post(f"{caller.http_url}/v1.0/invoke/callee/method/echo/hello", content=b"x")
    assert r.status_code == 200
    sent = scrape(caller.metrics_port)
    assert (
        value(sent, "dapr_runtime_service_invocation_req_sent_total", destination_app_id="callee")
        == 1
    )
    assert (
        value(
            sent,
            "dapr_runtime_service_invocation_res_recv_latency_ms_count",
            status="200",
            type="http",
        )
        == 1
    )
    got = scrape(callee.metrics_port)
    assert value(got, "dapr_runtime_service_invocation_req_recv_total", source_app_id="caller") == 1
    assert value(got, "dapr_http_server_request_count", path="/v1.0/invoke/callee/method") == 1


@pytest.mark.e2e
def test_enable_metrics_false_serves_no_endpoint(
    sidecar_factory: Callable[..., SidecarProcess], basic_resources: Path
) -> None:
    sc = sidecar_factory(
        "quiet", resources_path=[basic_resources], extra_args=["--enable-metrics=false"]
    )
    assert httpx.post(
        f"{sc.http_url}/v1.0/state/statestore", json=[{"key": "a", "value": 1}]
    ).is_success
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{sc.metrics_port}/metrics", timeout=5)


@pytest.mark.e2e
def test_configuration_can_turn_metrics_off(
    sidecar_factory: Callable[..., SidecarProcess], basic_resources: Path, tmp_path: Path
) -> None:
    config = tmp_path / "off.yaml"
    config.write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: off}\n"
        "spec: {metrics: {enabled: false}}\n"
    )
    sc = sidecar_factory("off", resources_path=[basic_resources], config=config)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{sc.metrics_port}/metrics", timeout=5)


def test_settings_from_configuration() -> None:
    assert metrics_settings(None).buckets == DEFAULT_LATENCY_BUCKETS
    s = metrics_settings(
        {"metrics": {"latencyDistributionBuckets": [10, 1], "http": {"increasedCardinality": True}}}
    )
    assert s.buckets == (1.0, 10.0) and s.increased_cardinality
    from wonderland.dapr.errors import ResourceError

    with pytest.raises(ResourceError, match="latencyDistributionBuckets"):
        metrics_settings({"metrics": {"latencyDistributionBuckets": ["x"]}}, "c.yaml")


def test_path_label_cardinality_rules() -> None:
    low = SidecarMetrics("a", settings=metrics_settings({}))
    assert low.path("/v1.0/state/store/key-123") == "/v1.0/state/store"
    assert low.path("/v1.0/invoke/app/method/orders/17") == "/v1.0/invoke/app/method"
    assert low.path("/orders/17") == ""
    matched = SidecarMetrics(
        "a", settings=metrics_settings({"metrics": {"http": {"pathMatching": ["/orders/{id}"]}}})
    )
    assert matched.path("/orders/17") == "/orders/{id}"
    high = SidecarMetrics(
        "a", settings=metrics_settings({"metrics": {"http": {"increasedCardinality": True}}})
    )
    assert high.path("/orders/17") == "/orders/17"


async def test_circuit_breaker_state_changes_are_recorded() -> None:
    from wonderland.dapr.resiliency import ResiliencyEngine

    metrics = SidecarMetrics("cbapp", "prod")
    spec = {
        "policies": {
            "circuitBreakers": {"cb": {"trip": "consecutiveFailures > 1", "timeout": "60s"}}
        },
        "targets": {"apps": {"backend": {"circuitBreaker": "cb"}}},
    }
    policy = ResiliencyEngine([spec], ["myres"], metrics).app("backend")

    async def fail() -> None:
        raise OSError("down")

    for _ in range(2):
        with pytest.raises(OSError):
            await policy.run(fail)
    text = metrics.render().decode()
    samples = [
        (s.name, dict(s.labels), s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    ]
    where = {"name": "myres", "target": "app_backend", "flow_direction": "outbound"}
    assert value(samples, "dapr_resiliency_count", policy="circuitbreaker", **where) == 2
    assert value(samples, "dapr_resiliency_activations_total", status="open", **where) == 1
    assert value(samples, "dapr_resiliency_cb_state", status="open", namespace="prod") == 2
