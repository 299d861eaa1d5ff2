"""The payload sink: CloudEvents in (binary and structured), joined on ce-id, bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from wonderland.monitoring.hub import HttpRequest, MetricsHub
from wonderland.monitoring.payloads import PayloadLimits, PayloadStore
from wonderland.monitoring.sink import PayloadSink, sink_hosts

REQ = "org.kubeflow.serving.inference.request"
RESP = "org.kubeflow.serving.inference.response"


def _binary(ce_id: str, ce_type: str, body: bytes, isvc: str = "iris") -> HttpRequest:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": ce_id,
        "ce-type": ce_type,
        "ce-source": "http://localhost:9081/",
        "ce-inferenceservicename": isvc,
        "ce-namespace": "default",
        "ce-component": "predictor",
        "ce-endpoint": "default",
        "content-type": "application/json",
    }
    return HttpRequest("POST", "/payloads", "", headers, body)


def _sink(tmp_path: Path, **limits: int) -> tuple[PayloadSink, MetricsHub]:
    hub = MetricsHub()
    sink = PayloadSink(PayloadStore(tmp_path / "p.db", PayloadLimits(**limits)), hub.registry)
    sink.install(hub)
    return sink, hub


def _read(sink: PayloadSink, query: str) -> list[dict[str, object]]:
    resp = asyncio.run(sink.read(HttpRequest("GET", "/wonderland/v1/payloads", query)))
    assert resp.status == 200, resp.body
    return list(orjson.loads(resp.body)["items"])


def _sample(hub: MetricsHub, name: str, **labels: str) -> float:
    value = hub.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_request_and_response_join_on_ce_id_in_either_order(tmp_path: Path) -> None:
    sink, hub = _sink(tmp_path)
    for req in (
        _binary("a", REQ, b'{"instances": [[1, 2]]}'),
        _binary("b", RESP, b'{"predictions": [0]}'),  # the response first
        _binary("a", RESP, b'{"predictions": [1]}'),
        _binary("b", REQ, b'{"instances": [[3, 4]]}'),
    ):
        assert asyncio.run(sink.receive(req)).status == 202
    items = _read(sink, "namespace=default&inferenceservice=iris&limit=10")
    assert [i["id"] for i in items] == ["b", "a"]  # newest first
    by_id = {i["id"]: i for i in items}
    assert by_id["a"]["request"] == {  # type: ignore[comparison-overlap]
        "contentType": "application/json",
        "size": 23,
        "body": '{"instances": [[1, 2]]}',
    }
    assert by_id["b"]["response"]["body"] == '{"predictions": [0]}'  # type: ignore[index]
    labels = {"namespace": "default", "inferenceservice": "iris"}
    assert _sample(hub, "wonderland_payloads_logged_total", **labels, type="request") == 2
    assert _sample(hub, "wonderland_payloads_logged_total", **labels, type="response") == 2


def test_structured_mode(tmp_path: Path) -> None:
    sink, _ = _sink(tmp_path)
    event = {
        "specversion": "1.0",
        "id": "s1",
        "type": REQ,
        "source": "/x",
        "inferenceservicename": "iris",
        "namespace": "team",
        "datacontenttype": "application/json",
        "data": {"inputs": []},
    }
    req = HttpRequest(
        "POST", "/", "", {"content-type": "application/cloudevents+json"}, orjson.dumps(event)
    )
    assert asyncio.run(sink.receive(req)).status == 202
    [item] = _read(sink, "namespace=team")
    assert item["request"]["body"] == '{"inputs":[]}'  # type: ignore[index]
    assert item["response"] is None


def test_retention_keeps_the_newest_per_service_and_caps_bytes(tmp_path: Path) -> None:
    sink, hub = _sink(tmp_path, records=5, max_bytes=100, max_total_bytes=10_000)
    for i in range(12):
        asyncio.run(sink.receive(_binary(f"id{i}", REQ, b"x" * 10)))
    asyncio.run(sink.receive(_binary("other", REQ, b"y" * 10, isvc="other")))
    items = _read(sink, "inferenceservice=iris&limit=100")
    assert [i["id"] for i in items] == [f"id{i}" for i in range(11, 6, -1)]
    assert len(_read(sink, "inferenceservice=other")) == 1
    labels = {"namespace": "default", "inferenceservice": "iris"}
    assert _sample(hub, "wonderland_payloads_dropped_total", **labels, reason="retention") == 7
    # too large: kept as its size only
    asyncio.run(sink.receive(_binary("big", REQ, b"z" * 500)))
    big = _read(sink, "inferenceservice=iris&limit=1")[0]
    assert big["request"] == {"contentType": "application/json", "size": 500, "omitted": True}
    assert _sample(hub, "wonderland_payloads_dropped_total", **labels, reason="too_large") == 1


def test_total_bytes_drop_the_oldest_everywhere(tmp_path: Path) -> None:
    sink, _ = _sink(tmp_path, records=100, max_bytes=1000, max_total_bytes=2500)
    for i in range(5):
        asyncio.run(sink.receive(_binary(f"a{i}", REQ, b"x" * 1000, isvc="a")))
    assert sink.store.total_bytes <= 2500
    assert [i["id"] for i in _read(sink, "inferenceservice=a")] == ["a4", "a3"]


def test_retention_survives_a_restart(tmp_path: Path) -> None:
    sink, _ = _sink(tmp_path, max_total_bytes=1500)
    asyncio.run(sink.receive(_binary("a", REQ, b"x" * 1000)))
    sink.store.close()
    again = PayloadStore(tmp_path / "p.db", PayloadLimits(max_total_bytes=1500))
    assert again.total_bytes == 1000
    assert [r.id for r in again.list()] == ["a"]


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"content-type": "application/json"}, b"{}", "missing ce-id, ce-type"),
        (
            {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "other"},
            b"{}",
            "ce-type 'other' is not logged here",
        ),
        (
            {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": REQ},
            b"{}",
            "ce-inferenceservicename is missing",
        ),
        ({"content-type": "application/cloudevents+json"}, b"nope", "is not JSON"),
    ],
)
def test_bad_events_get_a_400_that_says_why(
    tmp_path: Path, headers: dict[str, str], body: bytes, message: str
) -> None:
    sink, _ = _sink(tmp_path)
    resp = asyncio.run(sink.receive(HttpRequest("POST", "/payloads", "", headers, body)))
    assert resp.status == 400
    assert message in orjson.loads(resp.body)["error"]


def test_read_api_checks_its_limit(tmp_path: Path) -> None:
    sink, hub = _sink(tmp_path)
    resp = asyncio.run(sink.read(HttpRequest("GET", "/wonderland/v1/payloads", "limit=0")))
    assert resp.status == 400 and b"1 to 1000" in resp.body
    # the gateway's host names reach the sink on any path
    for host in sink_hosts():
        assert hub.host_route(f"{host}:8080") == sink.receive
    assert hub.host_route("evil.example") is None
