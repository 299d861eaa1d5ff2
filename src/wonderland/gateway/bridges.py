"""Bridges between the client's protocol and the replica's.

``H1Bridge``: an HTTP/1.1 request to an h2c revision, as a stream on the replica's shared
HTTP/2 connection. ``H1ForH2``: an HTTP/2 stream to an HTTP/1.1 revision, as one
HTTP/1.1 request on its own connection. Both take their headers from the one header
layer (``wonderland.gateway.headers``) and pass flow control through: bytes are
acknowledged to the sending side once the receiving side has them.
"""

from __future__ import annotations

import asyncio
from typing import cast

import httptools

from wonderland.gateway.exchange import H1Client, H1Request, H2Peer, H2Stream
from wonderland.gateway.h2upstream import UpstreamH2
from wonderland.gateway.headers import (
    HOP_BY_HOP,
    HOP_BY_HOP_STR,
    error_response,
    forwarding_str,
    keeps_te,
)
from wonderland.gateway.table import Endpoint

__all__ = ["H1Bridge", "H1ForH2"]

# Response bytes an HTTP/1.1 replica may have ahead of a slow HTTP/2 client before the
# gateway stops reading from it.
_H1_AHEAD = 256 * 1024


class H1ForH2(asyncio.Protocol):
    """One HTTP/2 stream sent to an HTTP/1.1 replica on its own connection (an
    ``H2Source``): the body is streamed (with the client's content-length, or chunked),
    and the response is passed back as HTTP/2 headers, data and end of stream."""

    def __init__(self, client: H2Peer, stream: H2Stream, ep: Endpoint) -> None:
        self.client = client
        self.stream = stream
        stream.source = self
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[str, str]] = []
        self.sent = False  # the request head is written
        self.chunked = False
        self.complete = False
        self.detached = False
        self.write_paused = False
        self.read_paused = False
        self.owed = 0  # request bytes written while the socket was backed up: acked later
        self.ahead = 0  # response bytes the client side has not written on yet
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

    # -- asyncio.Protocol --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.detached:
            self.transport.close()
            return
        self._send_head()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        owed, self.owed = self.owed, 0
        if owed and not self.detached:
            self.client.request_consumed(self.stream, owed)

    def _send_head(self) -> None:
        stream = self.stream
        transport = self.transport
        assert transport is not None
        self.sent = True
        pending, stream.pending = stream.pending, []
        pseudo = {n: v for n, v in stream.headers if n.startswith(":")}
        lines = [f"{pseudo.get(':method', 'GET')} {pseudo.get(':path', '/')} HTTP/1.1\r\n"]
        lines.append(f"host: {pseudo.get(':authority', '')}\r\n")
        length = ""
        for name, value in self.client.request_headers(stream):
            if name == "content-length":
                length = value
            elif not name.startswith(":") and name != "host":
                lines.append(f"{name}: {value}\r\n")
        if stream.ended:
            length = str(sum(len(data) for data, _ in pending))
        if length:
            lines.append(f"content-length: {length}\r\n")
        else:
            self.chunked = True
            lines.append("transfer-encoding: chunked\r\n")
        lines.append("connection: close\r\n\r\n")
        transport.write("".join(lines).encode("latin-1"))
        for data, end in pending:
            self.send_data(stream, data, end)

    # -- H2Source --
    def send_data(self, stream: H2Stream, data: bytes, end: bool) -> None:
        transport = self.transport
        if not self.sent or transport is None:
            stream.pending.append((data, end))
            return
        if self.chunked:
            if data:
                transport.write(b"%x\r\n%s\r\n" % (len(data), data))
            if end:
                transport.write(b"0\r\n\r\n")
        elif data:
            transport.write(data)
        if data:
            if self.write_paused:
                self.owed += len(data)
            else:
                self.client.request_consumed(stream, len(data))

    def consumed(self, stream: H2Stream, size: int) -> None:
        self.ahead -= size
        if self.read_paused and self.ahead <= _H1_AHEAD // 2 and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()

    def detach(self, stream: H2Stream, reset: bool) -> None:
        self.detached = True
        stream.source = None
        if self.transport is not None and not self.complete:
            if reset:
                self.transport.abort()
            else:
                self.transport.close()

    # -- the replica's response --
    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname not in HOP_BY_HOP:
            self.headers.append((lname.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if not self.detached:
            status = str(self.parser.get_status_code())
            self.client.response_headers(self.stream, [(":status", status), *self.headers], False)

    def on_body(self, body: bytes) -> None:
        if not self.detached:
            self.ahead += len(body)
            self.client.response_data(self.stream, body, False)
            if self.ahead > _H1_AHEAD and not self.read_paused and self.transport is not None:
                self.read_paused = True
                self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self.complete = True
        if not self.detached:
            self.client.response_data(self.stream, b"", True)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.complete and not self.detached:
            self.client.upstream_reset(self.stream)


class H1Bridge:
    """An HTTP/1.1 request to an h2c revision, sent as one stream on the replica's shared
    HTTP/2 connection (an ``H2Peer`` there, an ``H1Upstream`` for the client): the
    response comes back as HTTP/1.1 (chunked unless it has a content-length, HTTP/2
    trailers as chunked trailers).

    A body still arriving when the request starts (``req.streaming``) follows as DATA
    frames piece by piece (an ``H1BodySink``); while the replica's flow-control window
    leaves a piece waiting at the gateway, the client is not read."""

    def __init__(self, client: H1Client, req: H1Request, ep: Endpoint) -> None:
        self.client = client
        self.req = req
        self.ep = ep
        self.chunked = False
        self.started = False
        self.done = False
        self.paused = False
        self.owed = 0  # response bytes written while the client was backed up
        self.unsent = 0  # request body bytes handed on that wait for the replica's window
        self.holding = False  # the client is not read until they have gone
        body = b"".join(req.body)
        if req.streaming:
            # the pieces so far now, the others as they come (send_body)
            req.body = []
            ended = req.body_done
            self.stream = H2Stream(0, self._headers(req.length))
            self.stream.pending = [(body, ended)] if body or ended else []
            self.stream.ended = ended
            self.unsent = len(body)
            if not ended:
                req.body_sink = self
        else:
            self.stream = H2Stream(0, self._headers(len(body)))
            self.stream.pending = [(body, True)]
            self.stream.ended = True
        self.upstream = UpstreamH2.for_endpoint(ep)
        req.upstream = self
        self.upstream.open(self, self.stream)

    def _headers(self, length: int) -> list[tuple[str, str]]:
        """The stream's headers; ``length``: the body's (-1: not known, a chunked one
        still arriving)."""
        req = self.req
        host = req.host.decode("latin-1")
        out = [
            (":method", req.method.decode("latin-1")),
            (":scheme", "http"),
            (":authority", host),
            (":path", req.url.decode("latin-1")),
        ]
        grpc = False
        for name, value in req.headers:
            lname = name.decode("latin-1").lower()
            if lname not in HOP_BY_HOP_STR and lname != "host":
                text = value.decode("latin-1")
                out.append((lname, text))
                grpc = grpc or (lname == "content-type" and text.startswith("application/grpc"))
        out += forwarding_str(
            self.client.client_ip.decode("latin-1"),
            host,
            req.xff.decode("latin-1"),
            req.fwd.decode("latin-1"),
        )
        if not req.xfp:
            out.append(("x-forwarded-proto", "http"))
        if grpc or (req.te and keeps_te(req.te)):
            out.append(("te", "trailers"))  # gRPC over HTTP/1.1 (e.g. grpc-web proxies)
        if length > 0 or (length == 0 and req.method in (b"POST", b"PUT", b"PATCH")):
            out.append(("content-length", str(length)))
        return out

    # -- H2Peer: what the replica's connection calls back --
    def request_headers(self, stream: H2Stream) -> list[tuple[str, str]]:
        return stream.headers

    def request_consumed(self, stream: H2Stream, size: int) -> None:
        self.unsent -= size
        if self.holding and self.unsent <= 0:
            # the replica's window took what waited (a WINDOW_UPDATE): read the client on
            self.holding = False
            self.client.hold_body(False)

    # -- H1BodySink: a streamed body's pieces as the client sends them --
    def send_body(self, req: H1Request) -> None:
        pieces, req.body = req.body, []
        if self.done:
            return
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        end = req.body_done
        if not data and not end:
            return
        self.unsent += len(data)
        self.stream.ended = end
        self.upstream.send_data(self.stream, data, end)
        if self.unsent > 0 and not self.holding and not end:
            # the replica's window is spent (or the stream waits to start): what the
            # client sends next waits in the client's socket, not in the gateway
            self.holding = True
            self.client.hold_body(True)

    def _write(self, data: bytes, size: int) -> None:
        """Write response bytes (``size`` of them the replica's data) to the client."""
        transport = self.client.transport
        if transport is not None and not self.client.closed:
            transport.write(data)
            if self.paused:
                self.owed += size
            else:
                self.upstream.consumed(self.stream, size)

    def response_headers(self, stream: H2Stream, headers: list[tuple[str, str]], end: bool) -> None:
        if self.done:
            return
        if not self.started:
            self.started = True
            self.client.first_byte(self.req)
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
            self._write_head("".join(lines).encode("latin-1"))
            if end:
                self._finish()
            return
        # trailers (e.g. grpc-status)
        if self.chunked:
            trailer = "".join(f"{n}: {v}\r\n" for n, v in headers if not n.startswith(":"))
            self._write_head(b"0\r\n" + trailer.encode("latin-1") + b"\r\n")
            self.chunked = False
        self._finish()

    def _write_head(self, data: bytes) -> None:
        transport = self.client.transport
        if transport is not None and not self.client.closed:
            transport.write(data)

    def response_data(self, stream: H2Stream, data: bytes, end: bool) -> None:
        if self.done:
            return
        if data:
            self._write(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data, len(data))
        if end:
            if self.chunked:
                self._write_head(b"0\r\n\r\n")
            self._finish()

    def upstream_reset(self, stream: H2Stream) -> None:
        if self.done:
            return
        self.done = True
        self._release()
        if not self.started:
            target = self.req.target
            name = target.name if target is not None else "the revision"
            self.client.respond(
                self.req,
                error_response(
                    502, f"a replica of {name} reset the stream; see 'wonderland logs rev/{name}'"
                ),
            )
            return
        self.client.complete(self.req, close=True)

    # -- H1Upstream: what the client connection calls --
    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        owed, self.owed = self.owed, 0
        if owed and not self.done:
            self.upstream.consumed(self.stream, owed)

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        self.upstream.detach(self.stream, reset=True)

    def _release(self) -> None:
        req = self.req
        req.upstream = None
        if req.endpoint is not None and req.target is not None:
            req.target.release(req.endpoint)
            req.endpoint = None

    def _finish(self) -> None:
        self.done = True
        # answered before a streamed body was all in: the stream is cancelled at the
        # replica (detach) and the rest of the body is read and dropped
        self.upstream.detach(self.stream, reset=False)
        self._release()
        self.client.complete(self.req, close=False)
