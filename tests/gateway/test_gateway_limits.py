"""What a client may make the gateway hold, and the one header layer of its four pairings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import httpx
import pytest
from _support.daemon import wait_until
from _support.h2_client import RawH2
from _support.servers import asgi_replica

from wonderland.gateway import GatewayServer, HostRoute, RoutingTable
from wonderland.gateway.limits import GatewayLimits

HOST = "echo.default.127.0.0.1.sslip.io"


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the request headers (as a list, repeats kept) and the body's length."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        msg = await receive()
        size += len(msg.get("body", b""))
        if not msg.get("more_body"):
            break
    if scope["path"].startswith("/sleep/"):
        await asyncio.sleep(float(scope["path"].split("/")[2]))
    headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
    body = json.dumps({"headers": headers, "size": size}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def gateway_to(
    port: int | None, limits: GatewayLimits | None = None, *, h2c: bool = False
) -> AsyncIterator[tuple[GatewayServer, Any]]:
    table = RoutingTable()
    target = table.revision("default", "echo-00001")
    target.h2c = h2c
    if port is not None:
        target.set_endpoints([("127.0.0.1", port, "r1")])
    table.set_route("default/echo", {HOST: HostRoute("default/echo", [(target, 100)])})
    gw = GatewayServer(table, port=0, **({"limits": limits} if limits else {}))
    await gw.start()
    try:
        yield gw, target
    finally:
        await gw.stop()


@pytest.fixture
async def replica() -> AsyncIterator[int]:
    async with asgi_replica(echo) as port:
        yield port


SECRET_HEADERS = {
    "Proxy-Authorization": "Basic c2VjcmV0",
    "Connection": "keep-alive, X-Hop",
    "X-Hop": "for this connection only",
    "X-Forwarded-For": "203.0.113.7",
    "Forwarded": "for=203.0.113.7",
    "TE": "trailers",
    "X-Kept": "yes",
}


def _seen(body: bytes) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in json.loads(body)["headers"]:
        seen.setdefault(name, []).append(value)
    return seen


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
async def test_hop_by_hop_and_forwarding_headers_are_the_same_on_every_path(
    replica: int, http2: bool
) -> None:
    async with (
        gateway_to(replica) as (gw, _),
        httpx.AsyncClient(http1=not http2, http2=http2, timeout=30) as client,
    ):
        r = await client.get(
            f"http://127.0.0.1:{gw.port}/", headers={"Host": HOST, **SECRET_HEADERS}
        )
        assert r.status_code == 200 and r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        seen = _seen(r.content)
    # the client's proxy credentials, and the headers its Connection header names (HTTP/2
    # has no Connection header: the client drops it), stay here
    assert "proxy-authorization" not in seen
    assert ("x-hop" in seen) is http2
    assert seen["x-kept"] == ["yes"]
    # one X-Forwarded-For and one Forwarded, each the client's value with this hop added
    assert seen["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]
    assert seen["forwarded"] == [f"for=203.0.113.7, for=127.0.0.1;proto=http;host={HOST}"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["te"] == ["trailers"]


async def test_a_body_over_the_limit_is_answered_413_on_http1_and_http2(replica: int) -> None:
    limits = GatewayLimits(max_body_bytes=10_000)
    async with gateway_to(replica, limits) as (gw, target):
        url = f"http://127.0.0.1:{gw.port}/"
        async with httpx.AsyncClient(timeout=30) as h1:
            ok = await h1.post(url, headers={"Host": HOST}, content=b"x" * 10_000)
            assert ok.status_code == 200 and json.loads(ok.content)["size"] == 10_000
            big = await h1.post(url, headers={"Host": HOST}, content=b"x" * 10_001)
            assert big.status_code == 413
            assert "WONDERLAND_GATEWAY_MAX_BODY_BYTES" in big.text

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(20):
                    yield b"y" * 1000

            chunked = await h1.post(url, headers={"Host": HOST}, content=chunks())
            assert chunked.status_code == 413
        async with httpx.AsyncClient(http1=False, http2=True, timeout=30) as h2:
            ok = await h2.post(url, headers={"Host": HOST}, content=b"x" * 5000)
            assert ok.status_code == 200
            big = await h2.post(url, headers={"Host": HOST}, content=b"x" * 20_000)
            assert big.status_code == 413
            # the connection serves the next stream
            again = await h2.post(url, headers={"Host": HOST}, content=b"z")
            assert again.status_code == 200
        await wait_until(lambda: target.in_flight == 0, 10, "no request left in flight")


def _read_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    out = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(65536):
            out += chunk
    return out


async def test_a_client_trickling_its_head_gets_408_and_is_closed(replica: int) -> None:
    limits = GatewayLimits(header_timeout=0.6)
    async with gateway_to(replica, limits) as (gw, _):

        def slowloris() -> tuple[bytes, float]:
            with socket.create_connection(("127.0.0.1", gw.port)) as sock:
                t0 = time.monotonic()
                sock.sendall(b"GET / HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n")
                with contextlib.suppress(OSError):
                    for _ in range(30):  # one header byte every 0.1 s: never a whole head
                        sock.sendall(b"X")
                        time.sleep(0.1)
                return _read_all(sock, 5), time.monotonic() - t0

        answer, took = await asyncio.to_thread(slowloris)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"Connection: close" in answer
        assert took < 3.0

        def silent() -> bytes:
            with socket.create_connection(("127.0.0.1", gw.port)) as sock:
                return _read_all(sock, 5)

        assert await asyncio.to_thread(silent) == b""  # closed, nothing said

        def slow_body() -> bytes:
            with socket.create_connection(("127.0.0.1", gw.port)) as sock:
                sock.sendall(
                    b"POST / HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nContent-Length: 100\r\n"
                    b"\r\n" + b"x" * 10
                )
                return _read_all(sock, 5)

        assert (await asyncio.to_thread(slow_body)).startswith(b"HTTP/1.1 408 ")
        # a client that keeps to the pace is served
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.get(f"http://127.0.0.1:{gw.port}/", headers={"Host": HOST})
            assert r.status_code == 200


async def test_a_head_over_the_limit_is_answered_431(replica: int) -> None:
    async with gateway_to(replica, GatewayLimits(max_header_bytes=8192)) as (gw, _):

        def huge() -> bytes:
            with socket.create_connection(("127.0.0.1", gw.port)) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nX-Big: ")
                with contextlib.suppress(OSError):
                    for _ in range(40):
                        sock.sendall(b"a" * 1024)
                return _read_all(sock, 5)

        assert (await asyncio.to_thread(huge)).startswith(b"HTTP/1.1 431 ")


async def test_pipelining_is_bounded_the_gateway_stops_reading(replica: int) -> None:
    async with gateway_to(replica, GatewayLimits(max_pipelined=4)) as (gw, target):
        request = (
            b"GET /x HTTP/1.1\r\nHost: "
            + HOST.encode()
            + b"\r\nX-Pad: "
            + b"p" * 8000
            + b"\r\n\r\n"
        )
        first = b"GET /sleep/3 HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n\r\n"
        attempt = 40 * 1024 * 1024

        def pipeline() -> int:
            with socket.create_connection(("127.0.0.1", gw.port)) as sock:
                sock.sendall(first)
                sock.setblocking(False)
                sent = 0
                deadline = time.monotonic() + 2.0
                data = request * 64
                while sent < attempt and time.monotonic() < deadline:
                    try:
                        sent += sock.send(data)
                    except BlockingIOError:
                        # until the gateway reads more (or the deadline passes)
                        select.select([], [sock], [], max(0.0, deadline - time.monotonic()))
                return sent

        accepted = await asyncio.to_thread(pipeline)
        # what the kernel's socket buffers hold, not what the client sent: the gateway
        # holds a few requests and leaves the rest with the client
        assert accepted < attempt // 2, accepted
        await wait_until(lambda: target.in_flight == 0, 15, "the abandoned requests freed")
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.get(f"http://127.0.0.1:{gw.port}/", headers={"Host": HOST})
            assert r.status_code == 200


def _upload_while_held(
    port: int, total: int, release: asyncio.Event, loop: asyncio.AbstractEventLoop
) -> tuple[int, bytes]:
    """POST a ``total``-byte body through the gateway at ``port``, offering it for one second
    while the replica holds back; then release the replica and send the rest. Returns the
    bytes taken in that second and the answer."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /up HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % total
        )
        sock.setblocking(False)
        piece = b"u" * 65536
        sent = 0
        deadline = time.monotonic() + 1.0
        while sent < total and time.monotonic() < deadline:
            try:
                sent += sock.send(piece[: total - sent])
            except BlockingIOError:
                time.sleep(0.01)
        accepted = sent
        loop.call_soon_threadsafe(release.set)
        sock.setblocking(True)
        rest = total - sent
        while rest > 0:
            rest -= sock.send(piece[:rest])
        return accepted, _read_all(sock, 10)


