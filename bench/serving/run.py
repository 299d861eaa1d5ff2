"""Knative Serving on one machine: cold start, gateway overhead, rollouts and kill -9.

    python bench/serving/run.py [--duration 10] [--connections 16] [--cold-samples 24]

Starts a real ``wonderland up`` daemon and measures, in the same run:

1. cold start: a request to a revision at zero until the first byte (minimal Python
   HTTP app; the replica is started by the activator path);
2. gateway overhead: wrk (16 connections) straight to the replica, through our gateway,
   and through nginx ``proxy_pass`` with a keepalive upstream to the same replica (the
   peer; nginx and wrk come from apt);
3. failed requests while a new revision rolls out under constant load, and while a
   replica is killed with ``kill -9`` under load.

Knative itself needs a cluster, so its published figures are quoted for cold start
(0.8 s to 10 s) rather than measured here.
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
DOMAIN = "127.0.0.1.sslip.io"
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_tools() -> None:
    missing = [
        t
        for t in ("wrk", "nginx")
        if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()
    ]
    if missing:
        print(f"installing {', '.join(missing)} from apt ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def ksvc(
    name: str, app: Path, annotations: dict[str, str], env: dict[str, str] | None = None
) -> str:
    ann = "".join(f'\n        {k}: "{v}"' for k, v in annotations.items())
    env_lines = "".join(
        f'\n            - name: {k}\n              value: "{v}"' for k, v in (env or {}).items()
    )
    env_block = f"\n          env:{env_lines}" if env else ""
    return f"""---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {name}
  namespace: default
spec:
  template:
    metadata:
      annotations:{ann or " {}"}
    spec:
      containers:
        - image: bench
          command: ["{PY}", "{app}"]{env_block}
