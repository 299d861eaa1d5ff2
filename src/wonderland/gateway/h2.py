"""HTTP/2 cleartext (prior knowledge) on the gateway, end to end to revisions whose
container port is named ``h2c`` (Knative's rule), so gRPC services work through the
gateway with Host-based routing (``:authority``).

Each client stream is one request: it is routed, counted against the revision's
concurrency, held while the revision is at zero, and forwarded as a stream on a shared
HTTP/2 connection to a replica. Headers, data and trailers pass through; flow control
is honoured on both sides.
"""

from __future__ import annotations

import asyncio
import logging
from time import time_ns
from typing import TYPE_CHECKING, cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from wonderland.gateway.table import Endpoint, RevisionTarget, RoutingTable
from wonderland.gateway.tracing import GatewayTracing
from wonderland.tracing.context import child_bytes

if TYPE_CHECKING:
    from wonderland.gateway.bridges import H1ForH2

__all__ = ["H2ClientConnection"]

log = logging.getLogger("wonderland.gateway")

_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})


class _Stream:
    """One client stream and where it went."""

    __slots__ = (
        "client_id",
        "ended",
        "endpoint",
        "h1",
        "headers",
        "pending",
        "responded",
        "sent",
        "span",
        "status",
        "t0",
        "target",
        "timer",
        "up_id",
        "upstream",
        "waiting",
    )

    def __init__(self, client_id: int, headers: list[tuple[str, str]]) -> None:
        self.client_id = client_id
        self.headers = headers
        self.target: RevisionTarget | None = None
        self.endpoint: Endpoint | None = None
        self.upstream: _UpstreamH2 | None = None
        self.up_id: int | None = None
        self.h1: H1ForH2 | None = None
        self.pending: list[tuple[bytes, bool]] = []  # request data before the upstream is ready
        self.ended = False
        self.responded = False
        self.waiting = False
        self.timer: asyncio.TimerHandle | None = None
        self.t0 = 0.0  # metrics: arrival, send to a replica (-1: none), status
        self.sent = -1.0
        self.status = 0
        self.span: tuple[str, str, str, int] | None = None


class _Sender:
    """Flow-controlled sending on one H2Connection: data waits for window updates."""

    def __init__(self, conn: h2.connection.H2Connection) -> None:
        self.conn = conn
        self.buffers: dict[int, list[tuple[bytes, bool]]] = {}

    def send(self, stream_id: int, data: bytes, end: bool) -> None:
        buf = self.buffers.get(stream_id)
        if buf:
            buf.append((data, end))
            return
        self._push(stream_id, [(data, end)])

    def _push(self, stream_id: int, queue: list[tuple[bytes, bool]]) -> None:
        conn = self.conn
        while queue:
            data, end = queue[0]
            try:
                window = min(
                    conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size
                )
            except h2.exceptions.StreamClosedError:
                queue.clear()
                break
            if not data:
                if end:
                    conn.end_stream(stream_id)
                queue.pop(0)
                continue
            if window <= 0:
                break
            chunk, rest = data[:window], data[window:]
            conn.send_data(stream_id, chunk, end_stream=end and not rest)
            if rest:
                queue[0] = (rest, end)
            else:
                queue.pop(0)
        if queue:
            self.buffers[stream_id] = queue
        else:
            self.buffers.pop(stream_id, None)

    def window_opened(self, stream_id: int) -> None:
        ids = list(self.buffers) if stream_id == 0 else [stream_id]
        for sid in ids:
            queue = self.buffers.get(sid)
            if queue:
                self.buffers[sid] = []
                self._push(sid, queue)

    def forget(self, stream_id: int) -> None:
        self.buffers.pop(stream_id, None)


