"""Notebooks and datasets against doing it by hand, in one run.

    python bench/notebooks/run.py [--rounds 3] [--data-mb 1024]

1. **Notebook apply -> JupyterLab answering** ``<NB_PREFIX>/api/status`` with its token:
   cold (a new Notebook) and from stopped (``kubeflow-resource-stopped`` removed, as after
   culling), against ``python -m jupyterlab`` started by hand on a free port (median of
   ``--rounds``). The platform runs in this process (kubelet, notebook controller).
2. **``wonderland data add`` of a ``--data-mb`` folder** (64 files) against ``cp -r`` of the
   same folder (both to the same disk; median of ``--rounds``). ``data add`` also hashes
   every byte and reads the CSV schema.

Needs the notebook extra (``pip install 'wonderland[notebook]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
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

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from wonderland import datasets  # noqa: E402
from wonderland.notebooks.images import JUPYTER_ARGV  # noqa: E402
from wonderland.platform import Platform  # noqa: E402
from wonderland.settings import Settings  # noqa: E402

NOTEBOOKS = "notebooks.kubeflow.org"
IMAGE = "kubeflownotebookswg/jupyter-scipy:v1.10.0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def answers(url: str, token: str, deadline: float) -> float:
    """Seconds until ``url`` answers 200 with ``token``."""
    start = time.monotonic()
    async with httpx.AsyncClient(trust_env=False, timeout=2) as client:
        while time.monotonic() < deadline:
            try:
                r = await client.get(url, headers={"Authorization": f"token {token}"})
                if r.status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.02)
    raise TimeoutError(url)


def notebook(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "Notebook",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"name": name, "image": IMAGE}]}}},
    }


async def wait_pod(platform: Platform, name: str) -> tuple[str, str]:
    """The URL and token of the notebook's server once its pod exists."""
    store = platform.store
    while True:
        try:
            pod = store.get("pods", "default", f"{name}-0")
            secret = store.get("secrets", "default", f"{name}-notebook-token")
        except Exception:
            await asyncio.sleep(0.01)
            continue
        if pod["metadata"].get("deletionTimestamp"):
            await asyncio.sleep(0.01)
            continue
        port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
        token = base64.b64decode(secret["data"]["token"]).decode()
        return f"http://127.0.0.1:{port}/notebook/default/{name}/api/status", token


async def notebook_rounds(rounds: int) -> dict[str, list[float]]:
    home = Path(tempfile.mkdtemp()) / "home"
    platform = Platform.open(Settings(home=home, gateway_port=0, api_port=0))
    platform.install_plugins(("wonderland.workloads", "wonderland.notebooks"))
    await platform.start()
    out: dict[str, list[float]] = {"cold": [], "from stopped": []}
    try:
        store = platform.store
        for i in range(rounds):
            name = f"bench-{i}"
            t0 = time.monotonic()
            store.create(notebook(name))
            url, token = await wait_pod(platform, name)
            await answers(url, token, t0 + 120)
            out["cold"].append(time.monotonic() - t0)
            nb = store.get(NOTEBOOKS, "default", name)
            nb["metadata"]["annotations"] = {"kubeflow-resource-stopped": "now"}
            store.update(nb)
            while store.list("pods", "default", {"notebook-name": name})[0]:
                await asyncio.sleep(0.05)
            # let the stopped server's kernels and processes exit (they share the 2 cores)
            await asyncio.sleep(3)
            nb = store.get(NOTEBOOKS, "default", name)
            nb["metadata"]["annotations"] = {}
            t0 = time.monotonic()
            store.update(nb)
            url, token = await wait_pod(platform, name)
            await answers(url, token, t0 + 120)
            out["from stopped"].append(time.monotonic() - t0)
            store.delete(NOTEBOOKS, "default", name)
    finally:
        await platform.stop()
        platform.store.close()
        shutil.rmtree(home.parent, ignore_errors=True)
    return out


async def by_hand(rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        port = free_port()
        token = "bench"
        argv = [
            a.replace("$(PORT)", str(port)).replace("$(NB_PREFIX)", "/notebook/default/hand")
            for a in JUPYTER_ARGV
        ]
        env = {**os.environ, "JUPYTER_TOKEN": token}
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd=tempfile.gettempdir(),
        )
        try:
            await answers(
                f"http://127.0.0.1:{port}/notebook/default/hand/api/status", token, t0 + 120
            )
            times.append(time.monotonic() - t0)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    return times


class _Objects:
    """A store-less writer: what ``data add`` writes, kept in memory (the copy is the cost)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        from wonderland.errors import NotFoundError

        raise NotFoundError(name)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return obj

    def delete(self, resource: str, namespace: str | None, name: str) -> None:
        return None

    def list(self, resource: str | None, namespace: str | None = None) -> tuple[list[Any], str]:
        return [], ""


def data_rounds(rounds: int, megabytes: int) -> dict[str, list[float]]:
    root = Path(tempfile.mkdtemp(dir=REPO.parent if os.access(REPO.parent, os.W_OK) else None))
    source = root / "source"
    source.mkdir()
    per_file = megabytes * 1024 * 1024 // 64
    block = os.urandom(1024 * 1024)
    for i in range(64):
        with (source / f"part-{i:02d}.bin").open("wb") as f:
            left = per_file
            while left > 0:
                f.write(block[: min(left, len(block))])
                left -= len(block)
    (source / "table.csv").write_text("a,b\n1,x\n")
    out: dict[str, list[float]] = {"data add": [], "cp -r": []}
    try:
        for i in range(rounds):
            state = root / f"state-{i}"
            t0 = time.monotonic()
            datasets.add(_Objects(), state, f"d{i}", str(source))  # type: ignore[arg-type]
            out["data add"].append(time.monotonic() - t0)
            shutil.rmtree(state)
            t0 = time.monotonic()
            subprocess.run(["cp", "-r", str(source), str(root / f"copy-{i}")], check=True)
            out["cp -r"].append(time.monotonic() - t0)
            shutil.rmtree(root / f"copy-{i}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-mb", type=int, default=1024)
    args = parser.parse_args()
    nb = asyncio.run(notebook_rounds(args.rounds))
    hand = asyncio.run(by_hand(args.rounds))
    print("Notebook apply -> JupyterLab answering (median s)")
    print(f"  wonderland, cold            {statistics.median(nb['cold']):6.2f}")
    print(f"  wonderland, from stopped    {statistics.median(nb['from stopped']):6.2f}")
    print(f"  jupyter lab by hand         {statistics.median(hand):6.2f}")
    data = data_rounds(args.rounds, args.data_mb)
    size = args.data_mb
    print(f"Dataset of {size} MB, 65 files (median s)")
    for name, values in data.items():
        median = statistics.median(values)
        print(f"  {name:<28}{median:6.2f}   ({size / median:7.1f} MB/s)")


if __name__ == "__main__":
    main()
