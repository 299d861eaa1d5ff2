"""Lean clients, as Dapr's perf suite uses one: the cost of the client kept out of the figure.

Dapr measures its gRPC overhead with fortio, a compiled load generator, over 16
connections at 1,000 QPS; the baseline is the same generator calling nothing.
``LeanGrpc`` plays fortio's part here: requests are pre-encoded HTTP/2 frames on
16 connections, answers are checked for ``grpc-status: 0``, and nothing else runs per
call. ``LeanRedis`` sends pre-encoded RESP the same way, for the floor of one loopback
round trip to a server written in C (Redis answering PING). ``LeanHttp`` does the same
for the HTTP API: pre-encoded HTTP/1.1 requests on keep-alive connections.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections import deque
from typing import Generic, Self, TypeVar

import hpack

from wonderland.h2grpc.connection import PREFACE
from wonderland.h2grpc.connection import frame as _frame
from wonderland.h2grpc.headers import HeaderDecoder

P = TypeVar("P", bound=asyncio.Protocol)


class _H2(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.next_id = 1
        self.waiters: dict[int, asyncio.Future[None]] = {}
        self.decoder = HeaderDecoder()  # caches blocks that leave the table alone
        self.unacked = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(  # type: ignore[union-attr]
            PREFACE + _frame(4, 0, 0) + _frame(8, 0, 0, (1 << 24).to_bytes(4, "big"))
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        pos, out = 0, []
        while len(buf) - pos >= 9:
            n = int.from_bytes(buf[pos : pos + 3], "big")
            if len(buf) - pos - 9 < n:
                break
            kind, flags = buf[pos + 3], buf[pos + 4]
            sid = int.from_bytes(buf[pos + 5 : pos + 9], "big")
            payload = buf[pos + 9 : pos + 9 + n]
            pos += 9 + n
            if kind == 0:
                self.unacked += n
            elif kind == 1:
                fields = self.decoder.decode(payload)
                if flags & 1:
                    fut = self.waiters.pop(sid, None)
                    status = next((v for k, v in fields if k == "grpc-status"), None)
                    if fut is not None and not fut.done():
                        if status == "0":
                            fut.set_result(None)
                        else:
                            fut.set_exception(RuntimeError(f"grpc-status {status}: {fields}"))
            elif kind == 3:
                fut = self.waiters.pop(sid, None)
                if fut is not None and not fut.done():
                    fut.set_exception(RuntimeError("stream reset"))
            elif kind == 4 and not flags & 1:
                out.append(_frame(4, 1, 0))
            elif kind == 6 and not flags & 1:
                out.append(_frame(6, 1, 0, payload))
        self.buf = buf[pos:]
        if self.unacked > 1 << 20:
            out.append(_frame(8, 0, 0, self.unacked.to_bytes(4, "big")))
            self.unacked = 0
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def call(self, block: bytes, body: bytes) -> asyncio.Future[None]:
        sid = self.next_id
        self.next_id += 2
        fut = asyncio.get_running_loop().create_future()
        self.waiters[sid] = fut
        assert self.transport is not None
        self.transport.write(_frame(1, 4, sid, block) + _frame(0, 1, sid, body))
        return fut


class _Pool(Generic[P]):
    """``connections`` connections to one loopback port, used round robin."""

    protocol: type[P]

    def __init__(self, port: int, connections: int = 16) -> None:
        self.port = port
        self.count = connections
        self.conns: list[P] = []
        self._next = itertools.cycle(range(connections))

    async def open(self) -> Self:
        loop = asyncio.get_running_loop()
        for _ in range(self.count):
            _, proto = await loop.create_connection(self.protocol, "127.0.0.1", self.port)
            self.conns.append(proto)
        return self

    def _conn(self) -> P:
        return self.conns[next(self._next)]

    def close(self) -> None:
        for c in self.conns:
            transport = getattr(c, "transport", None)
            if transport is not None:
                transport.close()


class LeanGrpc(_Pool[_H2]):
    """Unary gRPC calls over ``connections`` HTTP/2 connections, round robin."""

    protocol = _H2

    def __init__(self, port: int, connections: int = 16) -> None:
        super().__init__(port, connections)
        self._encoder = hpack.Encoder()

    def request(self, path: str, message: bytes) -> tuple[bytes, bytes]:
        """Pre-encode one call: never-indexed literals leave both HPACK tables alone."""
        block = self._encoder.encode(
            [
                hpack.NeverIndexedHeaderTuple(k, v)
                for k, v in (
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":path", path),
                    (":authority", f"127.0.0.1:{self.port}"),
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                )
            ]
        )
        return block, b"\x00" + struct.pack(">I", len(message)) + message

    def call(self, prepared: tuple[bytes, bytes]) -> asyncio.Future[None]:
        return self._conn().call(*prepared)


class _InOrder(asyncio.Protocol):
    """A connection whose answers come back in request order (RESP, HTTP/1.1)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, data: bytes) -> asyncio.Future[None]:
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        assert self.transport is not None
        self.transport.write(data)
        return fut


class _Resp(_InOrder):
    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n", 1)
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)


class LeanRedis(_Pool[_Resp]):
    """PING over ``connections`` Redis connections, round robin, pre-encoded RESP."""

    protocol = _Resp

    def __init__(self, port: int = 6379, connections: int = 16) -> None:
        super().__init__(port, connections)

    def ping(self) -> asyncio.Future[None]:
        return self._conn().send(b"*1\r\n$4\r\nPING\r\n")


class _Http(_InOrder):
    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15 :].split(b"\r\n", 1)[0])
            if len(self.buf) < end + 4 + length:
                return
            status = int(head[9:12])
            self.buf = self.buf[end + 4 + length :]
            fut = self.waiters.popleft()
            if not fut.done():
                if 200 <= status < 300:
                    fut.set_result(None)
                else:
                    fut.set_exception(RuntimeError(f"HTTP {status}"))


class LeanHttp(_Pool[_Http]):
    """HTTP/1.1 keep-alive requests over ``connections`` connections, pre-encoded."""

    protocol = _Http

    def request(self, method: str, path: str, body: bytes = b"") -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        if body or method in ("POST", "PUT"):
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + body

    def call(self, prepared: bytes) -> asyncio.Future[None]:
        return self._conn().send(prepared)
