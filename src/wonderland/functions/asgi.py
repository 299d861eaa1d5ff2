"""The ASGI host around a function instance (the func-python middleware contract).

``FunctionApp`` wraps the object ``new()`` returned (or a bare ``handle``): ASGI lifespan
startup calls ``start(cfg)`` with a copy of the environment, shutdown calls ``stop()``,
``/health/liveness`` and ``/health/readiness`` answer from ``alive()`` and ``ready()``
(200 or 500, text/plain), a non-HTTP scope gets 400 and a handler that raises gets a
500 naming the error while the process keeps serving. In CloudEvents mode the request
is decoded into ``scope["event"]`` and ``send`` accepts CloudEvents.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "LIVENESS_PATH",
    "READINESS_PATH",
    "CloudEventSender",
    "FunctionApp",
    "StaticFunction",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

LIVENESS_PATH = "/health/liveness"
READINESS_PATH = "/health/readiness"
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]

logger = logging.getLogger("wonderland.functions")


class StaticFunction:
    """Adapts a module-level ``handle(scope, receive, send)`` to the instance contract."""

    def __init__(self, handler: Callable[..., Awaitable[None]]) -> None:
        self._handler = handler

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handler(scope, receive, send)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def send_text(send: Send, status: int, text: str) -> None:
    body = text.encode("utf-8")
    headers = [*_TEXT, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class _TrackingSend:
    """Remembers whether the response has started, so an error can still answer 500."""

    __slots__ = ("_send", "started")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class CloudEventSender:
    """The ``send`` a CloudEvents function gets: ``await send(event)`` replies structured,
    ``send.binary(event)`` binary, ``send.http(message)`` passes a raw ASGI message."""

    def __init__(self, send: Send) -> None:
        self._send = send

    async def __call__(self, event: Any, status: int = 200) -> None:
        if (
            isinstance(event, MutableMapping)
            and "type" in event
            and str(event["type"]).startswith("http.")
        ):
            await self._send(event)  # a raw ASGI message (templates mixing both styles)
            return
        await self.structured(event, status)

    async def structured(self, event: Any, status: int = 200) -> None:
        from cloudevents.core.bindings.http import to_structured_event

        message = to_structured_event(event)
        await self._reply(message.headers, message.body, status)

    async def binary(self, event: Any, status: int = 200) -> None:
        from cloudevents.core.bindings.http import to_binary_event

        message = to_binary_event(event)
        await self._reply(message.headers, message.body, status)

    async def http(self, message: Message) -> None:
        await self._send(message)

    async def _reply(self, headers: dict[str, str], body: bytes, status: int) -> None:
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"content-length", str(len(body)).encode()))
        await self._send({"type": "http.response.start", "status": status, "headers": raw})
        await self._send({"type": "http.response.body", "body": body})


def _decode_event(scope: Scope, body: bytes) -> Any:
    from cloudevents.core.bindings.http import HTTPMessage, from_http_event

    headers = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
    }
    return from_http_event(HTTPMessage(headers=headers, body=body))


class _Replay:
    """A receive callable that hands the already-read body to the function again."""

    def __init__(self, body: bytes, receive: Receive) -> None:
        self._body: bytes | None = body
        self._receive = receive

    async def __call__(self) -> Message:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        return await self._receive()


class FunctionApp:
    """An ASGI application serving one function instance."""

    def __init__(self, instance: Any, *, cloudevents: bool = False) -> None:
        if not callable(getattr(instance, "handle", None)):
            raise TypeError("the function instance has no handle(scope, receive, send) method")
        self.instance = instance
        self.cloudevents = cloudevents
        self.started = False

    # -- lifespan --------------------------------------------------------------------------

    async def startup(self) -> None:
        start = getattr(self.instance, "start", None)
        if callable(start):
            await _maybe_await(start(dict(os.environ)))
        self.started = True

    async def shutdown(self) -> None:
        stop = getattr(self.instance, "stop", None)
        if callable(stop) and self.started:
            self.started = False
            await _maybe_await(stop())

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    logger.exception("function start() failed")
                    await send({"type": "lifespan.startup.failed", "message": f"start(): {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception:
                    logger.exception("function stop() failed")
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- requests --------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1003})
                return
            return
        path = scope.get("path", "")
        if path == LIVENESS_PATH:
            await self._probe(send, "alive")
            return
        if path == READINESS_PATH:
            await self._probe(send, "ready")
            return
        tracked = _TrackingSend(send)
        try:
            if self.cloudevents:
                await self._handle_event(scope, receive, tracked)
            else:
                await self.instance.handle(scope, receive, tracked)
        except Exception as exc:
            logger.exception("function raised while handling %s %s", scope.get("method"), path)
            if tracked.started:
                return
            message = f"Error: {type(exc).__name__}: {exc}"
            if self.cloudevents:
                # As func-python does: a CloudEvents function fails with an error event.
                from cloudevents.core.v1.event import CloudEvent

                error = CloudEvent(
                    attributes={"type": "dev.functions.error", "source": "/cloudevent/error"},
                    data={"message": message},
                )
                await CloudEventSender(send).structured(error, 500)
            else:
                await send_text(send, 500, message)

    async def _handle_event(self, scope: Scope, receive: Receive, send: _TrackingSend) -> None:
        body = await read_body(receive)
        try:
            event = _decode_event(scope, body)
        except Exception as exc:
            await send_text(
                send,
                400,
                "Bad Request: this function expects a CloudEvent (binary mode with ce-* "
                "headers, or structured with content-type application/cloudevents+json): "
                f"{exc}",
            )
            return
        scope["event"] = event
        await self.instance.handle(scope, _Replay(body, receive), CloudEventSender(send))

    async def _probe(self, send: Send, method: str) -> None:
        ok, message = True, "OK"
        check = getattr(self.instance, method, None)
        if callable(check):
            try:
                result = await _maybe_await(check())
            except Exception as exc:
                result = (False, f"{method}() raised {type(exc).__name__}: {exc}")
            if isinstance(result, tuple):
                ok, message = bool(result[0]), str(result[1]) if len(result) > 1 else message
            else:
                ok = bool(result)
        await send_text(send, 200 if ok else 500, message)
