"""Fuzzing the gateway's HTTP/1.1 and HTTP/2 parsers: a live gateway, seeds recorded from
real clients (httpx over HTTP/1.1 and HTTP/2), mutations, and what must hold for every
input. Shared by tests/gateway/test_gateway_fuzz.py (a short run) and
bench/gateway/fuzz.py (a long one).

What must hold: no 5xx for a malformed request, the gateway answers a well-formed request
after it, it holds nothing for a connection that is gone (in-flight counts, queues, open
sockets), and every answer it writes is well-formed HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import hpack
import httptools
import hyperframe.frame
import uvloop
from grpc import aio

from _support.daemon import wait_for
from _support.servers import asgi_replica
from wonderland.gateway import GatewayServer, HostRoute, RoutingTable
from wonderland.gateway.limits import GatewayLimits

HOST = "fuzz.default.127.0.0.1.sslip.io"
H2C_HOST = "fuzz-h2c.default.127.0.0.1.sslip.io"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    size = 0
    while True:
        msg = await receive()
        size += len(msg.get("body", b""))
        if not msg.get("more_body"):
            break
    body = json.dumps({"path": scope["path"], "size": size}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


class LiveGateway:
    """A gateway on its own event loop thread, in front of an HTTP/1.1 echo replica
    (``HOST``) and an h2c gRPC-style replica (``H2C_HOST``)."""

    def __init__(self, limits: GatewayLimits | None = None) -> None:
        self.limits = limits or GatewayLimits(
            max_body_bytes=256 * 1024, header_timeout=1.0, max_header_bytes=16 * 1024
        )
        self.loop = uvloop.new_event_loop()
        self.port = 0
        self.table = RoutingTable()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> LiveGateway:
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            raise RuntimeError(f"the fuzzing gateway did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by __enter__
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = aio.server()

        async def echo(request: bytes, context: Any) -> bytes:
            return request

        handler = grpc.unary_unary_rpc_method_handler(echo)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("fuzz.Echo", {"Echo": handler}),)
        )
        grpc_port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        async with asgi_replica(_echo) as port:
            h1 = self.table.revision("default", "fuzz-00001")
            h1.set_endpoints([("127.0.0.1", port, "r1")])
            h2c = self.table.revision("default", "fuzz-h2c-00001")
            h2c.h2c = True
            h2c.set_endpoints([("127.0.0.1", grpc_port, "r2")])
            self.table.set_route("default/fuzz", {HOST: HostRoute("default/fuzz", [(h1, 100)])})
            self.table.set_route(
                "default/fuzz-h2c", {H2C_HOST: HostRoute("default/fuzz-h2c", [(h2c, 100)])}
            )
            gw = GatewayServer(self.table, port=0, limits=self.limits)
            await gw.start()
            self.port = gw.port
            self._ready.set()
            await self._stop.wait()
            await gw.stop()
        await server.stop(0)

    # -- what must hold between inputs --
    def held(self) -> dict[str, int]:
        """What the gateway still holds for requests (all zero when it is idle)."""
        held = {"in_flight": 0, "waiters": 0, "queued_bytes": 0, "endpoint_in_flight": 0}
        for target in self.table.revisions.values():
            held["in_flight"] += target.in_flight
            held["waiters"] += len(target.waiters)
            held["queued_bytes"] += target.queued_bytes
            held["endpoint_in_flight"] += sum(e.in_flight for e in target.endpoints)
        return held

    def open_connections(self) -> int:
        """Client connections to the gateway's port still established (from /proc)."""
        return established(self.port)

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until the gateway holds nothing and no client connection is open."""
        try:
            wait_for(
                lambda: not any(self.held().values()) and self.open_connections() == 0,
                timeout,
                interval=0.02,
            )
        except AssertionError:
            held, conns = self.held(), self.open_connections()
            raise AssertionError(
                f"the gateway still holds {held} and {conns} connections"
            ) from None

    def healthy(self) -> None:
        """A well-formed request still gets its answer."""
        head = f"GET /ok HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
        data, _ = exchange(self.port, [head], idle=5.0)
        statuses = h1_statuses(data)
        assert statuses == [200], data[:300]


def established(port: int) -> int:
    """Established TCP connections whose local port is ``port``."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state = fields[1], fields[3]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def exchange(port: int, chunks: list[bytes], idle: float = 0.3) -> tuple[bytes, bool]:
    """Send ``chunks`` on a fresh connection and read until the gateway closes it (True)
    or stays silent for ``idle`` seconds (False); always closes the socket."""
    out = bytearray()
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass
        sock.settimeout(idle)
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                data = sock.recv(65536)
                if not data:
                    closed = True
                    break
                out += data
        except TimeoutError:
            pass
        except OSError:
            closed = True
    return bytes(out), closed


