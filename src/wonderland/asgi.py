"""Plain-ASGI types and the lifespan answer shared by the servers written without a framework."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Awaitable, Callable, Generator
from typing import Any

__all__ = ["QuietServer", "Receive", "Scope", "Send", "accept_lifespan"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def accept_lifespan(receive: Receive, send: Send) -> None:
    """Answer a ``lifespan`` scope for an app with nothing to start or stop: complete the
    startup and the shutdown, and return after the shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class QuietServer:
    """uvicorn's server without its own signal handling (the daemon handles signals), for
    the daemon's in-process HTTP servers (the control API, the monitoring endpoint)."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Generator[None, None, None]:
                yield

            def install_signal_handlers(self) -> None:
                return None

        self._server = Server(config)

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    @property
    def should_exit(self) -> bool:
        return bool(self._server.should_exit)

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._server.should_exit = value

    async def serve(self, sockets: list[socket.socket]) -> None:
        await self._server.serve(sockets=sockets)
