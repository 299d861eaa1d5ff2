"""Flow-controlled sending on one HTTP/2 connection (the ``h2`` library's state machine).

Data waits in a per-stream queue until the peer's windows (stream and connection) have
room, its frame-size limit is respected chunk by chunk, and nothing is pushed while the
socket's write buffer is full (``paused``). ``on_sent`` hears of every chunk that left,
so the side the data came from can acknowledge it only then: that is what keeps a fast
sender from filling the gateway's memory when the receiver is slow.
"""

from __future__ import annotations

from collections.abc import Callable

import h2.connection
import h2.exceptions

__all__ = ["FlowSender"]


class FlowSender:
    """Sends DATA on ``conn`` as its peer's windows allow. ``on_sent(stream_id, size,
    done)`` is called for every chunk written (``done``: the stream's last data, with
    END_STREAM, went out)."""

    __slots__ = ("buffers", "conn", "on_sent", "paused")

    def __init__(
        self,
        conn: h2.connection.H2Connection,
        on_sent: Callable[[int, int, bool], None] | None = None,
    ) -> None:
        self.conn = conn
        self.on_sent = on_sent
        # per stream: (data, end) pieces, or (b"", trailers) to end it with trailers
        self.buffers: dict[int, list[tuple[bytes, bool | list[tuple[str, str]]]]] = {}
        self.paused = False  # the transport's write buffer is full

    def send(self, stream_id: int, data: bytes, end: bool) -> None:
        buf = self.buffers.get(stream_id)
        if buf or self.paused:
            if buf is None:
                self.buffers[stream_id] = [(data, end)]
            else:
                buf.append((data, end))
            return
        self._push(stream_id, [(data, end)])

    def send_trailers(self, stream_id: int, trailers: list[tuple[str, str]]) -> None:
        """End the stream with ``trailers``, after the data that waits for it."""
        buf = self.buffers.get(stream_id)
        if buf or self.paused:
            if buf is None:
                self.buffers[stream_id] = [(b"", trailers)]
            else:
                buf.append((b"", trailers))
            return
        self._push(stream_id, [(b"", trailers)])

    def has_buffered(self, stream_id: int) -> bool:
        return bool(self.buffers.get(stream_id))

    def _push(
        self, stream_id: int, queue: list[tuple[bytes, bool | list[tuple[str, str]]]]
    ) -> None:
        conn = self.conn
        on_sent = self.on_sent
        while queue and not self.paused:
            data, end = queue[0]
            try:
                window = min(
                    conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size
                )
            except h2.exceptions.ProtocolError:
                queue.clear()  # the stream, or the whole connection, is closed
                break
            if not data:
                if end:
                    try:
                        if end is True:
                            conn.end_stream(stream_id)
                        else:
                            conn.send_headers(stream_id, end, end_stream=True)
                    except h2.exceptions.ProtocolError:
                        pass
                queue.pop(0)
                if end and on_sent is not None:
                    on_sent(stream_id, 0, True)
                continue
            if window <= 0:
                break
            chunk, rest = data[:window], data[window:]
            last = end is True and not rest
            try:
                conn.send_data(stream_id, chunk, end_stream=last)
            except h2.exceptions.ProtocolError:
                queue.clear()
                break
            if rest:
                queue[0] = (rest, end)
            else:
                queue.pop(0)
            if on_sent is not None:
                on_sent(stream_id, len(chunk), last)
        if queue:
            self.buffers[stream_id] = queue
        else:
            self.buffers.pop(stream_id, None)

    def window_opened(self, stream_id: int) -> None:
        """A WINDOW_UPDATE, a SETTINGS change or a drained socket: push what waits."""
        ids = list(self.buffers) if stream_id == 0 else [stream_id]
        for sid in ids:
            queue = self.buffers.get(sid)
            if queue:
                self.buffers[sid] = []
                self._push(sid, queue)

    def forget(self, stream_id: int) -> int:
        """Drop what waits for ``stream_id`` (it was reset); the bytes dropped."""
        queue = self.buffers.pop(stream_id, None)
        return sum(len(d) for d, _ in queue) if queue else 0
