"""One gateway in front of an HTTP/1.1 replica and an h2c replica, as the daemon runs it.

    python bench/gateway/_gateway.py H1_PORT H2C_PORT

Uses only the public API, so the same script runs the gateway of any checkout
(``PYTHONPATH=<checkout>/src``). Prints the gateway's port once it listens, then serves
until killed.
"""

from __future__ import annotations

import asyncio
import json
import sys

import uvloop

from wonderland.gateway import GatewayServer, HostRoute, RoutingTable

HOST = "bench.default.127.0.0.1.sslip.io"
H2C_HOST = "bench-h2c.default.127.0.0.1.sslip.io"


async def main(h1_port: int, h2c_port: int) -> None:
    table = RoutingTable()
    h1 = table.revision("default", "bench-00001")
    h1.set_endpoints([("127.0.0.1", h1_port, "r1")])
    h2c = table.revision("default", "bench-h2c-00001")
    h2c.h2c = True
    h2c.set_endpoints([("127.0.0.1", h2c_port, "r2")])
    table.set_route("default/bench", {HOST: HostRoute("default/bench", [(h1, 100)])})
    table.set_route("default/bench-h2c", {H2C_HOST: HostRoute("default/bench-h2c", [(h2c, 100)])})
    gw = GatewayServer(table, port=0)
    await gw.start()
    print(json.dumps(gw.port), flush=True)
    while True:
        await asyncio.sleep(3600)


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
