"""Promotion behind the evaluation gate, lineage, and following an alias, against a real
MLflow server (the pinned version)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.mlflow import MlflowServer, mlflow_server, needs_mlflow

from wonderland.errors import InvalidError
from wonderland.kserve.model_pins import ModelPins, PinError
from wonderland.tracking.access import ExternalTracking
from wonderland.tracking.client import MlflowApiError, RestClient
from wonderland.tracking.registry import archive, lineage, promote, register_run_model, restore

pytestmark = needs_mlflow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A server with the model `clf`: version 1 (accuracy 0.8, loss 0.5), version 2
    (accuracy 0.9, loss 0.7) and version 3 from a run that logged no metric."""
    from mlflow import MlflowClient

    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as srv:
        c = MlflowClient(srv.url)
        exp = c.create_experiment("clf")
        c.create_registered_model("clf")
        for accuracy, loss in ((0.8, 0.5), (0.9, 0.7), (None, None)):
            run = c.create_run(
                exp,
                tags={
                    "wonderland.kind": "TrainJob",
                    "wonderland.namespace": "default",
                    "wonderland.name": "clf-train",
                    "wonderland.code.digest": "sha256:abc",
                },
            )
            c.log_param(run.info.run_id, "C", "0.5")
            if accuracy is not None:
                c.log_metric(run.info.run_id, "accuracy", accuracy)
                c.log_metric(run.info.run_id, "loss", loss)
            c.create_model_version("clf", f"runs:/{run.info.run_id}/model", run.info.run_id)
        yield srv


def test_promote_moves_an_alias_only_past_the_gate(server: MlflowServer) -> None:
    with RestClient(server.url) as client:
        first = promote(client, "clf", "1", "champion")
        assert first.moved and first.reason == "new alias"
        worse = promote(client, "clf", "2", "champion", if_better="loss", direction="minimize")
        assert not worse.moved
        assert "loss=0.7, not lower than champion (version 1) with 0.5" in worse.reason
        better = promote(client, "clf", "2", "champion", if_better="accuracy")
        assert better.moved and better.reason == "accuracy 0.8 → 0.9"
        assert client.version_by_alias("clf", "champion")["version"] == "2"
        same = promote(client, "clf", "2", "champion")
        assert not same.moved and "already is version 2" in same.reason
        missing = promote(client, "clf", "3", "champion", if_better="accuracy")
        assert not missing.moved and "has no 'accuracy' metric" in missing.reason
        with pytest.raises(MlflowApiError, match="not found"):
            promote(client, "clf", "9", "champion")
        with pytest.raises(InvalidError, match="is not a model version"):
            promote(client, "clf", "two", "champion")


def test_lineage_goes_from_version_to_run_to_workload(server: MlflowServer) -> None:
    isvc: dict[str, Any] = {
        "metadata": {"name": "clf", "namespace": "default"},
        "status": {
            "url": "http://clf.default.example",
            "modelRegistry": {"uri": "models:/clf@best", "name": "clf", "version": "1"},
        },
    }
    with RestClient(server.url) as client:
        client.set_alias("clf", "best", "1")
        found = lineage(client, "clf@best", [isvc])
        assert found.version == "1" and "best" in found.aliases
        assert found.workload == "TrainJob default/clf-train"
        assert found.code_digest == "sha256:abc"
        assert found.params == {"C": "0.5"}
        assert found.metrics == {"accuracy": 0.8, "loss": 0.5}
        assert found.experiment == "clf"
        assert [(s.namespace, s.name) for s in found.served] == [("default", "clf")]
        assert lineage(client, "clf", [isvc]).served == []  # latest is version 3


