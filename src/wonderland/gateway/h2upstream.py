"""The gateway's shared HTTP/2 connection to one h2c replica, multiplexing client streams.

Streams start once the replica's SETTINGS have arrived and only while it has room for
them (``SETTINGS_MAX_CONCURRENT_STREAMS``): a stream past its limit waits here, in
order, instead of failing, and starts when another one closes or the limit rises. After
a GOAWAY the waiting streams go to a fresh connection. Response bytes are acknowledged to
the replica only once the client side has written them on (``consumed``). A stream the
replica answers before the request's body is all sent is cancelled (RST_STREAM) when the
client side is done with it.
"""

from __future__ import annotations

import asyncio
import collections
from typing import cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from wonderland.gateway.exchange import H2Peer, H2Stream
from wonderland.gateway.h2flow import FlowSender
from wonderland.gateway.table import Endpoint

__all__ = ["UpstreamH2"]


class UpstreamH2(asyncio.Protocol):
    """One shared HTTP/2 connection to a replica; the ``H2Source`` of its streams."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.sender = FlowSender(self.conn, self._request_sent)
        self.transport: asyncio.Transport | None = None
        self.ready = False  # the replica's SETTINGS arrived
        self.lost = False
        self.goaway = False  # the replica takes no new streams on this connection
        self.queue: collections.deque[tuple[H2Peer, H2Stream]] = collections.deque()
        self.streams: dict[int, tuple[H2Peer, H2Stream]] = {}
        self.unacked: dict[int, int] = {}  # response bytes not yet written on, per stream
        self.receiving = False  # inside data_received (which flushes at its end)

    @classmethod
    def for_endpoint(cls, ep: Endpoint) -> UpstreamH2:
        existing = ep.h2
        if isinstance(existing, UpstreamH2) and not existing.lost and not existing.goaway:
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

    # -- asyncio.Protocol --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.conn.initiate_connection()
        self.flush()

    def pause_writing(self) -> None:
        self.sender.paused = True

    def resume_writing(self) -> None:
        self.sender.paused = False
        self.sender.window_opened(0)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._drop_all()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.lost:
            self.transport.write(data)

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    # -- H2Source: what the client side calls --
    def open(self, peer: H2Peer, stream: H2Stream) -> None:
        """Send ``stream`` to the replica (now, or once it has room)."""
        stream.source = self
        self.queue.append((peer, stream))
        if self.ready:
            self._start_queued()
            self.flush()

    def send_data(self, stream: H2Stream, data: bytes, end: bool) -> None:
        up_id = stream.up_id
        if up_id is None:
            stream.pending.append((data, end))
        elif up_id in self.streams:
            self.sender.send(up_id, data, end)
            self.flush()

    def consumed(self, stream: H2Stream, size: int) -> None:
        up_id = stream.up_id
        if up_id is None or self.lost:
            return
        left = self.unacked.get(up_id, 0) - size
        if left > 0:
            self.unacked[up_id] = left
        else:
            self.unacked.pop(up_id, None)
        self.conn.acknowledge_received_data(size, up_id)
        if not self.receiving:  # else data_received flushes once at its end
            self.flush()

    def detach(self, stream: H2Stream, reset: bool) -> None:
        up_id = stream.up_id
        stream.source = None
        if up_id is None:
            for i, (_, queued) in enumerate(self.queue):
                if queued is stream:
                    del self.queue[i]
                    break
            return
        self.streams.pop(up_id, None)
        if not self.lost:
            # a reset, or a stream the replica has ended (answered) while the request's
            # body was still going: only half closed, it would stay open at the replica
            # and count against its stream limit
            open_stream = self.conn.streams.get(up_id)
            if open_stream is not None and not open_stream.closed:
                try:
                    self.conn.reset_stream(up_id, h2.errors.ErrorCodes.CANCEL)
                except h2.exceptions.ProtocolError:
                    pass
        self.sender.forget(up_id)
        left = self.unacked.pop(up_id, 0)
        if left and not self.lost:
            # what the client side never wrote on still counts against our connection window
            self.conn.acknowledge_received_data(left, up_id)
        self._start_queued()
        self.flush()
        if self.goaway and not self.streams:
            self.close()

    # -- internals --
    def _start_queued(self) -> None:
        conn = self.conn
        queue = self.queue
        while queue and not self.lost and not self.goaway:
            if conn.open_outbound_streams >= conn.remote_settings.max_concurrent_streams:
                return  # the replica's limit: wait for a stream to close
            peer, stream = queue[0]
            up_id = conn.get_next_available_stream_id()
            pending = stream.pending
            end_now = stream.ended and not any(data for data, _ in pending)
            try:
                conn.send_headers(up_id, peer.request_headers(stream), end_stream=end_now)
            except h2.exceptions.TooManyStreamsError:
                return
            queue.popleft()
            stream.up_id = up_id
            stream.pending = []
            self.streams[up_id] = (peer, stream)
            if not end_now:
                for data, end in pending:
                    self.sender.send(up_id, data, end)

    def _request_sent(self, up_id: int, size: int, done: bool) -> None:
        entry = self.streams.get(up_id)
        if entry is not None and size:
            entry[0].request_consumed(entry[1], size)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            self.close()
            return
        self.receiving = True
        try:
            self._events(events)
        finally:
            self.receiving = False
        self._start_queued()
        self.flush()
        if self.goaway and not self.streams:
            self.close()

    def _events(self, events: list[h2.events.Event]) -> None:
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                sid = event.stream_id
                entry = self.streams.get(sid)
                size = len(event.data)
                unpaid = event.flow_controlled_length - (size if entry else 0)
                if unpaid:
                    # padding, or data for a stream nobody reads any more: paid back now
                    self.conn.acknowledge_received_data(unpaid, sid)
                if entry:
                    if size:
                        self.unacked[sid] = self.unacked.get(sid, 0) + size
                    ended = event.stream_ended is not None
                    if ended:
                        self.streams.pop(sid, None)
                    entry[0].response_data(entry[1], event.data, ended)
            elif isinstance(event, h2.events.ResponseReceived):
                entry = self.streams.get(event.stream_id)
                if entry:
                    ended = event.stream_ended is not None
                    if ended:
                        self.streams.pop(event.stream_id, None)
                    entry[0].response_headers(
                        entry[1], cast(list[tuple[str, str]], event.headers), ended
                    )
            elif isinstance(event, h2.events.TrailersReceived):
                entry = self.streams.pop(event.stream_id, None)
                if entry:
                    entry[0].response_headers(
                        entry[1], cast(list[tuple[str, str]], event.headers), True
                    )
            elif isinstance(event, h2.events.StreamEnded):
                entry = self.streams.pop(event.stream_id, None)
                if entry:
                    entry[0].response_data(entry[1], b"", True)
            elif isinstance(event, h2.events.StreamReset):
                entry = self.streams.pop(event.stream_id, None)
                if entry:
                    entry[1].up_id = None
                    entry[1].source = None
                    entry[0].upstream_reset(entry[1])
            elif isinstance(event, h2.events.WindowUpdated):
                self.sender.window_opened(event.stream_id)
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                # the first SETTINGS: streams may start; later ones may change the window,
                # the frame size or the stream limit
                self.ready = True
                self.sender.window_opened(0)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._goaway(event.last_stream_id)

    def _goaway(self, last_stream_id: int | None) -> None:
        """The replica stops taking streams: those it never saw are failed, the waiting
        ones go to a fresh connection, the others finish here."""
        self.goaway = True
        if self.endpoint.h2 is self:
            self.endpoint.h2 = None
        last = last_stream_id if last_stream_id is not None else 0
        unseen = [(sid, entry) for sid, entry in self.streams.items() if sid > last]
        for sid, (peer, stream) in unseen:
            self.streams.pop(sid, None)
            stream.up_id = None
            stream.source = None
            peer.upstream_reset(stream)
        waiting, self.queue = list(self.queue), collections.deque()
        if waiting and self.endpoint.alive:
            fresh = UpstreamH2.for_endpoint(self.endpoint)
            for peer, stream in waiting:
                fresh.open(peer, stream)
        else:
            for peer, stream in waiting:
                stream.source = None
                peer.upstream_reset(stream)

    def _drop_all(self) -> None:
        if self.endpoint.h2 is self:
            self.endpoint.h2 = None
        entries = list(self.streams.values()) + list(self.queue)
        self.streams.clear()
        self.queue.clear()
        for peer, stream in entries:
            stream.source = None
            stream.up_id = None
            peer.upstream_reset(stream)
