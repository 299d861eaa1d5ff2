"""The OpenAI-compatible routes of KServe's Hugging Face runtime, under ``/openai/v1``.

``GET /models``, ``POST /completions``, ``POST /chat/completions`` (the prompt from the
tokenizer's chat template) and ``POST /embeddings``. ``stream: true`` answers server-sent
events, one chunk per token, then ``data: [DONE]``; ``stream_options.include_usage`` adds
a last chunk with the token counts. Errors have OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``; an argument the API does not know is
a 400, as OpenAI answers it.
"""

from __future__ import annotations

import base64
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from wonderland.inference.errors import (
    InferenceServerError,
    InvalidInputError,
    ModelFailedError,
    ModelNotFoundError,
)
from wonderland.inference.generation import (
    ContextLengthError,
    Finished,
    SamplingParams,
    TextGenerationModel,
    TokenEvent,
    safe_logprob,
)
from wonderland.inference.repository import ModelRepository
from wonderland.inference.runtimes.huggingface import HuggingFaceRuntime
from wonderland.inference.sse import DONE, EventStream, JsonAnswer, sse

__all__ = ["OPENAI_PREFIX", "OpenAIRoutes", "openai_error"]

OPENAI_PREFIX = "/openai/v1"
MAX_EMBEDDING_INPUTS = 2048
COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /completions


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Strict):
    include_usage: bool = False


class _Sampling(_Strict):
    model: str
    temperature: float | None = None
    top_p: float | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    ignore_eos: bool = False  # vLLM's extra parameter


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = COMPLETIONS_DEFAULT_MAX_TOKENS
    logprobs: int | None = None


class ContentPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[ContentPart] | None = None


class ChatRequest(_Sampling):
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None


class EmbeddingRequest(_Strict):
    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


def openai_error(
    message: str, status: int, param: str | None = None, code: str | None = None
) -> JsonAnswer:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 404:
        kind = "NotFoundError"
    return JsonAnswer(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}, status
    )


def _parse(model: type[BaseModel], doc: Any) -> Any:
    if not isinstance(doc, dict):
        raise InvalidInputError("the request body must be a JSON object")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        unknown = [
            ".".join(str(p) for p in e["loc"])
            for e in exc.errors()
            if e["type"] == "extra_forbidden"
        ]
        if unknown:
            raise InvalidInputError(
                f"Unrecognized request argument supplied: {', '.join(unknown)}"
            ) from None
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInputError(f"{where}: {first['msg']}") from None


