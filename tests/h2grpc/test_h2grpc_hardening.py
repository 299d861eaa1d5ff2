"""A hostile or broken HTTP/2 client against the gRPC server: each one is bounded.

The client is the ``h2`` library's connection (raw frames where ``h2`` refuses to misbehave)
over a real socket to a real ``GrpcServer``: floods end in GOAWAY ``ENHANCE_YOUR_CALM``
quickly, oversized header blocks are refused without blocking the loop, streams beyond
``MAX_CONCURRENT_STREAMS`` are refused, and a handler that reads slowly keeps the sender's
window closed instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from _support.daemon import wait_until
from dapr.proto.runtime.v1 import dapr_pb2, dapr_pb2_grpc, pubsub_pb2, state_pb2
from h2.errors import ErrorCodes

from wonderland.h2grpc import GrpcServer, H2Limits, ServicerContext, service_methods
from wonderland.h2grpc.connection import frame
from wonderland.h2grpc.headers import literal

SERVICE = dapr_pb2.DESCRIPTOR.services_by_name["Dapr"]
GET_STATE = "/dapr.proto.runtime.v1.Dapr/GetState"
SUBSCRIBE = "/dapr.proto.runtime.v1.Dapr/SubscribeTopicEventsAlpha1"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Servicer:
    """GetState sleeps ``key`` seconds; the subscription reads what its gate allows."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.read = 0

    async def GetState(self, request: Any, context: ServicerContext) -> Any:
        await asyncio.sleep(float(request.key or 0))
        return state_pb2.GetStateResponse(data=b"ok")

    async def SubscribeTopicEventsAlpha1(
        self, requests: Any, context: ServicerContext
    ) -> AsyncIterator[Any]:
        async for _ in requests:
            self.read += 1
            if self.read == 1:
                await self.gate.wait()
        yield pubsub_pb2.SubscribeTopicEventsResponseAlpha1()


async def serve(limits: H2Limits | None = None) -> tuple[Servicer, GrpcServer, int]:
    servicer = Servicer()
    server = GrpcServer(service_methods(SERVICE, servicer), limits=limits)
    return servicer, server, await server.start("127.0.0.1", 0)


def headers(path: str = GET_STATE) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "x"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]


def message(msg: Any) -> bytes:
    payload = msg.SerializeToString()
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


