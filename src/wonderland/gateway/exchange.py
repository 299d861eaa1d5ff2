"""What a request is while the gateway carries it, and the seams between the two sides.

A client side (``proxy.ClientConnection`` for HTTP/1.1, ``h2.H2ClientConnection`` for
HTTP/2) and a replica side (``upstream.UpstreamConnection`` and
``h2upstream.UpstreamH2``, or a bridge between the protocols) meet only through the
Protocols here, so no module of the gateway imports another one's internals and the
four pairings (H1 to H1, H1 to h2c, H2 to H1, H2 to h2c) are built from the same parts:

- ``H1Client``: the client's HTTP/1.1 connection, as the replica side of a request sees it;
- ``H1Upstream``: what carries an HTTP/1.1 request to the replica, as the client sees it;
- ``H1BodySink``: where the pieces of a streamed HTTP/1.1 request body go as they arrive
  (the replica's HTTP/1.1 connection, or the bridge's stream to an h2c replica);
- ``H2Peer``: the client side of one HTTP/2 stream to a replica (an HTTP/2 client, or
  the bridge that turns an HTTP/1.1 request into a stream);
- ``H2Source``: what carries one client HTTP/2 stream to the replica (a shared HTTP/2
  connection, or the bridge to an HTTP/1.1 replica).

Flow control runs through ``H2Peer.request_consumed`` and ``H2Source.consumed``: a side
acknowledges received bytes only once the other side has written them on.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from wonderland.gateway.table import Endpoint, RevisionTarget

__all__ = [
    "H1BodySink",
    "H1Client",
    "H1Link",
    "H1Request",
    "H1Upstream",
    "H2Peer",
    "H2Source",
    "H2Stream",
]


class H1Request:
    """One parsed HTTP/1.1 client request.

    A body that arrives with its head is buffered, so the request can be retried on
    another replica. A body still arriving when the head is in (an upload, a chunked
    request stream) is streamed: the request starts at once and ``body`` holds only the
    pieces not yet written to the replica (``streaming``), framed as the client framed them.

    Defaults live on the class: a request sets only what it has, which keeps the
    per-request cost down.
    """

    url = b""
    host = b""
    tag = b""
    method = b"GET"
    keep_alive = True
    target: RevisionTarget | None = None
    endpoint: Endpoint | None = None
    upstream: H1Upstream | None = None
    deadline = 0.0
    upgrade = b""
    head = b""
    started = False
    waiting = False
    attempts = 0
    xff = b""
    fwd = b""
    xfp = b""
    te = b""
    connection = b""
    chunked = False
    size = 0  # body bytes
    # metrics: arrival, send to the replica that answers (-1: none), status, that replica;
    # times are time.monotonic(), not loop.time(), which uvloop keeps in whole milliseconds
    # (a sub-millisecond request would be timed as 0)
    t0 = 0.0
    sent = -1.0
    status = 0
    pod: Endpoint | None = None
    traceparent = b""  # as the client sent it
    span: tuple[bytes, bytes, bytes, int] | None = None  # trace, span, parent ids, start ns
    failed = False
    length = -1  # the client's content-length (-1: none)
    streaming = False  # the request started before its body was in
    body_done = False  # (streaming) the client's body is all in
    body_sink: H1BodySink | None = None  # (streaming) where the body's pieces go
    queued_body = 0  # (streaming) body bytes counted against the activator's queue

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []

    def take_body(self) -> bytes:
        """The body pieces not written yet, framed for the replica (chunked as the client
        sent it, with the last chunk once the body is all in), and forget them."""
        pieces, self.body = self.body, []
        if not self.chunked:
            return b"".join(pieces)
        out = [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p]
        if self.body_done:
            out.append(b"0\r\n\r\n")
        return b"".join(out)


class H1BodySink(Protocol):
    """Where a streamed request body goes as it arrives: the replica's HTTP/1.1
    connection (framed as the client framed it) or a bridge's HTTP/2 stream (as DATA
    frames, within the replica's flow-control window). A sink that cannot keep up tells
    the client side to stop reading (``H1Client.hold_body``)."""

    def send_body(self, req: H1Request) -> None:
        """Send the pieces of ``req.body`` (and forget them), with the body's end once
        ``req.body_done``."""


class H1Upstream(Protocol):
    """What carries one HTTP/1.1 request to a replica (a connection, or a bridge to an
    h2c replica): the client connection pauses it while its own writes back up."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def abort(self) -> None:
        """The client is gone or the request timed out: drop what is in flight."""


