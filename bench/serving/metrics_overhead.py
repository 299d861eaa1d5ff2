"""What the gateway's request metrics cost: throughput and latency with them and without.

    python bench/serving/metrics_overhead.py [--rounds 5] [--duration 5] [--connections 16]

Starts one replica (``minimal_app.py``, the smallest asyncio HTTP server) and two gateways
in their own processes (on uvloop, as in the daemon), each routing one revision to that
replica: ``metrics`` records every request as it does in the daemon
(``kn_serving_invocation_duration_seconds``, the legacy ``revision_request_*`` and so on),
``baseline`` has the recorder unbound (no metric code on the hot path). wrk (from apt)
drives them in alternating rounds of the same length, so both see the same machine; the
report gives the median requests/s and p50/p99 of each, and the ratio metrics/baseline.
At the end it reads ``/metrics`` of the recording gateway and checks that it counted every
request wrk made.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _wrk import run_wrk

HERE = Path(__file__).resolve().parent
HOST = "bench.default.127.0.0.1.sslip.io"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"nothing listens on {port} after {timeout:g}s") from None
            time.sleep(0.05)


def serve_gateway(port: int, replica: int, record: bool) -> None:
    """Run one gateway (the child process)."""
    import uvloop

    from wonderland.gateway import GatewayServer, HostRoute, RoutingTable

    async def main() -> None:
        table = RoutingTable()
        gateway = GatewayServer(table, port=port)
        target = table.revision("default", "bench-00001")
        target.service = target.configuration = "bench"
        if not record:
            target.recorder = None  # the baseline: no metric code on the hot path
        target.scaled_to_zero = False
        target.set_endpoints([("127.0.0.1", replica, "bench-00001-deployment-1")])
        table.set_route("default/bench", {HOST: HostRoute("default/bench", [(target, 100)])})
        await gateway.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await gateway.stop()

    uvloop.run(main())


def wrk(port: int, connections: int, duration: int) -> dict[str, float]:
    return run_wrk(
        f"http://127.0.0.1:{port}/",
        [f"Host: {HOST}"],
        threads=1,
        connections=connections,
        duration=duration,
    )


def counted(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    prefix = "kn_serving_invocation_duration_seconds_count{"
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--serve", nargs=3, metavar=("PORT", "REPLICA", "RECORD"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        serve_gateway(int(args.serve[0]), int(args.serve[1]), args.serve[2] == "on")
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    procs: list[subprocess.Popen[bytes]] = []
    try:
        replica = free_port()
        procs.append(
            subprocess.Popen(
                [sys.executable, str(HERE / "minimal_app.py")],
                env={**os.environ, "PORT": str(replica)},
            )
        )
        wait_port(replica)
        ports = {"metrics": free_port(), "baseline": free_port()}
        for mode, port in ports.items():
            record = "on" if mode == "metrics" else "off"
            cmd = [sys.executable, __file__, "--serve", str(port), str(replica), record]
            procs.append(subprocess.Popen(cmd))
            wait_port(port)
        for port in ports.values():  # warm both up
            wrk(port, args.connections, 1)
        before = counted(ports["metrics"])
        runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in ports}
        for i in range(args.rounds):
            order = list(ports) if i % 2 == 0 else list(reversed(ports))
            for mode in order:
                runs[mode].append(wrk(ports[mode], args.connections, args.duration))
        made = sum(r["requests"] for r in runs["metrics"])
        seen = counted(ports["metrics"]) - before
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    rounds = f"{args.rounds} x {args.duration}s rounds each, alternating"
    print(f"\ngateway -> minimal replica, wrk -c{args.connections}, {rounds}")
    print(f"{'':10} {'req/s':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for mode in ("baseline", "metrics"):
        errors = sum(r["errors"] for r in runs[mode])
        print(
            f"{mode:10} {med(mode, 'rps'):10.0f} {med(mode, 'p50'):8.3f} "
            f"{med(mode, 'p90'):8.3f} {med(mode, 'p99'):8.3f} {errors:7.0f}"
        )
    ratio = med("metrics", "rps") / med("baseline", "rps")
    p50 = med("metrics", "p50") / med("baseline", "p50")
    p99 = med("metrics", "p99") / med("baseline", "p99")
    print(f"ratio metrics/baseline: throughput {ratio:.3f}, p50 {p50:.3f}, p99 {p99:.3f}")
    print(
        f"requests wrk made (metrics runs): {made:.0f}; counted in /metrics: {seen:.0f} "
        f"(wrk leaves up to {args.connections} in flight uncounted per round)"
    )


if __name__ == "__main__":
    main()