def _stops(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class OpenAIRoutes:
    """Routes ``/openai/v1/...`` to the repository's generative and embedding models."""

    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository

    async def handle(self, method: str, path: str, doc: Any) -> JsonAnswer | EventStream:
        try:
            return await self._handle(method, path, doc)
        except ContextLengthError as exc:
            param = "messages" if path.endswith("/chat/completions") else "prompt"
            return openai_error(str(exc), 400, param, "context_length_exceeded")
        except ModelNotFoundError as exc:
            return openai_error(str(exc), 404, "model", "model_not_found")
        except InferenceServerError as exc:
            return openai_error(str(exc), exc.status)

    async def _handle(self, method: str, path: str, doc: Any) -> JsonAnswer | EventStream:
        route = path[len(OPENAI_PREFIX) :]
        if route == "/models":
            _need(method, "GET", path)
            return JsonAnswer({"object": "list", "data": self._models()})
        _need(method, "POST", path)
        if route == "/completions":
            return await self._completions(_parse(CompletionRequest, doc))
        if route == "/chat/completions":
            return await self._chat(_parse(ChatRequest, doc))
        if route == "/embeddings":
            return await self._embeddings(_parse(EmbeddingRequest, doc))
        raise ModelNotFoundError(
            f"no route {method} {path}; OpenAI routes: /models, /completions, "
            "/chat/completions, /embeddings"
        )

    def _models(self) -> list[dict[str, Any]]:
        out = []
        for entry in self.repository.entries():
            if not entry.ready or (
                entry.version is not None and len(self.repository.versions(entry.name)) > 1
            ):
                continue
            created = getattr(entry.model, "created", 0)
            out.append(
                {"id": entry.name, "object": "model", "created": created, "owned_by": "wonderland"}
            )
        return out

    def _generator(self, name: str) -> TextGenerationModel:
        model = self.repository.ready_entry(name).model
        if not isinstance(model, TextGenerationModel):
            raise InvalidInputError(
                f"model {name!r} does not generate text (it is a {getattr(model, 'platform', '?')} "
                "model); completions need a causal language model"
            )
        return model

    @staticmethod
    def _params(req: _Sampling, max_tokens: int | None, logprobs: int | None) -> SamplingParams:
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=1.0 if req.temperature is None else req.temperature,
            top_p=1.0 if req.top_p is None else req.top_p,
            stop=_stops(req.stop),
            n=req.n,
            seed=req.seed,
            logprobs=logprobs,
            ignore_eos=req.ignore_eos,
        )
        params.check()
        return params

    # -- completions ------------------------------------------------------------------------

    async def _completions(self, req: CompletionRequest) -> JsonAnswer | EventStream:
        model = self._generator(req.model)
        prompt = req.prompt
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
            if len(prompt) != 1:
                raise InvalidInputError(
                    f"prompt: this server takes one prompt per request, got {len(prompt)}; "
                    "send them as separate requests (they run concurrently)"
                )
            prompt = prompt[0]
        ids = model.encode(prompt)  # type: ignore[arg-type]
        params = self._params(req, req.max_tokens, req.logprobs)
        budget = model.budget(ids, params, COMPLETIONS_DEFAULT_MAX_TOKENS)
        rid = f"cmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        head = {"id": rid, "object": "text_completion", "created": created, "model": req.model}
        want_lp = req.logprobs is not None
        if req.stream:
            usage = req.stream_options is not None and req.stream_options.include_usage
            return EventStream(
                self._completion_chunks(model, ids, params, budget, head, want_lp, usage)
            )
        texts = [""] * params.n
        reasons = ["length"] * params.n
        lps = [_CompletionLogprobs() for _ in range(params.n)]
        counts = await _collect(model, ids, params, budget, texts, reasons, lps)
        choices = [
            {
                "index": i,
                "text": texts[i],
                "logprobs": lps[i].doc() if want_lp else None,
                "finish_reason": reasons[i],
            }
            for i in range(params.n)
        ]
        return JsonAnswer({**head, "choices": choices, "usage": _usage(*counts)})

    async def _completion_chunks(
        self,
        model: TextGenerationModel,
        ids: list[int],
        params: SamplingParams,
        budget: int,
        head: dict[str, Any],
        want_lp: bool,
        include_usage: bool,
    ) -> AsyncGenerator[bytes, None]:
        extra = {"usage": None} if include_usage else {}
        async with contextlib.aclosing(model.stream(ids, params, budget)) as events:
            async for ev in events:
                if isinstance(ev, TokenEvent):
                    lp = None
                    if want_lp:
                        one = _CompletionLogprobs()
                        one.add(ev)
                        lp = one.doc()
                    choice = {"index": ev.index, "text": ev.text, "logprobs": lp}
                    yield sse({**head, "choices": [{**choice, "finish_reason": None}], **extra})
                elif isinstance(ev, Finished):
                    choice = {"index": ev.index, "text": ev.text, "logprobs": None}
                    yield sse(
                        {**head, "choices": [{**choice, "finish_reason": ev.reason}], **extra}
                    )
                else:
                    if ev.error is not None:
                        yield sse(openai_error(f"generation failed: {ev.error}", 500).doc)
                    elif include_usage:
                        usage = _usage(ev.prompt_tokens, ev.completion_tokens)
                        yield sse({**head, "choices": [], "usage": usage})
        yield DONE

    # -- chat -----------------------------------------------------------------------------------

    async def _chat(self, req: ChatRequest) -> JsonAnswer | EventStream:
        model = self._generator(req.model)
        if not req.messages:
            raise InvalidInputError("messages: at least one message is needed")
        messages = []
        for m in req.messages:
            content = m.content
            if isinstance(content, list):
                content = "".join(part.text for part in content)
            messages.append({"role": m.role, "content": content or ""})
        ids = model.encode(model.chat_prompt(messages))
        if req.top_logprobs is not None and not req.logprobs:
            raise InvalidInputError("top_logprobs needs logprobs: true")
        logprobs = (req.top_logprobs or 0) if req.logprobs else None
        max_tokens = req.max_completion_tokens or req.max_tokens
        params = self._params(req, max_tokens, logprobs)
        budget = model.budget(ids, params, None)
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if req.stream:
            head = {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": req.model,
            }
            usage = req.stream_options is not None and req.stream_options.include_usage
            return EventStream(
                self._chat_chunks(model, ids, params, budget, head, req.logprobs, usage)
            )
        texts = [""] * params.n
        reasons = ["length"] * params.n
        lps = [_ChatLogprobs() for _ in range(params.n)]
        counts = await _collect(model, ids, params, budget, texts, reasons, lps)
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": texts[i]},
                "logprobs": lps[i].doc() if req.logprobs else None,
                "finish_reason": reasons[i],
            }
            for i in range(params.n)
        ]
        head = {"id": rid, "object": "chat.completion", "created": created, "model": req.model}
        return JsonAnswer({**head, "choices": choices, "usage": _usage(*counts)})

    async def _chat_chunks(
        self,
        model: TextGenerationModel,
        ids: list[int],
        params: SamplingParams,
        budget: int,
        head: dict[str, Any],
        want_lp: bool,
        include_usage: bool,
    ) -> AsyncGenerator[bytes, None]:
        extra = {"usage": None} if include_usage else {}
        for i in range(params.n):
            delta = {"role": "assistant", "content": ""}
            choice = {"index": i, "delta": delta, "logprobs": None, "finish_reason": None}
            yield sse({**head, "choices": [choice], **extra})
        async with contextlib.aclosing(model.stream(ids, params, budget)) as events:
            async for ev in events:
                if isinstance(ev, TokenEvent):
                    lp = None
                    if want_lp:
                        one = _ChatLogprobs()
                        one.add(ev)
                        lp = one.doc()
                    choice = {
                        "index": ev.index,
                        "delta": {"content": ev.text},
                        "logprobs": lp,
                        "finish_reason": None,
                    }
                    yield sse({**head, "choices": [choice], **extra})
                elif isinstance(ev, Finished):
                    delta = {"content": ev.text} if ev.text else {}
                    choice = {
                        "index": ev.index,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": ev.reason,
                    }
                    yield sse({**head, "choices": [choice], **extra})
                else:
                    if ev.error is not None:
                        yield sse(openai_error(f"generation failed: {ev.error}", 500).doc)
                    elif include_usage:
                        usage = _usage(ev.prompt_tokens, ev.completion_tokens)
                        yield sse({**head, "choices": [], "usage": usage})
        yield DONE

    # -- embeddings -----------------------------------------------------------------------------

    async def _embeddings(self, req: EmbeddingRequest) -> JsonAnswer:
        entry = self.repository.ready_entry(req.model)
        model = entry.model
        if not isinstance(model, HuggingFaceRuntime) or entry.batcher is None:
            raise InvalidInputError(
                f"model {req.model!r} does not embed text; embeddings need an encoder model "
                "(a sentence-transformers or other Hugging Face encoder folder)"
            )
        texts = [req.input] if isinstance(req.input, str) else req.input
        if not texts or len(texts) > MAX_EMBEDDING_INPUTS:
            raise InvalidInputError(
                f"input: give 1 to {MAX_EMBEDDING_INPUTS} texts, got {len(texts)}"
            )
        if req.dimensions is not None and req.dimensions != model.dimension:
            raise InvalidInputError(
                f"dimensions: model {req.model!r} returns {model.dimension} dimensions; "
                "it cannot shorten them"
            )
        arr = np.empty(len(texts), dtype=object)
        arr[:] = [t.encode("utf-8") for t in texts]
        outputs = await entry.batcher.submit({"input-0": arr})
        vectors = np.asarray(outputs["output-0"], dtype=np.float32)
        data = []
        for i, vec in enumerate(vectors):
            embedding: Any
            if req.encoding_format == "base64":
                embedding = base64.b64encode(vec.astype("<f4").tobytes()).decode("ascii")
            else:
                embedding = vec.tolist()
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        tokens = model.count_tokens(texts)
        return JsonAnswer(
            {
                "object": "list",
                "data": data,
                "model": req.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


class _CompletionLogprobs:
    """The legacy completions ``logprobs`` object, one list entry per token."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.token_logprobs: list[float | None] = []
        self.top: list[dict[str, float | None]] = []
        self.offsets: list[int] = []

    def add(self, ev: TokenEvent) -> None:
        self.tokens.append(ev.token)
        self.token_logprobs.append(safe_logprob(ev.logprob))
        self.top.append({t: safe_logprob(v) for t, v in ev.top_logprobs})
        self.offsets.append(ev.text_offset)

    def doc(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "token_logprobs": self.token_logprobs,
            "top_logprobs": self.top,
            "text_offset": self.offsets,
        }


class _ChatLogprobs:
    """The chat ``logprobs`` object: ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""

    def __init__(self) -> None:
        self.content: list[dict[str, Any]] = []

    def add(self, ev: TokenEvent) -> None:
        self.content.append(
            {
                "token": ev.token,
                "logprob": safe_logprob(ev.logprob),
                "bytes": list(ev.token.encode("utf-8")),
                "top_logprobs": [
                    {"token": t, "logprob": safe_logprob(v), "bytes": list(t.encode("utf-8"))}
                    for t, v in ev.top_logprobs
                ],
            }
        )

    def doc(self) -> dict[str, Any]:
        return {"content": self.content}


async def _collect(
    model: TextGenerationModel,
    ids: list[int],
    params: SamplingParams,
    budget: int,
    texts: list[str],
    reasons: list[str],
    lps: list[_CompletionLogprobs] | list[_ChatLogprobs],
) -> tuple[int, int]:
    """Run a generation to its end, filling ``texts``/``reasons``/``lps``; the token counts."""
    async with contextlib.aclosing(model.stream(ids, params, budget)) as events:
        async for ev in events:
            if isinstance(ev, TokenEvent):
                texts[ev.index] += ev.text
                lps[ev.index].add(ev)
            elif isinstance(ev, Finished):
                texts[ev.index] += ev.text
                reasons[ev.index] = ev.reason
            else:
                if ev.error is not None:
                    raise ModelFailedError(f"generation failed: {ev.error}") from ev.error
                return ev.prompt_tokens, ev.completion_tokens
    return len(ids), 0


def _need(method: str, want: str, path: str) -> None:
    if method != want:
        raise _MethodNotAllowed(f"{method} is not allowed on {path}; use {want}")


class _MethodNotAllowed(InferenceServerError):
    status = 405
    grpc_code = "UNIMPLEMENTED"
