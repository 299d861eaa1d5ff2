"""Concurrent generation requests decode as one batch, in process (no server): each request
gets the tokens it would get alone, leaves the batch when it finishes or its client goes,
and the batch is counted in ``vllm:iteration_tokens_total``."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from _support.tiny_lm import build_tiny_lm

from wonderland.inference.generation import Done, SamplingParams, TextGenerationModel, TokenEvent

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow  # torch and transformers take ~10 s to import


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> TextGenerationModel:
    lm = build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))
    m = TextGenerationModel("tiny-batching", lm)
    m.load()
    m.configure_batching(max_batch_size=8, max_queue_size=16)
    return m


async def _tokens(
    model: TextGenerationModel, prompt: str, params: SamplingParams, stop_after: int = 0
) -> tuple[list[int], Done | None]:
    ids = model.encode(prompt)
    out: list[int] = []
    done = None
    async with contextlib.aclosing(model.stream(ids, params, params.max_tokens or 1)) as events:
        async for ev in events:
            if isinstance(ev, TokenEvent):
                out.append(ev.token_id)
                if stop_after and len(out) >= stop_after:
                    break  # the client goes away
            elif isinstance(ev, Done):
                done = ev
    return out, done


def _iterations(model: TextGenerationModel) -> tuple[float, float]:
    """(steps, rows decoded) so far, from the histogram's count and sum."""
    samples = {s.name: s.value for s in model.metrics.iteration_tokens.collect()[0].samples}
    return samples["vllm:iteration_tokens_total_count"], samples["vllm:iteration_tokens_total_sum"]


def test_concurrent_requests_batch_and_match_alone(model: TextGenerationModel) -> None:
    asks = [
        ("the cat sat on the mat", SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)),
        ("hello", SamplingParams(max_tokens=5, temperature=0, ignore_eos=True)),
        ("red blue green", SamplingParams(max_tokens=9, seed=7, ignore_eos=True)),
        ("big house", SamplingParams(max_tokens=7, n=2, seed=3, ignore_eos=True)),
    ]

    async def alone() -> list[list[int]]:
        return [(await _tokens(model, p, s))[0] for p, s in asks]

    async def together() -> list[list[int]]:
        # the first request takes the idle thread; the rest queue and decode as one batch
        results = await asyncio.gather(*(_tokens(model, p, s) for p, s in asks))
        return [r[0] for r in results]

    want = asyncio.run(alone())
    steps0, rows0 = _iterations(model)
    got = asyncio.run(together())
    steps, rows = _iterations(model)
    assert got == want
    assert [len(t) for t in got] == [12, 5, 9, 14]
    assert rows - rows0 > steps - steps0  # more than one row per step: batched


def test_a_request_leaving_the_batch_does_not_stop_the_others(model: TextGenerationModel) -> None:
    greedy = SamplingParams(max_tokens=20, temperature=0, ignore_eos=True)

    async def run() -> tuple[list[int], list[int], Done | None]:
        blocker = asyncio.ensure_future(_tokens(model, "one", SamplingParams(max_tokens=3)))
        gone = asyncio.ensure_future(_tokens(model, "the sun", greedy, stop_after=2))
        stays = asyncio.ensure_future(_tokens(model, "the moon", greedy))
        await blocker
        (left, _), (full, done) = await gone, await stays
        return left, full, done

    left, full, done = asyncio.run(run())
    assert len(left) == 2
    assert len(full) == 20 and done is not None and done.completion_tokens == 20
    assert full == asyncio.run(_tokens(model, "the moon", greedy))[0]


def test_max_latency_lets_a_burst_start_as_one_batch(model: TextGenerationModel) -> None:
    greedy = SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)
    model.configure_batching(max_batch_size=8, max_queue_size=16, max_latency_ms=200)
    try:
        steps0, rows0 = _iterations(model)

        async def burst() -> list[tuple[list[int], Done | None]]:
            return await asyncio.gather(*(_tokens(model, w, greedy) for w in ("a", "b c", "d")))

        results = asyncio.run(burst())
        steps, rows = _iterations(model)
    finally:
        model.configure_batching(max_batch_size=8, max_queue_size=16)
    assert all(len(tokens) == 6 for tokens, _ in results)
    assert (steps - steps0, rows - rows0) == (6, 18)  # every step decoded all three
