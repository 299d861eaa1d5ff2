"""The daemon's span receivers and trace view on the monitoring endpoint: what senders
get back for good, oversized and malformed bodies."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from wonderland.monitoring.hub import MetricsHub
from wonderland.monitoring.server import MonitoringServer
from wonderland.monitoring.traces import MAX_SPANS_BODY, install_routes
from wonderland.tracing.store import TraceStore

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    hub = MetricsHub()
    install_routes(hub, TraceStore())
    server = MonitoringServer(hub, "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            yield c
    finally:
        await server.stop()


def zipkin(trace: str = TRACE) -> bytes:
    return orjson.dumps(
        [
            {
                "traceId": trace,
                "id": "00f067aa0ba902b7",
                "name": "calllocal/orders/new",
                "kind": "SERVER",
                "timestamp": 1_700_000_000_000_000,
                "duration": 1500,
                "localEndpoint": {"serviceName": "orders"},
            },
            {
                "traceId": trace,
                "id": "1111111111111111",
                "parentId": "00f067aa0ba902b7",
                "name": "state/get",
                "timestamp": 1_700_000_000_000_500,
                "duration": 200,
                "localEndpoint": {"serviceName": "orders"},
                "tags": {"error": "boom"},
            },
        ]
    )


async def test_zipkin_spans_are_accepted_and_shown_as_a_waterfall(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.post(
        "/api/v2/spans", content=zipkin(), headers={"content-type": "application/json"}
    )
    assert reply.status_code == 202
    listed = (await client.get("/wonderland/v1/traces")).json()
    assert listed["traces"][0]["traceId"] == TRACE
    assert listed["traces"][0]["name"] == "calllocal/orders/new"
    assert listed["traces"][0]["errorCount"] == 1
    trace = (await client.get(f"/wonderland/v1/traces/{TRACE}")).json()
    assert [(s["name"], s["depth"], s["offsetMs"]) for s in trace["spans"]] == [
        ("calllocal/orders/new", 0, 0.0),
        ("state/get", 1, 0.5),
    ]
    assert trace["durationMs"] == 1.5
    assert (await client.get("/wonderland/v1/traces?service=nobody")).json()["traces"] == []


async def test_otlp_json_gzip_and_protobuf_exports_are_accepted(
    client: httpx.AsyncClient,
) -> None:
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "a"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE,
                                "spanId": "2222222222222222",
                                "name": "json",
                                "startTimeUnixNano": "1",
                                "endTimeUnixNano": "2",
                            }
                        ]
                    }
                ],
            }
        ]
    }
    reply = await client.post(
        "/v1/traces",
        content=gzip.compress(orjson.dumps(doc)),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert reply.status_code == 200 and reply.json() == {"partialSuccess": {}}
    proto = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
    request = proto.ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex(TRACE)
    span.span_id = bytes.fromhex("3333333333333333")
    span.name = "protobuf"
    reply = await client.post(
        "/v1/traces",
        content=request.SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert reply.status_code == 200
    names = {
        s["name"] for s in (await client.get(f"/wonderland/v1/traces/{TRACE}")).json()["spans"]
    }
    assert names == {"json", "protobuf"}


async def test_bad_bodies_get_4xx_that_say_what_is_wrong(client: httpx.AsyncClient) -> None:
    json_ct = {"content-type": "application/json"}
    bad = await client.post("/api/v2/spans", content=b"{not json", headers=json_ct)
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
    bad = await client.post("/v1/traces", content=b"[1, 2", headers=json_ct)
    assert bad.status_code == 400 and "OTLP" in bad.json()["error"]
    bad = await client.post(
        "/v1/traces", content=b"\x0a\xff\xff", headers={"content-type": "application/x-protobuf"}
    )
    assert bad.status_code == 400
    big = await client.post("/api/v2/spans", content=b"[" + b" " * MAX_SPANS_BODY + b"]")
    assert big.status_code == 413 and str(MAX_SPANS_BODY) in big.json()["error"]
    bomb = gzip.compress(b" " * (MAX_SPANS_BODY + 10))
    big = await client.post(
        "/v1/traces", content=bomb, headers={**json_ct, "content-encoding": "gzip"}
    )
    assert big.status_code == 413
    other = await client.post("/v1/traces", content=b"x", headers={"content-type": "text/plain"})
    assert other.status_code == 415
    missing = await client.get("/wonderland/v1/traces/" + "f" * 32)
    assert missing.status_code == 404 and "GET /wonderland/v1/traces" in missing.json()["error"]
    assert (await client.get("/wonderland/v1/traces?limit=x")).status_code == 400
    assert (await client.get("/v1/traces")).status_code == 405


async def test_a_sidecars_zipkin_exporter_reaches_the_daemon(client: httpx.AsyncClient) -> None:
    """What a sidecar with ``spec.tracing.zipkin.endpointAddress`` sends."""
    import asyncio

    from wonderland.tracing.runtime import ZipkinSink

    sink = ZipkinSink("orders", str(client.base_url.join("/api/v2/spans")))
    sink((TRACE, "4444444444444444", "", "publish orders", "PRODUCER", "", 5_000, 9_000, {}, False))
    await asyncio.to_thread(sink.flush)
    trace = (await client.get(f"/wonderland/v1/traces/{TRACE}")).json()
    (span,) = trace["spans"]
    assert (span["name"], span["service"], span["kind"]) == ("publish orders", "orders", "PRODUCER")


async def test_otlp_metrics_and_logs_are_accepted_and_dropped(client: httpx.AsyncClient) -> None:
    for path in ("/v1/metrics", "/v1/logs"):
        reply = await client.post(path, json={"resourceMetrics": []})
        assert reply.status_code == 200
        assert "traces only" in reply.json()["partialSuccess"]["errorMessage"]
