"""What the sidecar's metrics cost: state get/save with metrics on and with --enable-metrics=false.

Two sidecars run side by side in the same run, the same components (state.in-memory, and
state.redis when Redis listens on 6379), one with metrics on (the default) and one with
``--enable-metrics=false``. Each operation is measured over the HTTP and the gRPC API
with pre-encoded lean clients (so the client's cost stays out of the figure), in
alternating rounds so drift on a shared machine hits both sides alike:

- ``max_rps``: 16 callers back to back (closed loop);
- ``p50``/``p99``: latency at a fixed offered rate (open loop).

Then the cost of one record call in-process (ns per state operation recorded).

    python bench/dapr/metrics_cost.py [--rate 1000] [--seconds 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from dapr.proto.runtime.v1 import state_pb2
from lean import LeanGrpc, LeanHttp
from loadgen import closed_loop, open_loop, percentile

from wonderland.dapr.metrics import SidecarMetrics
from wonderland.dapr.sidecar import SidecarProcess

PAYLOAD = b'{"order": 12345, "item": "' + b"x" * 64 + b'"}'

MEMSTORE = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: memstore}
spec: {type: state.in-memory, version: v1}
"""
REDIS = """
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: redisstore}
spec:
  type: state.redis
  version: v1
  metadata: [{name: redisHost, value: "localhost:6379"}, {name: keyPrefix, value: bench-metrics}]
"""


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def _calls(http: LeanHttp, grpc: LeanGrpc, store: str) -> dict[str, object]:
    svc = "/dapr.proto.runtime.v1.Dapr/"
    save_json = b'[{"key": "k0", "value": ' + PAYLOAD + b"}]"
    item = state_pb2.SaveStateRequest(store_name=store)
    item.states.add(key="k0", value=PAYLOAD)
    return {
        f"{store} get (HTTP)": (http, http.request("GET", f"/v1.0/state/{store}/k0")),
        f"{store} save (HTTP)": (http, http.request("POST", f"/v1.0/state/{store}", save_json)),
        f"{store} get (gRPC)": (
            grpc,
            grpc.request(
                svc + "GetState",
                state_pb2.GetStateRequest(store_name=store, key="k0").SerializeToString(),
            ),
        ),
        f"{store} save (gRPC)": (grpc, grpc.request(svc + "SaveState", item.SerializeToString())),
    }


async def _measure(
    client: LeanHttp | LeanGrpc, prepared: object, rate: float, seconds: float
) -> tuple[float, list[float]]:
    async def one(i: int) -> None:
        await client.call(prepared)  # type: ignore[arg-type]

    await closed_loop(one, 16, 0.3)  # warm up
    max_rps = await closed_loop(one, 16, seconds)
    lat, _rps, errors = await open_loop(one, rate, seconds)
    if errors:
        raise SystemExit(f"{errors} requests failed; see the sidecar logs")
    return max_rps, lat


def _record_cost() -> tuple[float, float]:
    on = SidecarMetrics("bench")
    off = SidecarMetrics("bench")
    off.enabled = False
    out = []
    for m in (on, off):
        n = 200_000
        t0 = time.perf_counter()
        for _ in range(n):
            m.component_op("state", "statestore", "get", True, 0.0004)
        out.append((time.perf_counter() - t0) / n * 1e9)
    return out[0], out[1]


async def main(rate: float, seconds: float, rounds: int) -> None:
    import uvloop

    uvloop.install()
    work = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    (work / "res").mkdir()
    stores = ["memstore"]
    text = MEMSTORE
    if _redis_up():
        stores.append("redisstore")
        text += REDIS
    (work / "res" / "components.yaml").write_text(text)
    env = {"WONDERLAND_HOME": str(work / "home")}
    with (
        SidecarProcess(
            "bench-on", resources_path=[work / "res"], env=env, log_file=work / "on.log"
        ) as on,
        SidecarProcess(
            "bench-off",
            resources_path=[work / "res"],
            env=env,
            log_file=work / "off.log",
            extra_args=["--enable-metrics=false"],
        ) as off,
    ):
        clients = {}
        for name, sc in (("on", on), ("off", off)):
            clients[name] = (
                await LeanHttp(sc.http_port).open(),
                await LeanGrpc(sc.grpc_port).open(),
            )
        results: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        for store in stores:
            names = list(_calls(*clients["on"], store))
            for op in names:
                for _ in range(rounds):
                    for side in ("on", "off"):
                        client, prepared = _calls(*clients[side], store)[op]  # type: ignore[misc]
                        max_rps, lat = await _measure(client, prepared, rate, seconds)
                        rps_list, lats = results.setdefault((op, side), ([], []))
                        rps_list.append(max_rps)
                        lats.extend(lat)
        for http, grpc in clients.values():
            http.close()
            grpc.close()

    print(f"\nstate throughput and latency, metrics on vs --enable-metrics=false ({rounds} rounds)")
    head = f"{'operation':<26}{'max rps on':>12}{'off':>10}{'ratio':>8}"
    head += f"{'p50 on':>9}{'off':>8}{'p99 on':>9}{'off':>8}  (ms at {rate:.0f}/s)"
    print(head)
    ops = sorted(
        {op for op, _side in results}, key=lambda o: list(dict.fromkeys(results)).index((o, "on"))
    )
    for op in ops:
        rps_on = sum(results[(op, "on")][0]) / rounds
        rps_off = sum(results[(op, "off")][0]) / rounds
        lat_on, lat_off = results[(op, "on")][1], results[(op, "off")][1]
        print(
            f"{op:<26}{rps_on:>12.0f}{rps_off:>10.0f}{rps_on / rps_off:>8.3f}"
            f"{percentile(lat_on, 0.5) * 1e3:>9.3f}{percentile(lat_off, 0.5) * 1e3:>8.3f}"
            f"{percentile(lat_on, 0.99) * 1e3:>9.3f}{percentile(lat_off, 0.99) * 1e3:>8.3f}"
        )
    on_ns, off_ns = _record_cost()
    print(
        f"\none state operation recorded in-process: {on_ns:.0f} ns with metrics on, "
        f"{off_ns:.0f} ns off (a count and a latency observation on a cached child)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="offered rate for percentiles")
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    args = ap.parse_args()
    asyncio.run(main(args.rate, args.seconds, args.rounds))
