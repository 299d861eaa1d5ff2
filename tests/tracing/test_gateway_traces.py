"""The gateway continues the client's trace (or starts one) and passes a new span id to
the replica, on every protocol pairing; mode off leaves the header alone; mode on records
the gateway's span with the client's span as its parent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from _support.daemon import free_port, wait_until
from _support.servers import asgi_replica
from grpc import aio

from wonderland.gateway import GatewayServer, HostRoute, RoutingTable
from wonderland.gateway.tracing import GatewayTracing
from wonderland.tracing.context import parse_traceparent
from wonderland.tracing.store import TraceStore

HOST = "echo.default.127.0.0.1.sslip.io"
INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def echo_app(scope: Any, receive: Any, send: Any) -> None:
    """Answers with the traceparent (and tracestate) it received."""
    headers = dict(scope["headers"])
    body = headers.get(b"traceparent", b"-") + b" " + headers.get(b"tracestate", b"-")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def h1_replica() -> AsyncIterator[int]:
    async with asgi_replica(echo_app) as port:
        yield port


async def echo_rpc(request: bytes, context: Any) -> bytes:
    return dict(context.invocation_metadata()).get("traceparent", "-").encode()


@pytest.fixture
async def h2_replica() -> AsyncIterator[int]:
    port = free_port()
    server = aio.server()
    handlers = {"Echo": grpc.unary_unary_rpc_method_handler(echo_rpc)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


async def gateway(port: int, h2c: bool, tracing: GatewayTracing) -> GatewayServer:
    table = RoutingTable()
    target = table.revision("default", "echo-00001")
    target.h2c = h2c
    target.set_endpoints([("127.0.0.1", port, "r1")])
    table.set_route("default/echo", {HOST: HostRoute("default/echo", [(target, 100)])})
    gw = GatewayServer(table, port=0, tracing=tracing)
    await gw.start()
    return gw


async def get(gw: GatewayServer, headers: dict[str, str], http2: bool = False) -> str:
    async with httpx.AsyncClient(http1=not http2, http2=http2) as client:
        reply = await client.get(
            f"http://127.0.0.1:{gw.port}/x?q=1", headers={"host": HOST, **headers}, timeout=30
        )
    assert reply.status_code == 200, reply.text
    return reply.text


@pytest.mark.parametrize("http2", [False, True], ids=["h1-to-h1", "h2-to-h1"])
async def test_the_trace_continues_with_a_new_parent(h1_replica: int, http2: bool) -> None:
    store = TraceStore()
    gw = await gateway(h1_replica, False, GatewayTracing("on", store.record))
    try:
        seen, state = (
            await get(gw, {"traceparent": INCOMING, "tracestate": "vendor=x"}, http2)
        ).split()
        assert state == "vendor=x"
        got = parse_traceparent(seen)
        assert got is not None
        assert got.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert got.parent_id != "00f067aa0ba902b7"
        # the gateway's span: the replica's parent, a child of the client's span
        found = store.trace(got.trace_id)
        assert found is not None
        (span,) = found["spans"]
        assert span["spanId"] == got.parent_id
        assert span["parentSpanId"] == "00f067aa0ba902b7"
        assert span["service"] == "wonderland-gateway" and span["kind"] == "SERVER"
        assert span["name"] == "GET /x"
        assert span["attributes"]["knative.revision"] == "echo-00001"

        # no header, or a malformed one: a new trace, sampled
        for headers in ({}, {"traceparent": "00-nonsense"}):
            fresh = parse_traceparent((await get(gw, headers, http2)).split()[0])
            assert fresh is not None and fresh.trace_id != got.trace_id and fresh.sampled
            assert store.trace(fresh.trace_id) is not None
    finally:
        await gw.stop()


async def test_http1_clients_reach_an_h2c_replica_with_the_trace(h2_replica: int) -> None:
    """h1 → h2c goes through the gateway's bridge; the gRPC echo answers over h2 only, so
    an HTTP/1.1 POST carrying gRPC framing is enough to see the metadata arrive."""
    gw = await gateway(h2_replica, True, GatewayTracing("propagate"))
    try:
        async with httpx.AsyncClient() as client:
            reply = await client.post(
                f"http://127.0.0.1:{gw.port}/test.Echo/Echo",
                headers={
                    "host": HOST,
                    "content-type": "application/grpc",
                    "te": "trailers",
                    "traceparent": INCOMING,
                },
                content=b"\x00\x00\x00\x00\x02hi",
                timeout=30,
            )
        assert reply.status_code == 200
        got = parse_traceparent(reply.content[5:])
        assert got is not None and got.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert got.parent_id != "00f067aa0ba902b7"
    finally:
        await gw.stop()


async def test_grpc_clients_reach_an_h2c_replica_with_the_trace(h2_replica: int) -> None:
    store = TraceStore()
    gw = await gateway(h2_replica, True, GatewayTracing("on", store.record))
    try:
        options = [("grpc.default_authority", HOST)]
        async with aio.insecure_channel(f"127.0.0.1:{gw.port}", options=options) as channel:
            unary = channel.unary_unary("/test.Echo/Echo")
            seen = await unary(b"hi", metadata=(("traceparent", INCOMING),), timeout=30)
            fresh = await unary(b"hi", timeout=30)
        got = parse_traceparent(seen)
        assert got is not None and got.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert got.parent_id != "00f067aa0ba902b7"
        started = parse_traceparent(fresh)
        assert started is not None and started.trace_id != got.trace_id
        # the span is recorded when the stream closes
        found = await wait_until(lambda: store.trace(got.trace_id), 10, "the call's span")
        assert found["spans"][0]["name"] == "POST /test.Echo/Echo"
        assert found["spans"][0]["parentSpanId"] == "00f067aa0ba902b7"
    finally:
        await gw.stop()


async def test_mode_off_passes_the_header_through_untouched(h1_replica: int) -> None:
    gw = await gateway(h1_replica, False, GatewayTracing("off"))
    try:
        assert (await get(gw, {"traceparent": INCOMING})).split()[0] == INCOMING
        assert (await get(gw, {})).split()[0] == "-"
        assert (await get(gw, {"traceparent": INCOMING}, http2=True)).split()[0] == INCOMING
    finally:
        await gw.stop()
