"""Bridges between the client's protocol and the replica's.

``H1Bridge``: an HTTP/1.1 request to an h2c revision, as a stream on the replica's shared
HTTP/2 connection. ``H1ForH2``: an HTTP/2 stream to an HTTP/1.1 revision, as one
HTTP/1.1 request on its own connection.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import httptools

from wonderland.gateway.h2 import _HOP, H2ClientConnection, _Stream, _UpstreamH2
from wonderland.gateway.table import Endpoint

if TYPE_CHECKING:
    from wonderland.gateway.proxy import ClientConnection, _Request

__all__ = ["H1Bridge", "H1ForH2"]


class H1ForH2(asyncio.Protocol):
    """One HTTP/2 stream sent to an HTTP/1.1 replica on its own connection: the request
    body is collected, sent with a content-length, and the response is passed back as
    HTTP/2 headers and data."""

    def __init__(self, client: H2ClientConnection, stream: _Stream, ep: Endpoint) -> None:
        self.client = client
        self.stream = stream
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[str, str]] = []
        self.sent = False
        self.complete = False
        self.detached = False
        loop = asyncio.get_event_loop()
        task = loop.create_task(self._connect(ep))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _connect(self, ep: Endpoint) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: self, ep.host, ep.port)
        except OSError:
            if not self.detached:
                self.client.upstream_reset(self.stream)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.detached:
            self.transport.close()
            return
        self.maybe_send()

    def maybe_send(self) -> None:
        stream = self.stream
        if self.sent or self.transport is None or not stream.ended:
            return
        self.sent = True
        body = b"".join(data for data, _ in stream.pending)
        stream.pending = []
        pseudo = dict((n, v) for n, v in stream.headers if n.startswith(":"))
        lines = [f"{pseudo.get(':method', 'GET')} {pseudo.get(':path', '/')} HTTP/1.1\r\n"]
        lines.append(f"host: {pseudo.get(':authority', '')}\r\n")
        for name, value in self.client.request_headers(stream):
            if not name.startswith(":") and name not in ("host", "content-length", "te"):
                lines.append(f"{name}: {value}\r\n")
        lines.append(f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
        self.transport.write("".join(lines).encode("latin-1") + body)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.decode("latin-1").lower()
        if lname not in _HOP:
            self.headers.append((lname, value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if not self.detached:
            status = str(self.parser.get_status_code())
            self.client.response_headers(self.stream, [(":status", status), *self.headers], False)

    def on_body(self, body: bytes) -> None:
        if not self.detached:
            self.client.response_data(self.stream, body, False)

    def on_message_complete(self) -> None:
        self.complete = True
        if not self.detached:
            self.client.response_data(self.stream, b"", True)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.complete and not self.detached:
            self.client.upstream_reset(self.stream)

    def detach(self, abort: bool) -> None:
        self.detached = True
        if abort and self.transport is not None and not self.complete:
            self.transport.abort()


class H1Bridge:
    """An HTTP/1.1 request to an h2c revision, sent as one stream on the replica's shared
    HTTP/2 connection; the response comes back as HTTP/1.1 (chunked unless it has a
    content-length, HTTP/2 trailers as chunked trailers)."""

    transport = None  # the proxy pauses an upstream's transport; a bridge has none

    def __init__(self, client: ClientConnection, req: _Request, ep: Endpoint) -> None:
        self.client = client
        self.req = req
        self.ep = ep
        self.chunked = False
        self.started = False
        self.done = False
        body = b"".join(req.body)
        self.stream = _Stream(0, self._headers(body))
        self.stream.pending = [(body, True)]
        self.stream.ended = True
        self.upstream = _UpstreamH2.for_endpoint(ep)
        req.upstream = self
        self.upstream.open(cast(H2ClientConnection, self), self.stream)

    def _headers(self, body: bytes) -> list[tuple[str, str]]:
        req, client = self.req, self.client
        host = req.host.decode("latin-1")
        out = [
            (":method", req.method.decode("latin-1")),
            (":scheme", "http"),
            (":authority", host),
            (":path", req.url.decode("latin-1")),
        ]
        for name, value in req.headers:
            lname = name.decode("latin-1").lower()
            if lname not in _HOP and lname != "host":
                out.append((lname, value.decode("latin-1")))
        ip = client.client_ip.decode("latin-1")
        xff = req.xff.decode("latin-1")
        out.append(("x-forwarded-for", f"{xff}, {ip}" if xff else ip))
        node = f'"[{ip}]"' if ":" in ip else ip
        quoted = f'"{host}"' if ":" in host else host
        fwd = f"for={node};proto=http;host={quoted}"
        prior = req.fwd.decode("latin-1")
        out.append(("forwarded", f"{prior}, {fwd}" if prior else fwd))
        if not req.xfp:
            out.append(("x-forwarded-proto", "http"))
        if any(n == "content-type" and v.startswith("application/grpc") for n, v in out):
            out.append(("te", "trailers"))  # gRPC over HTTP/1.1 (e.g. grpc-web proxies)
        if body or req.method in (b"POST", b"PUT", b"PATCH"):
            out.append(("content-length", str(len(body))))
        return out

    # -- the interface _UpstreamH2 calls back --
    def request_headers(self, stream: _Stream) -> list[tuple[str, str]]:
        return stream.headers

    def _write(self, data: bytes) -> None:
        transport = self.client.transport
        if transport is not None and not self.client.closed:
            transport.write(data)

    def response_headers(self, stream: _Stream, headers: list[tuple[str, str]], end: bool) -> None:
        if self.done:
            return
        if not self.started:
            self.started = True
            self.req.started = True
            self.client.deadlines.items.pop(self.req, None)
            status = next((v for n, v in headers if n == ":status"), "502")
            self.req.status = int(status) if status.isdigit() else 502
            lines = [f"HTTP/1.1 {status} \r\n"]
            has_length = False
            for name, value in headers:
                if name.startswith(":"):
                    continue
                has_length = has_length or name == "content-length"
                lines.append(f"{name}: {value}\r\n")
            if not end and not has_length:
                self.chunked = True
                lines.append("transfer-encoding: chunked\r\n")
            elif end and not has_length:
                lines.append("content-length: 0\r\n")
            lines.append("\r\n")
            self._write("".join(lines).encode("latin-1"))
            if end:
                self._finish()
            return
        # trailers (e.g. grpc-status)
        if self.chunked:
            trailer = "".join(f"{n}: {v}\r\n" for n, v in headers if not n.startswith(":"))
            self._write(b"0\r\n" + trailer.encode("latin-1") + b"\r\n")
            self.chunked = False
        self._finish()

    def response_data(self, stream: _Stream, data: bytes, end: bool) -> None:
        if self.done:
            return
        if data:
            self._write(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)
        if end:
            if self.chunked:
                self._write(b"0\r\n\r\n")
            self._finish()

    def upstream_reset(self, stream: _Stream) -> None:
        if self.done:
            return
        if not self.started:
            self.done = True
            self._release()
            from wonderland.gateway.proxy import error_response

            target = self.req.target
            name = target.name if target is not None else "the revision"
            self.client._respond(
                self.req,
                error_response(
                    502, f"a replica of {name} reset the stream; see 'wonderland logs rev/{name}'"
                ),
            )
            return
        self.done = True
        self._release()
        self.client._complete(self.req, close=True)

    # -- what the proxy calls --
    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        up_id = self.stream.up_id
        if up_id is not None:
            self.upstream.detach(up_id, reset=True)

    def _release(self) -> None:
        req = self.req
        req.upstream = None
        if req.endpoint is not None and req.target is not None:
            req.target.release(req.endpoint)
            req.endpoint = None

    def _finish(self) -> None:
        self.done = True
        self._release()
        self.client._complete(self.req, close=False)
