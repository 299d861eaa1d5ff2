"""The legacy Python template (``func.py`` with ``main(context)`` and ``@event``).

Knative's templates before the ASGI scaffolding ran ``python -m parliament .``:
``main(context)`` gets a ``Context`` whose ``request`` is a Flask-like request and whose
``cloud_event`` holds the decoded CloudEvent when the request carried one. ``main``
returns a body, ``(body, status)`` or ``(body, status, headers)``; with ``@event`` the
return value becomes the data of a CloudEvent reply (or is sent as is when it already
is a CloudEvent). This module provides that contract without Flask or parliament.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import sys
import types
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from wonderland.functions.asgi import Receive, Scope, Send, read_body, send_text

__all__ = ["Context", "LegacyFunction", "LegacyRequest", "event", "install_shims"]

EVENT_SOURCE = "https://knative.dev/python.event"
EVENT_TYPE = "dev.knative.function.response"


class Headers(Mapping[str, str]):
    """Case-insensitive request headers; iterating yields (name, value) pairs like Flask."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._items = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
        self._lower = {k.lower(): v for k, v in self._items}

    def __getitem__(self, key: str) -> str:
        return self._lower[key.lower()]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lower

    def get(self, key: str, default: Any = None) -> Any:
        return self._lower.get(key.lower(), default)

    def items(self) -> Any:
        return list(self._items)

    def keys(self) -> Any:
        return [k for k, _ in self._items]


class LegacyRequest:
    """The parts of ``flask.Request`` the legacy templates and typical functions use."""

    def __init__(self, scope: Scope, body: bytes) -> None:
        self.method: str = scope.get("method", "GET")
        self.path: str = scope.get("path", "/")
        self.headers = Headers(list(scope.get("headers", [])))
        query = scope.get("query_string", b"").decode("latin-1")
        self.query_string = query.encode("latin-1")
        self.args: dict[str, str] = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        self.data = body
        host = self.headers.get("host", "localhost")
        self.host: str = host
        self.scheme: str = scope.get("scheme", "http")
        self.url = f"{self.scheme}://{host}{self.path}" + (f"?{query}" if query else "")
        self.content_type: str = self.headers.get("content-type", "")
        self.mimetype: str = self.content_type.split(";")[0].strip().lower()

    @property
    def is_json(self) -> bool:
        return self.mimetype == "application/json" or self.mimetype.endswith("+json")

    def get_data(self, as_text: bool = False) -> bytes | str:
        return self.data.decode("utf-8") if as_text else self.data

    def get_json(self, force: bool = False, silent: bool = False) -> Any:
        if not (force or self.is_json):
            return None
        try:
            return json.loads(self.data or b"null")
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self) -> Any:
        return self.get_json()

    @property
    def form(self) -> dict[str, str]:
        if self.mimetype != "application/x-www-form-urlencoded":
            return {}
        return dict(urllib.parse.parse_qsl(self.data.decode("utf-8"), keep_blank_values=True))


class Context:
    """What ``main(context)`` receives: ``request`` and, for events, ``cloud_event``."""

    def __init__(self, request: LegacyRequest) -> None:
        self.request = request

    def keys(self) -> Any:
        return self.__dict__.keys()

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]

    def __contains__(self, key: object) -> bool:
        return key in self.__dict__


def event(
    func: Callable[[Context], Any] | None = None,
    event_source: str = EVENT_SOURCE,
    event_type: str = EVENT_TYPE,
) -> Any:
    """``@event``: ``main`` is called with a CloudEvent; its return value becomes the data
    of the reply event (type ``dev.knative.function.response``)."""

    def decorate(fn: Callable[[Context], Any]) -> Callable[[Context], Any]:
        @functools.wraps(fn)
        def wrapper(context: Context) -> Any:
            from cloudevents.v1.http import CloudEvent

            if getattr(context, "cloud_event", None) is None:
                raise _NotAnEvent()
            result = fn(context)
            if isinstance(result, CloudEvent):
                return result
            return CloudEvent({"source": event_source, "type": event_type}, result)

        wrapper._wonderland_event = True  # type: ignore[attr-defined]
        return wrapper

    return decorate(func) if func is not None else decorate


class _NotAnEvent(Exception):
    pass


def install_shims() -> None:
    """Make ``import parliament`` (and ``from flask import Request`` when Flask is absent)
    resolve to this module's compatible types for the function being hosted."""
    shim = types.ModuleType("parliament")
    shim.Context = Context  # type: ignore[attr-defined]
    shim.event = event  # type: ignore[attr-defined]
    sys.modules["parliament"] = shim
    import importlib.util

    if importlib.util.find_spec("flask") is None:
        flask = types.ModuleType("flask")
        flask.Request = LegacyRequest  # type: ignore[attr-defined]
        sys.modules["flask"] = flask


def _is_cloudevent_request(headers: Headers) -> bool:
    return "ce-specversion" in headers or headers.get("content-type", "").startswith(
        "application/cloudevents"
    )


class LegacyFunction:
    """Adapts ``main(context)`` to the instance contract ``FunctionApp`` hosts."""

    def __init__(self, main: Callable[[Context], Any]) -> None:
        self.main = main
        self.is_event = bool(getattr(main, "_wonderland_event", False))

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        request = LegacyRequest(scope, body)
        context = Context(request)
        if _is_cloudevent_request(request.headers):
            from cloudevents.v1.http import from_http

            try:
                context.cloud_event = from_http(dict(request.headers.items()), body)  # type: ignore[attr-defined]
            except Exception as exc:
                await send_text(send, 400, f"Bad Request: the CloudEvent does not decode: {exc}")
                return
        try:
            if inspect.iscoroutinefunction(self.main):
                result = await self.main(context)
            else:
                result = await asyncio.to_thread(self.main, context)
        except _NotAnEvent:
            await send_text(
                send,
                400,
                "Bad Request: this function expects a CloudEvent (ce-* headers or "
                "content-type application/cloudevents+json)",
            )
            return
        await _respond(send, result)


async def _respond(send: Send, result: Any) -> None:
    from cloudevents.v1.conversion import to_binary
    from cloudevents.v1.http import CloudEvent

    status = 200
    extra: list[tuple[bytes, bytes]] = []
    if isinstance(result, CloudEvent):
        headers, body = to_binary(result)
        raw = [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]
        if not any(k.lower() == b"content-type" for k, _ in raw):
            raw.append((b"content-type", b"application/json"))
        await _send(send, status, raw, body if isinstance(body, bytes) else str(body).encode())
        return
    if isinstance(result, tuple):
        if len(result) >= 2:
            status = int(result[1])
        if len(result) >= 3 and result[2]:
            extra = [
                (str(k).encode("latin-1"), str(v).encode("latin-1"))
                for k, v in dict(result[2]).items()
            ]
        result = result[0]
    if result is None:
        body, ctype = b"", b"text/plain; charset=utf-8"
    elif isinstance(result, bytes):
        body, ctype = result, b"application/octet-stream"
    elif isinstance(result, str):
        body, ctype = result.encode("utf-8"), b"text/html; charset=utf-8"
    else:
        body, ctype = json.dumps(result).encode("utf-8"), b"application/json"
    if not any(k.lower() == b"content-type" for k, _ in extra):
        extra.append((b"content-type", ctype))
    await _send(send, status, extra, body)


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
