"""HTTP/2 cleartext (prior knowledge) on the gateway, end to end to revisions whose
container port is named ``h2c`` (Knative's rule), so gRPC services work through the
gateway with Host-based routing (``:authority``).

Each client stream is one request: it is routed, counted against the revision's
concurrency, held while the revision is at zero, and forwarded as a stream on a shared
HTTP/2 connection to a replica (``h2upstream``), or as an HTTP/1.1 request to an
HTTP/1.1 revision (``bridges.H1ForH2``). Headers, data and trailers pass through. Flow
control holds both ways: request bytes are acknowledged to the client once they are
written to the replica, response bytes to the replica once they are written to the
client. A client that floods RST_STREAM, PING, SETTINGS or empty DATA frames gets GOAWAY
``ENHANCE_YOUR_CALM`` (limits in ``GatewayLimits``). A stream past the advertised
MAX_CONCURRENT_STREAMS is refused on its own (RST_STREAM ``REFUSED_STREAM``, which a client
may retry), and a connection with no open stream for ``idle_timeout`` gets GOAWAY
``NO_ERROR`` and is closed.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic, time_ns
from typing import cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import Frame, HeadersFrame

from wonderland.gateway.bridges import H1ForH2
from wonderland.gateway.exchange import H2Stream
from wonderland.gateway.h2flow import FlowSender
from wonderland.gateway.h2upstream import UpstreamH2
from wonderland.gateway.headers import HOP_BY_HOP_STR, forwarding_str
from wonderland.gateway.limits import GatewayLimits
from wonderland.gateway.table import Endpoint, RevisionTarget, RoutingTable
from wonderland.gateway.tracing import GatewayTracing
from wonderland.h2grpc.limits import TokenBucket
from wonderland.tracing.context import child_bytes

__all__ = ["H2ClientConnection"]

log = logging.getLogger("wonderland.gateway")

_DROP = HOP_BY_HOP_STR | {"knative-serving-tag", "x-forwarded-for", "forwarded"}


class _ServerConnection(h2.connection.H2Connection):
    """h2's server connection, except that a HEADERS frame opening a stream past the
    advertised SETTINGS_MAX_CONCURRENT_STREAMS refuses that stream alone with RST_STREAM
    ``REFUSED_STREAM`` (RFC 9113 section 5.1.2, as Envoy and grpc-go do) where h2 would end
    the whole connection. The header block is still decoded, so the HPACK state the client
    and the gateway share stays in step."""

    refused = 0  # streams refused since the owner last looked
    _admit = False

    @property
    def open_inbound_streams(self) -> int:
        return 0 if self._admit else super().open_inbound_streams

    def _receive_headers_frame(
        self, frame: HeadersFrame
    ) -> tuple[list[Frame], list[h2.events.Event]]:
        sid = frame.stream_id
        if sid in self.streams:
            return super()._receive_headers_frame(frame)
        # the open streams are counted once here (h2 would count them again)
        over = super().open_inbound_streams >= self.local_settings.max_concurrent_streams
        self._admit = True
        try:
            frames, events = super()._receive_headers_frame(frame)
        finally:
            self._admit = False
        if not over:
            return frames, events
        self.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
        self.refused += 1
        kept = [e for e in events if getattr(e, "stream_id", None) != sid]
        return frames, kept


class H2ClientConnection(asyncio.Protocol):
    """A client's HTTP/2 connection to the gateway (the ``H2Peer`` of its streams)."""

    default_authority = ""  # the CONNECT target, on a connection inside a tunnel

    def __init__(
        self,
        table: RoutingTable,
        tracing: GatewayTracing | None = None,
        limits: GatewayLimits | None = None,
    ) -> None:
        self.table = table
        self.tracing = tracing or GatewayTracing()
        self.limits = limits = limits or GatewayLimits()
        self.conn = _ServerConnection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limits.h2_max_concurrent_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.h2_max_header_list_size,
            },
        )
        self.conn.max_inbound_frame_size = self.conn.local_settings.max_frame_size
        decoder = getattr(self.conn, "decoder", None)
        if decoder is not None:
            decoder.max_header_list_size = limits.h2_max_header_list_size
        self.sender = FlowSender(self.conn, self._response_sent)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.flushing: dict[int, H2Stream] = {}  # answered, the response still being sent
        self.closed = False
        self.client_ip = "127.0.0.1"
        self.loop = asyncio.get_event_loop()
        self.resets = TokenBucket(limits.h2_reset_burst, limits.h2_reset_rate)
        self.pings = TokenBucket(limits.h2_ping_burst, limits.h2_ping_rate)
        self.settings = TokenBucket(limits.h2_settings_burst, limits.h2_settings_rate)
        self.empty = 0
        self.receiving = False  # inside data_received (which flushes at its end)
        self.preface_timer: asyncio.TimerHandle | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self.idle_since = 0.0  # when the last open stream ended

    # -- asyncio.Protocol --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip = str(peer[0])
        self.conn.initiate_connection()
        self.preface_timer = self.loop.call_later(self.limits.header_timeout, self._slow_preface)
        self.idle_since = self.loop.time()
        self.idle_timer = self.loop.call_later(self.limits.idle_timeout, self._check_idle)
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def pause_writing(self) -> None:
        self.sender.paused = True

    def resume_writing(self) -> None:
        self.sender.paused = False
        self.sender.window_opened(0)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for timer in (self.preface_timer, self.idle_timer):
            if timer is not None:
                timer.cancel()
        self.preface_timer = self.idle_timer = None
        streams = [*self.streams.values(), *self.flushing.values()]
        self.streams.clear()
        self.flushing.clear()
        for stream in streams:
            self._finish(stream, reset_upstream=True)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()  # the GOAWAY h2 prepared
            self._close()
            return
        conn = self.conn
        if conn.refused:
            # a refused stream counts as a reset: refusing is cheap, but not free
            refused, conn.refused = conn.refused, 0
            for _ in range(refused):
                if not self.resets.spend():
                    return self._calm("streams past MAX_CONCURRENT_STREAMS")
        self.receiving = True
        try:
            self._events(events)
        finally:
            self.receiving = False
        self.flush()

    def _events(self, events: list[h2.events.Event]) -> None:
        limits = self.limits
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self._data(event)
            elif isinstance(event, h2.events.RequestReceived):
                self._request(event.stream_id, cast(list[tuple[str, str]], event.headers))
                if event.stream_ended is not None:
                    self._client_data(event.stream_id, b"", True)
            elif isinstance(event, h2.events.StreamEnded):
                stream = self.streams.get(event.stream_id)
                if stream is not None and not stream.ended:
                    self._client_data(event.stream_id, b"", True)
            elif isinstance(event, h2.events.StreamReset):
                stream = self.streams.pop(event.stream_id, None) or self.flushing.pop(
                    event.stream_id, None
                )
                if stream is not None:
                    self._finish(stream, reset_upstream=True)
                if not self.resets.spend():
                    return self._calm("RST_STREAM")
            elif isinstance(event, h2.events.WindowUpdated):
                self.sender.window_opened(event.stream_id)
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                if self.preface_timer is not None:
                    self.preface_timer.cancel()
                    self.preface_timer = None
                self.sender.window_opened(0)  # the initial window or frame size may differ
                if not self.settings.spend():
                    return self._calm("SETTINGS")
            elif isinstance(event, h2.events.PingReceived):
                if not self.pings.spend():
                    return self._calm("PING")
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.flush()
                return self._close()
            if self.empty > limits.h2_max_empty_frames:
                return self._calm("empty DATA frames")

    def _data(self, event: h2.events.DataReceived) -> None:
        sid = event.stream_id
        data = event.data
        size = len(data)
        ended = event.stream_ended is not None
        stream = self.streams.get(sid)
        unpaid = event.flow_controlled_length - (size if stream is not None else 0)
        if unpaid:
            # padding, or data for a stream already answered: paid back at once
            self.conn.acknowledge_received_data(unpaid, sid)
        self.empty = self.empty + 1 if not size and not ended else 0
        if stream is None:
            return
        stream.received += size
        if stream.received > self.limits.max_body_bytes:
            self.conn.acknowledge_received_data(size, sid)
            self._too_large(stream)
            return
        stream.unacked += size
        self._client_data(sid, data, ended)

    def _too_large(self, stream: H2Stream) -> None:
        message = (
            f"the request body is larger than the gateway's limit of "
            f"{self.limits.max_body_bytes} bytes (WONDERLAND_GATEWAY_MAX_BODY_BYTES)"
        )
        if not stream.responded:
            self._local(stream, 413, message)
            return
        self._reset(stream, h2.errors.ErrorCodes.CANCEL)

    def _calm(self, what: str) -> None:
        """A flood: GOAWAY ENHANCE_YOUR_CALM, and the connection ends."""
        log.warning("gateway: HTTP/2 client %s sent too many %s; closing", self.client_ip, what)
        try:
            self.conn.close_connection(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        except h2.exceptions.ProtocolError:
            pass
        self.flush()
        self._close()

    def _slow_preface(self) -> None:
        self.preface_timer = None
        if not self.closed:
            self._calm("time before its SETTINGS (header timeout)")

    def _check_idle(self) -> None:
        """``idle_timeout`` without an open stream: GOAWAY ``NO_ERROR``, and the
        connection ends (Envoy's idle_timeout). One timer a connection, moved on lazily."""
        self.idle_timer = None
        if self.closed:
            return
        timeout = self.limits.idle_timeout
        if self.streams or self.flushing:
            self.idle_timer = self.loop.call_later(timeout, self._check_idle)
            return
        left = self.idle_since + timeout - self.loop.time()
        if left > 0:
            self.idle_timer = self.loop.call_later(left, self._check_idle)
            return
        try:
            self.conn.close_connection(error_code=h2.errors.ErrorCodes.NO_ERROR)
        except h2.exceptions.ProtocolError:
            pass
        self.flush()
        self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True

    # -- requests --
    def _request(self, stream_id: int, headers: list[tuple[str, str]]) -> None:
        stream = H2Stream(stream_id, headers)
        self.streams[stream_id] = stream
        authority = ""
        tag = ""
        traceparent = ""
        length = ""
        for name, value in headers:
            if name == ":authority" or (name == "host" and not authority):
                authority = value
            elif name == "knative-serving-tag":
                tag = value
            elif name == "traceparent":
                traceparent = value
            elif name == "content-length":
                length = value
        if length.isdigit() and int(length) > self.limits.max_body_bytes:
            self._too_large(stream)
            return
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
        stream.t0 = monotonic()
        if self.tracing.mode != "off":
            self._trace(stream, traceparent)
        stream.timer = self.loop.call_later(target.timeout, self._timeout, stream)
        ep = target.acquire()
        if ep is not None:
            self._send(stream, ep)
            return
        grant = _H2Grant(self, stream, target)
        if target.wait(grant):
            stream.waiting = True
        elif target.removed:
            self._local(stream, 503, f"revision {target.key} was deleted")
        else:
            self._local(stream, 503, target.queue_full_message())

    def _trace(self, stream: H2Stream, incoming: str) -> None:
        """Continue the client's trace (or start one) with a new span id for the replica
        (``traceparent`` on HTTP/2 and gRPC alike)."""
        header, trace_id, span_id, parent_id = child_bytes(incoming.encode("latin-1"))
        if incoming:
            stream.headers = [(n, v) for n, v in stream.headers if n != "traceparent"]
        stream.headers.append(("traceparent", header.decode("ascii")))
        if self.tracing.sink is not None:
            stream.span = (trace_id.decode(), span_id.decode(), parent_id.decode(), time_ns())

    def _send(self, stream: H2Stream, ep: Endpoint) -> None:
        now = monotonic()
        if stream.waiting:
            stream.waiting = False
            rec = stream.target.recorder if stream.target is not None else None
            if rec is not None:
                rec.held(now - stream.t0)
        stream.endpoint = ep
        stream.sent = now
        if stream.target is not None and not stream.target.h2c:
            H1ForH2(self, stream, ep)  # an HTTP/1.1 revision
            return
        UpstreamH2.for_endpoint(ep).open(self, stream)

    def _client_data(self, stream_id: int, data: bytes, end: bool) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if end:
            stream.ended = True
        source = stream.source
        if source is not None:
            source.send_data(stream, data, end)
        else:
            stream.pending.append((data, end))

    # -- H2Peer --
    def request_headers(self, stream: H2Stream) -> list[tuple[str, str]]:
        xff = fwd = ""
        out: list[tuple[str, str]] = []
        trailers = False
        for name, value in stream.headers:
            if name not in _DROP:
                out.append((name, value))
            elif name == "x-forwarded-for":
                xff = f"{xff}, {value}" if xff else value
            elif name == "forwarded":
                fwd = f"{fwd}, {value}" if fwd else value
            elif name == "te":
                trailers = value.strip().lower() == "trailers"
        authority = next((v for n, v in stream.headers if n == ":authority"), "")
        out += forwarding_str(self.client_ip, authority, xff, fwd)
        if not any(n == "x-forwarded-proto" for n, _ in out):
            out.append(("x-forwarded-proto", "http"))
        if trailers:
            out.append(("te", "trailers"))
        return out

    def request_consumed(self, stream: H2Stream, size: int) -> None:
        stream.unacked -= size
        if self.closed:
            return
        self.conn.acknowledge_received_data(size, stream.client_id)
        if not self.receiving:  # else data_received flushes once at its end
            self.flush()

    def response_headers(self, stream: H2Stream, headers: list[tuple[str, str]], end: bool) -> None:
        if self.closed or stream.client_id not in self.streams:
            return
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        if stream.responded and end:
            self.sender.send_trailers(stream.client_id, headers)  # after the data
            self._done(stream)
            self.flush()
            return
        try:
            self.conn.send_headers(stream.client_id, headers, end_stream=end)
        except h2.exceptions.ProtocolError:
            self._reset(stream, h2.errors.ErrorCodes.INTERNAL_ERROR)
            return
        if not stream.responded:
            code = next((v for n, v in headers if n == ":status"), "")
            stream.status = int(code) if code.isdigit() else 502
            idle = stream.target.idle_timeout if stream.target is not None else 0.0
            if idle > 0 and not end:
                # idleTimeoutSeconds: a response (a gRPC or SSE stream) that stays silent
                # that long is cut, as Knative's queue-proxy cuts it
                stream.last_io = self.loop.time()
                stream.timer = self.loop.call_later(idle, self._idle, stream)
        stream.responded = True
        if end:
            self._done(stream)
        self.flush()

    def response_data(self, stream: H2Stream, data: bytes, end: bool) -> None:
        if self.closed or stream.client_id not in self.streams:
            return
        self.sender.send(stream.client_id, data, end)
        stream.last_io = self.loop.time()
        if end:
            self._done(stream)
        self.flush()

    def upstream_reset(self, stream: H2Stream) -> None:
        if stream.client_id not in self.streams:
            return
        if not stream.responded:
            name = stream.target.name if stream.target else "the revision"
            self._local(
                stream,
                502,
                f"a replica of {name} reset the stream; see 'wonderland logs rev/{name}'",
            )
            return
        self._reset(stream, h2.errors.ErrorCodes.INTERNAL_ERROR)

    # -- the end of a stream --
    def _response_sent(self, stream_id: int, size: int, done: bool) -> None:
        stream = self.streams.get(stream_id) or self.flushing.get(stream_id)
        if stream is None:
            return
        source = stream.source
        if size and source is not None:
            source.consumed(stream, size)
        if done and self.flushing.pop(stream_id, None) is not None:
            self._finish(stream, reset_upstream=False)

    def _done(self, stream: H2Stream) -> None:
        """The whole response is handed to the sender; the stream ends once it is out."""
        self.streams.pop(stream.client_id, None)
        if self.sender.has_buffered(stream.client_id):
            self.flushing[stream.client_id] = stream
        else:
            self._finish(stream, reset_upstream=False)

    def _reset(self, stream: H2Stream, code: h2.errors.ErrorCodes) -> None:
        try:
            self.conn.reset_stream(stream.client_id, code)
        except h2.exceptions.ProtocolError:
            pass
        self.streams.pop(stream.client_id, None)
        self.flushing.pop(stream.client_id, None)
        self._finish(stream, reset_upstream=True)
        self.flush()

    def _finish(self, stream: H2Stream, reset_upstream: bool) -> None:
        self.idle_since = self.loop.time()
        if stream.span is not None:
            self.tracing.record_h2(stream.span, stream.headers, stream.target, reset_upstream)
            stream.span = None
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        target = stream.target
        if target is not None and stream.waiting:
            target.cancel_where(lambda w: isinstance(w, _H2Grant) and w.stream is stream)
            stream.waiting = False
        source = stream.source
        if source is not None:
            source.detach(stream, reset_upstream)
        if reset_upstream:
            self.sender.forget(stream.client_id)
        if stream.unacked > 0 and not self.closed:
            # request bytes the replica side never took: the connection window gets them back
            self.conn.acknowledge_received_data(stream.unacked, stream.client_id)
        stream.unacked = 0
        stream.pending = []
        ep = stream.endpoint
        if ep is not None and target is not None:
            target.release(ep)
            stream.endpoint = None
        if target is not None:
            rec = target.recorder
            if rec is not None and stream.responded:
                now = monotonic()
                sent = stream.sent
                rec.request(
                    ep if sent >= 0 else None,
                    stream.status or 502,
                    now - stream.t0,
                    now - sent if sent >= 0 else -1.0,
                )
            target.end()
            stream.target = None

    def _idle(self, stream: H2Stream) -> None:
        stream.timer = None
        if stream.client_id not in self.streams or stream.target is None:
            return
        left = stream.last_io + stream.target.idle_timeout - self.loop.time()
        if left > 0:  # bytes came since: wait for the rest of the period
            stream.timer = self.loop.call_later(left, self._idle, stream)
            return
        self._reset(stream, h2.errors.ErrorCodes.CANCEL)

    def _timeout(self, stream: H2Stream) -> None:
        stream.timer = None
        if not stream.responded and stream.client_id in self.streams:
            timeout = stream.target.timeout if stream.target else 0
            self._local(
                stream,
                504,
                f"the revision did not start answering within timeoutSeconds ({timeout:g}s)",
            )

    def _local(self, stream: H2Stream, status: int, message: str) -> None:
        body = (message + "\n").encode()
        stream.responded = True
        stream.status = status
        stream.sent = -1.0
        self.streams.pop(stream.client_id, None)
        self._finish(stream, reset_upstream=True)
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
        self.flush()


class _H2Grant:
    """A held stream waiting for an endpoint (the activator / concurrency queue)."""

    __slots__ = ("client", "size", "stream", "target")

    def __init__(
        self, client: H2ClientConnection, stream: H2Stream, target: RevisionTarget
    ) -> None:
        self.client = client
        self.stream = stream
        self.target = target
        self.size = stream.received

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
