"""gRPC (HTTP/2 prior knowledge) through the gateway to an h2c revision."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from _support.daemon import free_port, wait_until
from grpc import aio

from wonderland.gateway import GatewayServer, HostRoute, RoutingTable
from wonderland.gateway.limits import GatewayLimits

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


async def chat(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    """Answers each message as it arrives (a bidirectional stream)."""
    async for message in requests:
        yield b"got " + message


async def first(requests: AsyncIterator[bytes], context: Any) -> bytes:
    """Answers the first message and reads no more (an early answer)."""
    async for message in requests:
        return b"first " + message
    return b"none"


async def gather(requests: AsyncIterator[bytes], context: Any) -> bytes:
    """Answers once the client's stream has ended, with all its messages."""
    return b"".join([message async for message in requests])


@pytest.fixture
async def grpc_replica() -> AsyncIterator[int]:
    port = free_port()
    server = aio.server()
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Drip": grpc.unary_stream_rpc_method_handler(drip),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
        "First": grpc.stream_unary_rpc_method_handler(first),
        "Gather": grpc.stream_unary_rpc_method_handler(gather),
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


async def _read_until(reader: asyncio.StreamReader, got: bytes, marker: bytes) -> bytes:
    while marker not in got:
        try:
            more = await asyncio.wait_for(reader.read(4096), 10)
        except TimeoutError:
            raise AssertionError(f"no {marker!r} within 10 s; got {got!r}") from None
        assert more, f"the gateway closed the connection before {marker!r}; got {got!r}"
        got += more
    return got


@pytest.mark.parametrize(("framing", "at_zero"), [("chunked", False), ("length", True)])
async def test_an_http1_request_body_streams_to_an_h2c_replica_piece_by_piece(
    grpc_replica: int, framing: str, at_zero: bool
) -> None:
    """An HTTP/1.1 client's gRPC messages reach the h2c replica, and its answers the
    client, one by one while the body is still being sent (a chunked one, and a
    content-length one that the activator holds first while the revision is at zero)."""
    messages = [b"one", b"two", b"three"]
    frames = [b"\x00" + struct.pack(">I", len(m)) + m for m in messages]
    table = RoutingTable()
    target = table.revision("default", "grpc-00001")
    target.h2c = True
    if not at_zero:
        target.set_endpoints([("127.0.0.1", grpc_replica, "r1")])
    table.set_route("default/grpc", {HOST: HostRoute("default/grpc", [(target, 100)])})
    gw = GatewayServer(table, port=0)
    await gw.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        framing_header = (
            b"Transfer-Encoding: chunked"
            if framing == "chunked"
            else b"Content-Length: %d" % sum(map(len, frames))
        )
        writer.write(
            b"POST /test.Echo/Chat HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n"
            b"Content-Type: application/grpc\r\n" + framing_header + b"\r\n\r\n"
        )
        got = b""
        for i, (message, frame) in enumerate(zip(messages, frames, strict=True)):
            writer.write(b"%x\r\n%s\r\n" % (len(frame), frame) if framing == "chunked" else frame)
            if i == 0 and at_zero:
                await wait_until(lambda: len(target.waiters) == 1, 10, "the held request")
                target.set_endpoints([("127.0.0.1", grpc_replica, "r1")])
            # the replica's answer to this message comes before the next one is sent
            got = await _read_until(reader, got, b"got " + message)
        if framing == "chunked":
            writer.write(b"0\r\n\r\n")
        got = await _read_until(reader, got, b"grpc-status: 0\r\n")
        # the connection goes on: a request whose body comes with its head
        hi = b"\x00" + struct.pack(">I", 2) + b"hi"
        writer.write(
            b"POST /test.Echo/Echo HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n"
            b"Content-Type: application/grpc\r\nContent-Length: 7\r\n\r\n" + hi
        )
        got = await _read_until(reader, got, b"hi|127.0.0.1")
        writer.close()
    finally:
        await gw.stop()
    first, _, second = got.partition(b"grpc-status: 0\r\n")
    assert first.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 200" in second
    assert target.in_flight == 0 and target.endpoints[0].in_flight == 0


def _frame(message: bytes) -> bytes:
    framed = b"\x00" + struct.pack(">I", len(message)) + message
    return b"%x\r\n%s\r\n" % (len(framed), framed)  # as one chunk of a chunked body


def _chunked_head(method: str) -> bytes:
    return (
        b"POST /test.Echo/" + method.encode() + b" HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n"
        b"Content-Type: application/grpc\r\nTransfer-Encoding: chunked\r\n\r\n"
    )


async def test_a_streamed_body_to_an_h2c_replica_keeps_the_gateway_limits(
    grpc_replica: int,
) -> None:
    """Too large a streamed body is answered 413 and too slow a one 408, as when the body
    is read whole first, and the replica's stream is cancelled; an answer that comes
    before the body is all in ends the stream there, and the connection goes on."""
    table = RoutingTable()
    target = table.revision("default", "grpc-00001")
    target.h2c = True
    target.set_endpoints([("127.0.0.1", grpc_replica, "r1")])
    table.set_route("default/grpc", {HOST: HostRoute("default/grpc", [(target, 100)])})
    gw = GatewayServer(table, port=0, limits=GatewayLimits(max_body_bytes=2000, header_timeout=0.5))
    await gw.start()
    ep = target.endpoints[0]

    def streams_open() -> int:
        conn = getattr(ep.h2, "conn", None)
        return conn.open_outbound_streams if conn is not None else 0

    try:
        # past max_body_bytes: 413, though the request (not answered yet) has started
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(_chunked_head("Gather") + _frame(b"a" * 1200))
        await wait_until(lambda: streams_open() == 1, 10, "the stream at the replica")
        writer.write(_frame(b"b" * 1200))
        answer = await _read_until(reader, b"", b"MAX_BODY_BYTES")
        assert answer.startswith(b"HTTP/1.1 413 ")
        writer.close()
        await wait_until(lambda: target.in_flight == 0 and streams_open() == 0, 10, "cancelled")
        # a body that stops coming: 408 once header_timeout passes
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(_chunked_head("Gather") + _frame(b"slow"))
        answer = await _read_until(reader, b"", b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 408 ")
        writer.close()
        await wait_until(lambda: target.in_flight == 0 and streams_open() == 0, 10, "cancelled")
        # answered after the first message: the rest of the body is dropped, and the
        # connection serves the next request
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(_chunked_head("First") + _frame(b"one"))
        got = await _read_until(reader, b"", b"grpc-status: 0\r\n")
        assert got.startswith(b"HTTP/1.1 200") and b"first one" in got
        writer.write(_frame(b"two") + b"0\r\n\r\n" + _chunked_head("Chat") + _frame(b"three"))
        got = await _read_until(reader, b"", b"got three")
        writer.write(b"0\r\n\r\n")
        got = await _read_until(reader, got, b"grpc-status: 0\r\n")
        writer.close()
        await wait_until(lambda: target.in_flight == 0 and streams_open() == 0, 10, "all ended")
    finally:
        await gw.stop()
