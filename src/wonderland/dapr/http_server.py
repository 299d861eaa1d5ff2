"""A lean HTTP/1.1 server on httptools and asyncio transports for the sidecar's API.

The sidecar answers small requests on loopback; a dedicated protocol (keep-alive,
pipelining, ``Expect: 100-continue``, a body size limit) keeps both latency and memory
below what a general ASGI server costs.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import httptools

__all__ = ["Handler", "RawRequest", "RawResponse", "serve"]

log = logging.getLogger("wonderland.dapr.http")

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


class RawRequest:
    """One parsed request; ``path`` and ``query`` are still percent-encoded."""

    __slots__ = ("body", "client", "headers", "method", "path", "query")

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        client: str,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.client = client


class RawResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(
        self, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []


Handler = Callable[[RawRequest], Awaitable[RawResponse]]


def _encode(resp: RawResponse, keep_alive: bool) -> bytes:
    parts = [b"HTTP/1.1 %d %s\r\n" % (resp.status, _REASONS.get(resp.status, b"Unknown"))]
    for k, v in resp.headers:
        parts.append(k + b": " + v + b"\r\n")
    if resp.status >= 200 and resp.status not in (204, 304):
        parts.append(b"content-length: %d\r\n" % len(resp.body))
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if resp.status not in (204, 304):
        parts.append(resp.body)
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    def __init__(self, handler: Handler, max_body: int) -> None:
        self.handler = handler
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client = ""
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.queue: collections.deque[tuple[RawRequest, bool]] = collections.deque()
        self.worker: asyncio.Task[None] | None = None
        self.closing = False
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else ""

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.worker is not None:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b"upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._fail(400, f"malformed HTTP request: {exc}".encode())

    def _fail(self, status: int, message: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(
                _encode(RawResponse(status, message, [(b"content-type", b"text/plain")]), False)
            )
            self.transport.close()
        self.closing = True

    # httptools callbacks

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = []
        self.size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        for k, v in self.headers:
            if k.lower() == "expect" and v.lower() == "100-continue" and self.transport is not None:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.max_body:
            self._fail(413, b"request body exceeds the limit")
            raise httptools.HttpParserError("body too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.closing:
            return
        parsed = httptools.parse_url(self.url)
        req = RawRequest(
            self.parser.get_method().decode("ascii"),
            (parsed.path or b"/").decode("latin-1"),
            (parsed.query or b"").decode("latin-1"),
            self.headers,
            b"".join(self.body) if len(self.body) != 1 else self.body[0],
            self.client,
        )
        self.queue.append((req, self.parser.should_keep_alive()))
        if len(self.queue) > 32 and self.transport is not None and not self.paused:
            self.transport.pause_reading()
            self.paused = True
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        try:
            while self.queue and not self.closing:
                req, keep_alive = self.queue.popleft()
                try:
                    resp = await self.handler(req)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("unhandled error on %s %s", req.method, req.path)
                    resp = RawResponse(
                        500,
                        b'{"errorCode":"ERR_INTERNAL","message":"internal error"}',
                        [(b"content-type", b"application/json")],
                    )
                if self.transport is None or self.transport.is_closing():
                    return
                self.transport.write(_encode(resp, keep_alive))
                if not keep_alive:
                    self.transport.close()
                    self.closing = True
                    return
                if self.paused and len(self.queue) < 8:
                    self.transport.resume_reading()
                    self.paused = False
        finally:
            self.worker = None


async def serve(handler: Handler, host: str, port: int, max_body: int) -> asyncio.Server:
    """Listen on ``host:port`` (0: a free port); requests go to ``handler``."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Protocol(handler, max_body), host, port, backlog=1024)