"""


class Daemon:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.gateway_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
        self.env.update(
            WONDERLAND_HOME=str(home),
            WONDERLAND_API_PORT="0",
            WONDERLAND_GATEWAY_PORT=str(self.gateway_port),
            WONDERLAND_LOG_LEVEL="warning",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, manifests: Path) -> None:
        log = (self.home.parent / "daemon.log").open("ab")
        self.proc = subprocess.Popen(
            [PY, "-m", "wonderland", "up", "-f", str(manifests)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not (self.home / "daemon.json").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    "the daemon did not start; see " + str(self.home.parent / "daemon.log")
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [PY, "-m", "wonderland", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(f"wonderland {' '.join(args)} failed: {out.stderr}")
        return out.stdout

    def revisions(self) -> dict[str, dict]:  # type: ignore[type-arg]
        items = json.loads(self.cli("get", "rev", "-o", "json")).get("items", [])
        return {i["metadata"]["name"]: i.get("status") or {} for i in items}


def ttfb(port: int, host: str) -> float:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(60)
        start = time.perf_counter()
        s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        first = s.recv(1)
        took = time.perf_counter() - start
        rest = first + s.recv(4096)
    if not rest.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"cold request failed: {rest[:80]!r}")
    return took


def wrk(url: str, connections: int, duration: int, host: str | None = None) -> dict[str, float]:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url]
    if host:
        cmd[1:1] = ["-H", f"Host: {host}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.MULTILINE)
        if not m:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if sock:
        errors += sum(int(g) for g in sock.groups())
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": rps,
        "p50": ms("50"),
        "p99": ms("99"),
        "errors": errors,
        "requests": float(total.group(1)) if total else 0.0,
    }


def replica_ports(home: Path, revision: str) -> list[tuple[int, int]]:
    """(port, pid) of the running replicas, from their logs."""
    found = []
    for log in sorted((home / "logs" / "default" / revision).glob("*.log")):
        lines = re.findall(r"listening on (\d+) pid (\d+)", log.read_text())
        if lines:
            port, pid = lines[-1]
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                continue
            found.append((int(port), int(pid)))
    return found


def nginx(upstream_port: int, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fcgi; uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  upstream replica {{ server 127.0.0.1:{upstream_port}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://replica;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}
}}
"""
    )
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([binary, "-c", str(conf)], start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("nginx did not start") from None
            time.sleep(0.05)
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved wrk rounds; the median is reported"
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--cold-samples", type=int, default=24, help="0 skips the cold starts")
    args = parser.parse_args()
    ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="wonderland-bench-"))
    home = work / "home"
    cold_n = 12
    manifests = work / "manifests.yaml"
    text = """apiVersion: v1
kind: ConfigMap
metadata:
  name: config-autoscaler
  namespace: knative-serving
data:
  stable-window: "6s"
  scale-to-zero-grace-period: "0s"
"""
    text += ksvc("hello", HERE / "hello_app.py", {"autoscaling.knative.dev/min-scale": "1"})
    text += ksvc("steady", HERE / "hello_app.py", {"autoscaling.knative.dev/min-scale": "2"})
    for i in range(cold_n):
        text += ksvc(f"cold{i}", HERE / "minimal_app.py", {})
    manifests.write_text(text)
    daemon = Daemon(home)
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, object] = {}
    try:
        daemon.start(manifests)
        gw = daemon.gateway_port
        print(f"daemon up, gateway on 127.0.0.1:{gw}; waiting for replicas ...", flush=True)
        deadline = time.monotonic() + 120
        while True:
            revs = daemon.revisions()
            if (
                revs.get("hello-00001", {}).get("actualReplicas") == 1
                and revs.get("steady-00001", {}).get("actualReplicas") == 2
            ):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"replicas did not become ready: {revs}")
            time.sleep(0.5)

        # 1. cold starts
        samples: list[float] = []
        while len(samples) < max(args.cold_samples, 0):
            deadline = time.monotonic() + 120
            while True:
                revs = daemon.revisions()
                zero = [
                    f"cold{i}"
                    for i in range(cold_n)
                    if revs.get(f"cold{i}-00001", {}).get("actualReplicas") == 0
                    and revs.get(f"cold{i}-00001", {}).get("desiredReplicas") == 0
                ]
                if len(zero) == cold_n:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("cold revisions did not scale to zero")
                time.sleep(0.5)
            for name in zero:
                if len(samples) >= args.cold_samples:
                    break
                samples.append(ttfb(gw, f"{name}.default.{DOMAIN}"))
            print(f"  cold starts so far: {len(samples)}", flush=True)
        samples.sort()
        results["cold"] = samples

        # 2. gateway overhead against the same replica
        port = replica_ports(home, "hello-00001")[0][0]
        ng, ng_port = nginx(port, work)
        procs.append(ng)
        host = f"hello.default.{DOMAIN}"
        wrk(f"http://127.0.0.1:{gw}/", args.connections, 2, host)  # warm up
        runs: dict[str, list[dict[str, float]]] = {"direct": [], "ours": [], "peer": []}
        for _ in range(args.rounds):
            # interleaved, so that noise from other work on the machine hits all three
            runs["direct"].append(wrk(f"http://127.0.0.1:{port}/", args.connections, args.duration))
            runs["ours"].append(
                wrk(f"http://127.0.0.1:{gw}/", args.connections, args.duration, host)
            )
            runs["peer"].append(
                wrk(f"http://127.0.0.1:{ng_port}/", args.connections, args.duration, host)
            )
        direct, ours, peer = (_median_run(runs[k]) for k in ("direct", "ours", "peer"))

        # 3a. a rollout under constant load
        rollout_manifest = work / "rollout.yaml"
        rollout_manifest.write_text(
            ksvc(
                "hello",
                HERE / "hello_app.py",
                {"autoscaling.knative.dev/min-scale": "1"},
                {"VERSION": "2"},
            )
        )
        load = subprocess.Popen(
            [
                "wrk",
                "-H",
                f"Host: {host}",
                "-t2",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                f"http://127.0.0.1:{gw}/",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)
        daemon.cli("apply", "-f", str(rollout_manifest))
        out, _ = load.communicate()
        rollout_errors = _errors(out)
        rollout_total = _total(out)
        revs = daemon.revisions()
        rolled = revs.get("hello-00002", {}).get("actualReplicas", 0) >= 1

        # 3b. kill -9 of a replica under load
        steady_host = f"steady.default.{DOMAIN}"
        load = subprocess.Popen(
            [
                "wrk",
                "-H",
                f"Host: {steady_host}",
                "-t2",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                f"http://127.0.0.1:{gw}/",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)
        victims = replica_ports(home, "steady-00001")
        os.kill(victims[0][1], signal.SIGKILL)
        out, _ = load.communicate()
        kill_errors = _errors(out)
        kill_total = _total(out)
    finally:
        for p in procs:
            with_suppress_kill(p)
        daemon.stop()

    cold = results["cold"]
    assert isinstance(cold, list)
    cold = cold or [float("nan")]
    p50 = statistics.median(cold) * 1000
    p99 = cold[min(len(cold) - 1, round(0.99 * (len(cold) - 1)))] * 1000
    print()
    print(
        f"machine: {os.cpu_count()} CPUs; wrk -t2 -c{args.connections} -d{args.duration}s, "
        f"median of {args.rounds} interleaved rounds; nginx worker_processes 1"
    )
    print()
    print("cold start (request to a revision at zero -> first byte), minimal Python app")
    print(
        f"  samples {len(cold)}   median {p50:.0f} ms   p99 {p99:.0f} ms   max {cold[-1] * 1000:.0f} ms"
    )
    print("  Knative (published, not measured here): 0.8 s to 10 s; its SLA is 10 s")
    print()
    print(f"{'path':<34}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'vs nginx':>10}")
    for label, r in (
        ("direct to the replica", direct),
        ("wonderland gateway", ours),
        ("nginx proxy_pass (keepalive)", peer),
    ):
        print(
            f"{label:<34}{r['rps']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{int(r['errors']):>8}{r['rps'] / peer['rps']:>9.2f}x"
        )
    print(
        f"  gateway added p50: {ours['p50'] - direct['p50']:+.2f} ms (nginx: {peer['p50'] - direct['p50']:+.2f} ms)"
    )
    print()
    print(
        f"rollout under load: {rollout_errors} failed of {rollout_total} requests; new revision serving: {rolled}"
    )
    print(f"kill -9 of a replica under load: {kill_errors} failed of {kill_total} requests")
    print(f"(work folder {work})")


def _median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median throughput (its latencies come with it); errors summed."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    mid = dict(ordered[len(ordered) // 2])
    mid["errors"] = sum(r["errors"] for r in runs)
    return mid


def _errors(out: str) -> int:
    n = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        n += int(m.group(1))
    s = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if s:
        n += sum(int(g) for g in s.groups())
    return n


def _total(out: str) -> int:
    m = re.search(r"(\d+) requests in", out)
    return int(m.group(1)) if m else 0


def with_suppress_kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


if __name__ == "__main__":
    main()
