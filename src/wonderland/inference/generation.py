"""Text generation for causal language models (a Hugging Face folder), streamed per token.

One decoding loop per request runs on the model's own generation thread, never on the
event loop: a forward pass with the key/value cache, temperature and top-p sampling from a
seeded generator, one log-probability per token. Each token is handed to the event loop as
soon as it is produced (:meth:`TextGenerationModel.stream`), and the loop stops at the next
token once the consumer is gone (the client disconnected): no work continues for a gone
client.

Batching: requests wait for the generation thread in arrival order (the queue bounded by
``max_queue_size``). When the thread is free it takes every waiting request, up to
``max_batch_size`` rows (``n`` choices are ``n`` rows), and decodes them as one batch: the
prompts left-padded to the longest with an attention mask and per-row positions, one
forward pass per step for all rows, each request sampled with its own parameters and
seeded generator. A request that finishes, or whose client left, ends its stream and leaves
the batch at once (its rows are dropped from the key/value cache). Requests that arrive
while a batch runs wait for the next batch: this is static batching per admission, not
continuous batching (new requests never join a running batch).

Metrics carry vLLM's names (``vllm:time_to_first_token_seconds``,
``vllm:time_per_output_token_seconds``, ``vllm:prompt_tokens_total``,
``vllm:generation_tokens_total``, ...), labelled ``model_name`` as vLLM does.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wonderland.inference.errors import InvalidInputError, ServerBusyError
from wonderland.inference.metrics import GenerationMetrics
from wonderland.inference.types import TensorMetadata

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "GENERATE_PARAMS",
    "MAX_CHOICES",
    "MAX_TOP_LOGPROBS",
    "ContextLengthError",
    "Done",
    "Finished",
    "SamplingParams",
    "TextGenerationModel",
    "TokenEvent",
    "is_causal_lm",
    "sampling_params",
]

MAX_CHOICES = 16
MAX_TOP_LOGPROBS = 20
DEFAULT_MAX_TOKENS = 16  # Triton's generate and vLLM's SamplingParams

# sampling parameter of the generate routes (Triton, MLServer) -> the types it takes
GENERATE_PARAMS: dict[str, tuple[type, ...]] = {
    "max_tokens": (int,),
    "temperature": (int, float),
    "top_p": (int, float),
    "stop": (str, list),
    "seed": (int,),
    "ignore_eos": (bool,),
    "stream": (bool,),
}


class ContextLengthError(InvalidInputError):
    """The prompt plus the tokens asked for do not fit in the model's context."""