class H2ClientConnection(asyncio.Protocol):
    """A client's HTTP/2 connection to the gateway."""

    default_authority = ""  # the CONNECT target, on a connection inside a tunnel

    def __init__(self, table: RoutingTable, tracing: GatewayTracing | None = None) -> None:
        self.table = table
        self.tracing = tracing or GatewayTracing()
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.sender = _Sender(self.conn)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.closed = False
        self.client_ip = "127.0.0.1"
        self.loop = asyncio.get_event_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip = str(peer[0])
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for stream in list(self.streams.values()):
            self._finish(stream, reset_upstream=True)
        self.streams.clear()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._request(event.stream_id, cast(list[tuple[str, str]], event.headers))
                if event.stream_ended is not None:
                    self._client_data(event.stream_id, b"", True)
            elif isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                self._client_data(event.stream_id, event.data, event.stream_ended is not None)
            elif isinstance(event, h2.events.StreamEnded):
                stream = self.streams.get(event.stream_id)
                if stream is not None and not stream.ended:
                    self._client_data(event.stream_id, b"", True)
            elif isinstance(event, h2.events.StreamReset):
                stream = self.streams.pop(event.stream_id, None)
                if stream is not None:
                    self._finish(stream, reset_upstream=True)
            elif isinstance(event, h2.events.WindowUpdated):
                self.sender.window_opened(event.stream_id)
        self.flush()

    # -- requests --
    def _request(self, stream_id: int, headers: list[tuple[str, str]]) -> None:
        stream = _Stream(stream_id, headers)
        self.streams[stream_id] = stream
        authority = ""
        tag = ""
        traceparent = ""
        for name, value in headers:
            if name == ":authority" or (name == "host" and not authority):
                authority = value
            elif name == "knative-serving-tag":
                tag = value
            elif name == "traceparent":
                traceparent = value
        route = self.table.lookup(authority)
        if route is None and not authority and self.default_authority:
            authority = self.default_authority
            stream.headers.insert(0, (":authority", authority))
            route = self.table.lookup(authority)
        if route is None:
            self._local(stream, 404, f"no route for Host {authority!r}")
            return
        target = route.tags.get(tag) if tag and self.table.tag_header_routing else None
        if target is None:
            target = route.pick()
        if target is None:
            self._local(stream, 503, "the route has no revision with traffic yet")
            return
        stream.target = target
        target.begin()
        stream.t0 = self.loop.time()
        if self.tracing.mode != "off":
            self._trace(stream, traceparent)
        stream.timer = self.loop.call_later(target.timeout, self._timeout, stream)
        ep = target.acquire()
        if ep is not None:
            self._send(stream, ep)
        elif target.wait(_H2Grant(self, stream, target)):
            stream.waiting = True
        elif target.removed:
            self._local(stream, 503, f"revision {target.key} was deleted")
        else:
            self._local(
                stream,
                503,
                f"revision {target.key} has {len(target.waiters)} requests queued already; "
                "retry later, or raise containerConcurrency or max-scale",
            )

    def _trace(self, stream: _Stream, incoming: str) -> None:
        """Continue the client's trace (or start one) with a new span id for the replica
        (``traceparent`` on HTTP/2 and gRPC alike)."""
        header, trace_id, span_id, parent_id = child_bytes(incoming.encode("latin-1"))
        if incoming:
            stream.headers = [(n, v) for n, v in stream.headers if n != "traceparent"]
        stream.headers.append(("traceparent", header.decode("ascii")))
        if self.tracing.sink is not None:
            stream.span = (trace_id.decode(), span_id.decode(), parent_id.decode(), time_ns())

    def _send(self, stream: _Stream, ep: Endpoint) -> None:
        now = self.loop.time()
        if stream.waiting:
            stream.waiting = False
            rec = stream.target.recorder if stream.target is not None else None
            if rec is not None:
                rec.held(now - stream.t0)
        stream.endpoint = ep
        stream.sent = now
        if stream.target is not None and not stream.target.h2c:
            from wonderland.gateway.bridges import H1ForH2

            stream.h1 = H1ForH2(self, stream, ep)  # an HTTP/1.1 revision
            return
        upstream = _UpstreamH2.for_endpoint(ep)
        upstream.open(self, stream)

    def _client_data(self, stream_id: int, data: bytes, end: bool) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if end:
            stream.ended = True
        if stream.upstream is not None and stream.up_id is not None:
            stream.upstream.send_data(stream.up_id, data, end)
        else:
            stream.pending.append((data, end))
            if end and stream.h1 is not None:
                stream.h1.maybe_send()

    def request_headers(self, stream: _Stream) -> list[tuple[str, str]]:
        out = [(n, v) for n, v in stream.headers if n not in _HOP and n != "knative-serving-tag"]
        xff = next((v for n, v in out if n == "x-forwarded-for"), "")
        out = [(n, v) for n, v in out if n not in ("x-forwarded-for",)]
        out.append(("x-forwarded-for", f"{xff}, {self.client_ip}" if xff else self.client_ip))
        node = f'"[{self.client_ip}]"' if ":" in self.client_ip else self.client_ip
        authority = next((v for n, v in stream.headers if n == ":authority"), "")
        quoted = f'"{authority}"' if ":" in authority else authority
        fwd = f"for={node};proto=http" + (f";host={quoted}" if authority else "")
        out.append(("forwarded", fwd))
        if not any(n == "x-forwarded-proto" for n, _ in out):
            out.append(("x-forwarded-proto", "http"))
        return out

    # -- responses from the upstream --
    def response_headers(self, stream: _Stream, headers: list[tuple[str, str]], end: bool) -> None:
        if self.closed or stream.client_id not in self.streams:
            return
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        try:
            self.conn.send_headers(stream.client_id, headers, end_stream=end)
        except h2.exceptions.ProtocolError:
            return
        if not stream.responded:
            code = next((v for n, v in headers if n == ":status"), "")
            stream.status = int(code) if code.isdigit() else 502
        stream.responded = True
        if end:
            self._done(stream)
        self.flush()

    def response_data(self, stream: _Stream, data: bytes, end: bool) -> None:
        if self.closed or stream.client_id not in self.streams:
            return
        self.sender.send(stream.client_id, data, end)
        if end:
            self._done(stream)
        self.flush()

    def upstream_reset(self, stream: _Stream) -> None:
        if stream.client_id in self.streams:
            if not stream.responded:
                name = stream.target.name if stream.target else "the revision"
                self._local(
                    stream,
                    502,
                    f"a replica of {name} reset the stream; see 'wonderland logs rev/{name}'",
                )
                return
            try:
                self.conn.reset_stream(stream.client_id)
            except h2.exceptions.ProtocolError:
                pass
            self.streams.pop(stream.client_id, None)
            self._finish(stream, reset_upstream=False)
            self.flush()

    def _done(self, stream: _Stream) -> None:
        self.streams.pop(stream.client_id, None)
        self._finish(stream, reset_upstream=False)

    def _finish(self, stream: _Stream, reset_upstream: bool) -> None:
        if stream.span is not None:
            self.tracing.record_h2(stream.span, stream.headers, stream.target, reset_upstream)
            stream.span = None
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        target = stream.target
        if target is not None and stream.waiting:
            for w in list(target.waiters):
                if isinstance(w, _H2Grant) and w.stream is stream:
                    target.cancel(w)
            stream.waiting = False
        if stream.upstream is not None and stream.up_id is not None:
            stream.upstream.detach(stream.up_id, reset=reset_upstream)
            stream.upstream = None
        if stream.h1 is not None:
            stream.h1.detach(abort=reset_upstream)
            stream.h1 = None
        ep = stream.endpoint
        if ep is not None and target is not None:
            target.release(ep)
            stream.endpoint = None
        if target is not None:
            rec = target.recorder
            if rec is not None and stream.responded:
                now = self.loop.time()
                sent = stream.sent
                rec.request(
                    ep if sent >= 0 else None,
                    stream.status or 502,
                    now - stream.t0,
                    now - sent if sent >= 0 else -1.0,
                )
            target.end()
            stream.target = None
        self.sender.forget(stream.client_id)

    def _timeout(self, stream: _Stream) -> None:
        stream.timer = None
        if not stream.responded and stream.client_id in self.streams:
            timeout = stream.target.timeout if stream.target else 0
            self._local(
                stream,
                504,
                f"the revision did not start answering within timeoutSeconds ({timeout:g}s)",
            )

    def _local(self, stream: _Stream, status: int, message: str) -> None:
        body = (message + "\n").encode()
        try:
            self.conn.send_headers(
                stream.client_id,
                [
                    (":status", str(status)),
                    ("content-type", "text/plain; charset=utf-8"),
                    ("content-length", str(len(body))),
                ],
            )
            self.sender.send(stream.client_id, body, True)
        except h2.exceptions.ProtocolError:
            pass
        stream.responded = True
        stream.status = status
        stream.sent = -1.0
        self.streams.pop(stream.client_id, None)
        self._finish(stream, reset_upstream=True)
        self.flush()


