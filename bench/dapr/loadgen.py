"""Open-loop load at a fixed rate and latency statistics (stdlib only, shared by both sides)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable


async def open_loop(
    fn: Callable[[int], Awaitable[object]], rate: float, duration: float
) -> tuple[list[float], float, int]:
    """Start ``fn(i)`` every 1/rate s for ``duration`` s; return latencies (s) and achieved rate."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0
    first_error: list[BaseException] = []
    total = int(rate * duration)
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            await fn(i)
        except Exception as exc:
            errors += 1
            if not first_error:
                first_error.append(exc)
                print(f"first failure: {exc!r}"[:300], file=sys.stderr)
            return
        latencies.append(time.perf_counter() - t0)

    start = loop.time()
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        t = loop.create_task(one(i))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.sleep(0.01)
    elapsed = loop.time() - start
    return latencies, len(latencies) / elapsed, errors


async def closed_loop(
    fn: Callable[[int], Awaitable[object]], concurrency: int, duration: float
) -> float:
    """Requests per second with ``concurrency`` callers back to back."""
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    done = 0

    async def worker(w: int) -> None:
        nonlocal done
        i = w
        while loop.time() < end:
            try:
                await fn(i)
            except Exception:
                continue
            done += 1
            i += concurrency

    start = loop.time()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done / (loop.time() - start)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]
