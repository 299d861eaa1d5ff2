"""Benchmark: state get, state save and publish through the sidecar (HTTP and gRPC) vs Redis direct.

    python bench/dapr/run.py [--rate 1000] [--duration 10]

At a fixed rate (open loop, default 1,000 requests/s on loopback) it measures p50/p99 of
each operation through ``wonderland sidecar`` over HTTP and gRPC (the ``dapr`` SDK's own
stubs) and of the same Redis operations made directly from Python in a separate
virtualenv (bench/.venv-redis), in the same run. It also reports the highest rate with
16 callers back to back, and the sidecar's idle and loaded RSS.

A second table repeats Dapr's own method (its perf suite drives daprd with fortio, a
compiled gRPC client, on 16 connections, and subtracts the generator calling nothing):
a lean client (lean.py) against the sidecar, with state.in-memory as Dapr uses, next to
one loopback round trip to a C server (Redis PING) and, where Go and Debian's grpc-go
are installed (gofloor.py), grpc-go's no-op round trip: daprd's transport on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PEER_VENV = ROOT / "bench" / ".venv-redis"
sys.path.insert(0, str(HERE))

import gofloor  # noqa: E402
from lean import LeanGrpc, LeanHttp, LeanRedis  # noqa: E402
from loadgen import closed_loop, open_loop, percentile  # noqa: E402

PAYLOAD = b'{"order": 12345, "item": "' + b"x" * 64 + b'"}'

COMPONENTS = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: statestore}
spec:
  type: state.redis
  version: v1
  metadata: [{name: redisHost, value: "localhost:6379"}, {name: keyPrefix, value: bench-sidecar}]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pubsub}
spec:
  type: pubsub.redis
  version: v1
  metadata: [{name: redisHost, value: "localhost:6379"}, {name: maxLenApprox, value: "10000"}]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: memstore}
spec:
  type: state.in-memory
  version: v1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def anon_mb(pid: int) -> float:
    """Anonymous RSS (heap, stacks): RSS without the mapped files of Python and its libraries."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ensure_peer_venv() -> Path:
    """bench/.venv-redis with redis-py and hiredis (the parser the sidecar uses too)."""
    py = PEER_VENV / "bin" / "python"
    if not py.exists():
        print("creating bench/.venv-redis (redis-py, hiredis, uvloop) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    if subprocess.run(
        [str(py), "-c", "import redis, hiredis, uvloop"], capture_output=True
    ).returncode:
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "redis>=5.0", "hiredis>=2.0", "uvloop>=0.19"],
            check=True,
        )
    return py


def start_sidecar(tmp: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    res = tmp / "resources"
    res.mkdir()
    (res / "components.yaml").write_text(COMPONENTS)
    http, grpc_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wonderland",
            "sidecar",
            "--app-id",
            "bench",
            "--resources-path",
            str(res),
            "--dapr-http-port",
            str(http),
            "--dapr-grpc-port",
            str(grpc_port),
            "--log-level",
            "warn",
        ],
        env={**os.environ, "WONDERLAND_HOME": str(tmp / "home")},
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{http}/v1.0/healthz/outbound", timeout=1
            ):
                return proc, http, grpc_port
        except OSError:
            time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit("the sidecar did not start")


def start_floor(kind: str) -> tuple[subprocess.Popen[bytes], int]:
    """A no-op gRPC server (grpc_floor.py) with nothing behind it, ready when a call succeeds."""
    import grpc
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, metadata_pb2

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "grpc_floor.py"), kind, str(port)], start_new_session=True
    )
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)
        while time.monotonic() < deadline:
            try:
                stub.SetMetadata(metadata_pb2.SetMetadataRequest(key="a", value="b"), timeout=1)
                return proc, port
            except grpc.RpcError:
                time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit(f"the {kind} gRPC floor server did not start")


