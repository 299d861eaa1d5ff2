"""The REST client and URI resolution against a real MLflow server (the pinned version)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _support.mlflow import mlflow_server, needs_mlflow

from wonderland.errors import InvalidError
from wonderland.tracking.client import RestClient, TrackingUnavailable
from wonderland.tracking.resolve import UnknownModel, download, resolve
from wonderland.tracking.uris import ModelUri, RunUri, parse

pytestmark = needs_mlflow


def test_uris_parse_as_mlflow_reads_them() -> None:
    assert parse("models:/iris/3") == ModelUri(name="iris", version="3")
    assert parse("models:/iris@champion") == ModelUri(name="iris", alias="champion")
    assert parse("models:/iris/latest") == ModelUri(name="iris", latest=True)
    assert parse("models:/iris/2/MLmodel") == ModelUri(name="iris", version="2", path="MLmodel")
    assert parse("runs:/abc123/model") == RunUri("abc123", "model")
    assert str(parse("models:/iris@champion")) == "models:/iris@champion"
    with pytest.raises(InvalidError, match="stages were deprecated"):
        parse("models:/iris/Production")
    with pytest.raises(InvalidError, match="is not a version"):
        parse("models:/iris/v2")
    with pytest.raises(InvalidError, match="one slash"):
        parse("models://iris/1")


def test_resolve_and_download_a_logged_model(tmp_path: Path) -> None:
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    with mlflow_server(tmp_path / "mlflow") as server:
        mlflow.set_tracking_uri(server.url)
        mlflow.set_experiment("iris")
        x, y = load_iris(return_X_y=True)
        with mlflow.start_run() as run:
            model = LogisticRegression(max_iter=300).fit(x, y)
            mlflow.sklearn.log_model(
                model, name="model", registered_model_name="iris", pip_requirements=[]
            )
        MlflowClient(server.url).set_registered_model_alias("iris", "champion", "1")
        client = RestClient(server.url)
        for uri in (
            "models:/iris@champion",
            "models:/iris/latest",
            f"runs:/{run.info.run_id}/model",
        ):
            found = resolve(client, parse(uri))
            assert found.run_id == run.info.run_id
            folder = download(client, found, tmp_path / "dl" / uri.replace("/", "_"))
            assert (folder / "MLmodel").read_text().count("sklearn") >= 1
            assert (folder / "model.skops").stat().st_size > 1000
        one = download(client, resolve(client, parse("models:/iris/1/MLmodel")), tmp_path / "one")
        assert one.name == "MLmodel" and one.is_file()
        with pytest.raises(UnknownModel, match="alias nope not found"):
            resolve(client, parse("models:/iris@nope"))
        with pytest.raises(UnknownModel, match=r"name=ghost, version=1\) not found"):
            resolve(client, parse("models:/ghost/1"))
    with pytest.raises(TrackingUnavailable, match="cannot be reached"):
        RestClient(server.url, timeout=2).registered_model("iris")
