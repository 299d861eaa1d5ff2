"""The HTTP/2 gRPC server against grpcio's own clients (sync and aio) and raw frames.

A small servicer on the Dapr service's messages exercises what a servicer written for
grpcio relies on: unary and streamed calls, status codes with details, metadata,
deadlines, cancellation, flow control with large messages, compression, shutdown.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import hpack
import pytest
from _support.daemon import wait_until
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import (
    configuration_pb2,
    dapr_pb2,
    dapr_pb2_grpc,
    pubsub_pb2,
    state_pb2,
)
from google.protobuf import any_pb2, empty_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from wonderland.h2grpc import GrpcServer, ServicerContext, StatusCode, service_methods

SERVICE = dapr_pb2.DESCRIPTOR.services_by_name["Dapr"]
MB = 1024 * 1024


class Servicer:
    """GetState does what ``store_name`` says; the rest echo or stream."""

    def __init__(self) -> None:
        self.cancelled: list[str] = []
        self.sleeping: list[str] = []  # keys of the "sleep" calls that reached the handler
        self.saved: dict[str, str] = {}

    async def GetState(self, request: Any, context: ServicerContext) -> Any:
        how = request.store_name
        if how == "size":
            return state_pb2.GetStateResponse(data=b"x" * int(request.key))
        if how == "meta":
            md = {
                k: (v.hex() if isinstance(v, bytes) else v)
                for k, v in context.invocation_metadata()
            }
            return state_pb2.GetStateResponse(metadata=md)
        if how == "abort":
            message = "no such key: " + request.key
            status = status_pb2.Status(code=int(StatusCode.NOT_FOUND), message=message)
            detail = any_pb2.Any()
            detail.Pack(
                error_details_pb2.ErrorInfo(reason="DAPR_STATE_NOT_FOUND", domain="dapr.io")
            )
            status.details.append(detail)
            await context.abort(
                StatusCode.NOT_FOUND,
                message,
                trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
            )
        if how == "boom":
            raise RuntimeError("the handler broke")
        if how == "sleep":
            self.sleeping.append(request.key)
            try:
                await asyncio.sleep(float(request.key))
            except asyncio.CancelledError:
                self.cancelled.append(request.key)
                raise
            return state_pb2.GetStateResponse(data=b"slept")
        if how == "saved":
            return state_pb2.GetStateResponse(data=self.saved[request.key].encode())
        return state_pb2.GetStateResponse(data=request.key.encode(), etag="1")

    async def SaveState(self, request: Any, context: ServicerContext) -> Any:
        for item in request.states:
            self.saved[item.key] = hashlib.sha256(item.value).hexdigest()
        return empty_pb2.Empty()

    async def SubscribeConfiguration(
        self, request: Any, context: ServicerContext
    ) -> AsyncIterator[Any]:
        size = int(request.metadata.get("size", "0"))
        try:
            for i in range(int(request.metadata.get("count", "3"))):
                yield configuration_pb2.SubscribeConfigurationResponse(
                    id=str(i),
                    items={"k": common_pb2.ConfigurationItem(value="v" * size, version=str(i))},
                )
            if request.metadata.get("hold"):
                await asyncio.sleep(60)
        finally:
            if request.metadata.get("hold"):
                self.cancelled.append("stream")

    async def SubscribeTopicEventsAlpha1(
        self, requests: Any, context: ServicerContext
    ) -> AsyncIterator[Any]:
        async for req in requests:
            yield (
                pubsub_pb2.SubscribeTopicEventsResponseAlpha1(
                    initial_response=pubsub_pb2.SubscribeTopicEventsResponseInitialAlpha1()
                )
                if req.HasField("initial_request")
                else pubsub_pb2.SubscribeTopicEventsResponseAlpha1()
            )


@pytest.fixture
async def served() -> AsyncIterator[tuple[Servicer, int, GrpcServer]]:
    servicer = Servicer()
    server = GrpcServer(service_methods(SERVICE, servicer), max_receive_message_length=4 * MB)
    port = await server.start("127.0.0.1", 0)
    try:
        yield servicer, port, server
    finally:
        await server.stop(grace=0.5)


async def test_unary_calls_from_the_aio_and_sync_clients(served: Any) -> None:
    _, port, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)
        got = await stub.GetState(state_pb2.GetStateRequest(store_name="echo", key="hello"))
        assert (got.data, got.etag) == (b"hello", "1")
        many = await asyncio.gather(
            *(
                stub.GetState(state_pb2.GetStateRequest(store_name="echo", key=f"k{i}"))
                for i in range(300)
            )
        )
        assert [m.data for m in many] == [f"k{i}".encode() for i in range(300)]

    def sync_call() -> bytes:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as sch:
            return bytes(
                dapr_pb2_grpc.DaprStub(sch)
                .GetState(state_pb2.GetStateRequest(store_name="echo", key="sync"), timeout=5)
                .data
            )

    assert await asyncio.to_thread(sync_call) == b"sync"


async def test_large_messages_cross_the_flow_control_windows_both_ways(served: Any) -> None:
    servicer, port, _ = served
    opts = [("grpc.max_receive_message_length", 8 * MB), ("grpc.max_send_message_length", 8 * MB)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=opts) as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)
        got = await stub.GetState(state_pb2.GetStateRequest(store_name="size", key=str(3 * MB)))
        assert got.data == b"x" * (3 * MB)
        value = bytes(range(256)) * (3 * MB // 256)
        await stub.SaveState(
            state_pb2.SaveStateRequest(
                store_name="s", states=[common_pb2.StateItem(key="big", value=value)]
            )
        )
        assert servicer.saved["big"] == hashlib.sha256(value).hexdigest()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SaveState(
                state_pb2.SaveStateRequest(
                    store_name="s", states=[common_pb2.StateItem(key="huge", value=b"y" * 5 * MB)]
                )
            )
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in str(err.value.details())
        # the connection still serves after the refused message
        assert (
            await stub.GetState(state_pb2.GetStateRequest(store_name="e", key="a"))
        ).data == b"a"


async def test_gzip_compressed_requests_are_read(served: Any) -> None:
    servicer, port, _ = served
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", compression=grpc.Compression.Gzip
    ) as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)
        value = b"abc" * 100_000
        await stub.SaveState(
            state_pb2.SaveStateRequest(
                store_name="s", states=[common_pb2.StateItem(key="z", value=value)]
            )
        )
        assert servicer.saved["z"] == hashlib.sha256(value).hexdigest()


async def test_status_codes_details_and_unknown_methods(served: Any) -> None:
    _, port, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetState(state_pb2.GetStateRequest(store_name="abort", key="é 100%"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == "no such key: é 100%"
        status = rpc_status.from_call(err.value)  # type: ignore[arg-type]
        assert status is not None
        info = error_details_pb2.ErrorInfo()
        status.details[0].Unpack(info)
        assert info.reason == "DAPR_STATE_NOT_FOUND"

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetState(state_pb2.GetStateRequest(store_name="boom"))
        assert err.value.code() == grpc.StatusCode.UNKNOWN
        assert "the handler broke" in str(err.value.details())

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetBulkState(state_pb2.GetBulkStateRequest(store_name="x"))
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED

        assert (
            await stub.GetState(state_pb2.GetStateRequest(store_name="e", key="b"))
        ).data == b"b"


async def test_metadata_reaches_the_handler(served: Any) -> None:
    _, port, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)
        got = await stub.GetState(
            state_pb2.GetStateRequest(store_name="meta"),
            metadata=(("dapr-app-id", "orders"), ("trace-bin", b"\x00\x01\xff")),
        )
        assert got.metadata["dapr-app-id"] == "orders"
        assert got.metadata["trace-bin"] == "0001ff"
        assert "grpc-timeout" not in got.metadata and "content-type" not in got.metadata


async def test_deadline_and_client_cancel_stop_the_handler(served: Any) -> None:
    servicer, port, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetState(
                state_pb2.GetStateRequest(store_name="sleep", key="30"), timeout=0.3
            )
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert loop.time() - t0 < 5
        call = stub.GetState(state_pb2.GetStateRequest(store_name="sleep", key="31"))
        await wait_until(lambda: "31" in servicer.sleeping, 10, "the call to reach its handler")
        call.cancel()
        stream = stub.SubscribeConfiguration(
            configuration_pb2.SubscribeConfigurationRequest(
                store_name="c", metadata={"count": "1", "hold": "1"}
            )
        )
        assert (await stream.read()).id == "0"
        stream.cancel()
        await wait_until(
            lambda: {"30", "31", "stream"} <= set(servicer.cancelled), 10, "the handlers to stop"
        )


async def test_server_streaming_beyond_the_window_and_bidi(served: Any) -> None:
    _, port, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)
        got = [
            r
            async for r in stub.SubscribeConfiguration(
                configuration_pb2.SubscribeConfigurationRequest(
                    store_name="c", metadata={"count": "200", "size": str(64 * 1024)}
                )
            )
        ]
        assert [r.id for r in got] == [str(i) for i in range(200)]
        assert all(len(r.items["k"].value) == 64 * 1024 for r in got)

        async def requests() -> AsyncIterator[Any]:
            yield pubsub_pb2.SubscribeTopicEventsRequestAlpha1(
                initial_request=pubsub_pb2.SubscribeTopicEventsRequestInitialAlpha1(
                    pubsub_name="p", topic="t"
                )
            )
            for _ in range(4):
                yield pubsub_pb2.SubscribeTopicEventsRequestAlpha1()

        answers = [r async for r in stub.SubscribeTopicEventsAlpha1(requests())]
        assert len(answers) == 5
        assert answers[0].HasField("initial_response")


async def test_api_token() -> None:
    servicer = Servicer()
    server = GrpcServer(
        service_methods(SERVICE, servicer),
        authenticate=lambda md: ("dapr-api-token", "s3cret") in md,
    )
    port = await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = dapr_pb2_grpc.DaprStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetState(state_pb2.GetStateRequest(store_name="e", key="a"))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            got = await stub.GetState(
                state_pb2.GetStateRequest(store_name="e", key="a"),
                metadata=(("dapr-api-token", "s3cret"),),
            )
            assert got.data == b"a"
    finally:
        await server.stop(grace=0.1)


async def test_stop_lets_calls_in_progress_finish(served: Any) -> None:
    servicer, port, server = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)
        call = asyncio.ensure_future(
            stub.GetState(state_pb2.GetStateRequest(store_name="sleep", key="0.3"))
        )
        await wait_until(lambda: "0.3" in servicer.sleeping, 10, "the call to reach its handler")
        await server.stop(grace=5)
        assert (await call).data == b"slept"
    with socket.socket() as s, pytest.raises(OSError):
        s.settimeout(1)
        s.connect(("127.0.0.1", port))


def _frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + sid.to_bytes(4, "big") + payload


def _read_frames(sock: socket.socket, until: Any) -> list[tuple[int, int, int, bytes]]:
    frames: list[tuple[int, int, int, bytes]] = []
    buf = b""
    while True:
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            n = int.from_bytes(buf[:3], "big")
            frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big"), buf[9 : 9 + n]))
            buf = buf[9 + n :]
            if until(frames[-1]):
                return frames
        data = sock.recv(65536)
        if not data:
            return frames
        buf += data


async def test_raw_http2_ping_content_type_and_bad_preface(served: Any) -> None:
    _, port, _ = served

    def talk() -> tuple[list[Any], list[Any], list[Any]]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0))
            s.sendall(_frame(6, 0, 0, b"12345678"))
            pings = _read_frames(s, lambda f: f[0] == 6)
            block = hpack.Encoder().encode(
                [
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":path", "/dapr.proto.runtime.v1.Dapr/GetState"),
                    (":authority", "x"),
                    ("content-type", "text/plain"),
                ]
            )
            s.sendall(_frame(1, 0x4 | 0x1, 1, block))
            answer = _read_frames(s, lambda f: f[0] == 1 and f[2] == 1)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            closed = _read_frames(s, lambda f: f[0] == 7)
        return pings, answer, closed

    pings, answer, closed = await asyncio.to_thread(talk)
    assert (pings[-1][0], pings[-1][1], pings[-1][3]) == (6, 1, b"12345678")
    fields = dict(hpack.Decoder().decode(answer[-1][3]))
    assert fields[":status"] == "415"
    assert closed and closed[-1][0] == 7  # GOAWAY, then the connection closes


async def test_answers_over_the_send_limit_are_refused() -> None:
    server = GrpcServer(service_methods(SERVICE, Servicer()), max_send_message_length=1024)
    port = await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = dapr_pb2_grpc.DaprStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetState(state_pb2.GetStateRequest(store_name="size", key="2048"))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            got = await stub.GetState(state_pb2.GetStateRequest(store_name="size", key="512"))
            assert len(got.data) == 512
    finally:
        await server.stop(grace=0.1)


async def test_oversized_metadata_fails_the_call_not_the_connection(served: Any) -> None:
    _, port, _ = served
    request = state_pb2.GetStateRequest(store_name="e", key="ok").SerializeToString()

    def call(sock: socket.socket, enc: hpack.Encoder, sid: int, extra: list[Any]) -> dict[str, str]:
        block = enc.encode(
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/dapr.proto.runtime.v1.Dapr/GetState"),
                (":authority", "x"),
                ("content-type", "application/grpc"),
                *extra,
            ]
        )
        body = b"\x00" + len(request).to_bytes(4, "big") + request
        frames = b""
        first, rest = block[:16384], block[16384:]
        frames += _frame(1, 0 if rest else 0x4, sid, first)
        while rest:
            piece, rest = rest[:16384], rest[16384:]
            frames += _frame(9, 0 if rest else 0x4, sid, piece)
        sock.sendall(frames + _frame(0, 0x1, sid, body))
        got = _read_frames(sock, lambda f: f[0] == 1 and f[2] == sid and f[1] & 0x1)
        fields: dict[str, str] = {}
        for f in got:
            if f[0] == 1 and f[2] == sid:
                fields.update(dict(dec.decode(f[3])))
        return fields

    dec = hpack.Decoder()

    def talk() -> tuple[dict[str, str], dict[str, str]]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0))
            enc = hpack.Encoder()
            big = call(s, enc, 1, [("x-big", "v" * 70_000)])
            ok = call(s, enc, 3, [])
            return big, ok

    big, ok = await asyncio.to_thread(talk)
    assert big["grpc-status"] == str(int(StatusCode.RESOURCE_EXHAUSTED))
    assert ok["grpc-status"] == "0"
