"""Plain-ASGI types and the lifespan answer shared by the servers written without a framework."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Receive", "Scope", "Send", "accept_lifespan"]

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
