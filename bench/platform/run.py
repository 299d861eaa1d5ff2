"""Control-plane benchmark: wonderland's store and control API beside etcd.

etcd is the store under kube-apiserver; wonderland keeps objects in SQLite behind its
own Kubernetes-shaped API. The same sequential workload (create, get, conditional
update of ConfigMap-sized objects) runs against:

- wonderland's control API (HTTPS, bearer token, validation, SQLite WAL), as kubectl
  and the kubernetes client reach it;
- wonderland's Store in-process (what controllers call);
- etcd v3 through its HTTP/JSON gateway (creates as put, updates as a txn comparing
  mod_revision, as kube-apiserver does).

etcd comes from Debian (``apt-get install -y etcd-server``); it needs no virtualenv.
Run: ``python bench/platform/run.py [--count N]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_etcd() -> str:
    found = shutil.which("etcd")
    if found:
        return found
    print("installing etcd-server with apt-get ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "etcd-server"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which("etcd")
    if not found:
        raise SystemExit("etcd is not on PATH after installing etcd-server")
    return found


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start within {timeout} s")
        time.sleep(0.05)


def configmap(i: int, value: str = "v1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"cm-{i}", "namespace": "default", "labels": {"bench": "yes"}},
        "data": {"key": value * 64, "other": "x" * 256},
    }


def measure(name: str, count: int, op: Callable[[int], None]) -> dict[str, Any]:
    times = []
    start = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        op(i)
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    times.sort()
    return {
        "name": name,
        "ops": count / total,
        "p50": statistics.median(times) * 1000,
        "p99": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
    }


def bench_wonderland_api(count: int, tmp: Path) -> list[dict[str, Any]]:
    home = tmp / "wonderland"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
    env.update(WONDERLAND_HOME=str(home), WONDERLAND_API_PORT="0", WONDERLAND_GATEWAY_PORT="0")
    env["WONDERLAND_LOG_LEVEL"] = "warning"
    log = open(tmp / "wonderland.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "wonderland", "up"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: (home / "daemon.json").exists(), "wonderland up")
        import yaml

        config = yaml.safe_load((home / "kubeconfig").read_text())
        server = config["clusters"][0]["cluster"]["server"]
        ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
        token = config["users"][0]["user"]["token"]
        context = ssl.create_default_context(cadata=ca.decode())
        url = f"{server}/api/v1/namespaces/default/configmaps"
        with httpx.Client(verify=context, headers={"Authorization": f"Bearer {token}"}) as http:
            versions: dict[int, str] = {}

            def create(i: int) -> None:
                answer = http.post(url, json=configmap(i))
                answer.raise_for_status()
                versions[i] = answer.json()["metadata"]["resourceVersion"]

            def get(i: int) -> None:
                http.get(f"{url}/cm-{i}").raise_for_status()

            def update(i: int) -> None:
                body = configmap(i, "v2")
                body["metadata"]["resourceVersion"] = versions[i]
                http.put(f"{url}/cm-{i}", json=body).raise_for_status()

            return [
                measure("create", count, create),
                measure("get", count, get),
                measure("update (conditional)", count, update),
            ]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def bench_wonderland_store(count: int, tmp: Path) -> list[dict[str, Any]]:
    from wonderland.store import Store

    store = Store.open(tmp / "store-only")
    versions: dict[int, str] = {}

    def create(i: int) -> None:
        versions[i] = store.create(configmap(i))["metadata"]["resourceVersion"]

    def get(i: int) -> None:
        store.get("configmaps", "default", f"cm-{i}")

    def update(i: int) -> None:
        body = configmap(i, "v2")
        body["metadata"]["resourceVersion"] = versions[i]
        store.update(body)

    try:
        return [
            measure("create", count, create),
            measure("get", count, get),
            measure("update (conditional)", count, update),
        ]
    finally:
        store.close()


def bench_etcd(count: int, tmp: Path) -> list[dict[str, Any]]:
    etcd = ensure_etcd()
    client, peer = free_port(), free_port()
    base = f"http://127.0.0.1:{client}"
    log = open(tmp / "etcd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            etcd,
            "--data-dir",
            str(tmp / "etcd"),
            "--listen-client-urls",
            base,
            "--advertise-client-urls",
            base,
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"default=http://127.0.0.1:{peer}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    try:
        wait_for(healthy, "etcd")
        with httpx.Client(base_url=base) as http:
            revisions: dict[int, int] = {}

            def key(i: int) -> str:
                return b64(f"/registry/configmaps/default/cm-{i}")

            def create(i: int) -> None:
                # kube-apiserver creates with a txn: only if the key does not exist yet.
                txn = {
                    "compare": [
                        {"key": key(i), "target": "MOD", "result": "EQUAL", "mod_revision": "0"}
                    ],
                    "success": [
                        {"request_put": {"key": key(i), "value": b64(json.dumps(configmap(i)))}}
                    ],
                }
                answer = http.post("/v3/kv/txn", json=txn)
                answer.raise_for_status()
                revisions[i] = int(answer.json()["header"]["revision"])

            def get(i: int) -> None:
                http.post("/v3/kv/range", json={"key": key(i)}).raise_for_status()

            def update(i: int) -> None:
                txn = {
                    "compare": [
                        {
                            "key": key(i),
                            "target": "MOD",
                            "result": "EQUAL",
                            "mod_revision": str(revisions[i]),
                        }
                    ],
                    "success": [
                        {
                            "request_put": {
                                "key": key(i),
                                "value": b64(json.dumps(configmap(i, "v2"))),
                            }
                        }
                    ],
                }
                answer = http.post("/v3/kv/txn", json=txn)
                answer.raise_for_status()
                if not answer.json().get("succeeded"):
                    raise SystemExit("etcd refused a conditional update")

            return [
                measure("create", count, create),
                measure("get", count, get),
                measure("update (conditional)", count, update),
            ]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--count", type=int, default=1000, help="objects per operation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wl-bench-") as raw:
        tmp = Path(raw)
        results = {
            "wonderland API (HTTPS)": bench_wonderland_api(args.count, tmp),
            "wonderland Store (in-process)": bench_wonderland_store(args.count, tmp),
            "etcd 3 JSON gateway (HTTP)": bench_etcd(args.count, tmp),
        }
    peer = {r["name"]: r for r in results["etcd 3 JSON gateway (HTTP)"]}
    print(f"\nsequential, one client, {args.count} ConfigMaps (~700 bytes) per operation")
    header = (
        f"{'system':32} {'operation':22} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs etcd':>8}"
    )
    print(header)
    print("-" * len(header))
    for system, rows in results.items():
        for row in rows:
            ratio = row["ops"] / peer[row["name"]]["ops"]
            print(
                f"{system:32} {row['name']:22} {row['ops']:9.0f} {row['p50']:8.2f} "
                f"{row['p99']:8.2f} {ratio:7.2f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
