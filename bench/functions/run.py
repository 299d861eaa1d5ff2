"""Functions benchmark: wonderland's function host against Knative's func-python runtime.

    python bench/functions/run.py [--cold N] [--duration S] [--connections C] [--platform]

Both serve the same function (``wonderland func create -t http``) on loopback:

* ``cold start``: spawn the runtime process, time until the first answer of ``GET /``
  (median and p99 over N spawns); this is what a scale-from-zero pays for the process;
* ``warm``: wrk against the running function (throughput, p50 and p99 latency).

With ``--platform`` (add ``--short-windows`` to make scaling to zero quick) it also
measures, on a running ``wonderland up``, the cold start of the function deployed with
``wonderland func deploy`` beside a plain Knative Service running an ASGI app under
uvicorn (``asgi_service.py``): each at zero, one request through the gateway, in turns.

The peer (func-python, the middleware Knative's Python scaffolding runs under
Hypercorn) is installed into its own virtualenv under ``bench/.venv-func-python``.
"""

from __future__ import annotations

import argparse
import http.client
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
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
PEER_VENV = BENCH / ".venv-func-python"
PEER_VERSION = "func-python==0.8.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_peer() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        print(f"installing {PEER_VERSION} into {PEER_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", PEER_VERSION, "httpx"], check=True
        )
    return python


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "update", "-q"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
    return shutil.which("wrk") or "wrk"


def ours_argv(root: Path) -> list[str]:
    # as func deploy starts a replica: func.yaml was validated at deploy time
    return [sys.executable, "-m", "wonderland.functions.host", "--invoke", "http", str(root)]


def peer_argv(python: Path, root: Path) -> list[str]:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from function import new; from func_python.http import serve; serve(new)"
    )
    return [str(python), "-c", code, str(root)]


def spawn(argv: list[str], port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update({"PORT": str(port), "LISTEN_ADDRESS": f"127.0.0.1:{port}"})
    return subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def first_answer(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"runtime exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status == 200:
                return
        except OSError:
            time.sleep(0.001)
    raise RuntimeError("no answer within timeout")


def kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def cold_starts(argv: list[str], runs: int) -> list[float]:
    times: list[float] = []
    for _ in range(runs):
        port = free_port()
        start = time.perf_counter()
        proc = spawn(argv, port)
        try:
            first_answer(port, proc)
            times.append((time.perf_counter() - start) * 1000)
        finally:
            kill(proc)
    return times


def warm(argv: list[str], wrk: str, duration: int, connections: int) -> dict[str, float]:
    port = free_port()
    proc = spawn(argv, port)
    try:
        first_answer(port, proc)
        url = f"http://127.0.0.1:{port}/"
        subprocess.run([wrk, "-t1", "-c4", "-d1s", url], capture_output=True, check=False)
        out = subprocess.run(
            [wrk, "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        kill(proc)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _latency(out, "50%"),
        "p99": _latency(out, "99%"),
    }


def _latency(out: str, label: str) -> float:
    match = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)\b", out)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _service_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "image": "bench/asgi-service",
                            "command": [sys.executable, "-m", "uvicorn", "asgi_service:app"],
                            "args": ["--port", "$(PORT)", "--no-access-log", "--ws", "none"],
                            "workingDir": str(HERE),
                        }
                    ]
                }
            }
        },
    }


