"""What tracing costs the gateway: throughput and latency with WONDERLAND_TRACING off,
propagate and on, side by side in one run.

    python bench/traces/run.py [--duration 5] [--rounds 3] [--connections 16] [--incoming]

Three gateway processes (one per mode, as the daemon runs it) stand in front of the same
minimal replica (bench/serving/minimal_app.py); wrk (from apt) loads each in turn,
interleaved over ``--rounds`` rounds, and the median round is reported with the ratios to
``off``. Besides req/s and latency it reports the gateway process's CPU time per request
(from /proc), which other load on the machine disturbs far less than throughput.
``--incoming`` sends a client ``traceparent`` (the gateway continues the trace) instead
of none (the gateway starts one per request).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _wrk import run_wrk

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
HOST = "bench.default.127.0.0.1.sslip.io"
MODES = ("off", "propagate", "on")
INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout:g}s")


def wrk(port: int, connections: int, duration: int, incoming: bool) -> dict[str, float]:
    headers = [f"Host: {HOST}"] + ([f"traceparent: {INCOMING}"] if incoming else [])
    return run_wrk(
        f"http://127.0.0.1:{port}/",
        headers,
        threads=2,
        connections=connections,
        duration=duration,
    )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median kept)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--incoming", action="store_true", help="clients send a traceparent")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    replica_port = free_port()
    replica = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "serving" / "minimal_app.py")],
        env={**env, "PORT": str(replica_port)},
        start_new_session=True,
    )
    gateways = {
        mode: subprocess.Popen(
            [sys.executable, str(HERE / "_gateways.py"), str(replica_port), mode],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for mode in MODES
    }
    try:
        wait_port(replica_port)
        ports: dict[str, int] = {}
        for mode, proc in gateways.items():
            assert proc.stdout is not None
            ports[mode] = json.loads(proc.stdout.readline())
        for mode in MODES:
            wrk(ports[mode], args.connections, 1, args.incoming)  # warm up
        runs: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
        for i in range(args.rounds):
            order = MODES if i % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                before = cpu_seconds(gateways[mode].pid)
                run = wrk(ports[mode], args.connections, args.duration, args.incoming)
                used = cpu_seconds(gateways[mode].pid) - before
                run["cpu_us"] = used / max(1.0, run["requests"]) * 1e6
                runs[mode].append(run)
    finally:
        for proc in (*gateways.values(), replica):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
    median = {m: {k: statistics.median(r[k] for r in runs[m]) for k in runs[m][0]} for m in MODES}
    base = median["off"]
    print(
        f"\ngateway tracing cost: {os.cpu_count()} CPUs, wrk -t2 -c{args.connections} "
        f"-d{args.duration}s x {args.rounds} interleaved rounds (median), "
        f"{'client sends traceparent' if args.incoming else 'no client traceparent'}"
    )
    print(
        f"{'mode':<10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'req/s vs off':>13} "
        f"{'CPU us/req':>11} {'CPU vs off':>11} {'errors':>7}"
    )
    for mode in MODES:
        m = median[mode]
        print(
            f"{mode:<10} {m['rps']:>10.0f} {m['p50']:>8.3f} {m['p99']:>8.3f} "
            f"{m['rps'] / base['rps']:>13.3f} {m['cpu_us']:>11.2f} "
            f"{m['cpu_us'] / base['cpu_us']:>11.3f} {m['errors']:>7.0f}"
        )
    for mode in ("propagate", "on"):
        cost = 1 - median[mode]["rps"] / base["rps"]
        cpu = median[mode]["cpu_us"] / base["cpu_us"] - 1
        print(
            f"cost of {mode}: throughput {cost * 100:+.1f}%, gateway CPU per request "
            f"{cpu * 100:+.1f}% (aim: at most 5%)"
        )
    rounds = {m: [(round(r["rps"]), round(r["cpu_us"], 2)) for r in runs[m]] for m in MODES}
    print("all rounds (req/s, CPU us/req):", json.dumps(rounds))


if __name__ == "__main__":
    main()
