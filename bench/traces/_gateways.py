"""One gateway in tracing mode MODE in front of a replica, as the daemon runs it.

    python bench/traces/_gateways.py REPLICA_PORT MODE

Prints the gateway's port once it listens, then serves until killed. Mode ``on`` records
into a TraceStore, read every second as a console would (so the deferred serialisation is
paid here too, off the request path; ``BENCH_READ=0`` skips the reads).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import uvloop

from wonderland.gateway import GatewayServer, HostRoute, RoutingTable
from wonderland.gateway.tracing import GatewayTracing
from wonderland.tracing.store import TraceStore

HOST = "bench.default.127.0.0.1.sslip.io"


async def main(replica_port: int, mode: str) -> None:
    store = TraceStore()
    table = RoutingTable()
    target = table.revision("default", f"bench-{mode}")
    target.set_endpoints([("127.0.0.1", replica_port, "r1")])
    table.set_route("default/bench", {HOST: HostRoute("default/bench", [(target, 100)])})
    sink = store.record if mode == "on" else None
    gw = GatewayServer(table, port=0, tracing=GatewayTracing(mode, sink))
    await gw.start()
    print(json.dumps(gw.port), flush=True)
    while True:
        await asyncio.sleep(1)
        if os.environ.get("BENCH_READ", "1") == "1":
            store.summaries(limit=20)


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), sys.argv[2]))
