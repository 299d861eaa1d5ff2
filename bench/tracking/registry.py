"""The registry on the serving path: ``models:/NAME@champion`` against ``file://``, and how
long an alias move takes to reach the traffic.

1. **Resolution + load** (p50/p99 of ``--rounds``): an iris classifier logged with
   ``mlflow.sklearn.log_model`` (``model.skops``) and registered, alias ``champion``:
   - ``file://``: the model folder on disk, loaded by the model server's mlflow runtime;
   - ``models:/iris@champion`` cold: alias → version → download location, files copied
     from the tracking server into an empty cache, then loaded the same way;
   - ``models:/iris@champion`` warm: the same with the cache filled (what a restart, a
     second InferenceService or a replica scaling from zero pays).
   The tracking server is the lean process on a free port, started once.
2. **Alias moved → new version serving** (p50 of ``--moves``): a real ``wonderland up``
   with its own tracking server; an InferenceService on ``models:/iris@champion``; the
   alias flips between versions 1 and 2 (MLflow client, as a user would), and the clock
   stops when the InferenceService is Ready with ``status.modelRegistry.version`` at the
   new version and 100% of the traffic on its latest revision.

    python bench/tracking/registry.py [--rounds 20] [--moves 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests"))
from _support.daemon import WonderlandDaemon, running_daemon, wait_for  # noqa: E402
from _support.mlflow import mlflow_server  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def log_iris(url: str, name: str, versions: int) -> None:
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(url)
    mlflow.set_experiment(name)
    x, y = load_iris(return_X_y=True, as_frame=True)
    for i in range(versions):
        with mlflow.start_run():
            model = LogisticRegression(C=0.01 * 100**i, max_iter=300).fit(x, y)
            mlflow.sklearn.log_model(
                model,
                name="model",
                input_example=x.head(2),
                registered_model_name=name,
                pip_requirements=["scikit-learn"],
            )
    MlflowClient(url).set_registered_model_alias(name, "champion", "1")


def resolution(rounds: int) -> None:
    from wonderland.inference.runtimes.mlflow import MLflowRuntime
    from wonderland.inference.storage import StorageContext, fetch
    from wonderland.tracking.client import RestClient
    from wonderland.tracking.resolve import download, resolve
    from wonderland.tracking.uris import parse

    root = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    try:
        with mlflow_server(root / "mlflow") as server:
            log_iris(server.url, "iris", 1)
            with RestClient(server.url) as client:
                local = download(client, resolve(client, parse("models:/iris/1")), root / "local")

            def load(path: Path) -> None:
                MLflowRuntime("iris", path).load()

            load(local)  # imports (sklearn, skops) paid once, outside the figures
            env = {"MLFLOW_TRACKING_URI": server.url}
            files, cold, warm = [], [], []
            for i in range(rounds):
                t = time.perf_counter()
                load(local)
                files.append(time.perf_counter() - t)
                ctx = StorageContext(root / f"cache-{i}", env=env)
                t = time.perf_counter()
                load(fetch("models:/iris@champion", ctx))
                cold.append(time.perf_counter() - t)
                t = time.perf_counter()
                load(fetch("models:/iris@champion", ctx))
                warm.append(time.perf_counter() - t)
        print(f"\nresolution + load of an iris model ({rounds} rounds), ms")
        print(f"{'':34} {'p50':>8} {'p99':>8} {'vs file://':>10}")
        base = statistics.median(files)
        for label, values in (
            ("file:// (folder on disk)", files),
            ("models:/iris@champion, cold cache", cold),
            ("models:/iris@champion, warm cache", warm),
        ):
            ratio = statistics.median(values) / base
            print(
                f"{label:34} {1000 * statistics.median(values):8.1f} "
                f"{1000 * pct(values, 0.99):8.1f} {ratio:9.2f}x"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def alias_moves(moves: int, poll: float) -> None:
    from mlflow import MlflowClient

    tmp = Path(tempfile.mkdtemp(prefix="bench-alias-"))
    daemon = WonderlandDaemon.in_tmp(tmp)
    daemon.env["WONDERLAND_MLFLOW_POLL_SECONDS"] = str(poll)
    try:
        with running_daemon(daemon):
            url = json.loads((daemon.home / "daemon.json").read_text())["mlflow"]["url"]
            log_iris(url, "iris", 2)
            isvc = {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "metadata": {"name": "iris"},
                "spec": {
                    "predictor": {
                        "minReplicas": 1,
                        "model": {
                            "modelFormat": {"name": "mlflow"},
                            "storageUri": "models:/iris@champion",
                        },
                    }
                },
            }
            daemon.ok("apply", "-f", "-", stdin=json.dumps(isvc))

            def serving(version: str) -> bool:
                out = daemon.run("get", "isvc", "iris", "-o", "json")
                if out.returncode != 0:
                    return False
                st: dict[str, Any] = json.loads(out.stdout).get("status") or {}
                ready = any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in st.get("conditions") or []
                )
                traffic = ((st.get("components") or {}).get("predictor") or {}).get("traffic") or []
                return (
                    ready
                    and (st.get("modelRegistry") or {}).get("version") == version
                    and any(t.get("latestRevision") and t.get("percent") == 100 for t in traffic)
                )

            wait_for(lambda: serving("1"), 120, "version 1 serving", log=daemon.log)
            client = MlflowClient(url)
            took = []
            for i in range(moves):
                target = "2" if i % 2 == 0 else "1"
                t = time.perf_counter()
                client.set_registered_model_alias("iris", "champion", target)
                wait_for(lambda v=target: serving(v), 120, f"version {target}", interval=0.05)
                took.append(time.perf_counter() - t)
        print(f"\nalias moved → new version serving ({moves} moves, poll {poll:g} s), s")
        print(f"p50 {statistics.median(took):.2f}  min {min(took):.2f}  max {max(took):.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--moves", type=int, default=5)
    parser.add_argument("--poll", type=float, default=2.0, help="WONDERLAND_MLFLOW_POLL_SECONDS")
    args = parser.parse_args()
    resolution(args.rounds)
    alias_moves(args.moves, args.poll)


if __name__ == "__main__":
    main()
