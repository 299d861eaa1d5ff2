"""The HTTP/1.1 reverse proxy: asyncio protocols over httptools, callback style.

The hot path allocates little: the request head is re-serialised once with the
``Forwarded``/``X-Forwarded-*`` headers added, response bytes from the replica are
written to the client as they arrive (parsed only to find where the response ends),
and upstream connections are kept alive per endpoint. A request body still arriving when
its head is in (an upload, a chunked request stream) goes to the replica piece by piece as
it comes, the request started at once. Requests that find no free endpoint wait in the
revision's queue (containerConcurrency, or a revision at zero: the activator).
``timeoutSeconds`` answers 504 when the first response byte is late.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from time import monotonic, time_ns
from typing import Protocol, cast
from urllib.parse import quote_from_bytes

import httptools

from wonderland.gateway.bridges import H1Bridge
from wonderland.gateway.exchange import H1Link, H1Request
from wonderland.gateway.headers import (
    FRAMING,
    HOP_BY_HOP,
    TAG_HEADER,
    connection_named,
    error_response,
    forwarding,
    keeps_te,
)
from wonderland.gateway.limits import GatewayLimits
from wonderland.gateway.metrics import GatewayMetrics
from wonderland.gateway.table import Endpoint, PathRoute, RevisionTarget, RoutingTable
from wonderland.gateway.tracing import GatewayTracing
from wonderland.gateway.upstream import UpstreamConnection
from wonderland.tracing.context import child_bytes

__all__ = ["ClientConnection", "H2Factory"]

log = logging.getLogger("wonderland.gateway")

# Headers the gateway looks at (or drops); every other header passes straight through.
_SPECIAL = (
    HOP_BY_HOP
    | FRAMING
    | {
        b"host",
        TAG_HEADER,
        b"x-forwarded-for",
        b"forwarded",
        b"x-forwarded-proto",
        b"traceparent",
    }
)
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
_MAX_ATTEMPTS = 4
POOL_IDLE_MAX = 2.0  # seconds a pooled upstream connection may sit idle and still be reused
_LINGER = 2.0  # seconds a refused client's further bytes are read and dropped


class H2Factory(Protocol):
    """Makes the HTTP/2 protocol a connection switches to when it opens with the HTTP/2
    preface (``h2.H2ClientConnection``; passed in, so this module does not import it)."""

    def __call__(self, default_authority: str) -> asyncio.Protocol: ...


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request the gateway refuses."""