class H1Link(Protocol):
    """A kept-alive HTTP/1.1 connection to a replica: pooled when a response is done, or
    the replica's end of a tunnel after a protocol switch (101)."""

    idle_since: float

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class H1Client(Protocol):
    """The client's HTTP/1.1 connection, as the side that talks to the replica sees it."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def transport(self) -> asyncio.Transport | None: ...

    @property
    def closed(self) -> bool: ...

    @property
    def paused(self) -> bool: ...

    @property
    def client_ip(self) -> bytes: ...

    @property
    def tunnel(self) -> H1Link | None: ...

    def first_byte(self, req: H1Request) -> None:
        """The replica started answering ``req``."""

    def rearm(self, req: H1Request) -> None:
        """``req`` is to be retried from scratch: its first-byte deadline starts again."""

    def response_done(self, req: H1Request, conn: H1Link, reusable: bool) -> None:
        """The whole response to ``req`` reached the client; ``conn`` may be reused."""

    def upstream_failed(self, req: H1Request, sent: bool) -> None:
        """The replica went away before answering ``req``."""

    def start_tunnel(self, req: H1Request, conn: H1Link) -> None:
        """The replica switched protocols: bytes flow both ways through ``conn`` now."""

    def end_tunnel(self) -> None: ...

    def respond(self, req: H1Request, data: bytes) -> None:
        """Answer ``req`` with the gateway's own complete response ``data``."""

    def complete(self, req: H1Request, close: bool) -> None:
        """``req`` is answered; ``close``: the client connection must end too."""

    def hold_body(self, hold: bool) -> None:
        """Stop (or go on) reading a streamed request body: the replica reads slower."""


class H2Stream:
    """One HTTP/2 stream the gateway carries, from the client side to a replica."""

    __slots__ = (
        "client_id",
        "ended",
        "endpoint",
        "headers",
        "last_io",
        "pending",
        "received",
        "responded",
        "sent",
        "source",
        "span",
        "status",
        "t0",
        "target",
        "timer",
        "unacked",
        "up_id",
        "waiting",
    )

    def __init__(self, client_id: int, headers: list[tuple[str, str]]) -> None:
        self.client_id = client_id
        self.headers = headers
        self.target: RevisionTarget | None = None
        self.endpoint: Endpoint | None = None
        self.source: H2Source | None = None
        self.up_id: int | None = None  # the stream's id on the replica's connection
        self.pending: list[tuple[bytes, bool]] = []  # request data before it can be sent
        self.ended = False
        self.responded = False
        self.waiting = False
        self.received = 0  # request body bytes (the body limit)
        self.unacked = 0  # request bytes received and not yet acknowledged to the client
        self.timer: asyncio.TimerHandle | None = None
        self.last_io = 0.0  # the last response bytes (idleTimeoutSeconds)
        self.t0 = 0.0  # metrics: arrival, send to a replica (-1: none), status
        self.sent = -1.0
        self.status = 0
        self.span: tuple[str, str, str, int] | None = None


class H2Peer(Protocol):
    """The client side of an HTTP/2 stream to a replica, as ``H2Source`` calls it back."""

    def request_headers(self, stream: H2Stream) -> list[tuple[str, str]]:
        """The headers to send to the replica (hop-by-hop dropped, forwarding added)."""

    def request_consumed(self, stream: H2Stream, size: int) -> None:
        """``size`` bytes of the request body were written on to the replica."""

    def response_headers(
        self, stream: H2Stream, headers: list[tuple[str, str]], end: bool
    ) -> None: ...

    def response_data(self, stream: H2Stream, data: bytes, end: bool) -> None: ...

    def upstream_reset(self, stream: H2Stream) -> None:
        """The replica reset the stream or went away."""


class H2Source(Protocol):
    """What carries one client stream to a replica, as the client side calls it."""

    def send_data(self, stream: H2Stream, data: bytes, end: bool) -> None:
        """More of the request body (``end``: the last)."""

    def consumed(self, stream: H2Stream, size: int) -> None:
        """``size`` bytes of the response were written on to the client."""

    def detach(self, stream: H2Stream, reset: bool) -> None:
        """The client side is done with ``stream`` (``reset``: cancel it at the replica)."""
