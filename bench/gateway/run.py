"""The gateway's throughput and latency on its four protocol pairings, two checkouts side by
side in one run (the "before" and "after" of a change).

    python bench/gateway/run.py --before /path/to/other/checkout [--duration 5] [--rounds 3]

One gateway process per checkout (``bench/gateway/_gateway.py`` with that checkout's
``src`` first on the path) stands in front of the same two replicas: the stdlib HTTP/1.1
app of bench/serving (``minimal_app.py``) and ``nghttpd`` serving a small file over h2c.
Pairings: HTTP/1.1 to HTTP/1.1 and HTTP/1.1 to h2c with wrk (16 connections), HTTP/2 to
HTTP/1.1 and HTTP/2 to h2c with h2load (4 connections, 16 streams each). Rounds are
interleaved (before, after, after, before, ...); the median and the best round are
reported, and the gateway process's CPU time per request beside req/s (on a machine
shared with other work the best round is the steadier figure). Needs wrk and h2load
(apt-get install wrk nghttp2-client nghttp2-server).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _wrk import run_wrk  # noqa: E402

HOST = "bench.default.127.0.0.1.sslip.io"
H2C_HOST = "bench-h2c.default.127.0.0.1.sslip.io"
PAIRINGS = ("h1-h1", "h1-h2c", "h2-h1", "h2-h2c")


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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def h2load(port: int, host: str, duration: int) -> dict[str, float]:
    cmd = ["h2load", "-c4", "-m16", "-t1", f"-D{duration}", "--warm-up-time=1"]
    cmd += ["-H", f":authority: {host}", f"http://127.0.0.1:{port}/index.html"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out)
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    value = mean.group(1) if mean else "nan"
    scale = 1e-3 if value.endswith("us") else 1.0 if value.endswith("ms") else 1e3
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": float(re.sub(r"[a-z]+$", "", value)) * scale,  # h2load reports the mean
        "requests": float(done.group(1)) if done else 0.0,
        "errors": float(done.group(1)) - float(status.group(1)) if done and status else 0.0,
    }


def measure(pairing: str, port: int, duration: int) -> dict[str, float]:
    if pairing.startswith("h1-"):
        host = HOST if pairing == "h1-h1" else H2C_HOST
        return run_wrk(
            f"http://127.0.0.1:{port}/index.html",
            [f"Host: {host}"],
            threads=1,
            connections=16,
            duration=duration,
        )
    return h2load(port, HOST if pairing == "h2-h1" else H2C_HOST, duration)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the other checkout (its src/)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--pairings", default=",".join(PAIRINGS))
    args = parser.parse_args()
    for tool in ("wrk", "h2load"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: apt-get install wrk nghttp2-client")
    nghttpd = shutil.which("nghttpd") or "/usr/sbin/nghttpd"
    if not Path(nghttpd).exists():
        raise SystemExit("nghttpd is needed: apt-get install nghttp2-server")
    pairings = [p for p in args.pairings.split(",") if p]
    checkouts = {"before": Path(args.before).resolve(), "after": ROOT}
    docroot = Path(tempfile.mkdtemp(prefix="gwbench-"))
    (docroot / "index.html").write_bytes(b"hello")
    h1_port, h2c_port = free_port(), free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "serving" / "minimal_app.py")],
            env={**os.environ, "PORT": str(h1_port)},
            start_new_session=True,
        ),
        subprocess.Popen(
            [nghttpd, "--no-tls", "-d", str(docroot), "-n1", str(h2c_port)],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        ),
    ]
    gateways: dict[str, subprocess.Popen[str]] = {}
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        wait_port(h1_port)
        wait_port(h2c_port)
        for name, checkout in checkouts.items():
            gateways[name] = subprocess.Popen(
                [sys.executable, str(HERE / "_gateway.py"), str(h1_port), str(h2c_port)],
                env={**os.environ, "PYTHONPATH": str(checkout / "src")},
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        ports = {}
        for name, proc in gateways.items():
            assert proc.stdout is not None
            ports[name] = json.loads(proc.stdout.readline())
        for pairing in pairings:
            for name in checkouts:
                measure(pairing, ports[name], 1)  # warm up
            for i in range(args.rounds):
                order = ("before", "after") if i % 2 == 0 else ("after", "before")
                for name in order:
                    cpu0 = cpu_seconds(gateways[name].pid)
                    run = measure(pairing, ports[name], args.duration)
                    used = cpu_seconds(gateways[name].pid) - cpu0
                    run["cpu_us"] = used / max(1.0, run["requests"]) * 1e6
                    runs.setdefault((pairing, name), []).append(run)
    finally:
        for proc in (*gateways.values(), *procs):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        shutil.rmtree(docroot, ignore_errors=True)
    print(
        f"\ngateway, before ({checkouts['before']}) and after ({ROOT}): {os.cpu_count()} CPUs, "
        f"{args.duration}s x {args.rounds} interleaved rounds (median)"
    )
    print(
        f"{'pairing':<8} {'checkout':<8} {'req/s':>9} {'lat ms':>8} {'CPU us/req':>11} "
        f"{'errors':>7} {'req/s after/before':>19} {'CPU after/before':>17}"
    )
    summary = {}
    for pairing in pairings:
        med = {
            name: {
                k: statistics.median(r[k] for r in runs[(pairing, name)])
                for k in ("rps", "p50", "cpu_us", "errors")
            }
            for name in checkouts
        }
        summary[pairing] = med
        for name in checkouts:
            m = med[name]
            ratio = ""
            if name == "after":
                ratio = (
                    f"{m['rps'] / med['before']['rps']:>19.3f} "
                    f"{m['cpu_us'] / med['before']['cpu_us']:>17.3f}"
                )
            print(
                f"{pairing:<8} {name:<8} {m['rps']:>9.0f} {m['p50']:>8.3f} {m['cpu_us']:>11.1f} "
                f"{m['errors']:>7.0f} {ratio}"
            )
    print("best round (the least disturbed by other load on the machine):")
    for pairing in pairings:
        best = {
            name: (
                max(r["rps"] for r in runs[(pairing, name)]),
                min(r["cpu_us"] for r in runs[(pairing, name)]),
            )
            for name in checkouts
        }
        (rps_b, cpu_b), (rps_a, cpu_a) = best["before"], best["after"]
        print(
            f"{pairing:<8} req/s {rps_b:.0f} -> {rps_a:.0f} ({rps_a / rps_b:.3f}), "
            f"CPU us/req {cpu_b:.1f} -> {cpu_a:.1f} ({cpu_a / cpu_b:.3f})"
        )
    rounds = {
        f"{p}/{n}": [(round(r["rps"]), round(r["cpu_us"], 1)) for r in runs[(p, n)]]
        for p, n in runs
    }
    print("all rounds (req/s, CPU us/req):", json.dumps(rounds))


if __name__ == "__main__":
    main()