class ClientConnection(asyncio.Protocol):
    """One client connection to the gateway (HTTP/1.1, keep-alive, pipelining); the
    ``H1Client`` its replica side calls back.

    ``CONNECT host:port`` (what gRPC clients send to the replicas' ``http_proxy``) opens a
    tunnel to a host the gateway routes: its bytes are then served as a new connection to
    the gateway, with the CONNECT target as the Host of requests that carry none.

    The limits of ``GatewayLimits`` hold here: the request head must arrive within
    ``header_timeout`` (408) and fit ``max_header_bytes`` (431), the body ``max_body_bytes``
    (413), and at most ``max_pipelined`` requests are read ahead.
    """

    default_host = b""  # the CONNECT target, on a connection that is a tunnel

    def __init__(
        self,
        table: RoutingTable,
        metrics: GatewayMetrics | None = None,
        h2_factory: H2Factory | None = None,
        tracing: GatewayTracing | None = None,
        limits: GatewayLimits | None = None,
    ) -> None:
        self.table = table
        self.metrics = metrics
        self.tracing = tracing or GatewayTracing()
        self.limits = limits = limits or GatewayLimits()
        self.max_body = limits.max_body_bytes
        self.propagate = self.tracing.mode != "off"
        self.sink = self.tracing.sink
        self.loop = asyncio.get_event_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client_ip = b"127.0.0.1"
        self.req: H1Request | None = None  # being parsed
        self.current: H1Request | None = None  # being served
        self.pending: deque[H1Request] = deque()
        self.closed = False
        self.paused = False
        self.reading_paused = False  # max_pipelined requests wait already
        self.body_held = False  # a streamed request body waits for a slow replica
        self.h2_factory = h2_factory
        self._first = True
        self.deadlines = _deadlines_for(self.loop)
        self.reads = _reads_for(self.loop)
        self.read_deadline = 0.0  # when the request being read must be in (0: none)
        self.in_head = True  # between a request's first byte and the end of its head
        self.head_bytes = 0
        self.refusal: tuple[int, str] | None = None
        self.tunnel: UpstreamConnection | None = None  # after a 101: raw bytes both ways
        self.tunnel_early: list[bytes] = []  # client bytes sent before the 101 arrived
        self.connect_req: H1Request | None = None  # a CONNECT, opened once the parser stops

    # -- asyncio.Protocol --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip = str(peer[0]).encode()
        self.read_deadline = self.loop.time() + self.limits.header_timeout
        self.reads.add(self, min(self.limits.header_timeout, self.limits.idle_timeout))

    def data_received(self, data: bytes) -> None:
        if self._first:
            self._first = False
            if data.startswith(b"PRI * HTTP/2.0") and self.h2_factory is not None:
                self._switch_to_h2(data)
                return
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.write(data)
            return
        if self.current is not None and self.current.upgrade:
            self.tunnel_early.append(data)
            return
        if self.closed:
            return
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # e.g. WebSocket: the request is on its way; what follows is the new protocol
            rest = data[int(exc.args[0]) :] if exc.args else b""
            if self.connect_req is not None:
                self._open_tunnel(self.connect_req, rest)
                return
            if rest:
                self.tunnel_early.append(rest)
        except httptools.HttpParserError as exc:
            self._drop_unanswered()
            refusal = self.refusal
            if refusal is not None:
                self._fail_client(*refusal)
            else:
                self._fail_client(400, f"malformed HTTP request: {exc}")
            return
        req = self.req
        if (
            req is not None
            and not self.in_head
            and not req.streaming
            and self.current is None
            and not self.pending
            and not req.upgrade
            and not self.closed
        ):
            self._start_streaming(req)
        if self.in_head and self.head_bytes > self.limits.max_header_bytes:
            self._fail_client(
                431,
                f"the request line and headers are larger than the gateway's limit of "
                f"{self.limits.max_header_bytes} bytes",
            )

    def _switch_to_h2(self, data: bytes) -> None:
        assert self.transport is not None and self.h2_factory is not None
        self.reads.forget(self)
        self.closed = True  # this protocol object is done; the HTTP/2 one takes over
        proto = self.h2_factory(self.default_host.decode("latin-1"))
        self.transport.set_protocol(proto)
        proto.connection_made(self.transport)
        proto.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reads.forget(self)
        if self.tunnel is not None:
            self.end_tunnel()
            return
        req = self.current
        if req is not None:
            self._abandon(req)
        for pending in self.pending:
            if pending.target is not None:
                pending.target.end()
        self.pending.clear()

    def pause_writing(self) -> None:
        self.paused = True
        req = self.current
        if req is not None and req.upstream is not None:
            req.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        req = self.current
        if req is not None and req.upstream is not None:
            req.upstream.resume_reading()

    # -- httptools callbacks --
    def on_message_begin(self) -> None:
        self.req = H1Request()
        if not self.in_head:
            self.in_head = True
            self.head_bytes = 0
            self.read_deadline = self.loop.time() + self.limits.header_timeout

    def on_url(self, url: bytes) -> None:
        assert self.req is not None
        self.req.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        req = self.req
        assert req is not None
        lname = name.lower()
        if lname not in _SPECIAL:
            req.headers.append((name, value))  # the common case: passed through as is
            return
        if lname == b"host":
            req.host = value
            req.headers.append((name, value))
        elif lname == b"traceparent":  # rewritten in _start (or put back as is)
            req.traceparent = value
        elif lname == TAG_HEADER:
            req.tag = value
        elif lname == b"x-forwarded-for":
            req.xff = req.xff + b", " + value if req.xff else value
        elif lname == b"forwarded":
            req.fwd = req.fwd + b", " + value if req.fwd else value
        elif lname == b"x-forwarded-proto":
            req.xfp = value
            req.headers.append((name, value))
        elif lname == b"content-length":
            if value.isdigit():
                req.length = int(value)
                if req.length > self.max_body:
                    self._refuse_body()
        elif lname == b"expect":
            if value.lower() == b"100-continue" and self.transport is not None:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        elif lname == b"transfer-encoding":
            req.chunked = True
        elif lname == b"upgrade":
            req.upgrade = value
        elif lname == b"connection":
            req.connection = req.connection + b"," + value if req.connection else value
        elif lname == b"te":
            req.te = value
        # the other hop-by-hop headers are dropped

    def on_headers_complete(self) -> None:
        # the head's deadline stands until the first piece of a body moves it on
        self.in_head = False
        self.head_bytes = 0

    def on_body(self, body: bytes) -> None:
        req = self.req
        assert req is not None
        req.size += len(body)
        if req.size > self.max_body:
            self._refuse_body()
        if req.streaming and self.current is not req:
            return  # answered already: the rest of the body is read and dropped
        req.body.append(body)
        if req.waiting and req.chunked and req.target is not None:
            req.queued_body += len(body)  # held in the activator's queue with its head
            req.target.queued_bytes += len(body)
        # a body streamed to a replica that answers already may pause as a response may
        pause = self.limits.idle_timeout if req.started else self.limits.header_timeout
        self.read_deadline = self.loop.time() + pause
        sink = req.body_sink
        if sink is not None:
            sink.send_body(req)

    def _refuse_body(self) -> None:
        self.refusal = (
            413,
            f"the request body is larger than the gateway's limit of {self.max_body} bytes "
            "(WONDERLAND_GATEWAY_MAX_BODY_BYTES)",
        )
        raise _Refused

    def on_message_complete(self) -> None:
        req = self.req
        assert req is not None
        self.req = None
        self.read_deadline = 0.0
        if req.streaming:
            self._body_done(req)
            return
        req.method = self.parser.get_method()
        if req.method == b"CONNECT":
            self.connect_req = req  # the parser stops next (HttpParserUpgrade)
            return
        req.keep_alive = self.parser.should_keep_alive()
        if self.current is None:
            self._start(req)
        else:
            self.pending.append(req)
            if len(self.pending) >= self.limits.max_pipelined and not self.reading_paused:
                # the client is far ahead: stop reading until it catches up
                self.reading_paused = True
                if self.transport is not None:
                    self.transport.pause_reading()

    def read_timeout(self) -> None:
        """The client took longer than ``header_timeout`` to send a request head (or a
        piece of a body): 408 when a request had begun, then the connection ends. A
        connection idle past ``idle_timeout`` between requests ends silently."""
        if self.closed:
            return
        self._drop_unanswered()
        if self.req is not None and self.current is None and not self.pending:
            self._fail_client(
                408,
                f"the request did not arrive within {self.limits.header_timeout:g}s; "
                "send the whole head at once",
            )
            return
        if self.transport is not None:
            self.transport.close()
        self.closed = True

    # -- request handling --
    def _start_streaming(self, req: H1Request) -> None:
        """Start a request whose body is still arriving: its pieces follow it."""
        req.streaming = True
        # what it holds while queued: its whole declared body, or what came so far
        req.queued_body = req.length if req.length >= 0 else req.size
        req.method = self.parser.get_method()
        req.keep_alive = self.parser.should_keep_alive()
        self._start(req)

    def _drop_unanswered(self) -> None:
        """A streamed request whose body the gateway refuses (too large, too slow, bad
        framing) is dropped at the replica, so the client gets the error, as it would
        had the body been read whole first; unless its response has begun."""
        req = self.req
        if req is not None and req.streaming and self.current is req and not req.started:
            self._abandon(req)

    def _body_done(self, req: H1Request) -> None:
        """The last piece of a streamed request body is in."""
        req.body_done = True
        self.hold_body(False)
        if self.current is not req:
            return  # answered already (an early response, a 504, an error)
        sink = req.body_sink
        if sink is not None:
            req.body_sink = None
            sink.send_body(req)

    def hold_body(self, hold: bool) -> None:
        transport = self.transport
        if transport is None or self.closed or hold == self.body_held:
            return
        self.body_held = hold
        if self.reading_paused:
            return  # paused for pipelining: complete() resumes it
        if hold:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def _start(self, req: H1Request) -> None:
        self.current = req
        url = req.url
        if url[:1] != b"/" and url[:7].lower() == b"http://":
            # absolute-form: a replica using the gateway as its HTTP proxy
            rest = url[7:]
            slash = rest.find(b"/")
            authority = rest if slash < 0 else rest[:slash]
            req.url = b"/" if slash < 0 else rest[slash:]
            req.host = authority
            req.headers = [(n, v) for n, v in req.headers if n.lower() != b"host"]
            req.headers.append((b"Host", authority))
        route = self.table.lookup_bytes(req.host)
        if route is None:
            if not req.host and self.default_host:
                # inside a CONNECT tunnel: the tunnel's target is the default authority
                req.host = self.default_host
                req.headers.append((b"Host", req.host))
                self._start(req)
                return
            if req.url == b"/metrics" and self.metrics is not None:
                self._finish_local(200, self.metrics.render(), b"text/plain; version=0.0.4")
                return
            host = req.host.decode("latin-1") or "(none)"
            self._finish_local(
                404,
                f"no route for Host {host!r}; check the URL with 'wonderland get ksvc'".encode(),
            )
            return
        if req.connection:
            # headers the client's Connection header names are hop-by-hop as well
            named = connection_named(req.connection)
            req.headers = [(n, v) for n, v in req.headers if n.lower() not in named]
        target = None
        if self.table.paths:
            path_route = self.table.path_route(req.host, req.url)
            if path_route is not None:
                if not self._path_allowed(req, path_route):
                    return
                target = path_route.target
        if target is None and req.tag and self.table.tag_header_routing:
            target = route.tags.get(req.tag.decode("latin-1"))
            if target is None:
                self._finish_local(
                    404,
                    f"no traffic target tagged {req.tag.decode('latin-1')!r} for this route".encode(),
                )
                return
        if target is None:
            target = route.pick()
        if target is None:
            self._finish_local(503, b"the route has no revision with traffic yet")
            return
        req.target = target
        target.begin()
        req.t0 = monotonic()
        if self.propagate:
            # continue the client's trace (or start one): a new span id for the replica
            header, trace_id, span_id, parent_id = child_bytes(req.traceparent)
            req.headers.append((b"traceparent", header))
            if self.sink is not None:
                req.span = (trace_id, span_id, parent_id, time_ns())
        elif req.traceparent:
            req.headers.append((b"traceparent", req.traceparent))
        req.head = self._head(req)
        self.deadlines.add(req, self, target.timeout)
        ep = target.acquire()
        if ep is not None:
            self._send(req, ep)
        elif target.wait(_Grant(self, req, target)):
            req.waiting = True
        elif target.removed:
            self.respond(req, error_response(503, f"revision {target.key} was deleted"))
        else:
            self.respond(req, error_response(503, target.queue_full_message()))

    def _path_allowed(self, req: H1Request, route: PathRoute) -> bool:
        """Check the session of a request for a path route; answer it when refused. An
        allowed request carries the route's headers instead of its own Authorization."""
        cookie = b"; ".join(v for n, v in req.headers if n.lower() == b"cookie")
        if not route.allow(cookie.decode("latin-1")):
            if req.method == b"GET" and not req.upgrade:
                location = (
                    route.signin.encode() + b"?next=" + quote_from_bytes(req.url, safe="/").encode()
                )
                data = (
                    b"HTTP/1.1 303 See Other\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n"
                    % location
                )
                if self.transport is not None:
                    self.transport.write(data)
                self.complete(req, close=False)
            else:
                self._finish_local(401, b"sign in first: open the console page")
            return False
        if route.headers:
            req.headers = [(n, v) for n, v in req.headers if n.lower() != b"authorization"]
            req.headers.extend(route.headers)
        return True

    def _head(self, req: H1Request) -> bytes:
        ip = self.client_ip
        parts = [req.method, b" ", req.url, b" HTTP/1.1\r\n"]
        for name, value in req.headers:
            parts += (name, b": ", value, b"\r\n")
        xff, fwd = forwarding(ip, req.host, req.xff, req.fwd)
        parts += (b"X-Forwarded-For: ", xff, b"\r\nForwarded: ", fwd, b"\r\n")
        if not req.xfp:
            parts.append(b"X-Forwarded-Proto: http\r\n")
        if req.te and keeps_te(req.te):
            parts.append(b"TE: trailers\r\n")
        if req.upgrade:
            parts += (b"Connection: Upgrade\r\nUpgrade: ", req.upgrade, b"\r\n")
        if req.streaming:
            # the body follows as it arrives, framed as the client framed it
            if req.chunked:
                parts.append(b"Transfer-Encoding: chunked\r\n\r\n")
            else:
                parts.append(b"Content-Length: %d\r\n\r\n" % req.length)
            return b"".join(parts)
        body_len = req.size
        if body_len or req.method in (b"POST", b"PUT", b"PATCH") or req.chunked:
            parts.append(b"Content-Length: %d\r\n" % body_len)
        parts.append(b"\r\n")
        parts += req.body
        return b"".join(parts)

    def _send(self, req: H1Request, ep: Endpoint) -> None:
        now = monotonic()
        if req.waiting:
            req.waiting = False
            rec = req.target.recorder if req.target is not None else None
            if rec is not None:
                rec.held(now - req.t0)
        req.endpoint = ep
        req.pod = ep
        req.sent = now
        req.attempts += 1
        if self.closed:
            self._abandon(req)
            return
        if req.target is not None and req.target.h2c:
            H1Bridge(self, req, ep)  # the revision speaks HTTP/2 (port named h2c)
            return
        idle = ep.idle
        if idle:
            # An app closes idle keep-alive connections after a few seconds (uvicorn: 5 s);
            # reusing one just then would fail a request that cannot be retried.
            fresh_after = self.loop.time() - POOL_IDLE_MAX
            while idle:
                conn = idle.pop()
                if conn.idle_since > fresh_after and conn.usable():
                    conn.start(self, req)
                    return
                conn.close()
        task = self.loop.create_task(self._connect(req, ep))
        task.add_done_callback(_quiet)

    async def _connect(self, req: H1Request, ep: Endpoint) -> None:
        try:
            _, conn = await self.loop.create_connection(
                lambda: UpstreamConnection(ep), ep.host, ep.port
            )
        except OSError:
            self.upstream_failed(req, sent=False)
            return
        if req.endpoint is not ep or self.current is not req or self.closed:
            conn.close()
            return
        conn.start(self, req)

    def upstream_failed(self, req: H1Request, sent: bool) -> None:
        """The replica went away before answering; retry when safe, else 502."""
        target, ep = req.target, req.endpoint
        req.upstream = None
        req.endpoint = None
        req.body_sink = None
        if target is None or ep is None or self.current is not req:
            return
        target.release(ep)
        if self.closed:
            self._abandon(req)
            return
        # a streamed body's pieces written to the replica are gone: it cannot go again
        again = req.method in _IDEMPOTENT and not req.streaming
        retry = (not sent or again) and req.attempts < _MAX_ATTEMPTS
        if retry:
            if not sent and ep in target.endpoints:
                # A refused connection means the replica is gone; stop sending to it.
                target.endpoints = [e for e in target.endpoints if e is not ep]
            nxt = target.acquire()
            if nxt is not None:
                self._send(req, nxt)
                return
            if target.wait(_Grant(self, req, target)):
                req.waiting = True
                return
        name = target.name if target is not None else "the revision"
        self.respond(
            req,
            error_response(
                502,
                f"a replica of {name} closed the connection before answering; "
                f"see its output with 'wonderland logs rev/{name}'",
            ),
        )

    def _open_tunnel(self, req: H1Request, rest: bytes) -> None:
        """Answer a CONNECT: 200 and a fresh gateway connection over the same socket for a
        host the gateway routes, 403 for any other host (it is not an open proxy)."""
        self.connect_req = None
        authority = req.url
        host, sep, port = authority.rpartition(b":")
        if self.current is not None or self.pending:
            self._fail_client(400, "CONNECT must not follow other requests on a connection")
            return
        text = authority.decode("latin-1")
        if (
            not sep
            or not host
            or not port.isdigit()
            or not 0 < int(port) < 65536
            or any(c in host for c in b"/@ ")
        ):
            self._fail_client(
                400,
                f"malformed CONNECT target {text!r}: give host:port, "
                "e.g. CONNECT my-svc.default.svc.cluster.local:80",
            )
            return
        if self.table.lookup_bytes(host) is None:
            self._fail_client(
                403,
                f"CONNECT to {text!r} refused: the gateway tunnels only to the hosts it "
                "routes (<service>.<namespace>.svc.cluster.local, <service>.<namespace>.svc "
                "and the services' external hosts); check the name with 'wonderland get ksvc'",
            )
            return
        transport = self.transport
        if transport is None or self.closed:
            return
        transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        inner = ClientConnection(
            self.table, self.metrics, self.h2_factory, self.tracing, self.limits
        )
        self.reads.forget(self)
        inner.default_host = authority
        self.closed = True
        self.transport = None
        transport.set_protocol(inner)
        inner.connection_made(transport)
        if rest:
            inner.data_received(rest)

    def start_tunnel(self, req: H1Request, conn: H1Link) -> None:
        """The replica switched protocols (101): pipe bytes both ways until one side closes.
        The request stays in flight (and counts for concurrency) while the tunnel lives."""
        self.tunnel = cast(UpstreamConnection, conn)
        self.deadlines.items.pop(req, None)
        early, self.tunnel_early = self.tunnel_early, []
        for chunk in early:
            conn.write(chunk)

    def end_tunnel(self) -> None:
        conn, req = self.tunnel, self.current
        self.tunnel = None
        if conn is not None:
            conn.close()
        if req is not None:
            if req.endpoint is not None and req.target is not None:
                req.target.release(req.endpoint)
                req.endpoint = None
            req.upstream = None
            self.complete(req, close=True)

    def first_byte(self, req: H1Request) -> None:
        req.started = True
        if req.streaming and self.req is req:
            # the replica answers while the client still sends: the body's pauses are
            # no longer a slow client's
            self.read_deadline = self.loop.time() + self.limits.idle_timeout
        target = req.target
        if target is not None and target.idle_timeout > 0:
            # idleTimeoutSeconds: from now on the deadline moves with every chunk
            req.deadline = self.loop.time() + target.idle_timeout
        else:
            self.deadlines.items.pop(req, None)

    def rearm(self, req: H1Request) -> None:
        if req.target is not None:
            self.deadlines.add(req, self, req.target.timeout)

    def response_done(self, req: H1Request, conn: H1Link, reusable: bool) -> None:
        ep = req.endpoint
        req.upstream = None
        if req.streaming and not req.body_done:
            # answered before the client's body was all in: the replica connection is
            # left mid-request, and what the client still sends is read and dropped
            reusable = False
        if ep is not None:
            if reusable and ep.alive:
                conn.idle_since = self.loop.time()
                ep.idle.append(conn)
            else:
                conn.close()
            if req.target is not None:
                req.target.release(ep)
            req.endpoint = None
        self.complete(req, close=not reusable)

    def _on_timeout(self, req: H1Request) -> None:
        if self.current is not req:
            return
        target = req.target
        if req.started:
            # idleTimeoutSeconds passed without a byte: the response can only be cut
            conn = req.upstream
            if conn is not None:
                req.upstream = None
                conn.abort()
            if req.endpoint is not None and target is not None:
                target.release(req.endpoint)
                req.endpoint = None
            self.complete(req, close=True)
            return
        if req.waiting and target is not None:
            target.cancel_where(lambda w: isinstance(w, _Grant) and w.req is req)
            req.waiting = False
        conn = req.upstream
        if conn is not None:
            req.upstream = None
            conn.abort()
        if req.endpoint is not None and target is not None:
            target.release(req.endpoint)
            req.endpoint = None
        timeout = target.timeout if target else 0
        self.respond(
            req,
            error_response(
                504,
                f"the revision did not start answering within timeoutSeconds ({timeout:g}s)",
            ),
        )

    def respond(self, req: H1Request, data: bytes) -> None:
        """Answer ``req`` with the gateway's own response ``data`` (an error_response)."""
        req.status = int(data[9:12])
        req.pod = None
        req.sent = -1.0
        req.failed = data.startswith(b"HTTP/1.1 5")
        if self.transport is not None and not self.closed:
            self.transport.write(data)
        self.complete(req, close=False)

    def _finish_local(self, status: int, body: bytes, ctype: bytes = b"text/plain") -> None:
        req = self.current
        assert req is not None
        if status == 200:
            data = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
                ctype,
                len(body),
                body,
            )
        else:
            data = error_response(status, body.decode())
        if self.transport is not None:
            self.transport.write(data)
        self.complete(req, close=False)

    def complete(self, req: H1Request, close: bool) -> None:
        self.deadlines.items.pop(req, None)
        req.body_sink = None
        if self.body_held:
            self.hold_body(False)
        if req.span is not None and self.sink is not None:
            self.tracing.record_h1(req.span, req.method, req.url, req.host, req.target, req.failed)
            req.span = None
        target = req.target
        if target is not None:
            rec = target.recorder
            if rec is not None:
                now = monotonic()
                sent = req.sent
                rec.request(
                    req.pod, req.status or 502, now - req.t0, now - sent if sent >= 0 else -1.0
                )
            target.end()
            req.target = None
        self.current = None
        if close or not req.keep_alive or req.upgrade:
            if self.transport is not None:
                self.transport.close()
            self.closed = True
            return
        if not self.pending:
            if self.req is None and not self.closed:
                # a keep-alive connection with nothing under way: closed silently once
                # idle_timeout passes without the next request's first byte
                self.read_deadline = self.loop.time() + self.limits.idle_timeout
            return
        if not self.closed:
            nxt = self.pending.popleft()
            if self.reading_paused and len(self.pending) < self.limits.max_pipelined:
                self.reading_paused = False
                if self.transport is not None:
                    self.transport.resume_reading()
            self._start(nxt)

    def _abandon(self, req: H1Request) -> None:
        """The client went away: free everything the request held."""
        target = req.target
        if req.waiting and target is not None:
            target.cancel_where(lambda w: isinstance(w, _Grant) and w.req is req)
            req.waiting = False
        conn = req.upstream
        if conn is not None:
            req.upstream = None
            conn.abort()
        req.body_sink = None
        if req.endpoint is not None and target is not None:
            target.release(req.endpoint)
            req.endpoint = None
        self.deadlines.items.pop(req, None)
        if target is not None:
            target.end()
            req.target = None
        self.current = None

    def _fail_client(self, status: int, message: str) -> None:
        """End the connection, with ``status`` unless a response is under way on it (a
        pipelined request's error must not land in the middle of it).

        The close lingers (as nginx's does): the gateway stops writing and reads what the
        client still sends, for at most ``_LINGER`` seconds, so that the error is not lost
        to a reset while the client is still sending its body."""
        self.reads.forget(self)
        transport = self.transport
        if transport is not None and not self.closed:
            self.closed = True
            if self.current is None:
                transport.write(error_response(status, message, keep_alive=False))
            if transport.can_write_eof():
                transport.write_eof()
                self.loop.call_later(_LINGER, transport.close)
            else:
                transport.close()
        self.closed = True