async def measure(
    via: str, op: str, fn: Any, rate: float, duration: float, max_rate: bool = True
) -> dict[str, object]:
    """One row: 1 s of warm-up, then ``duration`` s at ``rate``; optionally the rate at 16 callers."""
    await open_loop(fn, rate, 1.0)
    lat, rps, errors = await open_loop(fn, rate, duration)
    row: dict[str, object] = {
        "via": via,
        "op": op,
        "p50_ms": percentile(lat, 0.5) * 1e3,
        "p99_ms": percentile(lat, 0.99) * 1e3,
        "rps": rps,
        "errors": errors,
    }
    if max_rate:
        row["max_rps"] = await closed_loop(fn, 16, 2.0)
    return row


async def sidecar_runs(
    http: int, grpc_port: int, rate: float, duration: float, floors: dict[str, int]
) -> list[dict[str, object]]:
    import aiohttp
    import grpc
    from dapr.proto.common.v1 import common_pb2
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, metadata_pb2, pubsub_pb2, state_pb2

    out: list[dict[str, object]] = []
    base = f"http://127.0.0.1:{http}/v1.0"
    body = b'[{"key": "k0", "value": ' + PAYLOAD + b"}]"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as s:
        await s.post(f"{base}/state/statestore", data=body)

        async def h_get(i: int) -> None:
            async with s.get(f"{base}/state/statestore/k0") as r:
                await r.read()
                assert r.status == 200

        async def h_save(i: int) -> None:
            data = b'[{"key": "k%d", "value": ' % (i % 100) + PAYLOAD + b"}]"
            async with s.post(f"{base}/state/statestore", data=data) as r:
                assert r.status == 204

        async def h_pub(i: int) -> None:
            async with s.post(
                f"{base}/publish/pubsub/bench-topic",
                data=PAYLOAD,
                headers={"content-type": "application/json"},
            ) as r:
                assert r.status == 204

        async def h_floor(i: int) -> None:
            async with s.put(f"{base}/metadata/bench", data=b"x") as r:
                assert r.status == 204

        for name, fn in (
            ("no-op floor", h_floor),
            ("state get", h_get),
            ("state save", h_save),
            ("publish", h_pub),
        ):
            out.append(await measure("sidecar HTTP", name, fn, rate, duration, True))

    # The floor: the same client and pacing against no-op servers with nothing behind them.
    for kind, port in floors.items():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            floor_stub = dapr_pb2_grpc.DaprStub(ch)
            check = ch.unary_unary("/grpc.health.v1.Health/Check")

            async def f_noop(
                i: int, floor_stub: Any = floor_stub, check: Any = check, kind: str = kind
            ) -> None:
                if kind == "grpc-go":  # the no-op it serves: health Check (empty request)
                    await check(b"")
                    return
                await floor_stub.SetMetadata(metadata_pb2.SetMetadataRequest(key="b", value="x"))

            out.append(
                await measure(
                    "grpc-go server (daprd's stack)"
                    if kind == "grpc-go"
                    else f"grpcio server floor ({kind})",
                    "no-op floor",
                    f_noop,
                    rate,
                    duration,
                    True,
                )
            )

    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
        stub = dapr_pb2_grpc.DaprStub(ch)

        async def g_get(i: int) -> None:
            await stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="k0"))

        async def g_save(i: int) -> None:
            await stub.SaveState(
                state_pb2.SaveStateRequest(
                    store_name="statestore",
                    states=[common_pb2.StateItem(key=f"k{i % 100}", value=PAYLOAD)],
                )
            )

        async def g_pub(i: int) -> None:
            await stub.PublishEvent(
                pubsub_pb2.PublishEventRequest(
                    pubsub_name="pubsub",
                    topic="bench-topic",
                    data=PAYLOAD,
                    data_content_type="application/json",
                )
            )

        async def g_floor(i: int) -> None:
            await stub.SetMetadata(metadata_pb2.SetMetadataRequest(key="bench", value="x"))

        for name, fn in (
            ("no-op floor", g_floor),
            ("state get", g_get),
            ("state save", g_save),
            ("publish", g_pub),
        ):
            out.append(await measure("sidecar gRPC", name, fn, rate, duration, True))
    return out


