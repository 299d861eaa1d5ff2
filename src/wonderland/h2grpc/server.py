"""A gRPC server on asyncio: servicer classes written for grpcio run on it unchanged.

grpcio's server spends most of a small call in its Python layer and in handing each call
between its core thread and the event loop. This one parses HTTP/2 in the event loop
itself (``connection.py``) and calls the servicer's coroutine directly, which makes a
small unary call several times cheaper. The servicer API is the subset of
``grpc.aio`` that handlers use: ``context.abort``, ``invocation_metadata``,
``set_trailing_metadata``, ``time_remaining``; async generators for streamed answers
and an async iterator of requests for client streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor

from wonderland.h2grpc.connection import GrpcConnection
from wonderland.h2grpc.limits import H2Limits

__all__ = ["GrpcServer", "Method", "service_methods"]

Authenticate = Callable[[tuple[tuple[str, str | bytes], ...]], bool]


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC: its handler, request class and streaming shape."""

    name: str
    handler: Callable[..., Any]
    request_type: Any
    client_streaming: bool
    server_streaming: bool


def service_methods(service: ServiceDescriptor, servicer: object) -> dict[str, Method]:
    """The method table for ``service``: the servicer's methods named like its RPCs.

    RPCs the servicer has no method for answer UNIMPLEMENTED.
    """
    table: dict[str, Method] = {}
    for m in service.methods:
        handler = getattr(servicer, m.name, None)
        if handler is None:
            continue
        table[f"/{service.full_name}/{m.name}"] = Method(
            name=m.name,
            handler=handler,
            request_type=message_factory.GetMessageClass(m.input_type),
            client_streaming=m.client_streaming,
            server_streaming=m.server_streaming,
        )
    return table


class GrpcServer:
    """Serves a method table over cleartext HTTP/2 (h2c with prior knowledge, as gRPC does)."""

    def __init__(
        self,
        methods: dict[str, Method],
        *,
        max_receive_message_length: int = 4 * 1024 * 1024,
        max_send_message_length: int | None = None,
        authenticate: Authenticate | None = None,
        limits: H2Limits | None = None,
    ) -> None:
        """``limits`` bounds what one connection may cost (streams, windows, header sizes,
        flood budgets, timeouts); ``H2Limits()`` has the documented defaults."""
        self.methods = methods
        self.limits = limits or H2Limits()
        self.max_receive = max_receive_message_length
        self.max_send = max_send_message_length
        self.authenticate = authenticate
        self.connections: set[GrpcConnection] = set()
        self._server: asyncio.Server | None = None

    def _connection(self) -> GrpcConnection:
        conn = GrpcConnection(
            self.methods,
            self.max_receive,
            self.authenticate,
            self.connections.discard,
            max_send=self.max_send,
            limits=self.limits,
        )
        self.connections.add(conn)
        return conn

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        """Listen on ``host:port`` (0 picks a free port); returns the port.

        ``reuse_port`` lets several processes share the port (SO_REUSEPORT).
        """
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._connection,
            host,
            port,
            reuse_address=True,
            reuse_port=reuse_port or None,
            backlog=1024,
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self, grace: float | None = None) -> None:
        """Stop listening, let calls in progress finish for ``grace`` s, then cancel them."""
        if self._server is not None:
            self._server.close()
        conns = list(self.connections)
        for conn in conns:
            conn.shutdown()
        if grace and conns:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(c.idle.wait() for c in conns)), timeout=grace
                )
        for conn in list(self.connections):
            conn.abort()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1.0)
            self._server = None
        await asyncio.sleep(0)
