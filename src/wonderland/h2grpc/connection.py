"""One HTTP/2 connection of the gRPC server: frames in, calls out.

RFC 9113 framing, flow control and stream states, and the gRPC mapping onto them
(grpc/doc/PROTOCOL-HTTP2.md): length-prefixed messages in DATA, ``grpc-status`` in
trailers, ``grpc-timeout`` deadlines, gzip/deflate request compression.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import hpack

from wonderland.h2grpc.headers import (
    OK_HEADERS,
    OK_TRAILERS,
    HeaderDecoder,
    HeaderListFlood,
    literal,
    response_headers,
    status_fields,
)
from wonderland.h2grpc.limits import H2Limits, TokenBucket
from wonderland.h2grpc.status import RpcAbort, ServicerContext, StatusCode, decode_bin

if TYPE_CHECKING:
    from wonderland.h2grpc.server import Method

__all__ = ["GrpcConnection"]

log = logging.getLogger("wonderland.h2grpc")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 5, 6, 7, 8, 9
ENHANCE_YOUR_CALM = 11

MAX_FRAME = 16384  # what we accept (the protocol's default; we do not raise it)
MAX_WINDOW = (1 << 31) - 1
LINGER = 1.0  # seconds a connection ended for an error reads and drops before closing
DEFAULT_LIMITS = H2Limits()
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_RESERVED = frozenset(
    {"content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding"}
)


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


@functools.lru_cache(maxsize=8)
def _greeting(limits: H2Limits) -> bytes:
    """Our SETTINGS and the connection window raised to what the limits give."""
    settings = b"".join(
        ident.to_bytes(2, "big") + value.to_bytes(4, "big")
        for ident, value in (
            (0x1, limits.header_table_size),
            (0x3, limits.max_concurrent_streams),
            (0x4, limits.stream_window),
            (0x6, limits.max_header_list_size),
        )
        if ident != 0x1 or value != 4096
    )
    out = frame(SETTINGS, 0, 0, settings)
    if limits.connection_window > 65535:
        out += frame(WINDOW_UPDATE, 0, 0, (limits.connection_window - 65535).to_bytes(4, "big"))
    return out


def _message(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


class _ConnectionError(Exception):
    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


class _Stream:
    __slots__ = (
        "buffer",
        "ctx",
        "encoding",
        "ended_local",
        "ended_remote",
        "eof",
        "held",
        "id",
        "inbox",
        "method",
        "pending",
        "queued",
        "queued_bytes",
        "send_window",
        "sent_headers",
        "task",
        "timer",
        "trailers",
        "unacked",
        "writable",
    )

    def __init__(
        self,
        stream_id: int,
        method: Method,
        ctx: ServicerContext,
        encoding: str,
        send_window: int,
    ) -> None:
        self.id = stream_id
        self.method = method
        self.ctx = ctx
        self.buffer = bytearray()
        self.encoding = encoding
        self.inbox: asyncio.Queue[Any] | None = None
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.send_window = send_window
        self.pending = bytearray()  # framed messages waiting for flow-control window
        self.trailers: bytes | None = None
        self.sent_headers = False
        self.ended_remote = False
        self.ended_local = False
        self.unacked = 0  # bytes given back to the client's window, not yet announced
        self.held = 0  # received bytes not given back (waiting for the handler)
        self.queued = 0  # parsed messages in the inbox
        self.queued_bytes = 0  # their framed size
        self.eof = False  # the end of the requests is in the inbox
        self.writable: asyncio.Future[None] | None = None


class _RequestStream:
    """The request iterator a client-streaming handler reads; reading gives the client back
    window for what was read."""

    __slots__ = ("_consumed", "_inbox")

    def __init__(self, inbox: asyncio.Queue[Any], consumed: Callable[[int], None]) -> None:
        self._inbox = inbox
        self._consumed = consumed

    def __aiter__(self) -> _RequestStream:
        return self

    async def __anext__(self) -> Any:
        item = await self._inbox.get()
        if item is None:
            raise StopAsyncIteration
        request, size = item
        self._consumed(size)
        return request


class GrpcConnection(asyncio.Protocol):
    """The server side of one client connection."""

    def __init__(
        self,
        methods: dict[str, Method],
        max_receive: int,
        authenticate: Callable[[tuple[tuple[str, str | bytes], ...]], bool] | None,
        on_close: Callable[[GrpcConnection], None],
        max_send: int | None = None,
        limits: H2Limits = DEFAULT_LIMITS,
    ) -> None:
        self.limits = limits
        self.stream_window = limits.stream_window
        self.max_streams = limits.max_concurrent_streams
        self.connection_window = limits.connection_window
        self.resets = TokenBucket(limits.reset_burst, limits.reset_rate)
        self.pings = TokenBucket(limits.ping_burst, limits.ping_rate)
        self.settings_frames = TokenBucket(limits.settings_burst, limits.settings_rate)
        self.empty_frames = 0
        self.continuations = 0
        self.header_timer: asyncio.TimerHandle | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self.idle_since = 0.0
        self.recv_held = 0  # sum of the streams' held bytes
        self.methods = methods
        self.max_receive = max_receive
        self.max_send = max_send
        self.authenticate = authenticate
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.streams: dict[int, _Stream] = {}
        self.decoder = HeaderDecoder(
            max(4096, limits.header_table_size), limits.max_header_list_size
        )  # the table size we advertise applies once the client acknowledges it
        self.buf = b""
        self.preface = False
        self.last_stream = 0
        self.peer_window = 65535  # the peer's SETTINGS_INITIAL_WINDOW_SIZE
        self.peer_max_frame = 16384
        self.send_window = 65535  # connection-level window for what we send
        self.recv_unacked = 0
        self.continuation: tuple[int, int, bytearray] | None = None
        self.going_away = False
        self.closing = False  # GOAWAY sent for an error: what still comes is dropped
        self.paused = False
        self.drained: asyncio.Future[None] | None = None
        self.idle: asyncio.Event = asyncio.Event()
        self.out: list[bytes] | None = None
        self.peer = ""

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        addr = transport.get_extra_info("peername")
        if isinstance(addr, tuple) and len(addr) >= 2:
            self.peer = (
                f"ipv4:{addr[0]}:{addr[1]}"
                if "." in str(addr[0])
                else f"ipv6:[{addr[0]}]:{addr[1]}"
            )
        self.idle.set()
        self._write(_greeting(self.limits))
        self.header_timer = self.loop.call_later(
            self.limits.header_timeout, self._too_slow, "no client preface"
        )
        if self.limits.idle_timeout is not None:
            self.idle_since = self.loop.time()
            self.idle_timer = self.loop.call_later(self.limits.idle_timeout, self._check_idle)

    def _too_slow(self, why: str) -> None:
        self.header_timer = None
        self._goaway(PROTOCOL_ERROR, f"{why} within {self.limits.header_timeout} s")

    def _check_idle(self) -> None:
        self.idle_timer = None
        timeout = self.limits.idle_timeout
        if timeout is None or self.transport is None or self.transport.is_closing():
            return
        if self.streams:
            self.idle_timer = self.loop.call_later(timeout, self._check_idle)
            return
        left = self.idle_since + timeout - self.loop.time()
        if left > 0:
            self.idle_timer = self.loop.call_later(left, self._check_idle)
            return
        self.shutdown()

    def _cancel_timers(self) -> None:
        for timer in (self.header_timer, self.idle_timer):
            if timer is not None:
                timer.cancel()
        self.header_timer = self.idle_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        for st in list(self.streams.values()):
            self._drop(st, cancel=True)
        self.streams.clear()
        self.idle.set()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.on_close(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        buf = self.buf + data if self.buf else data
        self.out = []
        try:
            if not self.preface:
                if len(buf) < len(PREFACE):
                    if not PREFACE.startswith(buf):
                        raise _ConnectionError(PROTOCOL_ERROR, "not an HTTP/2 client preface")
                    self.buf = buf
                    return
                if buf[: len(PREFACE)] != PREFACE:
                    raise _ConnectionError(PROTOCOL_ERROR, "not an HTTP/2 client preface")
                buf = buf[len(PREFACE) :]
                self.preface = True
                if self.header_timer is not None and self.continuation is None:
                    self.header_timer.cancel()
                    self.header_timer = None
            pos, n = 0, len(buf)
            while n - pos >= 9:
                length = int.from_bytes(buf[pos : pos + 3], "big")
                if length > MAX_FRAME:
                    raise _ConnectionError(FRAME_SIZE_ERROR, f"frame of {length} bytes")
                end = pos + 9 + length
                if end > n:
                    break
                kind, flags = buf[pos + 3], buf[pos + 4]
                sid = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
                self._frame(kind, flags, sid, buf[pos + 9 : end])
                pos = end
            self.buf = buf[pos:]
            if self.recv_unacked >= self.connection_window // 2:
                self.out.append(frame(WINDOW_UPDATE, 0, 0, self.recv_unacked.to_bytes(4, "big")))
                self.recv_unacked = 0
        except _ConnectionError as exc:
            self._goaway(exc.code, str(exc))
        finally:
            out, self.out = self.out, None
            if out and self.transport is not None:
                self.transport.write(b"".join(out))

    # -- frames -----------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.out is not None:
            self.out.append(data)
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        if self.continuation is not None and kind != CONTINUATION:
            raise _ConnectionError(PROTOCOL_ERROR, "expected CONTINUATION")
        if kind == DATA:
            self._data(flags, sid, payload)
        elif kind == HEADERS:
            if sid == 0:
                raise _ConnectionError(PROTOCOL_ERROR, "HEADERS on stream 0")
            block = payload
            if flags & PADDED:
                block = self._unpad(payload)
            if flags & PRIORITY_FLAG:
                block = block[5:]
            if not block and not flags & END_STREAM:
                self._empty_frame()
            elif self.empty_frames:
                self.empty_frames = 0
            if flags & END_HEADERS:
                self._headers(sid, flags & END_STREAM, bytes(block))
            else:
                self.continuation = (sid, flags & END_STREAM, bytearray(block))
                self.continuations = 0
                if self.header_timer is None:
                    self.header_timer = self.loop.call_later(
                        self.limits.header_timeout, self._too_slow, "no end of a header block"
                    )
        elif kind == CONTINUATION:
            if self.continuation is None or self.continuation[0] != sid:
                raise _ConnectionError(PROTOCOL_ERROR, "unexpected CONTINUATION")
            if payload:
                self.empty_frames = 0
            else:
                self._empty_frame()
            self.continuations += 1
            if self.continuations > self.limits.max_continuation_frames:
                raise _ConnectionError(
                    ENHANCE_YOUR_CALM,
                    f"more than {self.limits.max_continuation_frames} CONTINUATION frames",
                )
            self.continuation[2].extend(payload)
            if len(self.continuation[2]) > 4 * self.limits.max_header_list_size:
                raise _ConnectionError(ENHANCE_YOUR_CALM, "header block too large")
            if flags & END_HEADERS:
                csid, ended, block_buf = self.continuation
                self.continuation = None
                if self.header_timer is not None:
                    self.header_timer.cancel()
                    self.header_timer = None
                self._headers(csid, ended, bytes(block_buf))
        elif kind == SETTINGS:
            self._settings(flags, sid, payload)
        elif kind == WINDOW_UPDATE:
            self._window_update(sid, payload)
        elif kind == PING:
            if len(payload) != 8 or sid != 0:
                raise _ConnectionError(FRAME_SIZE_ERROR, "bad PING")
            if not flags & ACK:
                if not self.pings.spend():
                    raise _ConnectionError(ENHANCE_YOUR_CALM, "too many PINGs")
                self._write(frame(PING, ACK, 0, payload))
        elif kind == RST_STREAM:
            if sid == 0 or len(payload) != 4:
                raise _ConnectionError(PROTOCOL_ERROR, "bad RST_STREAM")
            if sid > self.last_stream:
                raise _ConnectionError(PROTOCOL_ERROR, f"RST_STREAM on idle stream {sid}")
            if not self.resets.spend():
                raise _ConnectionError(ENHANCE_YOUR_CALM, "too many stream resets")
            st = self.streams.get(sid)
            if st is not None:
                self._drop(st, cancel=True)
        elif kind == GOAWAY:
            self.going_away = True
            if not self.streams and self.transport is not None:
                self.transport.close()
        elif kind == PUSH_PROMISE:
            raise _ConnectionError(PROTOCOL_ERROR, "PUSH_PROMISE from a client")
        elif kind == PRIORITY and sid == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "PRIORITY on stream 0")
        # unknown frame types are ignored (RFC 9113 section 4.1)

    def _empty_frame(self) -> None:
        self.empty_frames += 1
        if self.empty_frames > self.limits.max_consecutive_empty_frames:
            raise _ConnectionError(ENHANCE_YOUR_CALM, "too many frames without a payload")

    @staticmethod
    def _unpad(payload: bytes) -> bytes:
        if not payload:
            raise _ConnectionError(PROTOCOL_ERROR, "padded frame without a pad length")
        pad = payload[0]
        if pad >= len(payload):
            raise _ConnectionError(PROTOCOL_ERROR, "padding longer than the frame")
        return payload[1 : len(payload) - pad]

    def _settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid != 0:
            raise _ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if self.limits.header_table_size < 4096:
                self.decoder.set_max_table_size(self.limits.header_table_size)
            return
        if not self.settings_frames.spend():
            raise _ConnectionError(ENHANCE_YOUR_CALM, "too many SETTINGS frames")
        if len(payload) % 6:
            raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS length")
        for i in range(0, len(payload), 6):
            ident = int.from_bytes(payload[i : i + 2], "big")
            value = int.from_bytes(payload[i + 2 : i + 6], "big")
            if ident == 0x4:
                if value > MAX_WINDOW:
                    raise _ConnectionError(FLOW_CONTROL_ERROR, "initial window too large")
                delta = value - self.peer_window
                self.peer_window = value
                for st in self.streams.values():
                    st.send_window += delta
            elif ident == 0x5:
                if not 16384 <= value <= 16777215:
                    raise _ConnectionError(PROTOCOL_ERROR, "bad SETTINGS_MAX_FRAME_SIZE")
                self.peer_max_frame = value
        self._write(frame(SETTINGS, ACK, 0))
        for st in list(self.streams.values()):
            self._flush(st)

    def _window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, "WINDOW_UPDATE length")
        inc = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if sid == 0:
            if inc == 0:
                raise _ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self.send_window += inc
            if self.send_window > MAX_WINDOW:
                raise _ConnectionError(FLOW_CONTROL_ERROR, "connection window overflow")
            for waiting in list(self.streams.values()):
                if waiting.pending or waiting.trailers is not None:
                    self._flush(waiting)
            return
        st = self.streams.get(sid)
        if st is None:
            return
        if inc == 0:
            self._reset(st, PROTOCOL_ERROR)
            return
        st.send_window += inc
        if st.send_window > MAX_WINDOW:
            self._reset(st, FLOW_CONTROL_ERROR)
            return
        self._flush(st)

    def _headers(self, sid: int, ended: int, block: bytes) -> None:
        try:
            fields = self.decoder.decode(block)
        except HeaderListFlood as exc:
            raise _ConnectionError(ENHANCE_YOUR_CALM, f"header block: {exc}") from None
        except hpack.OversizedHeaderListError as exc:
            # The block was decoded to its end, so the table is intact: refuse the call only.
            if sid % 2 == 1 and sid > self.last_stream and sid not in self.streams:
                self.last_stream = sid
                self._trailers_only(sid, StatusCode.RESOURCE_EXHAUSTED, str(exc))
                return
            raise _ConnectionError(COMPRESSION_ERROR, f"header block: {exc}") from None
        except hpack.HPACKError as exc:
            raise _ConnectionError(COMPRESSION_ERROR, f"header block: {exc}") from None
        st = self.streams.get(sid)
        if st is not None:  # trailers from the client end its half of the stream
            if ended:
                self._end_remote(st)
            return
        if sid % 2 == 0 or sid <= self.last_stream:
            if sid <= self.last_stream:
                return  # a stream we already closed; RFC 9113 lets us ignore it
            raise _ConnectionError(PROTOCOL_ERROR, f"stream id {sid}")
        self.last_stream = sid
        if self.going_away or len(self.streams) >= self.max_streams:
            if not self.resets.spend():
                raise _ConnectionError(ENHANCE_YOUR_CALM, "too many refused streams")
            self._write(frame(RST_STREAM, 0, sid, REFUSED_STREAM.to_bytes(4, "big")))
            return
        path = method_name = content_type = timeout = encoding = ""
        metadata: list[tuple[str, str | bytes]] = []
        for name, value in fields:
            if name[0] == ":":
                if name == ":path":
                    path = value
                elif name == ":method":
                    method_name = value
            elif name in _RESERVED:
                if name == "content-type":
                    content_type = value
                elif name == "grpc-timeout":
                    timeout = value
                elif name == "grpc-encoding":
                    encoding = value
            elif name.endswith("-bin"):
                try:
                    metadata.append((name, decode_bin(value)))
                except ValueError:
                    self._trailers_only(sid, StatusCode.INTERNAL, f"bad base64 in {name}")
                    return
            else:
                metadata.append((name, value))
        if method_name != "POST":
            self._write(frame(HEADERS, END_HEADERS | END_STREAM, sid, literal(b":status", b"405")))
            return
        if not content_type.startswith("application/grpc"):
            self._write(
                frame(
                    HEADERS,
                    END_HEADERS | END_STREAM,
                    sid,
                    response_headers(415) + status_fields(StatusCode.INTERNAL, "not gRPC"),
                )
            )
            return
        method = self.methods.get(path)
        if method is None:
            self._trailers_only(sid, StatusCode.UNIMPLEMENTED, "Method not found!")
            return
        md = tuple(metadata)
        if self.authenticate is not None and not self.authenticate(md):
            self._trailers_only(
                sid, StatusCode.UNAUTHENTICATED, "missing or invalid dapr-api-token"
            )
            return
        if encoding and encoding not in ("identity", "gzip", "deflate"):
            self._trailers_only(
                sid, StatusCode.UNIMPLEMENTED, f"Compression algorithm '{encoding}' not supported"
            )
            return
        seconds = _parse_timeout(timeout) if timeout else None
        if timeout and seconds is None:
            self._trailers_only(sid, StatusCode.INTERNAL, f"bad grpc-timeout {timeout!r}")
            return
        deadline = None if seconds is None else time.monotonic() + seconds
        st = _Stream(
            sid, method, ServicerContext(md, deadline, self.peer), encoding, self.peer_window
        )
        if seconds is not None:
            st.timer = self.loop.call_later(seconds, self._expire, st)
        self.streams[sid] = st
        self.idle.clear()
        if method.client_streaming:
            st.inbox = asyncio.Queue()
            requests = _RequestStream(st.inbox, functools.partial(self._consumed, st))
            st.task = self.loop.create_task(self._run(st, requests))
        if ended:
            self._end_remote(st)

    def _data(self, flags: int, sid: int, payload: bytes) -> None:
        st = self.streams.get(sid)
        if st is None or st.inbox is not None or st.ended_remote or flags & PADDED or not payload:
            self._data_checked(flags, sid, payload)
            return
        # A unary call's DATA: its one message is bounded by max_receive, so the window is
        # given back on arrival (as grpc-go does for a message larger than the window).
        size = len(payload)
        self.recv_unacked += size
        st.unacked += size
        if self.recv_held + self.recv_unacked > self.connection_window:
            raise _ConnectionError(FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        if st.unacked > self.stream_window:
            self._reset(st, FLOW_CONTROL_ERROR)
            return
        if self.empty_frames:
            self.empty_frames = 0
        if st.unacked >= self.stream_window // 2 and not flags & END_STREAM:
            self._write(frame(WINDOW_UPDATE, 0, sid, st.unacked.to_bytes(4, "big")))
            st.unacked = 0
        buf = st.buffer
        buf += payload
        if len(buf) >= 5:
            declared = int.from_bytes(buf[1:5], "big")
            if declared > self.max_receive or len(buf) > self.max_receive + 5:
                self._fail(
                    st,
                    StatusCode.RESOURCE_EXHAUSTED,
                    f"Received message larger than max ({declared} vs. {self.max_receive})",
                )
                return
        if flags & END_STREAM:
            self._end_remote(st)

    def _data_checked(self, flags: int, sid: int, payload: bytes) -> None:
        """DATA off the unary fast path: client streams, padding, empty frames, errors."""
        if sid == 0:
            raise _ConnectionError(PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        if self.recv_held + self.recv_unacked + size > self.connection_window:
            raise _ConnectionError(FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        st = self.streams.get(sid)
        if st is None:
            self.recv_unacked += size  # nobody will read it: give it back
            if sid > self.last_stream:
                raise _ConnectionError(PROTOCOL_ERROR, f"DATA on idle stream {sid}")
            return
        if st.ended_remote:
            self.recv_unacked += size
            self._reset(st, STREAM_CLOSED)
            return
        body = self._unpad(payload) if flags & PADDED else payload
        if not body and not flags & END_STREAM:
            self._empty_frame()
        elif self.empty_frames:
            self.empty_frames = 0
        if st.held + st.unacked + size > self.stream_window:
            self.recv_unacked += size
            self._reset(st, FLOW_CONTROL_ERROR)
            return
        st.buffer += body
        if st.inbox is None:
            # A unary call: its one message is bounded by max_receive, so the window is
            # given back on arrival (as grpc-go does for a message larger than the window).
            self.recv_unacked += size
            st.unacked += size
            if st.unacked >= self.stream_window // 2 and not flags & END_STREAM:
                self._write(frame(WINDOW_UPDATE, 0, sid, st.unacked.to_bytes(4, "big")))
                st.unacked = 0
            if len(st.buffer) > self.max_receive + 5:
                self._fail(
                    st,
                    StatusCode.RESOURCE_EXHAUSTED,
                    f"Received message larger than max (more than {self.max_receive})",
                )
                return
        else:
            st.held += size
            self.recv_held += size
        if len(st.buffer) >= 5:
            declared = int.from_bytes(st.buffer[1:5], "big")
            if declared > self.max_receive:
                self._fail(
                    st,
                    StatusCode.RESOURCE_EXHAUSTED,
                    f"Received message larger than max ({declared} vs. {self.max_receive})",
                )
                return
        if flags & END_STREAM:
            st.ended_remote = True
        if st.inbox is not None:
            self._deliver(st)
        elif flags & END_STREAM:
            self._end_remote(st)

    # -- calls ------------------------------------------------------------------------------

    def _take_messages(self, st: _Stream, limit: int) -> list[tuple[bytes, int]] | None:
        """Up to ``limit`` complete messages at the head of the stream's buffer, with their
        framed sizes (None after failing the stream)."""
        out: list[tuple[bytes, int]] = []
        buf = st.buffer
        while len(buf) >= 5 and len(out) < limit:
            length = int.from_bytes(buf[1:5], "big")
            if length > self.max_receive:
                self._fail(
                    st,
                    StatusCode.RESOURCE_EXHAUSTED,
                    f"Received message larger than max ({length} vs. {self.max_receive})",
                )
                return None
            if len(buf) < 5 + length:
                break
            flag, payload = buf[0], bytes(buf[5 : 5 + length])
            del buf[: 5 + length]
            if flag:
                try:
                    payload = self._decompress(st, payload)
                except ValueError as exc:
                    self._fail(st, StatusCode.INTERNAL, str(exc))
                    return None
            out.append((payload, 5 + length))
        return out

    def _decompress(self, st: _Stream, payload: bytes) -> bytes:
        if st.encoding not in ("gzip", "deflate"):
            raise ValueError("compressed message without a grpc-encoding")
        d = zlib.decompressobj(31 if st.encoding == "gzip" else 15)
        try:
            out = d.decompress(payload, self.max_receive + 1)
        except zlib.error as exc:
            raise ValueError(f"cannot decompress the message: {exc}") from None
        if len(out) > self.max_receive:
            raise ValueError(f"decompressed message larger than max ({self.max_receive})")
        return out

    def _parse(self, st: _Stream, payload: bytes) -> Any:
        request = st.method.request_type()
        try:
            request.ParseFromString(payload)
        except Exception:  # protobuf raises DecodeError (and others on upb)
            self._fail(st, StatusCode.INTERNAL, "Exception deserializing request!")
            return None
        return request

    def _deliver(self, st: _Stream) -> None:
        """Move a client stream's messages into its inbox, up to ``max_queued_messages``,
        and give the client back window for every byte not waiting there or behind it."""
        inbox = st.inbox
        if inbox is None or st.ended_local:
            return
        messages = self._take_messages(st, self.limits.max_queued_messages - st.queued)
        if messages is None:
            return
        for payload, size in messages:
            request = self._parse(st, payload)
            if request is None:
                return
            st.queued += 1
            st.queued_bytes += size
            inbox.put_nowait((request, size))
        full = st.queued >= self.limits.max_queued_messages
        # Held: the queue, and when it is full what waits behind it; a partial message
        # (the queue has room) is given back so that messages larger than the window pass.
        hold = st.queued_bytes + (len(st.buffer) if full else 0)
        if st.held > hold:
            self._release(st, st.held - hold)
        if st.ended_remote and not st.eof and not full:
            if st.buffer:
                self._fail(st, StatusCode.INTERNAL, "the request ended inside a message")
                return
            st.eof = True
            inbox.put_nowait(None)

    def _consumed(self, st: _Stream, size: int) -> None:
        """The handler read a message of ``size`` framed bytes."""
        st.queued -= 1
        st.queued_bytes -= size
        if st.id in self.streams:
            self._deliver(st)

    def _release(self, st: _Stream, amount: int) -> None:
        st.held -= amount
        self.recv_held -= amount
        self.recv_unacked += amount
        st.unacked += amount
        if st.unacked >= self.stream_window // 2 and not st.ended_remote:
            self._write(frame(WINDOW_UPDATE, 0, st.id, st.unacked.to_bytes(4, "big")))
            st.unacked = 0
        if self.out is None and self.recv_unacked >= self.connection_window // 2:
            self._write(frame(WINDOW_UPDATE, 0, 0, self.recv_unacked.to_bytes(4, "big")))
            self.recv_unacked = 0

    def _end_remote(self, st: _Stream) -> None:
        st.ended_remote = True
        if st.inbox is not None:
            self._deliver(st)
            return
        if st.ended_local:
            return
        messages = self._take_messages(st, 2)
        if messages is None:
            return
        if st.buffer or len(messages) != 1:
            why = (
                "more than one request message for a unary call"
                if len(messages) > 1
                else (
                    "the request ended inside a message"
                    if st.buffer
                    else "no request message for a unary call"
                )
            )
            self._fail(st, StatusCode.INTERNAL, why)
            return
        request = self._parse(st, messages[0][0])
        if request is not None:
            st.task = self.loop.create_task(self._run(st, request))

    async def _run(self, st: _Stream, request: Any) -> None:
        method, ctx = st.method, st.ctx
        try:
            if method.server_streaming:
                responses = method.handler(request, ctx)
                if inspect.iscoroutine(responses):  # a plain coroutine: aborts, or no messages
                    await responses
                    responses = _no_messages()
                async for response in responses:
                    await self._send_message(st, self._outgoing(response))
                self._finish(st, StatusCode.OK, "", ctx.trailing_metadata)
                return
            response = await method.handler(request, ctx)
            if response is None:
                self._finish(st, StatusCode.INTERNAL, "the handler returned no response")
                return
            data = _message(self._outgoing(response))
            if (
                not ctx.trailing_metadata
                and not st.pending
                and len(data) <= min(st.send_window, self.send_window, self.peer_max_frame)
            ):  # the common case: one write for headers, message and trailers
                st.send_window -= len(data)
                self.send_window -= len(data)
                st.ended_local = True
                sid = st.id
                self._write(
                    frame(HEADERS, END_HEADERS, sid, OK_HEADERS)
                    + frame(DATA, 0, sid, data)
                    + frame(HEADERS, END_HEADERS | END_STREAM, sid, OK_TRAILERS)
                )
                self._closed(st)
                return
            st.pending += data
            self._finish(st, StatusCode.OK, "", ctx.trailing_metadata)
        except RpcAbort as exc:
            self._finish(st, exc.code, exc.details, exc.trailing_metadata)
        except asyncio.CancelledError:
            pass  # reset by the client, past its deadline or the server stopping
        except Exception as exc:
            log.exception("gRPC handler %s failed", method.name)
            self._finish(st, StatusCode.UNKNOWN, f"Unexpected {type(exc).__name__}: {exc}")

    def _outgoing(self, response: Any) -> bytes:
        payload: bytes = response.SerializeToString()
        if self.max_send is not None and len(payload) > self.max_send:
            raise RpcAbort(
                StatusCode.RESOURCE_EXHAUSTED,
                f"Sent message larger than max ({len(payload)} vs. {self.max_send})",
            )
        return payload

    async def _send_message(self, st: _Stream, payload: bytes) -> None:
        if st.ended_local:
            raise asyncio.CancelledError
        st.pending += _message(payload)
        self._flush(st)
        while (st.pending or self.paused) and not st.ended_local:
            if st.pending:
                st.writable = self.loop.create_future()
                await st.writable
            else:
                if self.drained is None:
                    self.drained = self.loop.create_future()
                await asyncio.shield(self.drained)
        if st.ended_local and st.id not in self.streams:
            raise asyncio.CancelledError

    def _flush(self, st: _Stream) -> None:
        sid = st.id
        if not st.sent_headers and (st.pending or st.trailers is not None):
            st.sent_headers = True
            self._write(frame(HEADERS, END_HEADERS, sid, OK_HEADERS))
        while st.pending:
            size = min(len(st.pending), st.send_window, self.send_window, self.peer_max_frame)
            if size <= 0:
                return
            chunk = bytes(st.pending[:size])
            del st.pending[:size]
            st.send_window -= size
            self.send_window -= size
            self._write(frame(DATA, 0, sid, chunk))
        if st.writable is not None and not st.writable.done():
            st.writable.set_result(None)
            st.writable = None
        if st.trailers is not None:
            self._write_block(sid, st.trailers, END_STREAM)
            st.trailers = None
            self._closed(st)

    def _write_block(self, sid: int, block: bytes, flags: int) -> None:
        limit = self.peer_max_frame
        if len(block) <= limit:
            self._write(frame(HEADERS, END_HEADERS | flags, sid, block))
            return
        self._write(frame(HEADERS, flags, sid, block[:limit]))
        rest = block[limit:]
        while rest:
            piece, rest = rest[:limit], rest[limit:]
            self._write(frame(CONTINUATION, 0 if rest else END_HEADERS, sid, piece))

    def _finish(
        self,
        st: _Stream,
        code: StatusCode,
        message: str,
        metadata: tuple[tuple[str, str | bytes], ...] = (),
    ) -> None:
        """End the call with a status: after pending messages, or as a trailers-only answer."""
        if st.ended_local or st.trailers is not None:
            return
        fields = status_fields(int(code), message, metadata)
        if not st.sent_headers and not st.pending:
            st.sent_headers = True
            self._write_block(st.id, OK_HEADERS + fields, END_STREAM)
            self._closed(st)
            return
        st.trailers = fields
        self._flush(st)

    def _fail(self, st: _Stream, code: StatusCode, message: str) -> None:
        """A client mistake found while reading: answer the status, stop the handler."""
        self._finish(st, code, message)
        if st.task is not None:
            st.task.cancel()

    def _trailers_only(self, sid: int, code: StatusCode, message: str) -> None:
        self._write_block(sid, OK_HEADERS + status_fields(int(code), message), END_STREAM)

    def _expire(self, st: _Stream) -> None:
        st.timer = None
        self._fail(st, StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")

    def _closed(self, st: _Stream) -> None:
        """We sent END_STREAM; stop the client's half too if it is still sending."""
        st.ended_local = True
        if not st.ended_remote:
            self._write(frame(RST_STREAM, 0, st.id, NO_ERROR.to_bytes(4, "big")))
        self._drop(st, cancel=False)

    def _reset(self, st: _Stream, code: int) -> None:
        self._write(frame(RST_STREAM, 0, st.id, code.to_bytes(4, "big")))
        self._drop(st, cancel=True)

    def _drop(self, st: _Stream, cancel: bool) -> None:
        st.ended_local = True
        if st.timer is not None:
            st.timer.cancel()
            st.timer = None
        if cancel and st.task is not None and not st.task.done():
            st.task.cancel()
        if st.inbox is not None and not st.eof:
            st.inbox.put_nowait(None)
            st.eof = True
        st.ended_remote = True
        if st.held:  # nobody will read it now: give the connection window back
            self.recv_held -= st.held
            self.recv_unacked += st.held
            st.held = 0
        if st.writable is not None and not st.writable.done():
            st.writable.set_result(None)
        if self.streams.pop(st.id, None) is not None and not self.streams:
            self.idle_since = self.loop.time()
            self.idle.set()
            if self.going_away and self.transport is not None:
                self.transport.close()

    def _goaway(self, code: int, why: str) -> None:
        log.debug("closing a gRPC connection from %s: %s", self.peer, why)
        self._write(
            frame(
                GOAWAY,
                0,
                0,
                self.last_stream.to_bytes(4, "big") + code.to_bytes(4, "big") + why.encode()[:200],
            )
        )
        self.closing = True
        self._cancel_timers()
        for st in list(self.streams.values()):
            self._drop(st, cancel=True)
        transport = self.transport
        if transport is not None:
            if self.out:
                transport.write(b"".join(self.out))
                self.out = []
            if transport.is_closing() or not transport.can_write_eof():
                transport.close()
                return
            # A lingering close: closing with the client's frames unread would send a TCP
            # reset that can discard the GOAWAY before the client reads it. Send our end,
            # read and drop what still comes, close when the client does or after LINGER s.
            transport.write_eof()
            self.loop.call_later(LINGER, transport.close)

    # -- server shutdown --------------------------------------------------------------------

    def shutdown(self) -> None:
        """Refuse new streams (GOAWAY); the connection closes when its calls are done."""
        if self.going_away:
            return
        self.going_away = True
        self._write(
            frame(GOAWAY, 0, 0, self.last_stream.to_bytes(4, "big") + NO_ERROR.to_bytes(4, "big"))
        )
        if not self.streams and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        for st in list(self.streams.values()):
            self._finish(st, StatusCode.UNAVAILABLE, "the server is stopping")
            self._drop(st, cancel=True)
        if self.transport is not None:
            self.transport.close()


async def _no_messages() -> AsyncIterator[Any]:
    return
    yield


def _parse_timeout(value: str) -> float | None:
    unit = _TIMEOUT_UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit
