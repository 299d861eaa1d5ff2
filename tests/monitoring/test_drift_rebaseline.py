"""Re-baselining against a real MLflow registry: a detector reading
``models:/NAME@champion/reference.csv`` follows the alias, so when the champion moves to a
version trained on the shifted data, that traffic no longer drifts; a version whose sample
has other columns is refused and the old reference stays."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from _support.daemon import free_port, kill_group, wait_for
from _support.mlflow import mlflow_server, needs_mlflow
from prometheus_client import CollectorRegistry

import wonderland
from wonderland.monitoring.drift.detector import DetectorConfig, DriftDetector
from wonderland.monitoring.drift.reference import ReferenceSource
from wonderland.monitoring.drift.refresh import ReferenceRefresher
from wonderland.monitoring.drift.server import DriftDetectorApp

pytestmark = [needs_mlflow, pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

SRC = str(Path(wonderland.__file__).resolve().parent.parent)
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SHIFT = np.array([0.0, 0.0, 3.0, 1.5])


def iris() -> np.ndarray:
    from sklearn import datasets

    return np.asarray(datasets.load_iris().data)


def _csv(path: Path, columns: list[str], rows: np.ndarray) -> Path:
    lines = [",".join(columns)] + [",".join(f"{v:g}" for v in r[: len(columns)]) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One server; ``register(name, samples)`` registers one version per sample (its
    ``reference.csv`` next to the model, as examples/mdlc/train.yaml stores it)."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.dummy import DummyClassifier

    root = tmp_path_factory.mktemp("mlflow-rebaseline")
    with mlflow_server(root / "server") as server:
        mlflow.set_tracking_uri(server.url)
        mlflow.set_experiment("drift")
        client = MlflowClient(server.url)
        model = DummyClassifier().fit(iris(), np.zeros(len(iris())))

        def register(name: str, samples: list[tuple[list[str], np.ndarray]]) -> None:
            for i, (columns, rows) in enumerate(samples, start=1):
                with mlflow.start_run():
                    info = mlflow.sklearn.log_model(
                        model, name="model", registered_model_name=name, pip_requirements=[]
                    )
                    folder = root / f"{name}-{i}"
                    folder.mkdir()
                    client.log_model_artifact(
                        info.model_id, str(_csv(folder / "reference.csv", columns, rows))
                    )
            client.set_registered_model_alias(name, "champion", "1")

        try:
            yield {"url": server.url, "client": client, "register": register}
        finally:
            # set_tracking_uri() also set MLFLOW_TRACKING_URI in os.environ for later tests
            mlflow.set_tracking_uri(None)


def _event(ce_id: str, rows: np.ndarray) -> tuple[dict[str, str], bytes]:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": ce_id,
        "ce-type": "org.kubeflow.serving.inference.request",
        "ce-source": "http://localhost:9081/",
        "ce-inferenceservicename": "iris",
        "ce-namespace": "default",
        "content-type": "application/json",
    }
    return headers, orjson.dumps({"instances": rows.tolist()})


def _drifted(n: int, seed: int) -> np.ndarray:
    data = iris()
    return data[np.random.default_rng(seed).choice(len(data), n, replace=False)] + SHIFT


def test_a_moved_champion_becomes_the_reference(registry: dict[str, Any], tmp_path: Path) -> None:
    data = iris()
    registry["register"]("iris-rebase", [(COLUMNS, data), (COLUMNS, data + SHIFT)])
    port = free_port()
    log = tmp_path / "detector.log"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registry["url"],
        "WONDERLAND_HOME": str(tmp_path / "home"),
        "PYTHONPATH": SRC,
    }
    env.pop("PORT", None)
    env.pop("DAPR_HTTP_PORT", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wonderland.monitoring.drift",
                "--storage_uri=models:/iris-rebase@champion/reference.csv",
                "--model_name=iris",
                "--drift_batch_size=50",
                "--reference_refresh=0.3",
                f"--http_port={port}",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10, trust_env=False) as http:

            def up() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(log.read_text())
                try:
                    return http.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up, 60, "the drift detector", log=log)

            def post(tag: str, rows: np.ndarray) -> None:
                for i in range(0, len(rows), 10):
                    headers, body = _event(f"{tag}{i}", rows[i : i + 10])
                    r = http.post("/", content=body, headers=headers)
                    assert r.status_code == 202, r.text

            def service() -> dict[str, Any]:
                status = http.get("/").json()
                items = status["inferenceServices"]
                return dict(items[0]) if items else {}

            status = http.get("/").json()
            assert status["reference"]["version"] == "1"
            assert status["reference"]["uri"] == "models:/iris-rebase/1/reference.csv"
            # shifted traffic drifts from version 1's sample
            post("a", _drifted(50, 0))
            wait_for(lambda: service().get("windowsTested") == 1, 30, "the first window")
            assert service()["windowsDrifted"] == 1
            post("b", _drifted(20, 1))  # part of a window, pending
            assert service()["pending"] == 20

            # version 2 was trained on the shifted data: the champion moves there
            registry["client"].set_registered_model_alias("iris-rebase", "champion", "2")
            wait_for(
                lambda: http.get("/").json()["reference"]["version"] == "2",
                30,
                "the detector switching to version 2",
                log=log,
            )
            status = http.get("/").json()
            assert status["reference"]["uri"] == "models:/iris-rebase/2/reference.csv"
            assert status["reference"]["switches"] == 1
            assert service()["pending"] == 0  # the window of version 1's time was dropped
            metrics = http.get("/metrics").text
            assert 'wonderland_drift_reference_version{inferenceservice="iris"} 2.0' in metrics
            assert 'wonderland_drift_detected{inferenceservice="iris"} 0.0' in metrics

            # the same shifted traffic is now what the champion was trained on
            post("c", _drifted(50, 2))
            wait_for(lambda: service().get("windowsTested") == 2, 30, "the second window")
            assert service()["windowsDrifted"] == 1
            assert service()["last"]["detected"] is False
    finally:
        kill_group(proc)
    text = log.read_text()
    assert "re-baselined: comparing with version 2" in text, text


def test_a_sample_with_other_columns_is_refused(registry: dict[str, Any], tmp_path: Path) -> None:
    data = iris()
    registry["register"](
        "iris-columns", [(COLUMNS, data), (["sepal_length", "sepal_width", "petal_area"], data)]
    )
    env = {"MLFLOW_TRACKING_URI": registry["url"], "WONDERLAND_HOME": str(tmp_path / "home")}
    source = ReferenceSource("models:/iris-columns@champion/reference.csv", env=env)
    assert source.follows_alias
    reference = source.load()
    assert reference.version == "1" and list(reference.columns) == COLUMNS

    events: list[dict[str, Any]] = []

    class Recording:
        name = "memory"

        async def publish(self, event: dict[str, Any]) -> None:
            events.append(event)

    prom = CollectorRegistry()
    detector = DriftDetector(
        reference, DetectorConfig(batch_size=50, model_name="iris"), prom, [Recording()]
    )
    refresher = ReferenceRefresher(source, detector, period=1.0)
    app = DriftDetectorApp(detector, prom)

    async def go() -> tuple[list[bool], dict[str, Any], str]:
        checks = [await refresher.check()]  # the alias has not moved
        registry["client"].set_registered_model_alias("iris-columns", "champion", "2")
        checks += [await refresher.check(), await refresher.check()]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:
            for i, rows in enumerate(np.split(_drifted(50, 3), 5)):
                headers, body = _event(f"d{i}", rows)
                r = await client.post("/", content=body, headers=headers)
                assert r.status_code == 202, r.text
            await detector.drain()
            return checks, (await client.get("/")).json(), (await client.get("/metrics")).text

    checks, status, metrics = asyncio.run(go())
    assert checks == [False, False, False]
    # the old reference stays, and says why the new one was not taken
    assert status["reference"]["version"] == "1"
    assert status["reference"]["switches"] == 0
    error = status["reference"]["error"]
    assert "version 2" in error and "sepal_length, sepal_width, petal_area" in error
    assert "sepal_length, sepal_width, petal_length, petal_width" in error
    line = 'wonderland_drift_reference_errors_total{inferenceservice="iris",reason="columns"} 1.0'
    assert line in metrics  # counted once, not on every look
    assert 'wonderland_drift_reference_version{inferenceservice="iris"} 1.0' in metrics
    # drift is still tested against version 1, and the event says so
    [event] = events
    assert event["data"]["referenceVersion"] == "1"
    assert event["data"]["reference"] == "models:/iris-columns/1/reference.csv"
