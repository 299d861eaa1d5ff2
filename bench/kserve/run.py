"""InferenceService benchmark: cold start from zero and the transformer chain's cost.

    python bench/kserve/run.py [--runs 10] [--requests 500]

Runs, in one go on this machine:

1. Cold start of the sklearn iris InferenceService at ``minReplicas: 0`` through the
   gateway: request sent until the first response byte, model load included (the
   predictor is Ready only once ``/v2/health/ready`` says the model is loaded). Beside it,
   the same model as a bare process (``wonderland serve``) and as KServe's own Python model
   server (pip ``kserve``, in bench/.venv-kserve): process start until the first answered
   prediction. On a cluster KServe's serverless cold start adds pod scheduling and the
   queue-proxy on top of the bare process time.
2. Warm V1 ``:predict`` latency of predictor alone vs transformer + predictor, ours through
   the gateway (as the InferenceService's URL is called) and KServe's (its transformer
   ``Model`` forwarding to its predictor, directly on loopback): the added p50.
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

import httpx
import yaml

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
ROOT = BENCH.parent
PEER_PKGS = ["kserve==0.21.0", "joblib"]
ROWS = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
DOMAIN = "127.0.0.1.sslip.io"


def sh(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True)


def ensure_venv() -> Path:
    import sklearn

    venv = BENCH / ".venv-kserve"
    py = venv / "bin" / "python"
    marker = venv / ".bench-installed"
    if not marker.exists():
        sh([sys.executable, "-m", "venv", "--clear", str(venv)])
        sh(
            [
                str(py),
                "-m",
                "pip",
                "install",
                "-q",
                *PEER_PKGS,
                f"scikit-learn=={sklearn.__version__}",
            ]
        )  # same pickle format as ours
        marker.touch()
    return py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def train(work: Path) -> Path:
    sys.path.insert(0, str(ROOT / "examples" / "inference"))
    from train import train as train_iris

    return train_iris(work / "iris").parent


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def process_cold_start(argv: list[str], port: int, model: str, log: Path) -> float:
    """Process start until the first answered prediction (polling, as an activator does)."""
    t0 = time.perf_counter()
    proc = start(argv, log)
    try:
        with httpx.Client(timeout=5) as client:
            while True:
                try:
                    r = client.post(f"http://127.0.0.1:{port}/v1/models/{model}:predict", json=ROWS)
                    if r.status_code == 200:
                        return time.perf_counter() - t0
                except httpx.TransportError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"{argv[0]} exited: {log.read_text()[-2000:]}")
                time.sleep(0.005)
    finally:
        kill(proc)


class Platform:
    def __init__(self, work: Path) -> None:
        self.home = work / "home"
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
        self.env.update(
            WONDERLAND_HOME=str(self.home),
            WONDERLAND_API_PORT="0",
            WONDERLAND_GATEWAY_PORT=str(self.port),
        )
        self.log = work / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def up(self, manifests: Path) -> None:
        self.proc = start(
            [sys.executable, "-m", "wonderland", "up", "-f", str(manifests)], self.log, self.env
        )
        deadline = time.monotonic() + 60
        while not (self.home / "daemon.json").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(self.log.read_text())
            time.sleep(0.1)

    def cli(self, *args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            [sys.executable, "-m", "wonderland", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return dict(json.loads(self.cli("get", kind, name, "-o", "json")))

    def wait_ready(self, name: str, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            obj = self.get("isvc", name)
            for c in (obj.get("status") or {}).get("conditions") or []:
                if c["type"] == "Ready" and c["status"] == "True":
                    return obj
            time.sleep(0.5)
        raise RuntimeError(f"isvc/{name} not ready: {obj.get('status')}")

    def actual_replicas(self, revision: str) -> int:
        return int((self.get("revision", revision).get("status") or {}).get("actualReplicas", -1))


def first_byte(url: str, host: str) -> float:
    t0 = time.perf_counter()
    with (
        httpx.Client(timeout=120) as client,
        client.stream("POST", url, json=ROWS, headers={"Host": host}) as resp,
    ):
        next(resp.iter_raw(1), b"")
        elapsed = time.perf_counter() - t0
        assert resp.status_code == 200, resp.status_code
    return elapsed


def warm(url: str, host: str | None, n: int) -> tuple[list[float], float]:
    headers = {"Host": host} if host else {}
    lat: list[float] = []
    with httpx.Client(timeout=60) as client:
        for _ in range(20):
            client.post(url, json=ROWS, headers=headers)
        t_all = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            r = client.post(url, json=ROWS, headers=headers)
            lat.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
        total = time.perf_counter() - t_all
    return lat, n / total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10, help="cold starts per row")
    ap.add_argument("--requests", type=int, default=500, help="warm requests per row")
    ap.add_argument("--no-peer", action="store_true", help="skip KServe (no install)")
    opts = ap.parse_args()
    peer_py = None if opts.no_peer else ensure_venv()
    work = Path(tempfile.mkdtemp(prefix="bench-kserve-"))
    model_dir = train(work)
    rows: list[tuple[str, str, float, float, str]] = []

    # -- 1. cold start --------------------------------------------------------------
    manifests = work / "config.yaml"
    manifests.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-autoscaler\n"
        "  namespace: knative-serving\ndata:\n  stable-window: 6s\n"
        "  scale-to-zero-grace-period: 1s\n"
    )
    plat = Platform(work)
    plat.up(manifests)
    try:
        transformer = [sys.executable, str(HERE / "transformer_app.py")]
        objs = [
            {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "metadata": {"name": name, "namespace": "default"},
                "spec": spec,
            }
            for name, spec in (
                (
                    "iris-zero",
                    {
                        "predictor": {
                            "minReplicas": 0,
                            "model": {
                                "modelFormat": {"name": "sklearn"},
                                "storageUri": str(model_dir),
                            },
                        }
                    },
                ),
                (
                    "iris",
                    {
                        "predictor": {
                            "model": {
                                "modelFormat": {"name": "sklearn"},
                                "storageUri": str(model_dir),
                            }
                        }
                    },
                ),
                (
                    "chain",
                    {
                        "predictor": {
                            "model": {
                                "modelFormat": {"name": "sklearn"},
                                "storageUri": str(model_dir),
                            }
                        },
                        "transformer": {
                            "containers": [
                                {
                                    "name": "kserve-container",
                                    "image": "bench-transformer",
                                    "command": transformer,
                                }
                            ]
                        },
                    },
                ),
            )
        ]
        plat.cli("apply", "-f", "-", stdin=yaml.safe_dump_all(objs))
        for name in ("iris-zero", "iris", "chain"):
            plat.wait_ready(name)
        rev = plat.get("ksvc", "iris-zero-predictor")["status"]["latestReadyRevisionName"]
        url = f"http://127.0.0.1:{plat.port}/v1/models/iris-zero:predict"
        host = f"iris-zero-predictor.default.{DOMAIN}"
        ours_cold: list[float] = []
        for i in range(opts.runs):
            deadline = time.monotonic() + 120
            while plat.actual_replicas(rev) != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("the predictor did not scale to zero")
                time.sleep(0.3)
            time.sleep(1.0)  # the replica process is gone, not just unrouted
            ours_cold.append(first_byte(url, host))
            print(
                f"  isvc cold start {i + 1}/{opts.runs}: {ours_cold[-1] * 1000:.0f} ms", flush=True
            )
        rows.append(
            (
                "cold start, isvc at zero via gateway",
                "wonderland",
                statistics.median(ours_cold),
                pct(ours_cold, 0.99),
                "s",
            )
        )

        # -- 2. warm chain vs predictor --------------------------------------------
        g = f"http://127.0.0.1:{plat.port}"
        pred_lat, pred_rps = warm(
            f"{g}/v1/models/iris:predict", f"iris.default.{DOMAIN}", opts.requests
        )
        chain_lat, chain_rps = warm(
            f"{g}/v1/models/chain:predict", f"chain.default.{DOMAIN}", opts.requests
        )
    finally:
        if plat.proc is not None:
            kill(plat.proc)

    bare: list[float] = []
    for _ in range(opts.runs):
        port = free_port()
        bare.append(
            process_cold_start(
                [
                    sys.executable,
                    "-m",
                    "wonderland",
                    "serve",
                    "--model_name",
                    "iris",
                    "--model_dir",
                    str(model_dir),
                    "--http_port",
                    str(port),
                    "--enable_grpc",
                    "false",
                    "--model_format",
                    "sklearn",
                ],
                port,
                "iris",
                work / "serve.log",
            )
        )
    rows.append(
        (
            "cold start, bare process",
            "wonderland serve",
            statistics.median(bare),
            pct(bare, 0.99),
            "s",
        )
    )

    peer: dict[str, Any] = {}
    if peer_py is not None:
        kcold: list[float] = []
        for _ in range(opts.runs):
            port = free_port()
            kcold.append(
                process_cold_start(
                    [
                        str(peer_py),
                        str(HERE / "kserve_peer.py"),
                        "predictor",
                        "--model_name",
                        "iris",
                        "--model_dir",
                        str(model_dir),
                        "--http_port",
                        str(port),
                        "--grpc_port",
                        str(free_port()),
                    ],
                    port,
                    "iris",
                    work / "kserve.log",
                )
            )
        rows.append(
            (
                "cold start, bare process",
                "kserve 0.21",
                statistics.median(kcold),
                pct(kcold, 0.99),
                "s",
            )
        )
        pport, tport = free_port(), free_port()
        pproc = start(
            [
                str(peer_py),
                str(HERE / "kserve_peer.py"),
                "predictor",
                "--model_name",
                "iris",
                "--model_dir",
                str(model_dir),
                "--http_port",
                str(pport),
                "--grpc_port",
                str(free_port()),
            ],
            work / "kserve-pred.log",
        )
        tproc = start(
            [
                str(peer_py),
                str(HERE / "kserve_peer.py"),
                "transformer",
                "--model_name",
                "iris",
                "--predictor_host",
                f"127.0.0.1:{pport}",
                "--http_port",
                str(tport),
                "--grpc_port",
                str(free_port()),
            ],
            work / "kserve-tr.log",
        )
        try:
            for port in (pport, tport):
                deadline = time.monotonic() + 60
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if httpx.get(f"http://127.0.0.1:{port}/v1/models/iris").status_code == 200:
                            break
                    if time.monotonic() > deadline:
                        raise RuntimeError("kserve peer did not start")
                    time.sleep(0.1)
            kp_lat, kp_rps = warm(
                f"http://127.0.0.1:{pport}/v1/models/iris:predict", None, opts.requests
            )
            kc_lat, kc_rps = warm(
                f"http://127.0.0.1:{tport}/v1/models/iris:predict", None, opts.requests
            )
            peer = {"pred": (kp_lat, kp_rps), "chain": (kc_lat, kc_rps)}
        finally:
            kill(tproc)
            kill(pproc)

    print()
    print(f"{'measure':44} {'server':18} {'p50/median':>11} {'p99':>9}")
    for what, who, med, p99, _ in rows:
        print(f"{what:44} {who:18} {med * 1000:9.0f}ms {p99 * 1000:7.0f}ms")
    if len(rows) >= 3:
        print(f"  cold start ratio kserve/wonderland serve (median): {rows[2][2] / rows[1][2]:.2f}")
    print()
    print(f"{'warm V1 :predict (sequential)':44} {'server':18} {'p50':>9} {'p99':>9} {'req/s':>8}")

    def line(label: str, who: str, lat: list[float], rps: float) -> None:
        print(
            f"{label:44} {who:18} {statistics.median(lat) * 1000:7.2f}ms "
            f"{pct(lat, 0.99) * 1000:7.2f}ms {rps:8.0f}"
        )

    line("predictor (isvc URL via gateway)", "wonderland", pred_lat, pred_rps)
    line("transformer + predictor (via gateway)", "wonderland", chain_lat, chain_rps)
    added = statistics.median(chain_lat) - statistics.median(pred_lat)
    print(f"  added p50 by the transformer: {added * 1000:.2f} ms (wonderland)")
    if peer:
        line("predictor (direct)", "kserve 0.21", *peer["pred"])
        line("transformer + predictor (direct)", "kserve 0.21", *peer["chain"])
        kadded = statistics.median(peer["chain"][0]) - statistics.median(peer["pred"][0])
        print(f"  added p50 by the transformer: {kadded * 1000:.2f} ms (kserve)")
        print(
            f"  chain p50 ratio kserve/wonderland: "
            f"{statistics.median(peer['chain'][0]) / statistics.median(chain_lat):.2f}"
        )


if __name__ == "__main__":
    main()
