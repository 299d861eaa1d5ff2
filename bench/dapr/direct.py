"""The peer: the same Redis backend used directly from Python (run in bench/.venv-redis).

Prints one JSON line per operation: {"op", "p50_ms", "p99_ms", "rps", "max_rps"}.
Reads and writes use Dapr's state.redis layout (a hash with data/version) so the
comparison is like for like; publish is the XADD pubsub.redis does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import redis.asyncio as aioredis
import uvloop
from loadgen import closed_loop, open_loop, percentile

PAYLOAD = b'{"order": 12345, "item": "' + b"x" * 64 + b'"}'


async def main(rate: float, duration: float) -> None:
    # The same pool discipline as the sidecar's Redis components: wait for a connection.
    pool = aioredis.BlockingConnectionPool(
        host="127.0.0.1", port=6379, max_connections=20, timeout=5
    )
    client = aioredis.Redis(connection_pool=pool)
    await client.hset("bench-direct||k0", mapping={"data": PAYLOAD, "version": 1})

    async def get(i: int) -> None:
        await client.hmget("bench-direct||k0", "data", "version")

    async def save(i: int) -> None:
        key = f"bench-direct||k{i % 100}"
        async with client.pipeline(transaction=False) as p:
            p.hset(key, "data", PAYLOAD)
            p.hincrby(key, "version", 1)
            await p.execute()

    async def publish(i: int) -> None:
        await client.xadd("bench-direct-topic", {"data": PAYLOAD}, maxlen=10000, approximate=True)

    for name, fn in (("state get", get), ("state save", save), ("publish", publish)):
        await open_loop(fn, rate, 1.0)
        lat, rps, errors = await open_loop(fn, rate, duration)
        max_rps = await closed_loop(fn, 16, 2.0)
        print(
            json.dumps(
                {
                    "op": name,
                    "p50_ms": percentile(lat, 0.5) * 1e3,
                    "p99_ms": percentile(lat, 0.99) * 1e3,
                    "rps": rps,
                    "max_rps": max_rps,
                    "errors": errors,
                }
            ),
            flush=True,
        )
    await client.delete("bench-direct-topic")
    await client.aclose()


if __name__ == "__main__":
    uvloop.run(main(float(sys.argv[1]), float(sys.argv[2])))