async def lean_runs(
    grpc_port: int, http_port: int, rate: float, duration: float, go_port: int | None
) -> list[dict[str, object]]:
    """Dapr's own method: a lean client on 16 connections, baseline the generator alone."""
    from dapr.proto.common.v1 import common_pb2
    from dapr.proto.runtime.v1 import metadata_pb2, pubsub_pb2, state_pb2

    client = await LeanGrpc(grpc_port).open()
    http = await LeanHttp(http_port).open()
    go_client = await LeanGrpc(go_port).open() if go_port else None
    redis = await LeanRedis().open()
    svc = "/dapr.proto.runtime.v1.Dapr/"
    calls = {
        "no-op (SetMetadata)": client.request(
            svc + "SetMetadata",
            metadata_pb2.SetMetadataRequest(key="bench", value="x").SerializeToString(),
        ),
        "state get, state.in-memory (Dapr's setup)": client.request(
            svc + "GetState",
            state_pb2.GetStateRequest(store_name="memstore", key="k0").SerializeToString(),
        ),
        "state get, state.redis": client.request(
            svc + "GetState",
            state_pb2.GetStateRequest(store_name="statestore", key="k0").SerializeToString(),
        ),
        "state save, state.redis": client.request(
            svc + "SaveState",
            state_pb2.SaveStateRequest(
                store_name="statestore", states=[common_pb2.StateItem(key="k1", value=PAYLOAD)]
            ).SerializeToString(),
        ),
        "publish, pubsub.redis": client.request(
            svc + "PublishEvent",
            pubsub_pb2.PublishEventRequest(
                pubsub_name="pubsub",
                topic="bench-topic",
                data=PAYLOAD,
                data_content_type="application/json",
            ).SerializeToString(),
        ),
    }
    await client.call(
        client.request(
            svc + "SaveState",
            state_pb2.SaveStateRequest(
                store_name="memstore", states=[common_pb2.StateItem(key="k0", value=PAYLOAD)]
            ).SerializeToString(),
        )
    )

    async def nothing(i: int) -> None:
        return None

    async def ping(i: int) -> None:
        await redis.ping()

    runs: list[tuple[str, str, Any]] = [
        ("load generator", "calls nothing (Dapr's baseline)", nothing),
        ("Redis PING, raw RESP", "one loopback round trip to a C server", ping),
    ]
    if go_client is not None:
        check = go_client.request("/grpc.health.v1.Health/Check", b"")

        async def go_noop(i: int) -> None:
            await go_client.call(check)

        runs.append(("grpc-go server, lean client", "no-op (health Check)", go_noop))
    for name, prepared in calls.items():

        async def fn(i: int, prepared: Any = prepared) -> None:
            await client.call(prepared)

        runs.append(("sidecar gRPC, lean client", name, fn))
    for name, prepared_http in {
        "no-op (GET /v1.0/healthz)": http.request("GET", "/v1.0/healthz"),
        "state get, state.in-memory (Dapr's setup)": http.request("GET", "/v1.0/state/memstore/k0"),
        "state get, state.redis": http.request("GET", "/v1.0/state/statestore/k0"),
    }.items():

        async def hfn(i: int, prepared: bytes = prepared_http) -> None:
            await http.call(prepared)

        runs.append(("sidecar HTTP, lean client", name, hfn))
    out: list[dict[str, object]] = []
    try:
        for via, op, fn in runs:
            out.append(await measure(via, op, fn, rate, duration, False))
    finally:
        client.close()
        http.close()
        redis.close()
        if go_client is not None:
            go_client.close()
    return out