def platform_cold_start(
    root: Path, runs: int, short_windows: bool
) -> dict[str, list[float]] | None:
    """Deploy the function with func deploy and, beside it, a plain uvicorn Knative Service;
    then, in turns, wait until each is at zero and time one request through the gateway."""
    from wonderland.functions.deploy import deploy_function, platform_client
    from wonderland.functions.invoke import gateway_address

    client = platform_client()
    if client is None:
        print("--platform: no running platform (wonderland up) found; skipped")
        return None
    if short_windows:
        client.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "config-autoscaler", "namespace": "knative-serving"},
                "data": {"stable-window": "6s", "scale-to-zero-grace-period": "1s"},
            }
        )
    result = deploy_function(root, progress=print)
    client.apply(_service_manifest("bench-service"))
    targets = {"function": ("bench-fn", result.url), "service": ("bench-service", "")}
    deadline = time.monotonic() + 120
    while not targets["service"][1]:
        svc = client.get("Service", "default", "bench-service") or {}
        url = str((svc.get("status") or {}).get("url") or "")
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (svc.get("status") or {}).get("conditions") or []
        )
        if url and ready:
            targets["service"] = ("bench-service", url)
        elif time.monotonic() > deadline:
            raise RuntimeError("bench-service did not become Ready")
        time.sleep(0.2)
    gw_host, gw_port = gateway_address().split("://", 1)[-1].rsplit(":", 1)

    def replicas(name: str) -> tuple[int, int] | None:
        revision = client.get("Revision", "default", f"{name}-00001") or {}
        status = revision.get("status") or {}
        if status.get("actualReplicas") is None:
            return None
        return int(status.get("actualReplicas") or 0), int(status.get("desiredReplicas") or 0)

    def wait(name: str, at_zero: bool) -> None:
        deadline = time.monotonic() + 300
        while True:
            current = replicas(name)
            if current is not None and (current == (0, 0) if at_zero else current[0] >= 1):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not scale as expected ({current})")
            time.sleep(0.2)

    times: dict[str, list[float]] = {kind: [] for kind in targets}
    for _ in range(runs):
        for kind, (name, url) in targets.items():
            wait(name, at_zero=True)
            time.sleep(1.0)  # let the old replica finish stopping
            start = time.perf_counter()
            conn = http.client.HTTPConnection(gw_host, int(gw_port), timeout=60)
            conn.request("GET", "/", headers={"Host": url.split("://", 1)[-1]})
            response = conn.getresponse()
            response.read()
            times[kind].append((time.perf_counter() - start) * 1000)
            if response.status != 200:
                raise RuntimeError(f"{name} answered {response.status}")
            # Seen up again before the next wait for zero, so that a stale status read
            # right after this request cannot pass for "at zero".
            wait(name, at_zero=False)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=20, help="cold starts per runtime")
    parser.add_argument("--duration", type=int, default=10, help="wrk seconds per runtime")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--platform", action="store_true", help="also time a deployed function")
    parser.add_argument("--platform-runs", type=int, default=8, help="cold starts at zero")
    parser.add_argument(
        "--short-windows",
        action="store_true",
        help="set config-autoscaler stable-window 6s / scale-to-zero-grace-period 1s on the "
        "platform so each scale to zero takes seconds, not 90 s",
    )
    args = parser.parse_args()

    from wonderland.functions.create import create_function

    peer_python = ensure_peer()
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        root = create_function(Path(tmp) / "bench-fn").root
        runtimes = {"wonderland": ours_argv(root), "func-python": peer_argv(peer_python, root)}
        # Interleaved, so that load from other work on the machine hits both alike.
        cold: dict[str, list[float]] = {name: [] for name in runtimes}
        for _ in range(args.cold):
            for name, argv in runtimes.items():
                cold[name] += cold_starts(argv, 1)
        hot = {
            name: warm(argv, wrk, args.duration, args.connections)
            for name, argv in runtimes.items()
        }
        deployed = (
            platform_cold_start(root, args.platform_runs, args.short_windows)
            if args.platform
            else None
        )

    ours, peer = "wonderland", "func-python"
    print()
    print(f"{'metric':<34}{ours:>14}{peer:>14}{'ratio':>10}")
    rows = [
        (
            "process cold start p50 (ms)",
            statistics.median(cold[ours]),
            statistics.median(cold[peer]),
            False,
        ),
        ("process cold start p99 (ms)", pct(cold[ours], 0.99), pct(cold[peer], 0.99), False),
        ("warm throughput (req/s)", hot[ours]["rps"], hot[peer]["rps"], True),
        ("warm latency p50 (ms)", hot[ours]["p50"], hot[peer]["p50"], False),
        ("warm latency p99 (ms)", hot[ours]["p99"], hot[peer]["p99"], False),
    ]
    for label, a, b, higher_better in rows:
        ratio = (a / b) if higher_better else (b / a if a else float("nan"))
        print(f"{label:<34}{a:>14.1f}{b:>14.1f}{ratio:>9.2f}x")
    print("(ratio > 1 means wonderland is better)")
    if deployed:
        fn, svc = deployed["function"], deployed["service"]
        print()
        print(f"cold start at zero through the gateway ({len(fn)} runs each)")
        print(f"{'':<34}{'function':>14}{'uvicorn ksvc':>14}{'ratio':>10}")
        for label, q in (("p50 (ms)", 0.5), ("max (ms)", 1.0)):
            a, b = pct(fn, q), pct(svc, q)
            print(f"{label:<34}{a:>14.1f}{b:>14.1f}{b / a:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