async def test_a_streamed_body_waits_for_a_replica_that_reads_slowly() -> None:
    """The gateway stops reading a streamed request body while the replica does not read
    it (back-pressure), rather than holding what the client sends; then it all arrives."""
    release = asyncio.Event()
    received: list[int] = []

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await release.wait()  # reads nothing until then: its socket buffers fill
        body = await reader.readexactly(length)
        received.append(len(body))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(slow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    total = 48 * 1024 * 1024
    try:
        async with gateway_to(port) as (gw, _):
            loop = asyncio.get_running_loop()
            accepted, answer = await asyncio.to_thread(
                _upload_while_held, gw.port, total, release, loop
            )
    finally:
        server.close()
    # what the kernel's socket buffers and one write buffer hold, not what was offered
    assert accepted < total // 3, accepted
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
    assert received == [total]


async def test_a_streamed_body_waits_for_an_h2c_replica_whose_window_is_spent() -> None:
    """To an h2c replica, a streamed request body goes as its flow-control window allows:
    while the replica acknowledges nothing, the gateway stops reading the client rather
    than holding what it sends; its WINDOW_UPDATEs let the rest through, all of it."""
    release = asyncio.Event()
    received: list[int] = []

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        size = owed = 0
        ended = 0
        while not ended:
            data = await reader.read(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    size += len(event.data)
                    owed += event.flow_controlled_length
                    if release.is_set():
                        conn.acknowledge_received_data(owed, event.stream_id)
                        owed = 0
                elif isinstance(event, h2.events.StreamEnded):
                    ended = event.stream_id
            if not release.is_set() and size >= 65535:
                # the default windows (65,535 bytes) are spent: nothing more may come
                await release.wait()
                conn.acknowledge_received_data(owed, 1)
                owed = 0
            writer.write(conn.data_to_send())
        received.append(size)
        conn.send_headers(ended, [(":status", "200")])
        conn.send_data(ended, b"ok", end_stream=True)
        writer.write(conn.data_to_send())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(slow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    total = 48 * 1024 * 1024
    try:
        async with gateway_to(port, h2c=True) as (gw, _):
            loop = asyncio.get_running_loop()
            accepted, answer = await asyncio.to_thread(
                _upload_while_held, gw.port, total, release, loop
            )
    finally:
        server.close()
    # what the kernel's socket buffers and the replica's window hold, not what was offered
    assert accepted < total // 3, accepted
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n2\r\nok\r\n0\r\n\r\n")
    assert received == [total]


async def _early_h2c_replica(
    resets: list[int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """An h2c replica that takes one stream at a time, answers each at its first piece of
    body and resets nothing (``resets``: the streams the gateway reset)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.local_settings = h2.settings.Settings(
        client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1}
    )
    conn.initiate_connection()
    answered: set[int] = set()
    while True:
        writer.write(conn.data_to_send())
        data = await reader.read(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.StreamReset):
                resets.append(event.stream_id)
            elif isinstance(event, h2.events.DataReceived | h2.events.StreamEnded):
                sid = event.stream_id
                if sid not in answered:
                    answered.add(sid)
                    conn.send_headers(sid, [(":status", "200"), ("content-length", "5")])
                    conn.send_data(sid, b"early", end_stream=True)
    writer.close()


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
async def test_an_h2c_replica_that_answers_before_the_body_is_in_gets_its_stream_back(
    http2: bool,
) -> None:
    """An h2c replica that answers a streamed body early, and resets nothing, has the
    stream cancelled by the gateway: it is not left open there, where the replica's
    one-stream limit would hold the next request back for good."""
    resets: list[int] = []
    server = await asyncio.start_server(
        lambda r, w: _early_h2c_replica(resets, r, w), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        async with gateway_to(port, h2c=True) as (gw, target):
            if http2:
                client = RawH2()
                await client.connect(gw.port)
                sid = client.conn.get_next_available_stream_id()
                head = [(":method", "POST"), (":scheme", "http"), (":authority", HOST)]
                client.conn.send_headers(sid, [*head, (":path", "/up")])
                client.conn.send_data(sid, b"a")
                client.flush()
                await client.wait(lambda: sid in client.ended)
                client.conn.send_data(sid, b"b", end_stream=True)
                second = client.request(HOST, "/up", b"c")
                with contextlib.suppress(TimeoutError):
                    await client.wait(lambda: second in client.ended)
                got, more = bytes(client.data[sid]), bytes(client.data.get(second, b""))
                await client.close()
            else:
                reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
                head_h1 = b"POST /up HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n"
                writer.write(head_h1 + b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
                got = b""
                while b"early" not in got:
                    got += await asyncio.wait_for(reader.read(4096), 10)
                # the rest of the first body, then a second request on the same connection
                writer.write(b"1\r\nb\r\n0\r\n\r\n" + head_h1 + b"Content-Length: 1\r\n\r\nc")
                more = b""
                with contextlib.suppress(TimeoutError):
                    while b"early" not in more:
                        more += await asyncio.wait_for(reader.read(4096), 10)
                writer.close()
            await wait_until(lambda: target.in_flight == 0, 10, "both requests done")
    finally:
        server.close()
    assert got.endswith(b"early") and more.endswith(b"early"), (got, more)
    assert resets == [1]


async def test_the_activator_queue_is_bounded_in_bytes_as_well(replica: int) -> None:
    limits = GatewayLimits(queue_max_bytes=10_000)
    async with (
        gateway_to(None, limits) as (gw, target),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=30) as client,
    ):

        async def post() -> httpx.Response:
            return await client.post("/", headers={"Host": HOST}, content=b"b" * 4000)

        held = [asyncio.create_task(post()) for _ in range(2)]
        await wait_until(lambda: len(target.waiters) == 2, 10, "two held requests")
        third = await post()
        assert third.status_code == 503
        assert "pending request queue full" in third.text
        assert len(target.waiters) == 2
        target.set_endpoints([("127.0.0.1", replica, "r1")])
        answers = await asyncio.gather(*held)
        assert [r.status_code for r in answers] == [200, 200]
        assert target.queued_bytes == 0


async def test_idle_connections_are_closed_http2_with_goaway_no_error(replica: int) -> None:
    limits = GatewayLimits(idle_timeout=0.5)
    async with gateway_to(replica, limits) as (gw, _):
        head = b"GET / HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n\r\n"

        def keep_alive() -> tuple[bytes, bytes, float]:
            with socket.create_connection(("127.0.0.1", gw.port)) as sock:
                sock.settimeout(5)
                sock.sendall(head)
                first = sock.recv(65536)
                time.sleep(0.3)  # under the idle timeout: the connection still serves
                sock.sendall(head)
                second = sock.recv(65536)
                t0 = time.monotonic()
                rest = _read_all(sock, 5)  # then nothing: closed silently
                return first + second, rest, time.monotonic() - t0

        answers, rest, took = await asyncio.to_thread(keep_alive)
        assert answers.count(b"HTTP/1.1 200 ") == 2
        assert rest == b""
        assert 0.4 < took < 2.0, took

        client = RawH2()
        await client.connect(gw.port)
        try:
            # a stream open longer than the idle timeout keeps the connection
            sid = client.request(HOST, "/sleep/0.8")
            await client.wait(lambda: sid in client.ended)
            assert client.status(sid) == "200"
            assert client.goaway() is None
            t0 = time.monotonic()
            await asyncio.wait_for(client.closed.wait(), 5)
            took = time.monotonic() - t0
            goaway = client.goaway()
            assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
            assert goaway.last_stream_id == sid
            assert 0.4 < took < 2.0, took
        finally:
            await client.close()


async def test_streams_past_max_concurrent_streams_are_refused_alone(replica: int) -> None:
    async with gateway_to(replica, GatewayLimits(h2_max_concurrent_streams=2)) as (gw, target):
        client = RawH2()
        await client.connect(gw.port)
        try:
            await client.wait(lambda: client.conn.remote_settings.max_concurrent_streams == 2)
            # the client ignores the advertised limit (h2 itself would refuse to send)
            client.conn.remote_settings = h2.settings.Settings(
                client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 9}
            )
            sids = [client.request(HOST, "/sleep/0.5") for _ in range(4)]
            await client.wait(lambda: all(s in client.ended for s in sids))
            resets = {
                e.stream_id: e.error_code
                for e in client.events
                if isinstance(e, h2.events.StreamReset)
            }
            assert resets == {
                sids[2]: h2.errors.ErrorCodes.REFUSED_STREAM,
                sids[3]: h2.errors.ErrorCodes.REFUSED_STREAM,
            }
            assert [client.status(s) for s in sids[:2]] == ["200", "200"]
            assert client.goaway() is None  # the connection stays and serves the next one
            sid = client.request(HOST, "/", b"again")
            await client.wait(lambda: sid in client.ended)
            assert client.status(sid) == "200"
            await wait_until(lambda: target.in_flight == 0, 10, "no request left in flight")
        finally:
            await client.close()
