"""The monitoring endpoint and the scrape targets of Pods."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from prometheus_client import Counter

from wonderland.monitoring.hub import HttpRequest, HttpResponse, MetricsHub
from wonderland.monitoring.server import MAX_BODY, MonitoringServer
from wonderland.monitoring.targets import pod_targets, targets_of


def _pod(**extra: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "metadata": {
            "name": "hello-00001-deployment-abc",
            "namespace": "default",
            "labels": {
                "serving.knative.dev/service": "hello",
                "serving.knative.dev/configuration": "hello",
                "serving.knative.dev/revision": "hello-00001",
            },
            "annotations": {"dapr.io/app-id": "hello"},
        },
        "spec": {
            "containers": [
                {"name": "user-container", "ports": [{"containerPort": 41001}]},
            ],
            "initContainers": [
                {
                    "name": "daprd",
                    "restartPolicy": "Always",
                    "ports": [
                        {"containerPort": 41002},
                        {"name": "dapr-metrics", "containerPort": 41003},
                    ],
                }
            ],
        },
        "status": {"phase": "Running", "podIP": "127.0.0.1"},
    }
    for key, value in extra.items():
        pod[key] = value
    return pod


def test_a_sidecars_metrics_port_is_a_dapr_target_with_the_pods_identity() -> None:
    (target,) = pod_targets(_pod())
    assert target.job == "dapr"
    assert target.url == "http://127.0.0.1:41003/metrics"
    assert target.label_dict() == {
        "namespace": "default",
        "pod": "hello-00001-deployment-abc",
        "container": "daprd",
        "service": "hello",
        "configuration": "hello",
        "revision": "hello-00001",
        "app_id": "hello",
    }


def test_an_annotated_port_the_runtime_rewrote_stands_for_the_apps_port() -> None:
    pod = _pod()
    pod["metadata"]["annotations"].update(
        {"prometheus.io/scrape": "true", "prometheus.io/port": "8080", "prometheus.io/path": "m"}
    )
    urls = {t.url: t.job for t in pod_targets(pod)}
    assert urls == {
        "http://127.0.0.1:41003/metrics": "dapr",
        "http://127.0.0.1:41001/m": "pods",
    }


def test_pods_that_do_not_run_have_no_targets_and_each_address_counts_once() -> None:
    pending = _pod(status={"phase": "Pending"})
    assert pod_targets(pending) == []
    kserve = _pod()
    kserve["metadata"]["annotations"].update(
        {"prometheus.kserve.io/port": "41001", "prometheus.kserve.io/path": "/metrics"}
    )
    kserve["metadata"]["annotations"]["prometheus.io/scrape"] = "true"
    targets = targets_of([kserve, kserve, pending])
    assert sorted(t.job for t in targets) == ["dapr", "pods"]


async def test_the_endpoint_serves_the_registry_and_added_routes_to_loopback_only() -> None:
    hub = MetricsHub()
    served = Counter("wonderland_test_things", "things", registry=hub.registry)
    served.inc(3)

    async def echo(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, repr(sorted(request.params().items())).encode())

    hub.add_route("/api/v1/", echo, prefix=True)
    with pytest.raises(ValueError, match="already served"):
        hub.add_route("/metrics", echo)
    server = MonitoringServer(hub, "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            assert "wonderland_test_things_total 3.0" in metrics.text
            form = await client.post(
                "/api/v1/query?time=1", data={"query": "up"}, headers={"Host": "localhost:9090"}
            )
            assert form.text == "[('query', ['up']), ('time', ['1'])]"
            assert (await client.get("/nowhere")).status_code == 404
            rebound = await client.get("/metrics", headers={"Host": "evil.example:9090"})
            assert rebound.status_code == 403
            big = await client.post("/api/v1/x", content=b"x" * (MAX_BODY + 1))
            assert big.status_code == 413
    finally:
        await server.stop()


async def test_a_taken_port_leaves_a_failed_state_that_says_what_to_do() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        server = MonitoringServer(MetricsHub(), "127.0.0.1", taken.getsockname()[1])
        await server.start()
        assert server.status.state == "failed"
        assert "WONDERLAND_METRICS_PORT" in server.status.reason
        await server.stop()
