"""Trace context through sidecars: service invocation over HTTP and gRPC continues the
caller's trace, a published CloudEvent carries the publisher's trace to the subscriber,
and the sidecars' spans reach an OTLP endpoint (the daemon's trace store here)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from _support.daemon import free_port, wait_until
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import dapr_pb2_grpc, invoke_pb2
from google.protobuf import any_pb2

from wonderland.dapr.sidecar import SidecarProcess
from wonderland.monitoring.hub import MetricsHub
from wonderland.monitoring.server import MonitoringServer
from wonderland.monitoring.traces import install_routes
from wonderland.tracing.context import TraceParent, parse_traceparent, to_grpc_trace_bin
from wonderland.tracing.store import TraceStore

pytestmark = [pytest.mark.e2e]

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE}-00f067aa0ba902b7-01"
PUBSUB = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pubsub}
spec: {type: pubsub.in-memory, version: v1}
"""


@pytest.fixture
async def collector() -> AsyncIterator[tuple[str, TraceStore]]:
    """The daemon's trace endpoints on a free port."""
    hub = MetricsHub()
    store = TraceStore()
    install_routes(hub, store)
    server = MonitoringServer(hub, "127.0.0.1", free_port())
    await server.start()
    try:
        yield server.url, store
    finally:
        await server.stop()


def continues(header: str | None, parent: str = "00f067aa0ba902b7") -> TraceParent:
    got = parse_traceparent(header)
    assert got is not None, header
    assert got.trace_id == TRACE and got.parent_id != parent
    return got


async def test_invocation_and_pubsub_carry_the_trace(
    tmp_path: Path,
    resources: Callable[[str], Path],
    sidecar_factory: Callable[..., SidecarProcess],
    app_factory: Callable[..., int],
    collector: tuple[str, TraceStore],
) -> None:
    url, store = collector
    folder = resources(PUBSUB)
    subs = [{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}]
    app_port = app_factory(subscriptions=subs)
    env = {
        "WONDERLAND_TRACING": "on",
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    loop = asyncio.get_running_loop()
    callee = await loop.run_in_executor(
        None,
        lambda: sidecar_factory("callee", resources_path=[folder], app_port=app_port, env=env),
    )
    caller = await loop.run_in_executor(
        None, lambda: sidecar_factory("caller", resources_path=[folder], env=env)
    )
    async with httpx.AsyncClient(timeout=30) as client:
        # HTTP invocation: caller's sidecar → callee's sidecar → the app
        reply = await client.post(
            f"http://127.0.0.1:{caller.http_port}/v1.0/invoke/callee/method/echo/http",
            headers={"traceparent": INCOMING, "tracestate": "vendor=x"},
            content=b"hi",
        )
        assert reply.status_code == 200, reply.text
        seen = reply.json()["headers"]
        continues(seen["traceparent"])
        assert seen["tracestate"] == "vendor=x"

        # no traceparent: the sidecar starts a trace
        fresh = await client.post(
            f"http://127.0.0.1:{caller.http_port}/v1.0/invoke/callee/method/echo/new"
        )
        started = parse_traceparent(fresh.json()["headers"]["traceparent"])
        assert started is not None and started.trace_id != TRACE

    # gRPC invocation, with traceparent metadata and with grpc-trace-bin alone
    async with grpc.aio.insecure_channel(f"127.0.0.1:{caller.grpc_port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)  # type: ignore[no-untyped-call]
        request = invoke_pb2.InvokeServiceRequest(
            id="callee",
            message=common_pb2.InvokeRequest(
                method="echo/grpc",
                data=any_pb2.Any(value=b"hi"),
                content_type="text/plain",
                http_extension=common_pb2.HTTPExtension(verb=common_pb2.HTTPExtension.POST),
            ),
        )
        for metadata in (
            (("traceparent", INCOMING),),
            (("grpc-trace-bin", to_grpc_trace_bin(TraceParent(TRACE, "00f067aa0ba902b7"))),),
        ):
            answer = await stub.InvokeService(request, metadata=metadata, timeout=30)
            continues(json.loads(answer.data.value)["headers"]["traceparent"])

    async with httpx.AsyncClient(timeout=30) as client:
        # pub/sub: the CloudEvent and the delivery carry the publisher's trace
        reply = await client.post(
            f"http://127.0.0.1:{callee.http_port}/v1.0/publish/pubsub/orders",
            headers={"traceparent": INCOMING, "content-type": "application/json"},
            content=b'{"n": 1}',
        )
        assert reply.status_code == 204, reply.text

        async def deliveries() -> list[dict[str, Any]]:
            got = (await client.get(f"http://127.0.0.1:{app_port}/received")).json()
            return [r for r in got if r["path"] == "/orders"]

        delivered = await wait_until(deliveries, 15, "the event's delivery")
        event = delivered[0]["body"]
        assert continues(event["traceparent"]).header() == delivered[0]["headers"]["traceparent"]
        assert event["data"] == {"n": 1}

    # both sidecars exported their spans of the invocation and the publish over OTLP (in
    # batches: the publish span may come in a later one)
    wanted = {"/invoke/callee/method/echo/http", "publish orders"}

    def exported() -> bool:
        spans = (store.trace(TRACE) or {}).get("spans") or []
        services = {s["service"] for s in spans}
        return {"caller", "callee"} <= services and wanted <= {s["name"] for s in spans}

    await wait_until(exported, 15, f"caller's and callee's spans, {sorted(wanted)} among them")
