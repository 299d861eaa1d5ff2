"""The tracking server's front: client connections held while MLflow starts, then spliced
byte for byte to the process (asyncio Protocols and transports, with backpressure both
ways). What the front needs of the server is :class:`RelayHost`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol, cast

__all__ = ["FrontConnection", "RelayHost", "UpstreamConnection"]


class RelayHost(Protocol):
    """The server a front connection belongs to (:class:`~wonderland.tracking.server.
    TrackingServer`)."""

    connections: set[FrontConnection]
    held: list[FrontConnection]
    active: bool  # set on every relayed byte: the idle timer reads and clears it
    backend_port: int
    max_held_bytes: int

    @property
    def state(self) -> str: ...

    def hold(self, conn: FrontConnection) -> None:
        """Keep ``conn`` until the process answers (or refuse it when it cannot start)."""
        ...

    def upstream_failed(self, conn: FrontConnection, exc: OSError) -> None: ...


class FrontConnection(asyncio.Protocol):
    """One client connection on the front: held while the process starts, then spliced
    byte for byte to a connection to the process (:class:`UpstreamConnection`)."""

    def __init__(self, server: RelayHost) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.eof = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transports are not asyncio.Transport subclasses: no isinstance
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        server.connections.add(self)
        server.active = True
        if server.backend_port and server.state == "running":
            self.connect()
        else:
            server.hold(self)

    def connect(self) -> None:
        if not self.closed:
            asyncio.get_running_loop().create_task(self._connect(self.server.backend_port))

    async def _connect(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: UpstreamConnection(self), "127.0.0.1", port)
        except OSError as exc:
            if not self.closed:
                self.server.upstream_failed(self, exc)

    def upstream_made(self, transport: asyncio.Transport) -> None:
        if self.closed:
            transport.close()
            return
        self.upstream = transport
        if self.pending:
            transport.write(b"".join(self.pending))
            if self.pending_bytes >= self.server.max_held_bytes and self.transport is not None:
                self.transport.resume_reading()
            self.pending = []
            self.pending_bytes = 0
        if self.eof and transport.can_write_eof():
            transport.write_eof()

    def data_received(self, data: bytes) -> None:
        self.server.active = True
        upstream = self.upstream
        if upstream is not None:
            upstream.write(data)
            return
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes >= self.server.max_held_bytes and self.transport is not None:
            # the limit of what a held connection buffers: the client waits to send more
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        upstream = self.upstream
        if upstream is not None and upstream.can_write_eof():
            upstream.write_eof()
        return True  # the answer may still come

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        server = self.server
        server.connections.discard(self)
        with contextlib.suppress(ValueError):
            server.held.remove(self)
        if self.upstream is not None:
            self.upstream.close()

    def refuse(self, status: int, reason: str, message: str) -> None:
        transport = self.transport
        if transport is None or self.closed:
            return
        body = message.encode() + b"\n"
        transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if self.upstream is not None:
            self.upstream.close()


class UpstreamConnection(asyncio.Protocol):
    """The process's side of one spliced connection."""

    def __init__(self, front: FrontConnection) -> None:
        self.front = front
        self.client = front.transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.front.upstream_made(cast(asyncio.Transport, transport))

    def data_received(self, data: bytes) -> None:
        self.front.server.active = True
        if self.client is not None:
            self.client.write(data)

    def eof_received(self) -> bool:
        if self.client is not None:
            self.client.close()
        return False

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.pause_reading()

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client is not None:
            self.client.close()