class _Deadlines:
    """Requests waiting for their first response byte, checked every 100 ms: cheaper
    than a timer per request, and timeoutSeconds is whole seconds anyway."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: dict[H1Request, ClientConnection] = {}
        self.armed = False

    def add(self, req: H1Request, client: ClientConnection, timeout: float) -> None:
        req.deadline = self.loop.time() + timeout
        self.items[req] = client
        if not self.armed:
            self.armed = True
            self.loop.call_later(0.1, self._tick)

    def _tick(self) -> None:
        now = self.loop.time()
        expired = [(r, c) for r, c in self.items.items() if r.deadline <= now]
        for req, client in expired:
            self.items.pop(req, None)
            client._on_timeout(req)
        if self.items:
            self.loop.call_later(0.1, self._tick)
        else:
            self.armed = False


_DEADLINES: dict[int, _Deadlines] = {}


class _Reads:
    """The live client connections of a loop, swept for a request that is late: one whose
    ``read_deadline`` (set while a request head or body is being read) has passed is told
    408 and closed (slowloris). A request pays one clock read, not a timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: set[ClientConnection] = set()
        self.interval = 1.0
        self.armed = False

    def add(self, client: ClientConnection, timeout: float) -> None:
        self.items.add(client)
        # a quarter of the shortest timeout: a late client is closed within 125 % of it
        self.interval = min(self.interval, max(0.01, timeout / 4))
        if not self.armed:
            self.armed = True
            self.loop.call_later(self.interval, self._tick)

    def forget(self, client: ClientConnection) -> None:
        client.read_deadline = 0.0
        self.items.discard(client)

    def _tick(self) -> None:
        now = self.loop.time()
        late = [c for c in self.items if 0.0 < c.read_deadline <= now]
        for client in late:
            client.read_deadline = 0.0
            client.read_timeout()
        if self.items:
            self.loop.call_later(self.interval, self._tick)
        else:
            self.armed = False


