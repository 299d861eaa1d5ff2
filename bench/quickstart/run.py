"""Time from `make up` to every service Ready, and the platform's memory with the demo idle.

    python bench/quickstart/run.py [--runs 3] [--idle 5]

Each run starts `make -o install up` (dependencies already installed, as the issue asks)
with a fresh state directory and free ports, polls the control API every 50 ms for the
five Knative Services of examples/conference, waits ``--idle`` seconds with no traffic,
then sums the memory of the daemon and every process under it (RSS and PSS; PSS splits
shared pages between processes, so it is the honest total). The first run also builds the
four app folders into the state directory; the model is trained once per checkout.

The peer, the demo's own install (kind, Istio, Knative, Dapr, KServe, Kafka, Redis and
PostgreSQL from salaboy/kubecon-china-2023's install/install.sh), needs a container engine
and the network, which this machine does not have; its row quotes the issue's figure
("about ten minutes of install") and is marked as not measured here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SERVICES = (
    "agenda-service",
    "c4p-service",
    "frontend",
    "notifications-service",
    "sklearn-iris-predictor",
)
TIMEOUT = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    out, todo = [root], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _memory(pid: int) -> tuple[float, float]:
    """(RSS MB, PSS MB) of one process."""
    rss = pss = 0
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss / 1024, pss / 1024


def _ready(items: list[dict[str, Any]]) -> set[str]:
    out = set()
    for item in items:
        conditions = (item.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            out.add(item["metadata"]["name"])
    return out


def one_run(home: Path, idle: float) -> dict[str, Any]:
    from wonderland.control.client import ControlClient

    env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
    env.update(
        WONDERLAND_HOME=str(home),
        WONDERLAND_API_PORT=str(_free_port()),
        WONDERLAND_GATEWAY_PORT=str(_free_port()),
    )
    log = home.parent / f"{home.name}.log"
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "-o", "install", "up"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client: ControlClient | None = None
    ready_at: dict[str, float] = {}
    try:
        while len(ready_at) < len(SERVICES):
            if proc.poll() is not None:
                raise SystemExit(f"make up exited: {log.read_text()[-2000:]}")
            if time.monotonic() - start > TIMEOUT:
                raise SystemExit(f"not Ready after {TIMEOUT:.0f}s: {sorted(ready_at)}")
            if (
                client is None
                and (home / "kubeconfig").exists()
                and (home / "daemon.json").exists()
            ):
                client = ControlClient.for_state_dir(home)
            if client is not None:
                with contextlib.suppress(Exception):
                    listing = client.request(
                        "GET", "/apis/serving.knative.dev/v1/namespaces/default/services"
                    )
                    now = time.monotonic() - start
                    for name in _ready(listing.get("items") or []):
                        ready_at.setdefault(name, now)
            time.sleep(0.05)
        time.sleep(idle)
        daemon = int(json.loads((home / "daemon.json").read_text())["pid"])
        procs = _tree(daemon)
        mem = [_memory(p) for p in procs]
        return {
            "ready_s": max(ready_at.values()),
            "per_service": ready_at,
            "processes": len(procs),
            "rss_mb": sum(m[0] for m in mem),
            "pss_mb": sum(m[1] for m in mem),
        }
    finally:
        if client is not None:
            client.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before measuring")
    args = parser.parse_args()
    if not (REPO / ".venv" / "bin" / "wonderland").exists():
        print("run `make install` first: the benchmark starts from installed dependencies")
        return 1
    results = []
    with tempfile.TemporaryDirectory(prefix="wl-bench-quickstart-") as tmp:
        for i in range(args.runs):
            # Run 1 builds the app folders into a fresh state directory; later runs reuse it.
            home = Path(tmp) / "home"
            res = one_run(home, args.idle)
            res["run"] = i + 1
            results.append(res)
            print(
                f"run {i + 1}: all Ready in {res['ready_s']:.2f} s; "
                + ", ".join(f"{k} {v:.2f}" for k, v in sorted(res["per_service"].items()))
                + f"; {res['processes']} processes, RSS {res['rss_mb']:.0f} MB, "
                f"PSS {res['pss_mb']:.0f} MB",
                flush=True,
            )
    warm = results[1:] or results
    print()
    print("| system | make up -> all Ready (s) | memory idle, all processes | note |")
    print("|---|---|---|---|")
    print(
        f"| wonderland, first run (fresh state dir) | {results[0]['ready_s']:.1f} | "
        f"RSS {results[0]['rss_mb']:.0f} MB / PSS {results[0]['pss_mb']:.0f} MB | "
        f"{results[0]['processes']} processes |"
    )
    print(
        f"| wonderland, later runs (median of {len(warm)}) | "
        f"{statistics.median(r['ready_s'] for r in warm):.1f} | "
        f"RSS {statistics.median(r['rss_mb'] for r in warm):.0f} MB / "
        f"PSS {statistics.median(r['pss_mb'] for r in warm):.0f} MB | |"
    )
    print(
        "| demo install.sh (kind + Istio + Knative + Dapr + KServe + Kafka + Redis + PostgreSQL) "
        "| ~600 (issue's figure, not measured: needs a container engine and network) | n/a | |"
    )
    ratio = 600 / statistics.median(r["ready_s"] for r in warm)
    print(f"\nratio (peer's quoted install time / ours): about {ratio:.0f}x")
    print("aims: under 10 s and under 600 MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
