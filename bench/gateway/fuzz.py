"""The gateway's parser fuzzing, for as long as asked (the test suite runs a few seconds).

    python bench/gateway/fuzz.py [--duration 600] [--examples 200]

Same inputs and checks as tests/gateway/test_gateway_fuzz.py (seeds recorded from httpx
over HTTP/1.1 and HTTP/2, mutated by hypothesis; hand-written hostile HTTP/2 sequences),
run in rounds until the duration is spent. Every round checks that the gateway holds
nothing afterwards and still answers; the process's resident memory is printed per round
so growth shows (the gateway, both replicas and the fuzzer share the process).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from _support.gateway_fuzz import (  # noqa: E402
    OPS,
    LiveGateway,
    adversarial_h2,
    capture_seeds,
    exchange,
    h1_statuses,
    h2_statuses,
    mutate,
)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds in all")
    parser.add_argument("--examples", type=int, default=200, help="examples per round")
    args = parser.parse_args()
    seeds = capture_seeds()
    op = st.tuples(st.sampled_from(OPS), st.integers(0, 1 << 20), st.binary(max_size=48))
    rules = settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    counts = {"h1": 0, "h2": 0, "hostile": 0}
    with LiveGateway() as live:

        def one(payload: bytes, split: int, kind: str) -> None:
            cut = split % (len(payload) + 1)
            data, _ = exchange(live.port, [payload[:cut], payload[cut:]])
            if kind == "h1" or data.startswith(b"HTTP/1.1 "):
                statuses = h1_statuses(data)
            else:
                statuses = h2_statuses(data)[0]
            assert all(s < 500 for s in statuses), (statuses, payload[:300])
            live.settle()
            counts[kind] += 1

        @rules
        @given(st.sampled_from(seeds["h1"]), st.lists(op, max_size=8), st.integers(0))
        def h1(seed: bytes, ops: list[tuple[str, int, bytes]], split: int) -> None:
            one(mutate(seed, ops), split, "h1")

        @rules
        @given(st.sampled_from(seeds["h2"]), st.lists(op, max_size=8), st.integers(0))
        def h2(seed: bytes, ops: list[tuple[str, int, bytes]], split: int) -> None:
            one(mutate(seed, ops), split, "h2")

        start = time.monotonic()
        base = rss_mib()
        rounds = 0
        while time.monotonic() - start < args.duration:
            h1()
            h2()
            for payload in adversarial_h2().values():
                one(payload, len(payload), "hostile")
            live.healthy()
            rounds += 1
            print(
                f"round {rounds}: {time.monotonic() - start:6.0f}s, inputs {counts}, "
                f"RSS {rss_mib():.1f} MiB (start {base:.1f})",
                flush=True,
            )
    print(f"no failure in {sum(counts.values())} inputs over {rounds} rounds")


if __name__ == "__main__":
    main()