class _Responses:
    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_headers_complete(self) -> None:
        self.statuses.append(self.parser.get_status_code())


def h1_statuses(data: bytes) -> list[int]:
    """The status of every response in ``data``; AssertionError if it is not HTTP."""
    responses = _Responses()
    rest = data
    while rest:
        try:
            responses.parser.feed_data(rest)
            rest = b""
        except httptools.HttpParserUpgrade:
            break
        except httptools.HttpParserError as exc:
            raise AssertionError(
                f"the gateway wrote malformed HTTP/1.1: {exc}: {data[:300]!r}"
            ) from None
    return responses.statuses


def h2_frames(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of every whole frame in ``data``."""
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        ftype, flags = data[pos + 3], data[pos + 4]
        sid = struct.unpack(">I", data[pos + 5 : pos + 9])[0] & 0x7FFFFFFF
        if pos + 9 + length > len(data):
            return
        yield ftype, flags, sid, data[pos + 9 : pos + 9 + length]
        pos += 9 + length


def h2_statuses(data: bytes) -> tuple[list[int], int | None]:
    """The ``:status`` of every response the gateway sent, and its GOAWAY code if any.
    The first bytes must be a SETTINGS frame (a server's preface)."""
    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = 1 << 16
    statuses: list[int] = []
    goaway: int | None = None
    block = b""
    frames = list(h2_frames(data))
    if data:
        assert frames and frames[0][0] == 0x4, f"no SETTINGS first: {data[:60]!r}"
    for ftype, flags, _sid, payload in frames:
        if ftype == 0x1:  # HEADERS
            if flags & 0x8:  # PADDED
                pad = payload[0]
                payload = payload[1 : len(payload) - pad]
            if flags & 0x20:  # PRIORITY
                payload = payload[5:]
            block = payload
            if flags & 0x4:
                statuses += _status(decoder, block)
                block = b""
        elif ftype == 0x9:  # CONTINUATION
            block += payload
            if flags & 0x4:
                statuses += _status(decoder, block)
                block = b""
        elif ftype == 0x7 and len(payload) >= 8:
            goaway = struct.unpack(">I", payload[4:8])[0]
    return statuses, goaway


def _status(decoder: hpack.Decoder, block: bytes) -> list[int]:
    headers = dict(decoder.decode(block, raw=False))
    status = headers.get(":status")
    return [int(status)] if status is not None else []


# -- seeds from real clients --
def capture_seeds() -> dict[str, list[bytes]]:
    """What httpx sends over HTTP/1.1 and HTTP/2 (prior knowledge) for a few typical
    requests, recorded by a socket that answers each with a minimal response."""
    import httpx

    records: list[bytearray] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            record = bytearray()
            records.append(record)
            threading.Thread(target=_record, args=(conn, record), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for http2 in (False, True):
            with httpx.Client(http1=not http2, http2=http2, timeout=1.0) as client:
                for method, path, kwargs in (
                    ("GET", "/", {}),
                    ("GET", "/search?q=a%20b&x=1", {"headers": {"Accept": "text/html"}}),
                    ("GET", "/w", {"headers": {"Proxy-Authorization": "Basic eDp5"}}),
                    ("POST", "/v2/models/iris/infer", {"json": {"inputs": [[1, 2, 3, 4]]}}),
                    ("PUT", "/state", {"content": b"v" * 3000}),
                    ("POST", "/chunked", {"content": iter([b"a" * 100, b"b" * 100])}),
                    ("DELETE", "/state/k", {"headers": {"Knative-Serving-Tag": "blue"}}),
                ):
                    headers = {"Host": HOST, **kwargs.pop("headers", {})}
                    with contextlib.suppress(httpx.HTTPError):
                        client.request(method, base + path, headers=headers, **kwargs)
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    seeds: dict[str, list[bytes]] = {"h1": [], "h2": []}
    for record in records:
        data = bytes(record)
        if data.startswith(PREFACE):
            seeds["h2"].append(data)
        elif data:
            # one seed per request: split the kept-alive connection's bytes at each method
            seeds["h1"] += _split_h1(data)
    return seeds


def _record(conn: socket.socket, record: bytearray) -> None:
    conn.settimeout(0.3)
    h2_server: h2.connection.H2Connection | None = None
    with conn:
        while True:
            try:
                data = conn.recv(65536)
            except (TimeoutError, OSError):
                return
            if not data:
                return
            record += data
            if bytes(record[:3]) == b"PRI":
                if h2_server is None:
                    h2_server = h2.connection.H2Connection(
                        h2.config.H2Configuration(client_side=False)
                    )
                    h2_server.initiate_connection()
                for event in h2_server.receive_data(data):
                    if isinstance(event, h2.events.StreamEnded):
                        h2_server.send_headers(
                            event.stream_id, [(":status", "200"), ("content-length", "0")], True
                        )
                conn.sendall(h2_server.data_to_send())
            elif b"\r\n\r\n" in data:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


def _split_h1(data: bytes) -> list[bytes]:
    starts = [0]
    for method in (b"GET ", b"POST ", b"PUT ", b"DELETE "):
        pos = data.find(b"\r\n" + method, 1)
        while pos >= 0:
            starts.append(pos + 2)
            pos = data.find(b"\r\n" + method, pos + 2)
    starts = sorted(set(starts))
    return [data[a:b] for a, b in zip(starts, [*starts[1:], len(data)], strict=True)]


# -- mutations --
OPS = ("flip", "insert", "delete", "duplicate", "truncate", "header", "number", "frame")
NASTY = (
    b"\r\n",
    b"\n",
    b"\r",
    b"\x00",
    b" ",
    b":",
    b"\t",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Content-Length: -1\r\n",
    b"Host: \r\n",
    b"Connection: Upgrade\r\nUpgrade: websocket\r\n",
    b"Expect: 100-continue\r\n",
    b"ffffffffffffffff\r\n",
    b"HTTP/1.0",
    b"HTTP/9.9",
    b"CONNECT",
    b"PRI * HTTP/2.0",
    b"%00",
    b"\xff\xfe",
)


def mutate(seed: bytes, ops: list[tuple[str, int, bytes]]) -> bytes:
    """Apply ``ops`` (name, position, bytes) to ``seed``."""
    data = bytearray(seed)
    for name, where, extra in ops:
        n = len(data)
        pos = where % (n + 1)
        if name == "flip" and n:
            data[pos % n] ^= 1 << (where % 8)
        elif name == "insert":
            data[pos:pos] = extra or NASTY[where % len(NASTY)]
        elif name == "delete":
            del data[pos : pos + 1 + where % 16]
        elif name == "duplicate":
            data[pos:pos] = data[pos : pos + 1 + where % 64]
        elif name == "truncate":
            del data[pos:]
        elif name == "header":
            line = data.find(b"\r\n", pos)
            if line >= 0:
                data[line + 2 : line + 2] = NASTY[where % len(NASTY)] + extra + b"\r\n"
        elif name == "number":
            for i in range(pos, n):
                if 48 <= data[i] <= 57:
                    data[i : i + 1] = str(where * 7919).encode()
                    break
        elif name == "frame" and n > 33:
            # an HTTP/2 frame header after the preface: type, flags, length or stream id
            base = 24 + (where % max(1, n - 33))
            data[base + (where % 9)] = where % 256
    return bytes(data)


# -- hand-written HTTP/2 sequences, driven through the h2 library --
def _client(validate: bool = False) -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(
            client_side=True,
            header_encoding="utf-8",
            validate_outbound_headers=validate,
            normalize_outbound_headers=validate,
            validate_inbound_headers=False,
        )
    )
    conn.initiate_connection()
    return conn


def _head(authority: str = HOST, path: str = "/", method: str = "GET") -> list[tuple[str, str]]:
    return [(":method", method), (":scheme", "http"), (":authority", authority), (":path", path)]


@functools.cache
def adversarial_h2() -> dict[str, bytes]:
    """Named byte sequences a hostile HTTP/2 client could send."""
    seqs: dict[str, bytes] = {}

    def raw(frame: hyperframe.frame.Frame) -> bytes:
        return bytes(frame.serialize())

    c = _client()
    c.send_headers(1, [*_head(), ("connection", "keep-alive")], end_stream=True)
    seqs["connection-specific header"] = c.data_to_send()

    c = _client()
    c.send_headers(1, [*_head(), ("X-Upper", "1")], end_stream=True)
    seqs["upper-case header name"] = c.data_to_send()

    c = _client()
    c.send_headers(1, [(":method", "GET"), (":path", "/")], end_stream=True)
    seqs["missing pseudo-headers"] = c.data_to_send()

    c = _client()
    c.send_headers(1, [*_head(), (":bogus", "x")], end_stream=True)
    seqs["unknown pseudo-header"] = c.data_to_send()

    c = _client()
    c.send_headers(1, [*_head(), ("x-big", "v" * 70_000)], end_stream=True)
    seqs["header list over the limit"] = c.data_to_send()

    c = _client()
    c.send_headers(1, [*_head(HOST, "/", "POST"), ("content-length", "10")])
    c.send_data(1, b"x" * 20, end_stream=True)
    seqs["body longer than content-length"] = c.data_to_send()

    c = _client()
    c.send_headers(1, [*_head(HOST, "/", "POST"), ("content-length", "999999999")])
    c.send_data(1, b"x", end_stream=True)
    seqs["content-length over the body limit"] = c.data_to_send()

    c = _client()
    data = c.data_to_send()
    data += raw(hyperframe.frame.DataFrame(7, b"orphan"))
    seqs["DATA on an idle stream"] = data

    c = _client()
    c.send_headers(1, _head(), end_stream=True)
    data = c.data_to_send()
    data += raw(hyperframe.frame.WindowUpdateFrame(0, window_increment=0x7FFFFFFF))
    data += raw(hyperframe.frame.WindowUpdateFrame(0, window_increment=0x7FFFFFFF))
    seqs["window overflow"] = data

    c = _client()
    data = c.data_to_send()
    head = hyperframe.frame.HeadersFrame(1)
    head.data = hpack.Encoder().encode(_head())
    head.flags.add("END_STREAM")
    data += raw(head)
    for _ in range(200):
        cont = hyperframe.frame.ContinuationFrame(1)
        cont.data = b""
        data += raw(cont)
    seqs["CONTINUATION without end"] = data

    c = _client()
    data = c.data_to_send()
    prio = hyperframe.frame.PriorityFrame(3)
    prio.depends_on = 3
    data += raw(prio)
    seqs["stream depending on itself"] = data

    c = _client()
    data = c.data_to_send()
    settings = hyperframe.frame.SettingsFrame(0)
    settings.settings = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0x80000000}
    data += raw(settings)
    seqs["invalid SETTINGS value"] = data

    c = _client()
    c.send_headers(1, _head(), end_stream=True)
    c.send_headers(3, _head(), end_stream=True)
    data = c.data_to_send()
    c2 = _client()
    c2.send_headers(1, _head(), end_stream=True)
    data += c2.data_to_send()[len(PREFACE) :]
    seqs["stream id reused"] = data

    c = _client()
    for i in range(3):
        c.send_headers(1 + 2 * i, _head(H2C_HOST, "/fuzz.Echo/Echo", "POST"), end_stream=False)
    c.close_connection()
    seqs["GOAWAY with streams open"] = c.data_to_send()

    c = _client()
    c.send_headers(1, _head(HOST, "/", "POST"))
    c.send_data(1, b"y" * 1000)
    c.reset_stream(1)
    c.send_headers(3, _head(), end_stream=True)
    seqs["reset mid-body then a request"] = c.data_to_send()

    c = _client()
    data = c.data_to_send()
    data += raw(hyperframe.frame.RstStreamFrame(99))
    seqs["RST_STREAM for an idle stream"] = data

    seqs["preface only, then silence"] = PREFACE
    seqs["half a preface"] = PREFACE[:10]
    return seqs
