"""KServe's OpenAIProxyModel hooks on a transformer's passed-through stream, in process:
events split across network reads, `[DONE]` and error events untouched, a hook that fails
mid-stream. (The hooks through a real transformer and predictor: test_generative.py.)"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from wonderland.inference.errors import InvalidInputError
from wonderland.inference.openai_proxy import OpenAIProxyHooks, RawRequest
from wonderland.inference.predictor import ForwardedReply


def _event(text: str) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "text": text}]}).encode() + b"\n\n"


class Upper:
    def postprocess_completion_chunk(
        self, chunk: Any, request: Any, raw_request: Any = None
    ) -> None:
        for choice in chunk["choices"]:
            if choice["text"] == "boom":
                raise RuntimeError("cannot shout boom")
            choice["text"] = request["prefix"] + choice["text"].upper()


async def _stream(parts: list[bytes], closed: list[bool]) -> AsyncGenerator[bytes, None]:
    try:
        for part in parts:
            yield part
    finally:
        closed.append(True)


async def _collect(parts: list[bytes]) -> tuple[list[bytes], list[bool]]:
    hooks = OpenAIProxyHooks.of(Upper(), "/completions")
    assert hooks is not None
    closed: list[bool] = []
    reply = ForwardedReply(200, "text/event-stream", chunks=_stream(parts, closed))
    out = await hooks.reply(reply, {"prefix": ">"})
    assert out.chunks is not None
    got = [chunk async for chunk in out.chunks]
    return b"".join(got).split(b"\n\n")[:-1], closed


async def test_events_split_across_reads_are_each_hooked() -> None:
    raw = _event("a") + _event("b") + b'data: {"error": {"message": "x"}}\n\n' + b"data: [DONE]\n\n"
    parts = [raw[i : i + 7] for i in range(0, len(raw), 7)]  # reads cut events anywhere
    events, closed = await _collect(parts)
    assert [json.loads(e[6:])["choices"][0]["text"] for e in events[:2]] == [">A", ">B"]
    assert events[2:] == [b'data: {"error": {"message": "x"}}', b"data: [DONE]"]
    assert closed == [True]


async def test_a_hook_failing_mid_stream_ends_it_with_an_error_event() -> None:
    events, closed = await _collect([_event("a"), _event("boom"), _event("c")])
    assert json.loads(events[0][6:])["choices"][0]["text"] == ">A"
    error = json.loads(events[1][6:])["error"]
    assert "cannot shout boom" in error["message"] and error["type"] == "server_error"
    assert len(events) == 2 and closed == [True]  # the predictor's stream is closed


async def test_no_hooks_passes_through_and_bad_preprocess_is_refused() -> None:
    class Plain:
        pass

    assert OpenAIProxyHooks.of(Plain(), "/completions") is None
    assert OpenAIProxyHooks.of(Upper(), "/embeddings") is None

    class Invalid:
        def preprocess_completion_request(self, request: Any, raw_request: Any = None) -> None:
            raise type("InvalidInput", (Exception,), {})("prompt must not be empty")

    hooks = OpenAIProxyHooks.of(Invalid(), "/completions")
    assert hooks is not None
    with pytest.raises(InvalidInputError, match="prompt must not be empty"):
        await hooks.request({"prompt": ""})


async def test_hooks_that_take_raw_request_get_the_clients_request() -> None:
    seen: list[Any] = []

    class Tagger:
        def preprocess_completion_request(self, request: Any, raw_request: Any = None) -> None:
            request["user"] = raw_request.headers["X-User"]  # any case, as Starlette's
            seen.append((raw_request.method, raw_request.url, raw_request["path"]))

        def postprocess_completion(self, completion: Any, request: Any, raw_request: Any) -> None:
            completion["tag"] = raw_request.query_params["tag"]

        def postprocess_completion_chunk(self, chunk: Any, request: Any) -> None:
            seen.append("chunk hook without raw_request")  # KServe's older signature

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/openai/v1/completions",
        "query_string": b"tag=blue",
        "headers": [(b"x-user", b"ada"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
    }
    raw = RawRequest(scope)
    assert raw.client == ("127.0.0.1", 5000) and "X-USER" in raw.headers
    hooks = OpenAIProxyHooks.of(Tagger(), "/completions")
    assert hooks is not None
    doc, body = await hooks.request({"prompt": "hi"}, raw)
    assert json.loads(body) == {"prompt": "hi", "user": "ada"}
    whole = ForwardedReply(200, "application/json", b'{"choices": []}')
    assert json.loads((await hooks.reply(whole, doc)).body)["tag"] == "blue"
    closed: list[bool] = []
    streamed = ForwardedReply(200, "text/event-stream", chunks=_stream([_event("a")], closed))
    out = await hooks.reply(streamed, doc)
    assert out.chunks is not None and [c async for c in out.chunks]
    assert seen == [
        ("POST", "/openai/v1/completions?tag=blue", "/openai/v1/completions"),
        "chunk hook without raw_request",
    ]