class _H2Grant:
    __slots__ = ("client", "stream", "target")

    def __init__(self, client: H2ClientConnection, stream: _Stream, target: RevisionTarget) -> None:
        self.client = client
        self.stream = stream
        self.target = target

    def grant(self, endpoint: Endpoint) -> None:
        if self.client.closed or not self.stream.waiting:
            self.target.release(endpoint)
            return
        self.client._send(self.stream, endpoint)

    def fail(self, status: int, message: str) -> None:
        if self.client.closed or not self.stream.waiting:
            return
        self.stream.waiting = False
        self.client._local(self.stream, status, message)


class _UpstreamH2(asyncio.Protocol):
    """One shared HTTP/2 connection to a replica, multiplexing client streams."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.sender = _Sender(self.conn)
        self.transport: asyncio.Transport | None = None
        self.ready = False
        self.lost = False
        self.queue: list[tuple[H2ClientConnection, _Stream]] = []
        self.streams: dict[int, tuple[H2ClientConnection, _Stream]] = {}

    @classmethod
    def for_endpoint(cls, ep: Endpoint) -> _UpstreamH2:
        existing = ep.h2
        if isinstance(existing, _UpstreamH2) and not existing.lost:
            return existing
        conn = cls(ep)
        ep.h2 = conn
        loop = asyncio.get_event_loop()
        task = loop.create_task(conn._connect())
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
        return conn

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: self, self.endpoint.host, self.endpoint.port)
        except OSError:
            self.lost = True
            self._drop_all()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.conn.initiate_connection()
        self.ready = True
        queued, self.queue = self.queue, []
        for client, stream in queued:
            self._start(client, stream)
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.lost:
            self.transport.write(data)

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def open(self, client: H2ClientConnection, stream: _Stream) -> None:
        stream.upstream = self
        if self.ready:
            self._start(client, stream)
            self.flush()
        else:
            self.queue.append((client, stream))

    def _start(self, client: H2ClientConnection, stream: _Stream) -> None:
        up_id = self.conn.get_next_available_stream_id()
        stream.up_id = up_id
        self.streams[up_id] = (client, stream)
        pending, stream.pending = stream.pending, []
        end_now = bool(pending) and pending[-1] == (b"", True) and len(pending) == 1
        self.conn.send_headers(up_id, client.request_headers(stream), end_stream=end_now)
        if not end_now:
            for data, end in pending:
                self.sender.send(up_id, data, end)

    def send_data(self, up_id: int, data: bytes, end: bool) -> None:
        if up_id in self.streams:
            self.sender.send(up_id, data, end)
            self.flush()

    def detach(self, up_id: int, reset: bool) -> None:
        if self.streams.pop(up_id, None) is not None and reset and not self.lost:
            try:
                self.conn.reset_stream(up_id)
            except h2.exceptions.ProtocolError:
                pass
            self.flush()
        self.sender.forget(up_id)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.close()
            return
        for event in events:
            sid = getattr(event, "stream_id", 0)
            entry = self.streams.get(sid) if sid else None
            if isinstance(event, h2.events.ResponseReceived) and entry:
                entry[0].response_headers(
                    entry[1],
                    cast(list[tuple[str, str]], event.headers),
                    event.stream_ended is not None,
                )
                if event.stream_ended is not None:
                    self.streams.pop(sid, None)
            elif isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, sid)
                if entry:
                    entry[0].response_data(entry[1], event.data, event.stream_ended is not None)
                    if event.stream_ended is not None:
                        self.streams.pop(sid, None)
            elif isinstance(event, h2.events.TrailersReceived) and entry:
                entry[0].response_headers(
                    entry[1], cast(list[tuple[str, str]], event.headers), True
                )
                self.streams.pop(sid, None)
            elif isinstance(event, h2.events.StreamEnded) and entry:
                entry[0].response_data(entry[1], b"", True)
                self.streams.pop(sid, None)
            elif isinstance(event, h2.events.StreamReset) and entry:
                self.streams.pop(sid, None)
                entry[0].upstream_reset(entry[1])
            elif isinstance(event, h2.events.WindowUpdated):
                self.sender.window_opened(event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.lost = True
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._drop_all()

    def _drop_all(self) -> None:
        if self.endpoint.h2 is self:
            self.endpoint.h2 = None
        entries = list(self.streams.values()) + list(self.queue)
        self.streams.clear()
        self.queue.clear()
        for client, stream in entries:
            stream.upstream = None
            stream.up_id = None
            client.upstream_reset(stream)
