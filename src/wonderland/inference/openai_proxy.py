"""KServe's OpenAI proxy hooks on a transformer.

A transformer passes ``/openai/v1/completions`` and ``/chat/completions`` through to its
predictor. When the transformer's object defines any of the hook names of KServe's
``OpenAIProxyModel`` they run on the way: ``preprocess_completion_request(request)``
before the request goes on, ``postprocess_completion(completion, request)`` on a whole
answer and ``postprocess_completion_chunk(chunk, request)`` on each streamed chunk (and the
``chat_completion`` names on the chat route). Each hook gets the JSON document as a dict
and may change it in place or return a new one; a hook that takes one more argument gets
``raw_request`` last, as KServe passes it: a :class:`RawRequest`, the client's request
as Starlette's ``Request`` shows it (``headers``, ``method``, ``url``, ``query_params``,
``client``, and the ASGI scope by key). The predictor's errors pass back as it wrote
them, untouched.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import orjson

from wonderland.inference.errors import InferenceServerError, InvalidInputError, ModelFailedError
from wonderland.inference.openai_rest import openai_error
from wonderland.inference.predictor import ForwardedReply
from wonderland.inference.sse import sse

__all__ = ["OpenAIProxyHooks", "RawRequest"]

_HOOKS = {
    "/completions": (
        "preprocess_completion_request",
        "postprocess_completion",
        "postprocess_completion_chunk",
    ),
    "/chat/completions": (
        "preprocess_chat_completion_request",
        "postprocess_chat_completion",
        "postprocess_chat_completion_chunk",
    ),
}


class Address(NamedTuple):
    host: str
    port: int


class Headers(Mapping[str, str]):
    """Request headers, read-only, looked up without regard to case (Starlette's
    ``Headers``); a header sent more than once reads as its first value."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._items = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]
        self._first: dict[str, str] = {}
        for key, value in self._items:
            self._first.setdefault(key, value)

    def __getitem__(self, key: str) -> str:
        return self._first[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def getlist(self, key: str) -> list[str]:
        key = key.lower()
        return [v for k, v in self._items if k == key]


class RawRequest(Mapping[str, Any]):
    """The client's request as a transformer's OpenAI hooks get it (KServe passes
    FastAPI's ``Request``): the same attribute names, and the ASGI scope by key. The body
    is the parsed document the hook gets first."""

    def __init__(self, scope: Mapping[str, Any]) -> None:
        self.scope = scope
        self.headers = Headers(list(scope.get("headers") or []))
        self.method: str = scope.get("method", "POST")
        query = scope.get("query_string", b"").decode("latin-1")
        self.query_params = dict(parse_qsl(query, keep_blank_values=True))
        path = scope.get("path", "/")
        self.url = path + ("?" + query if query else "")
        client = scope.get("client")
        self.client = Address(str(client[0]), int(client[1])) if client else None

    def __getitem__(self, key: str) -> Any:
        return self.scope[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.scope)

    def __len__(self) -> int:
        return len(self.scope)


class OpenAIProxyHooks:
    """The hooks one transformer object defines for one OpenAI route."""

    def __init__(self, obj: Any, route: str) -> None:
        pre, post, chunk = _HOOKS[route]
        self.pre = _method(obj, pre)
        self.post = _method(obj, post)
        self.chunk = _method(obj, chunk)
        # the hooks that take KServe's raw_request as their last argument
        self.wants_raw = {
            fn
            for fn, count in ((self.pre, 2), (self.post, 3), (self.chunk, 3))
            if _takes(fn, count)
        }
        self.raw_request: RawRequest | None = None

    @classmethod
    def of(cls, obj: Any, route: str) -> OpenAIProxyHooks | None:
        """The hooks of ``obj`` for ``route`` (a path below ``/openai/v1``); None when it
        defines none, so the route passes through byte for byte."""
        if route not in _HOOKS:
            return None
        hooks = cls(obj, route)
        return hooks if hooks.pre or hooks.post or hooks.chunk else None

    async def request(
        self, doc: dict[str, Any], raw_request: RawRequest | None = None
    ) -> tuple[dict[str, Any], bytes]:
        """The request, and the body to send on, after the preprocess hook;
        ``raw_request`` goes to every hook of this request that takes it."""
        self.raw_request = raw_request
        if self.pre is not None:
            doc = await _run(self.pre, self._raw(self.pre), doc)
            if not isinstance(doc, dict):
                raise ModelFailedError(
                    f"{self.pre.__name__} returned {type(doc).__name__}; return the request "
                    "dict, or None after changing it in place"
                )
        return doc, orjson.dumps(doc)

    def _raw(self, fn: Any) -> RawRequest | None:
        return self.raw_request if fn in self.wants_raw else None

    async def reply(self, reply: ForwardedReply, request: dict[str, Any]) -> ForwardedReply:
        """The predictor's answer after the postprocess hooks (errors untouched)."""
        if reply.chunks is not None:
            if self.chunk is None:
                return reply
            return ForwardedReply(200, reply.content_type, chunks=self._chunks(reply, request))
        if reply.status != 200 or self.post is None:
            return reply
        try:
            doc = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            return reply
        doc = await _run(self.post, self._raw(self.post), doc, request)
        return ForwardedReply(200, "application/json", orjson.dumps(doc))

    async def _chunks(
        self, reply: ForwardedReply, request: dict[str, Any]
    ) -> AsyncGenerator[bytes, None]:
        assert reply.chunks is not None and self.chunk is not None
        pending = b""
        try:
            async for raw in reply.chunks:
                pending += raw
                *events, pending = pending.split(b"\n\n")
                try:
                    out = [await self._event(event, request) for event in events]
                except InferenceServerError as exc:  # after the first event: in the stream
                    yield sse(openai_error(str(exc), exc.status).doc)
                    return
                if out:
                    yield b"".join(out)
            if pending:
                yield pending
        finally:
            await reply.chunks.aclose()  # the predictor sees its client go: it stops

    async def _event(self, event: bytes, request: dict[str, Any]) -> bytes:
        data = event.removeprefix(b"data: ")
        if data == event or data.strip() == b"[DONE]":
            return event + b"\n\n"
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return event + b"\n\n"
        if not isinstance(doc, dict) or "error" in doc:
            return event + b"\n\n"
        assert self.chunk is not None
        doc = await _run(self.chunk, self._raw(self.chunk), doc, request)
        return b"data: " + orjson.dumps(doc) + b"\n\n"


def _method(obj: Any, name: str) -> Any:
    fn = getattr(obj, name, None)
    return fn if callable(fn) else None


def _takes(fn: Any, count: int) -> bool:
    """Whether ``fn`` can be called with ``count`` positional arguments."""
    if fn is None:
        return False
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in positional) >= count


async def _run(fn: Any, raw_request: RawRequest | None, doc: Any, *rest: Any) -> Any:
    """Call a hook as KServe does (the document, then the request for a postprocess hook,
    then ``raw_request`` when there is one); a returned value replaces the document, None
    keeps the one changed in place."""
    if raw_request is not None:
        rest = (*rest, raw_request)
    try:
        if inspect.iscoroutinefunction(fn):
            result = await fn(doc, *rest)
        else:
            result = await asyncio.get_running_loop().run_in_executor(None, fn, doc, *rest)
    except InferenceServerError:
        raise
    except Exception as exc:
        # KServe's own InvalidInput (when user code imports kserve) is a client error.
        if type(exc).__name__ == "InvalidInput":
            raise InvalidInputError(str(exc)) from exc
        raise ModelFailedError(f"{fn.__name__}: {type(exc).__name__}: {exc}") from exc
    return doc if result is None else result