async def test_pins_follow_an_alias_while_the_server_runs(server: MlflowServer) -> None:
    moved: list[tuple[str, str]] = []
    pins = ModelPins(ExternalTracking(server.url), 0.1, lambda ns, n: moved.append((ns, n)))
    with RestClient(server.url) as client:
        client.set_alias("clf", "follow", "1")
        pin = await pins.pin("default", "svc", "models:/clf@follow", None)
        assert (pin.version, pin.pinned) == ("1", "models:/clf/1")
        assert len(pin.run_id) == 32
        assert await pins.check() == []
        client.set_alias("clf", "follow", "3")
        assert await pins.check() == [("default", "svc")]
        again = await pins.pin("default", "svc", "models:/clf@follow", pin.status())
        assert again.pinned == "models:/clf/3"
    # the version being served is remembered in status: no lookup needed after a restart
    fresh = ModelPins(ExternalTracking("http://127.0.0.1:9"), 0.1, lambda ns, n: None)
    kept = await fresh.pin("default", "svc", "models:/clf@follow", again.status())
    assert kept.pinned == "models:/clf/3"
    assert await fresh.check() == []  # the registry is down: keep serving, no error
    with pytest.raises(PinError) as err:
        await fresh.pin("default", "other", "models:/clf@follow", None)
    assert err.value.reason == "RegistryUnavailable"
    with pytest.raises(PinError) as err:
        await pins.pin("default", "ghost", "models:/ghost@follow", None)
    assert err.value.reason == "ModelNotFound" and "name=ghost not found" in err.value.message
    nothing = ModelPins(None, 0.1, lambda ns, n: None)
    with pytest.raises(PinError, match=r"wonderland\[mlflow\]"):
        await nothing.pin("default", "svc", "models:/clf@follow", None)


def test_promote_and_describe_from_the_cli(server: MlflowServer, tmp_path: Path) -> None:
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "wonderland", "models", *args, "--tracking-uri", server.url],
            capture_output=True,
            text=True,
            timeout=60,
            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "WONDERLAND_HOME": str(tmp_path)},
            check=False,
        )

    done = cli("promote", "clf", "1", "--alias", "cli")
    assert done.returncode == 0 and "clf@cli → version 1 (new alias)" in done.stdout, done
    refused = cli(
        "promote", "clf", "2", "--alias", "cli", "--if-better", "loss", "--lower-is-better"
    )
    assert refused.returncode == 3 and "not moved" in refused.stdout, refused
    shown = cli("describe", "clf@cli")
    assert shown.returncode == 0, shown.stderr
    assert "Made by:" in shown.stdout and "TrainJob default/clf-train" in shown.stdout
    assert "accuracy: 0.8" in shown.stdout and "Served by: (no InferenceService)" in shown.stdout
    unknown = cli("describe", "nope@cli")
    assert unknown.returncode == 1 and "error:" in unknown.stderr and "nope" in unknown.stderr


def test_register_a_runs_artifact_folder_and_archive_then_restore(
    server: MlflowServer, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    c = MlflowClient(server.url)
    run = c.create_run(c.create_experiment("folder"))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    c.log_artifacts(run.info.run_id, str(model_dir), "model")
    with RestClient(server.url) as client:
        with pytest.raises(InvalidError, match="logged no model named 'weights'"):
            register_run_model(client, run.info.run_id, "folder-model", "weights")
        mv = register_run_model(client, run.info.run_id, "folder-model", "model")
        assert mv["version"] == "1" and mv["run_id"] == run.info.run_id
        assert mv["source"].endswith(f"{run.info.run_id}/artifacts/model")
        again = register_run_model(client, run.info.run_id, "folder-model")  # the model exists
        assert again["version"] == "2"
        client.set_alias("folder-model", "champion", "2")
        client.set_alias("folder-model", "shadow", "2")
        done = archive(client, "folder-model", "2")
        assert sorted(done.removed_aliases) == ["champion", "shadow"]
        archived = client.model_version("folder-model", "2")
        assert archived.get("aliases", []) == []
        assert {t["key"]: t["value"] for t in archived["tags"]} == {"archived": "true"}
        restore(client, "folder-model", "2")
        assert not client.model_version("folder-model", "2").get("tags")
        with pytest.raises(InvalidError):
            archive(client, "folder-model", "two")
