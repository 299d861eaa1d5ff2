"""The CPU ``wonderland.h2grpc`` spends on one unary call, with no socket or client.

    python bench/dapr/h2grpc_cpu.py [--calls N] [--repeat R]

Feeds one server connection pre-encoded HEADERS + DATA frames for a no-op unary call,
16 calls a read, over an in-memory transport, and prints the best and median
microseconds per call over ``--repeat`` runs. Steadier than a loopback benchmark on a
busy machine: run it before and after a change to the server (same machine, same load).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import hpack
import uvloop
from google.protobuf import empty_pb2

from wonderland.h2grpc import Method
from wonderland.h2grpc.connection import PREFACE, GrpcConnection, frame


class _Sink:
    """A transport that keeps nothing."""

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1)

    def close(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False


class _Serving:
    @staticmethod
    def SerializeToString() -> bytes:
        return b"\x08\x01"


async def _check(request: Any, context: Any) -> Any:
    return _Serving


async def _run(calls: int) -> float:
    path = "/grpc.health.v1.Health/Check"
    conn = GrpcConnection(
        {path: Method("Check", _check, empty_pb2.Empty, False, False)},
        4 << 20,
        None,
        lambda c: None,
    )
    conn.connection_made(_Sink())  # type: ignore[arg-type]
    block = hpack.Encoder().encode(
        [
            hpack.NeverIndexedHeaderTuple(k, v)
            for k, v in (
                (":method", "POST"),
                (":scheme", "http"),
                (":path", path),
                (":authority", "x"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            )
        ]
    )
    conn.data_received(PREFACE + frame(4, 0, 0))
    sid, batch = 1, 16
    start = time.perf_counter()
    for _ in range(calls // batch):
        data = bytearray()
        for _ in range(batch):
            data += frame(1, 0x4, sid, block) + frame(0, 0x1, sid, b"\x00" * 5)
            sid += 2
        conn.data_received(bytes(data))
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    if conn.streams:
        raise SystemExit(f"{len(conn.streams)} calls did not finish")
    conn.connection_lost(None)
    return elapsed / (calls // batch * batch) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    runs = sorted(uvloop.run(_run(args.calls)) for _ in range(args.repeat))
    print(
        f"wonderland.h2grpc, one no-op unary call: best {runs[0]:.2f} us, "
        f"median {statistics.median(runs):.2f} us ({args.repeat} runs of {args.calls})"
    )


if __name__ == "__main__":
    main()
