"""Triton's generate extension and MLServer's ``infer_stream`` for text-generation models.

* ``POST /v2/models/{m}[/versions/{v}]/generate``: ``{"text_input": "...", "parameters":
  {...}}`` (sampling parameters may also sit at the top level) answers one
  ``{"model_name", "model_version", "text_output"}``.
* ``.../generate_stream``: the same request; server-sent events, one such object per token
  with the new text; an error after the first event is sent as ``data: {"error": "..."}``.
* ``.../infer_stream`` (MLServer): a V2 inference request whose first input is the prompt
  (BYTES) and whose ``parameters`` are the sampling parameters; server-sent events, each a
  V2 inference response with a ``text_output`` BYTES tensor holding the new text.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from wonderland.inference.codec_rest import decode_v2_request, parse_json
from wonderland.inference.errors import (
    InferenceServerError,
    InvalidInputError,
    ModelFailedError,
)
from wonderland.inference.generation import (
    DEFAULT_MAX_TOKENS,
    Finished,
    SamplingParams,
    TextGenerationModel,
    TokenEvent,
    sampling_params,
)
from wonderland.inference.repository import ModelEntry, ModelRepository
from wonderland.inference.sse import EventStream, JsonAnswer, sse

__all__ = ["GENERATE_ACTIONS", "GenerateRoutes"]

GENERATE_ACTIONS = ("generate", "generate_stream", "infer_stream")


class GenerateRoutes:
    """``generate``, ``generate_stream`` and ``infer_stream`` of one repository."""

    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository

    async def handle(
        self, action: str, name: str, version: str | None, body: bytes
    ) -> JsonAnswer | EventStream:
        entry = self.repository.ready_entry(name, version)
        model = entry.model
        if not isinstance(model, TextGenerationModel):
            raise _NotGenerative(
                f"model {name!r} does not generate text; {action} needs a causal language "
                "model (use /infer)"
            )
        if action == "infer_stream":
            request = decode_v2_request(body, None, name, version)
            first = request.inputs[0].data.reshape(-1)
            if len(first) != 1 or not isinstance(first[0], bytes):
                raise InvalidInputError(
                    "infer_stream: the first input must be one BYTES element (the prompt)"
                )
            prompt = first[0].decode("utf-8", errors="replace")
            params = sampling_params(dict(request.parameters), "parameters")
            ids = model.encode(prompt)
            budget = model.budget(ids, params, DEFAULT_MAX_TOKENS)
            return EventStream(self._infer_chunks(entry, model, ids, params, budget, request.id))
        doc = parse_json(body, f"{action} request")
        if not isinstance(doc, dict):
            raise InvalidInputError(f"{action}: the body must be a JSON object with text_input")
        text = doc.get("text_input")
        if not isinstance(text, str):
            raise InvalidInputError(f"{action}: 'text_input' (a string) is missing")
        nested = doc.get("parameters") or {}
        if not isinstance(nested, dict):
            raise InvalidInputError(f"{action}: 'parameters' must be an object")
        top = {k: v for k, v in doc.items() if k not in ("text_input", "parameters", "id")}
        params = sampling_params({**top, **nested}, action)
        ids = model.encode(text)
        budget = model.budget(ids, params, DEFAULT_MAX_TOKENS)
        head = {"model_name": name, "model_version": entry.version or "1"}
        if isinstance(doc.get("id"), str):
            head["id"] = doc["id"]
        if action == "generate_stream":
            return EventStream(self._generate_chunks(model, ids, params, budget, head))
        out = ""
        async with contextlib.aclosing(model.stream(ids, params, budget)) as events:
            async for ev in events:
                if isinstance(ev, (TokenEvent, Finished)):
                    out += ev.text
                elif ev.error is not None:
                    raise ModelFailedError(f"generation failed: {ev.error}") from ev.error
        return JsonAnswer({**head, "text_output": out})

    async def _generate_chunks(
        self,
        model: TextGenerationModel,
        ids: list[int],
        params: SamplingParams,
        budget: int,
        head: dict[str, Any],
    ) -> AsyncGenerator[bytes, None]:
        async with contextlib.aclosing(model.stream(ids, params, budget)) as events:
            async for ev in events:
                if isinstance(ev, TokenEvent) and ev.text:
                    yield sse({**head, "text_output": ev.text})
                elif isinstance(ev, Finished):
                    if ev.text:
                        yield sse({**head, "text_output": ev.text})
                elif not isinstance(ev, TokenEvent) and ev.error is not None:
                    yield sse({"error": f"generation failed: {ev.error}"})

    async def _infer_chunks(
        self,
        entry: ModelEntry,
        model: TextGenerationModel,
        ids: list[int],
        params: SamplingParams,
        budget: int,
        request_id: str | None,
    ) -> AsyncGenerator[bytes, None]:
        head: dict[str, Any] = {"model_name": entry.name}
        if entry.version is not None:
            head["model_version"] = entry.version
        if request_id:
            head["id"] = request_id

        def response(text: str) -> bytes:
            tensor = {"name": "text_output", "shape": [1], "datatype": "BYTES", "data": [text]}
            return sse({**head, "outputs": [tensor]})

        async with contextlib.aclosing(model.stream(ids, params, budget)) as events:
            async for ev in events:
                if isinstance(ev, (TokenEvent, Finished)):
                    if ev.text:
                        yield response(ev.text)
                elif ev.error is not None:
                    yield sse({"error": f"generation failed: {ev.error}"})


class _NotGenerative(InferenceServerError):
    status = 400
    grpc_code = "INVALID_ARGUMENT"
