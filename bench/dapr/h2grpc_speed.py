"""The speed of ``wonderland.h2grpc`` alone: unary calls to a no-op server, lean client.

    python bench/dapr/h2grpc_speed.py [--duration S] [--callers N] [--save FILE] [--compare FILE]

Starts ``grpc_floor.py health`` (a no-op ``grpc.health.v1.Health/Check`` on
``wonderland.h2grpc``, the server of the sidecar and the model server) in its own
process and drives it with the lean client of lean.py (pre-encoded HTTP/2 frames on 16
connections), closed loop with ``--callers`` calls in flight. Prints calls/s and latency
percentiles; ``--save`` keeps the figures and ``--compare`` prints the ratio to saved
ones, so a change to the server can be measured before and after on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lean import LeanGrpc  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _drive(port: int, duration: float, callers: int) -> dict[str, float]:
    client = await LeanGrpc(port).open()
    prepared = client.request("/grpc.health.v1.Health/Check", b"")
    latencies: list[float] = []
    stop = 0.0

    async def caller() -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await client.call(prepared)
            latencies.append(time.perf_counter() - t0)

    stop = time.perf_counter() + 1.0  # warm-up
    await asyncio.gather(*(caller() for _ in range(callers)))
    latencies.clear()
    start = time.perf_counter()
    stop = start + duration
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.perf_counter() - start
    client.close()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "calls_per_s": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--save")
    parser.add_argument("--compare")
    args = parser.parse_args()
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "grpc_floor.py"), "health", str(port)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise SystemExit("the wonderland.h2grpc server did not start")
        figures = asyncio.run(_drive(port, args.duration, args.callers))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    print(f"wonderland.h2grpc, no-op unary, {args.callers} callers on 16 connections:")
    for key, value in figures.items():
        print(f"  {key:12} {value:10.3f}")
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        print(f"against {args.compare} (ratio now/before):")
        for key, value in figures.items():
            print(f"  {key:12} {before[key]:10.3f} -> {value:10.3f}  x{value / before[key]:.3f}")
    if args.save:
        Path(args.save).write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
