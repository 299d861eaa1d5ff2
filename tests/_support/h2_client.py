"""A raw HTTP/2 client over the ``h2`` library, for tests that need frame-level control
(windows held shut, settings changed mid-stream, floods)."""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings


class RawH2:
    """One HTTP/2 connection; events are collected as they arrive. Nothing is
    acknowledged unless ``auto_ack`` (then every DATA frame is, at once)."""

    def __init__(self, *, auto_ack: bool = True, validate: bool = True) -> None:
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding="utf-8",
                validate_outbound_headers=validate,
                normalize_outbound_headers=validate,
            )
        )
        self.auto_ack = auto_ack
        self.events: list[Any] = []
        self.data: dict[int, bytearray] = {}
        self.ended: set[int] = set()
        self.closed = asyncio.Event()
        self.changed = asyncio.Event()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, port: int, settings: dict[int, int] | None = None) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        self.flush()
        self._task = asyncio.create_task(self._read())

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.writer is not None and not self.writer.is_closing():
            self.writer.write(data)

    async def _read(self) -> None:
        assert self.reader is not None
        try:
            while chunk := await self.reader.read(65536):
                for event in self.conn.receive_data(chunk):
                    self.events.append(event)
                    if isinstance(event, h2.events.DataReceived):
                        self.data.setdefault(event.stream_id, bytearray()).extend(event.data)
                        if self.auto_ack:
                            self.conn.acknowledge_received_data(
                                event.flow_controlled_length, event.stream_id
                            )
                    if isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                        self.ended.add(event.stream_id)
                self.flush()
                self.changed.set()
        except Exception:
            pass
        finally:
            self.closed.set()
            self.changed.set()

    async def wait(self, predicate: Any, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                if self.closed.is_set() and not predicate():
                    raise AssertionError("the connection closed first")
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)

    def request(
        self,
        authority: str,
        path: str,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
    ) -> int:
        sid = self.conn.get_next_available_stream_id()
        head = [
            (":method", "POST" if body else "GET"),
            (":scheme", "http"),
            (":authority", authority),
            (":path", path),
            *(headers or []),
        ]
        self.conn.send_headers(sid, head, end_stream=not body)
        for start in range(0, len(body), 16384):
            last = start + 16384 >= len(body)
            self.conn.send_data(sid, body[start : start + 16384], end_stream=last)
        self.flush()
        return sid

    def status(self, sid: int) -> str | None:
        for event in self.events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == sid:
                return dict(event.headers).get(":status")
        return None

    def goaway(self) -> h2.events.ConnectionTerminated | None:
        for event in self.events:
            if isinstance(event, h2.events.ConnectionTerminated):
                return event
        return None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)