def go_runs(
    rate: float, duration: float, sidecar_http: int
) -> tuple[list[dict[str, object]], int | None, Any]:
    """grpc-go and net/http (daprd's stacks): Go's clients against Go's servers and ours."""
    binary = gofloor.build()
    if binary is None:
        return [], None, None
    go_proc, go_port = gofloor.serve(binary)
    ours_port = free_port()
    ours = subprocess.Popen(
        [sys.executable, str(HERE / "grpc_floor.py"), "health", str(ours_port)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    rows: list[dict[str, object]] = []
    try:
        assert ours.stdout is not None
        ours.stdout.readline()
        for via, port in (
            ("grpc-go client -> grpc-go server", go_port),
            ("grpc-go client -> wonderland.h2grpc", ours_port),
        ):
            r = gofloor.load(binary, port, rate, duration)
            rows.append({"via": via, "op": "no-op (health Check)", **r})
        http_proc, http_port = gofloor.serve_http(binary)
        try:
            for via, port in (
                ("Go net/http client -> Go net/http server", http_port),
                ("Go net/http client -> sidecar HTTP", sidecar_http),
            ):
                r = gofloor.load_http(binary, port, rate, duration)
                rows.append({"via": via, "op": "no-op (GET /v1.0/healthz)", **r})
        finally:
            gofloor.kill_group(http_proc)
    finally:
        gofloor.kill_group(ours)
    return rows, go_port, go_proc


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--duration", type=float, default=10.0)
    args = ap.parse_args()
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        raise SystemExit("Redis is not running on 127.0.0.1:6379; the benchmark needs it") from None
    peer_py = ensure_peer_venv()
    import uvloop
    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory() as tmp:
        procs: list[subprocess.Popen[bytes]] = []
        try:
            proc, http, grpc_port = start_sidecar(Path(tmp))
            procs.append(proc)
            floors: dict[str, int] = {}
            for kind in ("grpc.aio", "sync"):
                fproc, floors[kind] = start_floor("aio" if kind == "grpc.aio" else "sync")
                procs.append(fproc)
            time.sleep(1.0)
            idle = rss_mb(proc.pid)
            idle_anon = anon_mb(proc.pid)
            go_rows, go_port, go_proc = go_runs(args.rate, args.duration, http)
            if go_proc is not None:
                procs.append(go_proc)
                floors["grpc-go"] = go_port  # type: ignore[assignment]
            rows = uvloop.run(sidecar_runs(http, grpc_port, args.rate, args.duration, floors))
            lean = go_rows + uvloop.run(
                lean_runs(grpc_port, http, args.rate, args.duration, go_port)
            )
            loaded = rss_mb(proc.pid)
        finally:
            for p in procs:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(10)
    direct = subprocess.run(
        [str(peer_py), str(HERE / "direct.py"), str(args.rate), str(args.duration)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    base = {r["op"]: r for r in (json.loads(line) for line in direct.splitlines() if line.strip())}
    table = Table(
        title=f"wonderland sidecar vs Redis direct, {args.rate:.0f} req/s for {args.duration:.0f}s, loopback"
    )
    for col in (
        "path",
        "operation",
        "rps",
        "p50 ms",
        "p99 ms",
        "added p50 ms",
        "added p99 ms",
        "p50 ratio",
        "max rps (16 callers)",
        "errors",
    ):
        table.add_column(col, justify="right" if col not in ("path", "operation") else "left")
    for op, b in base.items():
        table.add_row(
            "redis-py direct (peer)",
            op,
            f"{b['rps']:.0f}",
            f"{b['p50_ms']:.3f}",
            f"{b['p99_ms']:.3f}",
            "-",
            "-",
            "1.00",
            f"{b['max_rps']:.0f}",
            str(b["errors"]),
        )
    for r in rows:
        if str(r["op"]) not in base:
            table.add_row(
                str(r["via"]),
                str(r["op"])
                + (
                    (" (health Check)" if "grpc-go" in str(r["via"]) else " (SetMetadata)")
                    if "server floor" in str(r["via"]) or "grpc-go" in str(r["via"])
                    else " (PUT metadata / SetMetadata)"
                ),
                f"{r['rps']:.0f}",
                f"{r['p50_ms']:.3f}",
                f"{r['p99_ms']:.3f}",
                "-",
                "-",
                "-",
                f"{r['max_rps']:.0f}",
                str(r["errors"]),
            )
            continue
        b = base[str(r["op"])]
        table.add_row(
            str(r["via"]),
            str(r["op"]),
            f"{r['rps']:.0f}",
            f"{r['p50_ms']:.3f}",
            f"{r['p99_ms']:.3f}",
            f"{float(r['p50_ms']) - b['p50_ms']:+.3f}",
            f"{float(r['p99_ms']) - b['p99_ms']:+.3f}",
            f"{float(r['p50_ms']) / b['p50_ms']:.2f}",
            f"{r['max_rps']:.0f}",
            str(r["errors"]),
        )
    console = Console(width=170)
    load = os.getloadavg()
    console.print(table)
    console.print(
        f"sidecar RSS: idle {idle:.1f} MB ({idle_anon:.1f} MB anonymous, the rest mapped files), "
        f"after load {loaded:.1f} MB "
        "(Dapr v1.17 published: ~50 MB; added p50 state get +0.12 ms gRPC, +0.28 ms HTTP)"
    )
    lean_table = Table(
        title="Dapr's own method: a lean client (fortio's part), 16 connections, baseline = the "
        "generator calling nothing"
    )
    for col in ("path", "operation", "rps", "p50 ms", "p99 ms", "added p50 ms", "errors"):
        lean_table.add_column(col, justify="right" if col not in ("path", "operation") else "left")
    baseline = next(float(r["p50_ms"]) for r in lean if r["via"] == "load generator")
    for r in lean:
        lean_table.add_row(
            str(r["via"]),
            str(r["op"]),
            f"{float(r['rps']):.0f}",
            f"{float(r['p50_ms']):.3f}",
            f"{float(r['p99_ms']):.3f}",
            f"{float(r['p50_ms']) - baseline:+.3f}",
            str(r["errors"]),
        )
    console.print(lean_table)
    by_op = {str(r["op"]): float(r["p50_ms"]) for r in lean}
    by_via = {str(r["via"]): float(r["p50_ms"]) for r in lean}
    by_both = {(str(r["via"]), str(r["op"])): float(r["p50_ms"]) for r in lean}
    memget = by_both[("sidecar gRPC, lean client", "state get, state.in-memory (Dapr's setup)")]
    memget -= baseline
    http_get = by_both[("sidecar HTTP, lean client", "state get, state.in-memory (Dapr's setup)")]
    console.print(
        f"Dapr's method, state get over HTTP: added p50 {http_get - baseline:+.3f} ms here "
        "(Dapr v1.17 published +0.28 ms)"
    )
    hop = by_op["one loopback round trip to a C server"] - baseline
    console.print(
        f"Dapr's method, state get over gRPC: added p50 {memget:+.3f} ms here (Dapr v1.17 "
        f"published +0.12 ms on its own hardware); one loopback round trip between two C "
        f"programs (Redis PING) already takes {hop:.3f} ms p50 on this machine, and any "
        f"sidecar adds at least one: {memget - hop:+.3f} ms is the sidecar's own work"
    )
    if "grpc-go client -> grpc-go server" in by_via:
        go_go = by_via["grpc-go client -> grpc-go server"]
        console.print(
            f"grpc-go, the stack of daprd and of fortio (Dapr's load generator), takes {go_go:.3f} ms "
            f"p50 for a no-op call between its own client and server on this machine, so a daprd "
            f"state get measured by Dapr's method here adds at least that; the sidecar's state get "
            f"adds {memget:+.3f} ms. Same grpc-go client, server swapped: grpc-go "
            f"{go_go:.3f} ms, wonderland.h2grpc {by_via['grpc-go client -> wonderland.h2grpc']:.3f} ms."
        )
        go_http = by_via["Go net/http client -> Go net/http server"]
        console.print(
            f"Over HTTP, Go's net/http client and server take {go_http:.3f} ms p50 for a no-op "
            f"on this machine; the sidecar's state get by Dapr's method adds "
            f"{http_get - baseline:+.3f} ms. Go's client against the sidecar's /v1.0/healthz: "
            f"{by_via['Go net/http client -> sidecar HTTP']:.3f} ms."
        )
    else:
        console.print("(no Go rows: apt-get install golang-go golang-google-grpc-dev adds them)")
    console.print(
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs "
        "(figures from a busy machine are noisy; compare rows of the same run)"
    )


if __name__ == "__main__":
    main()