@dataclass(slots=True)
class SamplingParams:
    """How to decode: OpenAI's parameter names and defaults."""

    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    n: int = 1
    seed: int | None = None
    logprobs: int | None = None  # None: no log-probabilities; k: the k most likely too
    ignore_eos: bool = False

    def check(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 1:
            raise InvalidInputError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if not 0.0 <= self.temperature <= 2.0:
            raise InvalidInputError(f"temperature must be in [0, 2], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidInputError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 1 <= self.n <= MAX_CHOICES:
            raise InvalidInputError(f"n must be in [1, {MAX_CHOICES}], got {self.n}")
        if len(self.stop) > 4 or any(not s for s in self.stop):
            raise InvalidInputError("stop takes up to 4 non-empty strings")
        if self.logprobs is not None and not 0 <= self.logprobs <= MAX_TOP_LOGPROBS:
            raise InvalidInputError(
                f"logprobs must be in [0, {MAX_TOP_LOGPROBS}], got {self.logprobs}"
            )


@dataclass(slots=True)
class TokenEvent:
    """New text of one choice: ``text`` may be empty while a stop string is undecided."""

    index: int
    text: str
    token: str
    token_id: int
    logprob: float | None
    top_logprobs: list[tuple[str, float]]
    text_offset: int


@dataclass(slots=True)
class Finished:
    """One choice is done: ``reason`` is ``stop`` (end of text or a stop string) or
    ``length`` (``max_tokens`` or the context is full)."""

    index: int
    reason: str
    text: str  # the rest of the text held back for stop strings


@dataclass(slots=True)
class Done:
    """The last event: the token counts, and the error if the generation failed."""

    prompt_tokens: int
    completion_tokens: int
    error: BaseException | None = None


Event = TokenEvent | Finished


def is_causal_lm(model_dir: Path) -> bool:
    """Whether a Hugging Face folder holds a text-generation model (its ``architectures``)."""
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    archs = config.get("architectures") or []
    return (
        any(
            isinstance(a, str)
            and a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration"))
            for a in archs
        )
        and not (model_dir / "modules.json").is_file()
    )


class _Choice:
    """Text state of one choice: the ids so far, the text sent, stop-string hold-back."""

    __slots__ = ("finished", "ids", "sent", "stops", "text")

    def __init__(self, stops: list[str]) -> None:
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0
        self.stops = stops
        self.finished = False

    def add(self, tokenizer: Any, token_id: int) -> tuple[str, bool]:
        """Add a token; returns (text to send now, whether a stop string ended the choice)."""
        self.ids.append(token_id)
        text = tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the rest
            return "", False
        self.text = text
        for s in self.stops:
            at = text.find(s, max(0, self.sent - len(s)))
            if at >= 0:
                out = text[self.sent : at] if at > self.sent else ""
                self.sent = max(self.sent, at)
                return out, True
        hold = max((len(s) - 1 for s in self.stops), default=0)
        # never send a tail that may be the start of a stop string
        end = len(text)
        for k in range(min(hold, len(text)), 0, -1):
            if any(s.startswith(text[-k:]) for s in self.stops):
                end = len(text) - k
                break
        out = text[self.sent : end] if end > self.sent else ""
        self.sent = max(self.sent, end)
        return out, False

    def rest(self) -> str:
        out = self.text[self.sent :]
        self.sent = len(self.text)
        return out


def sampling_params(
    raw: dict[str, Any], where: str, known: dict[str, tuple[type, ...]] | None = None
) -> SamplingParams:
    """Sampling parameters from a generate request's keys (a 400 naming unknown ones);
    ``known`` replaces :data:`GENERATE_PARAMS` (a protocol that takes ``n`` too)."""
    known = GENERATE_PARAMS if known is None else known
    for key, value in raw.items():
        kinds = known.get(key)
        if kinds is None:
            raise InvalidInputError(
                f"{where}: unknown parameter {key!r}; known: {', '.join(sorted(known))}"
            )
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise InvalidInputError(f"{where}: {key} has the wrong type ({value!r})")
    stop = raw.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if any(not isinstance(s, str) for s in stops):
        raise InvalidInputError(f"{where}: stop must be a string or a list of strings")
    params = SamplingParams(
        max_tokens=raw.get("max_tokens", DEFAULT_MAX_TOKENS),
        temperature=float(raw.get("temperature", 1.0)),
        top_p=float(raw.get("top_p", 1.0)),
        stop=stops,
        n=int(raw.get("n", 1)),
        seed=raw.get("seed"),
        ignore_eos=bool(raw.get("ignore_eos", False)),
    )
    params.check()
    return params


class TextGenerationModel:
    """A causal language model served for text generation (completions, chat, generate)."""

    platform = "huggingface"
    batchable = False
    task = "text_generation"

    def __init__(
        self,
        name: str,
        model_dir: Path,
        version: str | None = None,
        nthread: int = 1,
        max_queue_size: int = 1024,
        **_: Any,
    ) -> None:
        self.name = name
        self.model_dir = model_dir
        self.version = version
        self.nthread = nthread
        self.max_queue_size = max_queue_size
        self.tokenizer: Any = None
        self.model: Any = None
        self.context_length = 0
        self.eos_ids: set[int] = set()
        self.created = int(time.time())
        self.metrics = GenerationMetrics(name)
        self.max_batch_size = 1
        self.max_latency = 0.0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"generate-{name}")
        self._pending: deque[_Job] = deque()
        self._serving = False
        self._pad_id = 0
        self._lock = threading.Lock()
        self._cache_kw = "past_key_values"
        self._last_logits_only = False

    # -- loading and metadata ---------------------------------------------------------------

    def load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(self.nthread)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self.model = AutoModelForCausalLM.from_pretrained(str(self.model_dir))
        self.model.eval()
        # transformers 5 names the key/value cache ``cache``; 4.x ``past_key_values``
        import inspect

        accepted = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in accepted else "past_key_values"
        self._last_logits_only = "logits_to_keep" in accepted
        cfg = self.model.config
        length = None
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and value > 0:
                length = value
                break
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if length is None and isinstance(tok_max, int) and 0 < tok_max < 10**9:
            length = tok_max
        self.context_length = length or 2048
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = cfg.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        pad = getattr(self.tokenizer, "pad_token_id", None)
        self._pad_id = pad if isinstance(pad, int) else min(self.eos_ids, default=0)

    def inputs_metadata(self) -> list[TensorMetadata]:
        return [TensorMetadata("text_input", "BYTES", [1])]

    def outputs_metadata(self) -> list[TensorMetadata]:
        return [TensorMetadata("text_output", "BYTES", [1])]

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- prompts --------------------------------------------------------------------------------

    def encode(self, prompt: str | Sequence[int]) -> list[int]:
        if isinstance(prompt, str):
            ids: list[int] = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        else:
            vocab = int(self.model.config.vocab_size)
            if any(not isinstance(t, int) or not 0 <= t < vocab for t in prompt):
                raise InvalidInputError(f"prompt token ids must be integers in [0, {vocab})")
            ids = list(prompt)
        if not ids:
            raise InvalidInputError("the prompt is empty")
        return ids

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        if not self.has_chat_template:
            raise InvalidInputError(
                f"model {self.name!r} has no chat template in its tokenizer; use "
                "/openai/v1/completions with a prompt instead"
            )
        try:
            text = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:  # the template raises for conversations it rejects
            raise InvalidInputError(f"the chat template rejected the messages: {exc}") from None
        return str(text)

    def budget(self, prompt_ids: list[int], params: SamplingParams, default: int | None) -> int:
        """The number of tokens to generate, or a 400 when the prompt does not fit."""
        room = self.context_length - len(prompt_ids)
        want = params.max_tokens if params.max_tokens is not None else default
        if want is None:
            want = room
        if room < 1 or want > room:
            raise ContextLengthError(
                f"This model's maximum context length is {self.context_length} tokens. "
                f"However, you requested {len(prompt_ids) + max(want, 1)} tokens "
                f"({len(prompt_ids)} in the prompt, {max(want, 1)} for the completion). "
                "Please reduce the length of the prompt or of max_tokens."
            )
        return want

    # -- generation ---------------------------------------------------------------------------

    def configure_batching(
        self, max_batch_size: int, max_queue_size: int, max_latency_ms: float = 0.0
    ) -> None:
        """The server's batching settings: rows decoded together, requests allowed to wait,
        and how long the first waiting request may wait for others to join its batch."""
        self.max_batch_size = max(1, max_batch_size)
        self.max_queue_size = max_queue_size
        self.max_latency = max(0.0, max_latency_ms) / 1000

    async def stream(
        self, prompt_ids: list[int], params: SamplingParams, max_new: int
    ) -> AsyncGenerator[Event | Done, None]:
        """Generate on the generation thread, yielding each event as it is produced.

        Closing the iterator (the client went away) stops this request's decoding at its
        next token; the last item is always a ``Done`` with the token counts."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | Done] = asyncio.Queue()

        def emit(item: Event | Done) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        job = _Job(prompt_ids, params, max_new, emit, time.perf_counter())
        with self._lock:
            if len(self._pending) >= self.max_queue_size:
                raise ServerBusyError(
                    f"model {self.name!r} has {len(self._pending)} generations queued (the "
                    "limit, --max_queue_size); retry later"
                )
            self._pending.append(job)
            start = not self._serving
            self._serving = True
        self.metrics.waiting.inc()
        if start:
            loop.run_in_executor(self._executor, self._serve)
        try:
            while True:
                item = await queue.get()
                yield item
                if isinstance(item, Done):
                    break
        finally:
            # a gone client: the decoding loop drops this request before its next token
            job.cancel.set()

    def _serve(self) -> None:
        """The generation thread: decode the waiting requests, a batch at a time."""
        while True:
            if self.max_latency > 0:
                with self._lock:
                    oldest = self._pending[0].queued_at if self._pending else None
                    rows = sum(j.params.n for j in self._pending)
                if oldest is not None and rows < self.max_batch_size:
                    # --max_latency_ms: let a burst of requests start as one batch
                    wait = oldest + self.max_latency - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
            batch: list[_Job] = []
            rows = 0
            with self._lock:
                while self._pending and (
                    not batch or rows + self._pending[0].params.n <= self.max_batch_size
                ):
                    job = self._pending.popleft()
                    self.metrics.waiting.dec()
                    if not job.cancel.is_set():  # the client left while queued
                        batch.append(job)
                        rows += job.params.n
                if not batch and not self._pending:
                    self._serving = False
                    return
            if batch:
                self._run_batch(batch)

    def _run_batch(self, batch: list[_Job]) -> None:
        m = self.metrics
        m.running.inc(len(batch))
        try:
            self._decode(batch)
        except BaseException as exc:
            for job in batch:
                if not job.done:
                    self._end(job, "error", exc)
        finally:
            for job in batch:
                if not job.done:  # cannot happen; never leave a consumer waiting
                    self._end(job, "abort")

    def _end(self, job: _Job, reason: str, error: BaseException | None = None) -> None:
        job.done = True
        m = self.metrics
        m.running.dec()
        m.prompt_tokens.inc(len(job.prompt_ids))
        m.finished(reason, time.perf_counter() - job.queued_at)
        if job.produced > job.params.n and job.last_at > job.first_at:
            m.throughput.set((job.produced - job.params.n) / (job.last_at - job.first_at))
        job.emit(Done(len(job.prompt_ids), job.produced, error))

    def _decode(self, batch: list[_Job]) -> None:
        """Decode ``batch`` as one left-padded batch: one forward pass per step for all its
        rows, each request sampled with its own parameters and generator; a request that
        finishes (or whose client left) leaves the batch at once."""
        import torch

        m = self.metrics
        width = max(len(j.prompt_ids) for j in batch)
        ids_rows: list[list[int]] = []
        mask_rows: list[list[int]] = []
        for job in batch:
            job.start(self.tokenizer)
            pad = width - len(job.prompt_ids)
            for _ in range(job.params.n):
                ids_rows.append([self._pad_id] * pad + job.prompt_ids)
                mask_rows.append([0] * pad + [1] * len(job.prompt_ids))
        ids = torch.tensor(ids_rows, dtype=torch.long)
        mask = torch.tensor(mask_rows, dtype=torch.long)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        live = list(batch)
        past: Any = None
        with torch.inference_mode():
            while live:
                kwargs: dict[str, Any] = {self._cache_kw: past, "use_cache": True}
                if self._last_logits_only:
                    kwargs["logits_to_keep"] = 1
                if len(batch) > 1:  # one request alone needs no mask (it has no padding)
                    kwargs["attention_mask"] = mask
                    kwargs["position_ids"] = positions
                out = self.model(input_ids=ids, **kwargs)
                past = getattr(out, "cache", None) or out.past_key_values
                logits = out.logits[:, -1, :].float()
                next_ids = torch.zeros(len(ids), dtype=torch.long)
                row = 0
                m.iteration_tokens.observe(len(ids))
                for job in live:
                    rows = slice(row, row + job.params.n)
                    row += job.params.n
                    if job.cancel.is_set():
                        self._end(job, "abort")
                        continue
                    next_ids[rows] = job.step(self, logits[rows])
                    if job.finished_reason is not None:
                        self._end(job, job.finished_reason)
                still = [j for j in live if not j.done]
                if len(still) != len(live):
                    if not still:
                        break
                    keep: list[int] = []
                    row = 0
                    for job in live:
                        if not job.done:
                            keep.extend(range(row, row + job.params.n))
                        row += job.params.n
                    index = torch.tensor(keep, dtype=torch.long)
                    past = _select_rows(past, index)
                    next_ids, mask, positions = next_ids[index], mask[index], positions[index]
                    live = still
                ids = next_ids.unsqueeze(-1)
                mask = torch.cat([mask, mask.new_ones((len(ids), 1))], dim=-1)
                positions = positions[:, -1:] + 1


def _select_rows(past: Any, index: Any) -> Any:
    """The key/value cache of the rows in ``index`` (the requests still decoding)."""
    select = getattr(past, "batch_select_indices", None)
    if select is not None:
        select(index)
        return past
    return tuple(tuple(t[index] for t in layer) for layer in past)  # the legacy tuple cache


class _Job:
    """One request in the generation thread: its parameters, generator and choices."""

    __slots__ = (
        "cancel",
        "choices",
        "done",
        "emit",
        "finished_reason",
        "first_at",
        "gen",
        "last_at",
        "max_new",
        "params",
        "produced",
        "prompt_ids",
        "queued_at",
        "steps",
    )

    def __init__(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        max_new: int,
        emit: Callable[[Event | Done], None],
        queued_at: float,
    ) -> None:
        self.prompt_ids = prompt_ids
        self.params = params
        self.max_new = max_new
        self.emit = emit
        self.queued_at = queued_at
        self.cancel = threading.Event()
        self.choices: list[_Choice] = []
        self.gen: Any = None
        self.done = False
        self.finished_reason: str | None = None
        self.produced = 0
        self.steps = 0
        self.first_at = 0.0
        self.last_at = 0.0

    def start(self, tokenizer: Any) -> None:
        import torch

        self.gen = torch.Generator()
        if self.params.seed is not None:
            self.gen.manual_seed(self.params.seed)
        else:
            self.gen.seed()
        self.choices = [_Choice(self.params.stop) for _ in range(self.params.n)]

    def step(self, model: TextGenerationModel, logits: Any) -> Any:
        """Sample the next token of each choice from ``logits`` (one row per choice), emit
        the events, and return the token ids (the next step's input)."""
        import torch

        params = self.params
        tok = model.tokenizer
        m = model.metrics
        if params.temperature == 0.0:
            next_ids = logits.argmax(-1)
        else:
            probs = torch.softmax(logits / params.temperature, dim=-1)
            if params.top_p < 1.0:
                sorted_p, order = probs.sort(-1, descending=True)
                keep = sorted_p.cumsum(-1) - sorted_p < params.top_p
                sorted_p = sorted_p * keep
                probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
            next_ids = torch.multinomial(probs, 1, generator=self.gen).squeeze(-1)
        logp = torch.log_softmax(logits, dim=-1) if params.logprobs is not None else None
        top_k = params.logprobs or 0
        now = time.perf_counter()
        if self.steps == 0:
            self.first_at = now
            m.ttft.observe(now - self.queued_at)
        else:
            m.tpot.observe(now - self.last_at)
        self.last_at = now
        self.steps += 1
        emit = self.emit
        for i, choice in enumerate(self.choices):
            if choice.finished:
                continue
            tid = int(next_ids[i])
            self.produced += 1
            m.generation_tokens.inc()
            if tid in model.eos_ids and not params.ignore_eos:
                choice.finished = True
                emit(Finished(i, "stop", choice.rest()))
                continue
            offset = choice.sent
            text, stopped = choice.add(tok, tid)
            lp: float | None = None
            tops: list[tuple[str, float]] = []
            if logp is not None:
                lp = float(logp[i, tid])
                if top_k:
                    values, indices = logp[i].topk(top_k)
                    tops = [
                        (tok.decode([int(j)]), float(v))
                        for v, j in zip(values, indices, strict=True)
                    ]
            emit(TokenEvent(i, text, tok.decode([tid]), tid, lp, tops, offset))
            if stopped:
                choice.finished = True
                emit(Finished(i, "stop", ""))
        if all(c.finished for c in self.choices):
            self.finished_reason = "stop"
        elif self.steps >= self.max_new:
            for i, choice in enumerate(self.choices):
                if not choice.finished:
                    choice.finished = True
                    emit(Finished(i, "length", choice.rest()))
            self.finished_reason = "length"
        return next_ids


def safe_logprob(value: float | None) -> float | None:
    """JSON has no -inf: a zero-probability token reports a very small number instead."""
    if value is None:
        return None
    return value if math.isfinite(value) else -9999.0