_READS: dict[int, _Reads] = {}


def _reads_for(loop: asyncio.AbstractEventLoop) -> _Reads:
    found = _READS.get(id(loop))
    if found is None or found.loop is not loop:
        found = _Reads(loop)
        _READS[id(loop)] = found
    return found


def _deadlines_for(loop: asyncio.AbstractEventLoop) -> _Deadlines:
    found = _DEADLINES.get(id(loop))
    if found is None or found.loop is not loop:
        found = _Deadlines(loop)
        _DEADLINES[id(loop)] = found
    return found


class _Grant:
    """A held request waiting for an endpoint (the activator / concurrency queue)."""

    __slots__ = ("client", "req", "target")

    def __init__(self, client: ClientConnection, req: H1Request, target: RevisionTarget) -> None:
        self.client = client
        self.req = req
        self.target = target

    @property
    def size(self) -> int:
        """The bytes the request holds in the queue (it changes only while queued, and
        the revision's ``queued_bytes`` with it)."""
        return len(self.req.head) + self.req.queued_body

    def grant(self, endpoint: Endpoint) -> None:
        client, req = self.client, self.req
        if client.closed or client.current is not req or not req.waiting:
            self.target.release(endpoint)
            return
        client._send(req, endpoint)

    def fail(self, status: int, message: str) -> None:
        client, req = self.client, self.req
        if client.closed or client.current is not req or not req.waiting:
            return
        req.waiting = False
        client.respond(req, error_response(status, message))


def _quiet(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("gateway upstream task failed", exc_info=task.exception())
