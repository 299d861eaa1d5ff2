"""storageUri models:/ runs:/ mlflow-artifacts: against a real MLflow server: resolved
through the registry, cached by resolved location, served by modelFormat mlflow."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _support.mlflow import mlflow_server, needs_mlflow

from wonderland.inference.dataplane import DataPlane
from wonderland.inference.repository import ModelRepository, ModelSource
from wonderland.inference.storage import ALLOW_REMOTE_PICKLE, StorageContext, StorageError, fetch
from wonderland.inference.types import InferInput, InferRequest
from wonderland.tracking.resolve import resolve_version

pytestmark = [needs_mlflow, pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

ROWS = np.asarray([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6], [5.1, 3.5, 1.4, 0.2]])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One server for the module: iris v1 (LogisticRegression, skops) aliased champion,
    iris v2 (a constant DummyClassifier), and a cloudpickled model registered as pickled."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("mlflow-serving")
    with mlflow_server(root / "server") as server:
        mlflow.set_tracking_uri(server.url)
        mlflow.set_experiment("iris")
        x, y = load_iris(return_X_y=True)
        v1 = LogisticRegression(max_iter=500).fit(x, y)
        with mlflow.start_run() as run:
            info = mlflow.sklearn.log_model(
                v1, name="model", registered_model_name="iris", pip_requirements=[]
            )
        v2 = DummyClassifier(strategy="constant", constant=2).fit(x, y)
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                v2, name="model", registered_model_name="iris", pip_requirements=[]
            )
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                v1,
                name="model",
                registered_model_name="pickled",
                serialization_format="cloudpickle",
                pip_requirements=[],
            )
        client = MlflowClient(server.url)
        client.set_registered_model_alias("iris", "champion", "1")
        yield {
            "url": server.url,
            "client": client,
            "run_id": run.info.run_id,
            "artifacts": info.artifact_path,
            "model_uri": info.model_uri,
            "v1": v1.predict(ROWS).tolist(),
            "v2": [2, 2, 2],
            "root": root,
        }


def _ctx(reg: dict[str, Any], tmp_path: Path, **annotations: str) -> StorageContext:
    return StorageContext(
        tmp_path / "state", env={"MLFLOW_TRACKING_URI": reg["url"]}, annotations=annotations
    )


def _predict(path: Path) -> list[int]:
    async def go() -> list[int]:
        repo = ModelRepository([ModelSource("iris", path, "mlflow")])
        try:
            await repo.load("iris")
            response = await DataPlane(repo).infer(
                InferRequest("iris", [InferInput("input-0", [3, 4], "FP64", ROWS)])
            )
            return [int(v) for v in response.outputs[0].data]
        finally:
            await repo.close()

    return asyncio.run(go())


def test_every_uri_form_fetches_and_serves(registry: dict[str, Any], tmp_path: Path) -> None:
    from wonderland.tracking.client import RestClient

    ctx = _ctx(registry, tmp_path)
    champion = fetch("models:/iris@champion", ctx)
    assert (champion / "MLmodel").is_file() and (champion / "model.skops").is_file()
    assert champion.is_relative_to(ctx.cache_dir)
    assert _predict(champion) == registry["v1"]
    # same version, same resolved location: the cached copy
    assert fetch("models:/iris/1", ctx) == champion
    assert fetch(f"runs:/{registry['run_id']}/model", ctx) == champion
    latest = fetch("models:/iris/latest", ctx)
    assert _predict(latest) == registry["v2"]
    with RestClient(registry["url"]) as client:
        location = client.download_uri("iris", "1")
    assert location.startswith("mlflow-artifacts:")
    assert fetch(location, ctx) == champion
    single = fetch("models:/iris/1/MLmodel", ctx)
    assert single.name == "MLmodel" and single.is_file()


def test_a_moved_alias_fetches_the_new_version(registry: dict[str, Any], tmp_path: Path) -> None:
    ctx = _ctx(registry, tmp_path)
    client = registry["client"]
    client.set_registered_model_alias("iris", "moving", "1")
    first = fetch("models:/iris@moving", ctx)
    assert _predict(first) == registry["v1"]
    client.set_registered_model_alias("iris", "moving", "2")
    second = fetch("models:/iris@moving", ctx)
    assert second != first
    assert _predict(second) == registry["v2"]
    pinned = resolve_version("models:/iris@moving", registry["url"])
    assert pinned.uri == "models:/iris/2" and pinned.version == "2" and pinned.run_id
    assert resolve_version("models:/iris/1", registry["url"]).uri == "models:/iris/1"


def test_unknown_names_carry_the_registrys_message(
    registry: dict[str, Any], tmp_path: Path
) -> None:
    ctx = _ctx(registry, tmp_path)
    with pytest.raises(StorageError, match=r"models:/iris@nope: .*alias nope not found"):
        fetch("models:/iris@nope", ctx)
    with pytest.raises(StorageError, match=r"name=iris, version=9\) not found"):
        fetch("models:/iris/9", ctx)
    with pytest.raises(StorageError, match=r"ghost"):
        fetch("models:/ghost/latest", ctx)
    with pytest.raises(StorageError, match="stages were deprecated"):
        fetch("models:/iris/Production", ctx)
    bare = StorageContext(tmp_path / "state", env={})
    with pytest.raises(StorageError, match="MLFLOW_TRACKING_URI is not set"):
        fetch("models:/iris/1", bare)
    down = StorageContext(tmp_path / "state", env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    with pytest.raises(StorageError, match="cannot be reached"):
        fetch("models:/iris/1", down)


def test_a_remote_pickle_needs_the_annotation(registry: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=f"cloudpickle.*{ALLOW_REMOTE_PICKLE}"):
        fetch("models:/pickled/1", _ctx(registry, tmp_path))
    allowed = fetch("models:/pickled/1", _ctx(registry, tmp_path, **{ALLOW_REMOTE_PICKLE: "true"}))
    assert (allowed / "model.pkl").is_file()
    assert _predict(allowed) == registry["v1"]
