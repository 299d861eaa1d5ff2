"""KServe's OpenAI proxy hooks on a transformer.

A transformer passes ``/openai/v1/completions`` and ``/chat/completions`` through to its
predictor. When the transformer's object defines any of the hook names of KServe's
``OpenAIProxyModel`` they run on the way: ``preprocess_completion_request(request)``
before the request goes on, ``postprocess_completion(completion, request)`` on a whole
answer and ``postprocess_completion_chunk(chunk, request)`` on each streamed chunk (and the
``chat_completion`` names on the chat route). Each hook gets the JSON document as a dict
and may change it in place or return a new one. The predictor's errors pass back as it
wrote them, untouched.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from wonderland.inference.errors import InferenceServerError, InvalidInputError, ModelFailedError
from wonderland.inference.openai_rest import openai_error
from wonderland.inference.predictor import ForwardedReply
from wonderland.inference.sse import sse

__all__ = ["OpenAIProxyHooks"]

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


class OpenAIProxyHooks:
    """The hooks one transformer object defines for one OpenAI route."""

    def __init__(self, obj: Any, route: str) -> None:
        pre, post, chunk = _HOOKS[route]
        self.pre = _method(obj, pre)
        self.post = _method(obj, post)
        self.chunk = _method(obj, chunk)

    @classmethod
    def of(cls, obj: Any, route: str) -> OpenAIProxyHooks | None:
        """The hooks of ``obj`` for ``route`` (a path below ``/openai/v1``); None when it
        defines none, so the route passes through byte for byte."""
        if route not in _HOOKS:
            return None
        hooks = cls(obj, route)
        return hooks if hooks.pre or hooks.post or hooks.chunk else None

    async def request(self, doc: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """The request, and the body to send on, after the preprocess hook."""
        if self.pre is not None:
            doc = await _run(self.pre, doc)
            if not isinstance(doc, dict):
                raise ModelFailedError(
                    f"{self.pre.__name__} returned {type(doc).__name__}; return the request "
                    "dict, or None after changing it in place"
                )
        return doc, orjson.dumps(doc)

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
        doc = await _run(self.post, doc, request)
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
        doc = await _run(self.chunk, doc, request)
        return b"data: " + orjson.dumps(doc) + b"\n\n"


def _method(obj: Any, name: str) -> Any:
    fn = getattr(obj, name, None)
    return fn if callable(fn) else None


async def _run(fn: Any, doc: Any, *rest: Any) -> Any:
    """Call a hook as KServe does (the document, then the request for a postprocess hook);
    a returned value replaces the document, None keeps the one changed in place."""
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
