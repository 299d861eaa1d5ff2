"""HTTP/2 flow control through the gateway, both ways, and a replica's stream limit."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any

import grpc
import h2.errors
import h2.settings
import httpx
import pytest
from _support.daemon import free_port, wait_until
from _support.h2_client import RawH2
from grpc import aio

from wonderland.gateway import GatewayServer, HostRoute, RoutingTable

HOST = "grpc.default.127.0.0.1.sslip.io"
CHUNK = 16 * 1024
CHUNKS = 400  # 6.4 MB in all


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


GRPC_HEADERS = [("content-type", "application/grpc"), ("te", "trailers")]


class Replica:
    """A gRPC replica: ``Echo`` (slow, to overlap calls) and ``Count`` (a long stream whose
    progress is recorded: how far the replica got ahead of its reader)."""

    def __init__(self) -> None:
        self.produced = 0

    async def echo(self, request: bytes, context: Any) -> bytes:
        await asyncio.sleep(0.3)
        return request

    async def count(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        for _ in range(CHUNKS):
            self.produced += 1
            yield b"c" * CHUNK


async def serve(replica: Replica, options: list[tuple[str, Any]]) -> tuple[aio.Server, int]:
    port = free_port()
    server = aio.server(options=options)
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(replica.echo),
        "Count": grpc.unary_stream_rpc_method_handler(replica.count),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, port


async def gateway(port: int) -> tuple[GatewayServer, Any]:
    table = RoutingTable()
    target = table.revision("default", "grpc-00001")
    target.h2c = True
    target.set_endpoints([("127.0.0.1", port, "r1")])
    table.set_route("default/grpc", {HOST: HostRoute("default/grpc", [(target, 100)])})
    gw = GatewayServer(table, port=0)
    await gw.start()
    return gw, target


async def test_a_slow_client_holds_the_replica_back_instead_of_filling_the_gateway() -> None:
    replica = Replica()
    server, port = await serve(replica, [])
    gw, target = await gateway(port)
    client = RawH2(auto_ack=False)
    try:
        await client.connect(gw.port)
        sid = client.request(HOST, "/test.Echo/Count", grpc_frame(b"go"), GRPC_HEADERS)
        await client.wait(lambda: len(client.data.get(sid, b"")) >= 65535 - 5)
        # Nothing to wait on for "the replica stays put": give an unbounded gateway the time
        # to pull several MB over loopback (it takes milliseconds), then look.
        await asyncio.sleep(0.5)
        # The replica is held back by the windows: it got about two windows ahead (the
        # client's and the gateway's), not through the whole 6.4 MB stream.
        assert replica.produced < CHUNKS // 4, replica.produced
        client.auto_ack = True
        received = len(client.data[sid])
        client.conn.acknowledge_received_data(received, sid)
        client.flush()
        await client.wait(lambda: sid in client.ended, 30)
        body = bytes(client.data[sid])
        assert len(body) == CHUNKS * (CHUNK + 5)  # every message, none cut
        await wait_until(lambda: target.in_flight == 0, 10, "the stream finished")
    finally:
        await client.close()
        await gw.stop()
        await server.stop(0)


async def test_a_window_opened_by_settings_alone_releases_the_response() -> None:
    replica = Replica()
    server, port = await serve(replica, [])
    gw, _ = await gateway(port)
    # streams start with no window; the connection's is wide open from the start
    client = RawH2()
    try:
        await client.connect(gw.port, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        client.conn.increment_flow_control_window(1 << 24)
        client.flush()
        sid = client.request(HOST, "/test.Echo/Echo", grpc_frame(b"e" * 60_000), GRPC_HEADERS)
        await client.wait(lambda: client.status(sid) == "200")
        await asyncio.sleep(
            0.2
        )  # the body would follow its headers at once if windows were ignored
        assert not client.data.get(sid)  # no window, no data
        client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        client.flush()
        await client.wait(lambda: sid in client.ended)
        assert bytes(client.data[sid]) == grpc_frame(b"e" * 60_000)
    finally:
        await client.close()
        await gw.stop()
        await server.stop(0)


async def test_a_replica_that_takes_one_stream_at_a_time_gets_them_in_turn() -> None:
    replica = Replica()
    server, port = await serve(replica, [("grpc.max_concurrent_streams", 1)])
    gw, target = await gateway(port)
    try:
        options = [("grpc.default_authority", HOST)]
        async with aio.insecure_channel(f"127.0.0.1:{gw.port}", options=options) as channel:
            unary = channel.unary_unary("/test.Echo/Echo")
            replies = await asyncio.gather(*(unary(str(i).encode(), timeout=30) for i in range(6)))
            assert replies == [str(i).encode() for i in range(6)]
        # HTTP/1.1 clients bridged to the same replica queue the same way
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=30) as c:
            answers = await asyncio.gather(
                *(
                    c.post(
                        "/test.Echo/Echo",
                        headers={"Host": HOST, "content-type": "application/grpc"},
                        content=grpc_frame(b"h1-%d" % i),
                    )
                    for i in range(4)
                )
            )
            assert [a.content for a in answers] == [grpc_frame(b"h1-%d" % i) for i in range(4)]
        assert target.in_flight == 0
    finally:
        await gw.stop()
        await server.stop(0)


@pytest.mark.parametrize("flood", ["reset", "ping", "settings", "empty"])
async def test_a_flooding_client_is_told_to_calm_down_and_closed(flood: str) -> None:
    replica = Replica()
    server, port = await serve(replica, [])
    gw, target = await gateway(port)
    client = RawH2()
    try:
        await client.connect(gw.port)
        for i in range(1500):
            if flood == "reset":  # CVE-2023-44487, rapid reset
                sid = client.request(HOST, "/test.Echo/Echo", b"", GRPC_HEADERS)
                client.conn.reset_stream(sid)
            elif flood == "ping":
                client.conn.ping(b"%08d" % i)
            elif flood == "settings":
                client.conn.update_settings({h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384 + i})
            elif i == 0:  # a stream left open, then DATA frames with nothing in them
                head = [(":method", "POST"), (":scheme", "http"), (":authority", HOST)]
                head += [(":path", "/test.Echo/Echo"), *GRPC_HEADERS]
                client.conn.send_headers(1, head)
            if flood == "empty":
                client.conn.send_data(1, b"")
            client.flush()
            if client.closed.is_set():
                break
        await asyncio.wait_for(client.closed.wait(), 10)
        goaway = client.goaway()
        assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        await wait_until(lambda: target.in_flight == 0, 10, "every stream freed")
    finally:
        await client.close()
        await gw.stop()
        await server.stop(0)
