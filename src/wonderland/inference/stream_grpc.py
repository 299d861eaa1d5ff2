"""gRPC ``ModelStreamInfer``: Triton's bidirectional stream of inference requests.

Requests on one stream run concurrently; each answers one or more
``ModelStreamInferResponse`` messages carrying the request's ``id``, and a request that
fails answers ``error_message`` while the stream goes on (as Triton does). The stream ends
when the client has closed its side and every request has answered.

* A text-generation model takes the inputs of Triton's vLLM backend: ``text_input``
  (BYTES, one element: the prompt), optional ``stream`` (BOOL, default false),
  ``sampling_parameters`` (BYTES, one JSON object), ``exclude_input_in_output`` (BOOL),
  or the sampling parameters as tensors of their own (``max_tokens`` INT32, ``temperature``
  FP32, ...) or as request ``parameters``. With ``stream`` true each response holds the
  new text in ``text_output``; otherwise one response holds the whole text (the prompt
  first, unless ``exclude_input_in_output``), ``n`` texts for ``n`` choices.
* Every response has the ``triton_final_response`` parameter; the last of a request has it
  true. With ``enable_empty_final_response`` (the client's request parameter
  ``triton_enable_empty_final_response``), a stream whose last token left no text ends
  with a response without outputs, as Triton's decoupled models do.
* Any other model answers one response per request, as ``ModelInfer`` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from wonderland.inference._generated import grpc_predict_v2_pb2 as pb
from wonderland.inference.codec_grpc import decode_grpc_request, encode_grpc_response
from wonderland.inference.codec_rest import encode_bytes_tensor
from wonderland.inference.dataplane import GRPC, DataPlane
from wonderland.inference.errors import InferenceServerError, InvalidInputError
from wonderland.inference.generation import (
    DEFAULT_MAX_TOKENS,
    GENERATE_PARAMS,
    Finished,
    SamplingParams,
    TextGenerationModel,
    TokenEvent,
    sampling_params,
)
from wonderland.inference.repository import ModelEntry
from wonderland.inference.types import InferRequest

__all__ = ["StreamInferHandler"]

log = logging.getLogger("wonderland.inference")

FINAL = "triton_final_response"
EMPTY_FINAL = "triton_enable_empty_final_response"
_PROMPT_INPUTS = ("text_input", "prompt")
_FLAG_INPUTS = ("stream", "exclude_input_in_output")
# request controls tritonclient sends as parameters; they do not steer generation
_CONTROLS = frozenset(
    ("sequence_id", "sequence_start", "sequence_end", "priority", "timeout", "binary_data_output")
)
# the stream takes ``n`` (several texts in one non-streamed response)
_STREAM_PARAMS = {**GENERATE_PARAMS, "n": (int,)}

Emit = Callable[[Any], None]


@dataclass(slots=True)
class GenerateTensors:
    """A generation request read from V2 tensors (Triton's vLLM backend's inputs)."""

    prompt: str
    params: SamplingParams
    stream: bool
    prepend_prompt: bool
    empty_final: bool


def _scalar(request: InferRequest, index: int) -> Any:
    t = request.inputs[index]
    flat = t.data.reshape(-1)
    if len(flat) != 1:
        raise InvalidInputError(
            f"inputs[{index}] ({t.name!r}) must hold one element, got shape {t.shape}"
        )
    value = flat[0]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value.item() if isinstance(value, np.generic) else value


def read_generate_tensors(request: InferRequest) -> GenerateTensors:
    """The prompt and sampling parameters of a stream request, or a 400 naming the input."""
    raw: dict[str, Any] = {}
    flags: dict[str, bool] = {}
    empty_final = False
    for key, value in request.parameters.items():
        if key == EMPTY_FINAL:
            empty_final = bool(value)
        elif key in _FLAG_INPUTS:
            flags[key] = bool(value)
        elif not key.startswith("triton_") and key not in _CONTROLS:
            raw[key] = value
    prompt: str | None = None
    for i, t in enumerate(request.inputs):
        if t.name in _PROMPT_INPUTS:
            if t.datatype != "BYTES" or t.data.size != 1:
                raise InvalidInputError(
                    f"inputs[{i}] ({t.name!r}) must be one BYTES element (the prompt)"
                )
            prompt = str(_scalar(request, i))
        elif t.name in _FLAG_INPUTS:
            flags[t.name] = bool(_scalar(request, i))
        elif t.name == "sampling_parameters":
            try:
                doc = json.loads(str(_scalar(request, i)))
            except ValueError as exc:
                raise InvalidInputError(
                    f"inputs[{i}] (sampling_parameters) is not JSON: {exc}"
                ) from None
            if not isinstance(doc, dict):
                raise InvalidInputError(f"inputs[{i}] (sampling_parameters) must be a JSON object")
            raw.update(doc)
        elif t.name in _STREAM_PARAMS:
            if t.name == "stop" and t.datatype == "BYTES":
                raw["stop"] = [x.decode("utf-8", errors="replace") for x in t.data.reshape(-1)]
            else:
                raw[t.name] = _scalar(request, i)
        else:
            known = (*_PROMPT_INPUTS, *_FLAG_INPUTS, "sampling_parameters", *_STREAM_PARAMS)
            raise InvalidInputError(
                f"inputs[{i}]: unknown input {t.name!r} for a text-generation model; "
                f"known: {', '.join(known)}"
            )
    if prompt is None:
        raise InvalidInputError(
            "the prompt is missing: send it as the BYTES input 'text_input' (one element)"
        )
    in_params = raw.pop("stream", False)
    if not isinstance(in_params, bool):
        raise InvalidInputError(f"stream must be true or false, got {in_params!r}")
    stream = flags.get("stream", in_params)
    params = sampling_params(raw, "sampling parameters", _STREAM_PARAMS)
    if stream and params.n > 1:
        raise InvalidInputError(
            "n > 1 is not supported with stream=true on ModelStreamInfer; stream one "
            "choice per request, or set stream to false"
        )
    prepend = not flags.get("exclude_input_in_output", stream)
    return GenerateTensors(prompt, params, stream, prepend, empty_final)


class StreamInferHandler:
    """Runs the requests of ``ModelStreamInfer`` streams over one :class:`DataPlane`."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dp = dataplane

    async def serve(
        self, requests: AsyncIterator[Any], trace: Callable[[], dict[str, str]]
    ) -> AsyncIterator[Any]:
        """The responses of one stream, in the order they are produced."""
        out: asyncio.Queue[Any] = asyncio.Queue()
        done = object()
        tasks: set[asyncio.Task[None]] = set()

        async def read() -> None:
            try:
                async for request in requests:
                    task = asyncio.create_task(self._one(request, out.put_nowait, trace))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                while tasks:
                    await asyncio.wait(list(tasks))
            finally:
                out.put_nowait(done)

        reader = asyncio.create_task(read())
        try:
            while (item := await out.get()) is not done:
                yield item
        finally:
            # the client went away (or cancelled the call): stop every generation now
            reader.cancel()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(reader, *tasks, return_exceptions=True)

    async def _one(self, request: Any, emit: Emit, trace: Callable[[], dict[str, str]]) -> None:
        name, version = request.model_name, request.model_version or None
        try:
            entry = self.dp.repository.ready_entry(name, version)
            if isinstance(entry.model, TextGenerationModel):
                await self._generate(entry, entry.model, request, emit)
                return
            reply = await self.dp.serve_infer(
                GRPC,
                name,
                version,
                lambda: decode_grpc_request(request),
                encode_grpc_response,
                trace,
            )
            reply.parameters[FINAL].bool_param = True
            emit(pb.ModelStreamInferResponse(infer_response=reply))
        except InferenceServerError as exc:
            emit(_error(request, str(exc)))
        except Exception as exc:
            log.exception("ModelStreamInfer request %r failed", request.id)
            emit(_error(request, f"{type(exc).__name__}: {exc}"))

    async def _generate(
        self, entry: ModelEntry, model: TextGenerationModel, request: Any, emit: Emit
    ) -> None:
        ask = read_generate_tensors(decode_grpc_request(request))
        ids = model.encode(ask.prompt)
        budget = model.budget(ids, ask.params, DEFAULT_MAX_TOKENS)
        head = {
            "model_name": entry.name,
            "model_version": entry.version or "1",
            "id": request.id,
        }

        def response(texts: list[str] | None, final: bool) -> Any:
            msg = pb.ModelInferResponse(**head)
            msg.parameters[FINAL].bool_param = final
            if texts is not None:
                msg.outputs.add(name="text_output", datatype="BYTES", shape=[len(texts)])
                data = np.array([t.encode("utf-8") for t in texts], dtype=object)
                msg.raw_output_contents.append(encode_bytes_tensor(data))
            return pb.ModelStreamInferResponse(infer_response=msg)

        texts = [ask.prompt if ask.prepend_prompt else ""] * ask.params.n
        async with contextlib.aclosing(model.stream(ids, ask.params, budget)) as events:
            async for ev in events:
                if isinstance(ev, (TokenEvent, Finished)):
                    if not ask.stream:
                        texts[ev.index] += ev.text
                    elif isinstance(ev, TokenEvent):
                        if ev.text:
                            emit(response([ev.text], False))
                    elif ev.text or not ask.empty_final:
                        emit(response([ev.text], True))
                    else:
                        emit(response(None, True))
                elif ev.error is not None:
                    raise ev.error
        if not ask.stream:
            emit(response(texts, True))


def _error(request: Any, message: str) -> Any:
    reply = pb.ModelInferResponse(
        model_name=request.model_name, model_version=request.model_version, id=request.id
    )
    reply.parameters[FINAL].bool_param = True
    return pb.ModelStreamInferResponse(error_message=message, infer_response=reply)