class Client:
    """An ``h2`` client connection on a blocking socket."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.closed = False

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True

    def events(self, timeout: float) -> list[Any]:
        """What arrives within ``timeout`` s (less if the server closes)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return []
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return []
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            events = []
        self.flush_quietly()
        return list(events)

    def flush_quietly(self) -> None:
        try:
            self.flush()
        except OSError:
            self.closed = True

    def until(self, done: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.closed:
            for event in self.events(deadline - time.monotonic()):
                if done(event):
                    return event
        return None

    def goaway(self, timeout: float = 5.0) -> Any:
        return self.until(lambda e: isinstance(e, h2.events.ConnectionTerminated), timeout)

    def close(self) -> None:
        self.sock.close()


def hpack_int(value: int, flags: int) -> bytes:
    """An HPACK string length with a 7-bit prefix (RFC 7541 5.1)."""
    if value < 127:
        return bytes((flags | value,))
    out, value = bytearray((flags | 127,)), value - 127
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def flood(port: int, attack: Callable[[Client], None]) -> tuple[Any, float, bool, float]:
    """Run ``attack``; the GOAWAY it gets, how long it took, whether the socket closed."""

    def run() -> tuple[Any, float, bool, float]:
        client = Client(port)
        before = maxrss_mib()
        start = time.monotonic()
        try:
            attack(client)
            goaway = client.goaway()
            took = time.monotonic() - start
            if not client.closed:
                client.until(lambda e: False, 2.0)  # returns when the server closes
            return goaway, took, client.closed, maxrss_mib() - before
        finally:
            client.close()

    return await asyncio.to_thread(run)


def assert_calm(result: tuple[Any, float, bool, float]) -> None:
    goaway, took, closed, grew = result
    assert goaway is not None, "no GOAWAY"
    assert goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert took < 3.0
    assert closed
    assert grew < 64  # MiB of peak RSS gained by the whole test process


@pytest.fixture
async def default_server() -> AsyncIterator[tuple[Servicer, GrpcServer, int]]:
    servicer, server, port = await serve()
    try:
        yield servicer, server, port
    finally:
        await server.stop(grace=0.1)


async def test_rapid_reset_ends_in_enhance_your_calm(default_server: Any) -> None:
    _, server, port = default_server

    def attack(c: Client) -> None:  # CVE-2023-44487: open and cancel at once, on and on
        sid = 1
        for _ in range(3000):
            c.conn.send_headers(sid, headers())
            c.conn.reset_stream(sid, ErrorCodes.CANCEL)
            sid += 2
            if sid % 200 == 1:
                c.send_raw(c.conn.data_to_send())
                if c.closed:
                    return
        c.send_raw(c.conn.data_to_send())

    assert_calm(await flood(port, attack))
    await wait_until(
        lambda: not server.connections, 5, "the server to let the connection go"
    )  # nothing left of the connection or its streams


@pytest.mark.parametrize("kind", ["ping", "settings", "empty-data", "continuation"])
async def test_control_and_empty_frame_floods_end_in_enhance_your_calm(
    default_server: Any, kind: str
) -> None:
    _, server, port = default_server

    def attack(c: Client) -> None:
        if kind == "ping":
            for i in range(1000):
                c.conn.ping(i.to_bytes(8, "big"))
        elif kind == "settings":
            raw = b"".join(frame(4, 0, 0, b"\x00\x04\x00\x01\x00\x00") for _ in range(1000))
            c.send_raw(raw)  # h2 would wait for each ACK; a flooder does not
        elif kind == "empty-data":
            c.conn.send_headers(1, headers(SUBSCRIBE))
            for _ in range(1000):
                c.conn.send_data(1, b"")
        else:  # CONTINUATION frames of one byte each, never ending the block (CVE-2024-27316)
            block = literal(b":method", b"POST")
            raw = frame(1, 0, 1, block) + b"".join(frame(9, 0, 1, b"\x00") for _ in range(5000))
            c.send_raw(raw)
        c.send_raw(c.conn.data_to_send())

    assert_calm(await flood(port, attack))
    await wait_until(lambda: not server.connections, 5, "the server to let the connection go")


async def test_oversized_header_blocks_are_refused_quickly(default_server: Any) -> None:
    _, _, port = default_server

    def too_large(c: Client) -> None:  # a 256 KiB block split over CONTINUATIONs
        block = b"\x00" + literal(b"x-big", b"y" * (300 * 1024))[1:]
        pieces = [block[i : i + 16384] for i in range(0, len(block), 16384)]
        raw = frame(1, 0, 1, pieces[0]) + b"".join(
            frame(9, 0x4 if i == len(pieces) - 1 else 0, 1, p) for i, p in enumerate(pieces[1:], 1)
        )
        c.send_raw(raw)

    assert_calm(await flood(port, too_large))

    def huge_integer(c: Client) -> None:  # the hpack < 4.2 quadratic case: an endless integer
        block = b"\x3f" + b"\xff" * (200 * 1024) + b"\x00"
        pieces = [block[i : i + 16384] for i in range(0, len(block), 16384)]
        raw = frame(1, 0, 1, pieces[0]) + b"".join(
            frame(9, 0x4 if i == len(pieces) - 1 else 0, 1, p) for i, p in enumerate(pieces[1:], 1)
        )
        c.send_raw(raw)

    goaway, took, closed, _ = await flood(port, huge_integer)
    assert goaway is not None and goaway.error_code == ErrorCodes.COMPRESSION_ERROR
    assert took < 1.0 and closed

    def one_long_value() -> tuple[float, dict[bytes, bytes], bool]:
        # A 200 KiB Huffman-coded value: within the block limit, far over the list limit.
        c = Client(port)
        try:
            c.goaway(0.2)  # the server's SETTINGS
            start = time.monotonic()
            size = 200 * 1024
            block = (
                b"".join(literal(k.encode(), v.encode()) for k, v in headers())
                + b"\x00\x05x-big"
                + hpack_int(size, 0x80)  # Huffman-coded, never decoded
                + b"\xff" * size
            )
            body = message(state_pb2.GetStateRequest(key="0"))
            pieces = [block[i : i + 16384] for i in range(0, len(block), 16384)]
            raw = frame(1, 0, 3, pieces[0]) + b"".join(
                frame(9, 0x4 if i == len(pieces) - 1 else 0, 3, p)
                for i, p in enumerate(pieces[1:], 1)
            )
            c.send_raw(raw + frame(0, 0x1, 3, body))
            answer = c.until(
                lambda e: (
                    isinstance(e, h2.events.ResponseReceived | h2.events.TrailersReceived)
                    and e.stream_id == 3
                )
            )
            took = time.monotonic() - start
            fields = dict(answer.headers) if answer is not None else {}
            return took, fields, c.closed
        finally:
            c.close()

    took, fields, closed = await asyncio.to_thread(one_long_value)
    assert took < 1.0
    # Either the call alone is refused, or (its encoded size being past twice the limit)
    # the connection ends; never a decoded 200 KiB value.
    assert fields.get(b"grpc-status") == b"8" or closed


async def test_streams_beyond_the_limit_are_refused() -> None:
    _, server, port = await serve(H2Limits(max_concurrent_streams=2))
    try:

        def talk() -> tuple[int, list[int], int]:
            c = Client(port)
            try:
                # Opened before the server's SETTINGS arrive, so h2 does not hold them back.
                for sid in (1, 3, 5):
                    c.conn.send_headers(sid, headers())
                    c.conn.send_data(
                        sid, message(state_pb2.GetStateRequest(key="0.5")), end_stream=True
                    )
                c.flush()
                refused = c.until(lambda e: isinstance(e, h2.events.StreamReset))
                done: list[int] = []
                c.until(
                    lambda e: (
                        isinstance(e, h2.events.StreamEnded)
                        and done.append(e.stream_id) is None
                        and len(done) == 2
                    )
                )
                return c.conn.remote_settings.max_concurrent_streams, done, refused
            finally:
                c.close()

        advertised, done, refused = await asyncio.to_thread(talk)
        assert advertised == 2
        assert refused.stream_id == 5 and refused.error_code == ErrorCodes.REFUSED_STREAM
        assert sorted(done) == [1, 3]  # the two within the limit are answered
    finally:
        await server.stop(grace=0.1)


async def test_a_slow_handler_keeps_the_senders_window_closed() -> None:
    window = 65535
    servicer, server, port = await serve(H2Limits(stream_window=window, max_queued_messages=4))
    request = message(
        pubsub_pb2.SubscribeTopicEventsRequestAlpha1(
            initial_request=pubsub_pb2.SubscribeTopicEventsRequestInitialAlpha1(
                pubsub_name="p" * 1000, topic="t"
            )
        )
    )
    client: Client | None = None
    try:

        def fill() -> int:
            nonlocal client
            client = c = Client(port)
            c.conn.send_headers(1, headers(SUBSCRIBE))
            c.flush()
            sent = 0
            while True:  # send while the window allows; stop when it stays shut for 1 s
                if c.conn.local_flow_control_window(1) >= len(request):
                    c.conn.send_data(1, request)
                    c.flush()
                    sent += 1
                    continue
                if not c.events(1.0) and c.conn.local_flow_control_window(1) < len(request):
                    return sent

        sent = await asyncio.to_thread(fill)
        assert client is not None
        # The handler read one message: the window holds the rest, nothing unbounded.
        assert servicer.read == 1
        assert sent * len(request) <= 2 * window
        servicer.gate.set()

        def finish(c: Client) -> tuple[int, Any]:
            more = 0
            while more < 200:  # the handler reads again, so the window opens again
                if c.conn.local_flow_control_window(1) >= len(request):
                    c.conn.send_data(1, request)
                    c.flush()
                    more += 1
                else:
                    c.events(1.0)
            c.conn.end_stream(1)
            c.flush()
            trailers = c.until(lambda e: isinstance(e, h2.events.TrailersReceived))
            return more, trailers

        more, trailers = await asyncio.to_thread(finish, client)
        assert trailers is not None and dict(trailers.headers)[b"grpc-status"] == b"0"
        assert servicer.read == sent + more
    finally:
        if client is not None:
            client.close()
        await server.stop(grace=0.1)


async def test_preface_and_idle_timeouts_close_the_connection() -> None:
    _, server, port = await serve(H2Limits(header_timeout=0.3, idle_timeout=0.5))
    try:

        def silent() -> tuple[bytes, float]:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                start, got = time.monotonic(), b""
                while chunk := s.recv(65536):
                    got += chunk
                return got, time.monotonic() - start

        got, took = await asyncio.to_thread(silent)
        assert took < 3.0  # closed, not left hanging
        assert b"no client preface" in got

        def idle() -> tuple[Any, float]:
            c = Client(port)
            try:
                c.conn.send_headers(1, headers())
                c.conn.send_data(1, message(state_pb2.GetStateRequest(key="0")), end_stream=True)
                c.flush()
                c.until(lambda e: isinstance(e, h2.events.StreamEnded))
                start = time.monotonic()
                return c.goaway(), time.monotonic() - start
            finally:
                c.close()

        goaway, took = await asyncio.to_thread(idle)
        assert goaway is not None and goaway.error_code == ErrorCodes.NO_ERROR
        assert took < 3.0
    finally:
        await server.stop(grace=0.1)


async def test_grpcio_clients_work_within_the_default_limits(default_server: Any) -> None:
    _, _, port = default_server
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)
        answers = await asyncio.gather(
            *(stub.GetState(state_pb2.GetStateRequest(key="0.01")) for _ in range(300))
        )
        assert {a.data for a in answers} == {b"ok"}
        big = state_pb2.GetStateRequest(key="0", metadata={"m": "v" * (3 * 1024 * 1024)})
        assert (await stub.GetState(big)).data == b"ok"
