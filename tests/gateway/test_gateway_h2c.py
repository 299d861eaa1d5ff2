"""gRPC (HTTP/2 prior knowledge) through the gateway to an h2c revision."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from _support.daemon import free_port
from grpc import aio

from wonderland.gateway import GatewayServer, HostRoute, RoutingTable

HOST = "grpc.default.127.0.0.1.sslip.io"


async def echo(request: bytes, context: Any) -> bytes:
    meta = dict(context.invocation_metadata())
    if request == b"missing":
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    return request + b"|" + meta.get("x-forwarded-for", "").encode()


async def count(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for i in range(int(request)):
        yield str(i).encode() * 1000


async def drip(request: bytes, context: Any) -> AsyncIterator[bytes]:
    """One message every 0.2 s for ``n`` messages, then silence."""
    for i in range(int(request)):
        yield str(i).encode()
        await asyncio.sleep(0.2)
    await asyncio.sleep(30)


@pytest.fixture
async def grpc_replica() -> AsyncIterator[int]:
    port = free_port()
    server = aio.server()
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Drip": grpc.unary_stream_rpc_method_handler(drip),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


async def test_grpc_unary_streaming_and_status_through_the_gateway(grpc_replica: int) -> None:
    table = RoutingTable()
    target = table.revision("default", "grpc-00001")
    target.h2c = True
    target.set_endpoints([("127.0.0.1", grpc_replica, "r1")])
    table.set_route("default/grpc", {HOST: HostRoute("default/grpc", [(target, 100)])})
    gw = GatewayServer(table, port=0)
    await gw.start()
    try:
        options = [("grpc.default_authority", HOST)]
        async with aio.insecure_channel(f"127.0.0.1:{gw.port}", options=options) as channel:
            unary = channel.unary_unary("/test.Echo/Echo")
            reply = await unary(b"hi", timeout=30)
            assert reply == b"hi|127.0.0.1"
            replies = await asyncio.gather(*(unary(str(i).encode(), timeout=30) for i in range(20)))
            assert [r.split(b"|")[0] for r in replies] == [str(i).encode() for i in range(20)]
            stream = channel.unary_stream("/test.Echo/Count")
            chunks = [c async for c in stream(b"50", timeout=30)]
            assert len(chunks) == 50 and chunks[49] == b"49" * 1000
            with pytest.raises(aio.AioRpcError) as err:
                await unary(b"missing", timeout=30)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            assert err.value.details() == "no such thing"
        # an unknown authority is a 404, which gRPC reports as UNIMPLEMENTED
        bad = [("grpc.default_authority", "nope.default.127.0.0.1.sslip.io")]
        async with aio.insecure_channel(f"127.0.0.1:{gw.port}", options=bad) as channel:
            with pytest.raises(aio.AioRpcError) as err:
                await channel.unary_unary("/test.Echo/Echo")(b"x", timeout=30)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await gw.stop()


async def test_http1_client_reaches_an_h2c_revision(grpc_replica: int) -> None:
    import struct

    import httpx

    table = RoutingTable()
    target = table.revision("default", "grpc-00001")
    target.h2c = True
    target.set_endpoints([("127.0.0.1", grpc_replica, "r1")])
    table.set_route("default/grpc", {HOST: HostRoute("default/grpc", [(target, 100)])})
    gw = GatewayServer(table, port=0)
    await gw.start()
    try:
        message = b"hello"
        framed = b"\x00" + struct.pack(">I", len(message)) + message
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=30) as c:
            for _ in range(3):  # keep-alive across bridged requests
                r = await c.post(
                    "/test.Echo/Echo",
                    headers={"Host": HOST, "content-type": "application/grpc"},
                    content=framed,
                )
                assert r.status_code == 200
                assert r.headers["content-type"] == "application/grpc"
                assert r.content[5:] == b"hello|127.0.0.1"
        assert target.in_flight == 0 and target.endpoints[0].in_flight == 0
    finally:
        await gw.stop()


async def test_idle_timeout_cuts_a_silent_grpc_stream_not_a_slow_one(grpc_replica: int) -> None:
    table = RoutingTable()
    target = table.revision("default", "grpc-00001")
    target.h2c = True
    target.idle_timeout = 0.8  # idleTimeoutSeconds
    target.set_endpoints([("127.0.0.1", grpc_replica, "r1")])
    table.set_route("default/grpc", {HOST: HostRoute("default/grpc", [(target, 100)])})
    gw = GatewayServer(table, port=0)
    await gw.start()
    try:
        options = [("grpc.default_authority", HOST)]
        async with aio.insecure_channel(f"127.0.0.1:{gw.port}", options=options) as channel:
            stream = channel.unary_stream("/test.Echo/Drip")
            got: list[bytes] = []
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(aio.AioRpcError) as err:
                async for chunk in stream(b"8", timeout=30):
                    got.append(chunk)
            # 8 messages over 1.6 s pass (longer than the idle timeout), then the silence
            # is cut after about 0.8 s
            assert got == [str(i).encode() for i in range(8)]
            assert err.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL)
            assert loop.time() - started < 10
    finally:
        await gw.stop()
