"""The Training, Experiments and Registry pages on a real socket: rendering, the chart
data blocks, the promote form (Origin, errors, the alias moving in a real MLflow) and a
real pod's log followed through ``/logs``."""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from _support.daemon import wait_until
from _support.mlflow import MlflowServer, mlflow_server, needs_mlflow
from mlops_objects import add_experiment, add_node_pods, add_trainjob, report

import wonderland.platform
from wonderland.console import mlops_pages
from wonderland.console.mlops_pages import MlopsPages
from wonderland.console.registry_views import TrackingRegistry
from wonderland.console.server import ConsoleServer
from wonderland.console.training_views import MetricHistory
from wonderland.console.views import HubMetrics
from wonderland.control.sources import PodLogSource
from wonderland.monitoring.hub import MetricsHub
from wonderland.platform import Platform
from wonderland.settings import Settings
from wonderland.store import Store
from wonderland.tracking.access import ExternalTracking

TOKEN = "s3cret-platform-token"


@contextlib.asynccontextmanager
async def console(store: Store, mlops: MlopsPages) -> AsyncIterator[httpx.AsyncClient]:
    """A running console, and a client signed in to it (with the console's Origin)."""
    server = ConsoleServer(store, lambda: TOKEN, HubMetrics(MetricsHub()), mlops=mlops)
    await server.start()
    try:
        url = server.status.url
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            r = await client.post("/signin", data={"token": TOKEN}, headers={"origin": url})
            assert r.status_code == 303, r.text
            client.headers["origin"] = url
            yield client
    finally:
        await server.stop()


def _store(tmp_path: Path) -> Store:
    for name in wonderland.platform.PLUGINS:
        importlib.import_module(name)
    return Store.open(tmp_path)


def _chart(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html, re.S)
    assert found is not None, html[:2000]
    data: dict[str, object] = json.loads(found.group(1))
    return data


async def test_training_pages_and_the_live_chart_data(tmp_path: Path) -> None:
    store = _store(tmp_path)
    add_trainjob(store)
    add_node_pods(store)
    report(store, "iris", "2026-12-03T07:00:10Z", {"loss": "0.9", "</script><b>x": "1"}, 20, 60)
    async with console(store, MlopsPages(store)) as client:
        r = await client.get("/")
        assert '<a href="/training">TrainJobs</a>' in r.text  # the Overview's tile links
        assert '<a href="/experiments">Experiments</a>' in r.text
        r = await client.get("/training")
        assert r.status_code == 200
        assert 'href="/training/default/iris"' in r.text and "loss=0.9" in r.text
        assert 'aria-current="page">Training' in r.text
        report(store, "iris", "2026-12-03T07:00:20Z", {"loss": "0.5", "</script><b>x": "2"}, 40, 30)
        r = await client.get("/training/default/iris")
        assert r.status_code == 200
        assert "</script><b>" not in r.text  # a metric name cannot end the data block
        data = _chart(r.text)
        series = {m["name"]: m["v"] for m in data["metrics"]}  # type: ignore[attr-defined]
        assert series["loss"][-1] == 0.5
        assert series["</script><b>x"][-1] == 2.0
        assert "40%" in r.text and 'data-pod="iris-node-0-1-abcde"' in r.text
        assert "hf_secret_value" not in r.text and "(hidden)" in r.text
        assert "This console cannot read pod logs" in r.text  # no kubelet here
        r = await client.get("/training/default/iris", params={"fragment": "main"})
        assert r.text.lstrip().startswith('<p class="crumbs">') and "<html" not in r.text
        r = await client.get("/training/default/nope")
        assert r.status_code == 404 and "no TrainJob" in r.text
        r = await client.get("/training/default")
        assert r.status_code == 404
        r = await client.get("/logs/default/iris-node-0-0-abcde")
        assert r.status_code == 503 and "no access to pod logs" in r.text
        assert 'id="history-since"' not in (await client.get("/training/default/iris")).text
    restarted = MetricHistory(store)  # as after a daemon restart: the job is older
    restarted.since = datetime.now(UTC) + timedelta(seconds=5)
    async with console(store, MlopsPages(store, history=restarted)) as client:
        r = await client.get("/training/default/iris")
        assert 'id="history-since"' in r.text and "when the daemon started" in r.text


async def test_experiment_pages(tmp_path: Path) -> None:
    store = _store(tmp_path)
    add_experiment(store)
    async with console(store, MlopsPages(store)) as client:
        r = await client.get("/experiments")
        assert r.status_code == 200 and 'href="/experiments/default/tune"' in r.text
        assert "tune-b" in r.text and "0.9" in r.text
        r = await client.get("/experiments/default/tune")
        assert r.status_code == 200
        assert 'id="best-trial"' in r.text and "<strong>tune-b</strong>" in r.text
        assert "■ early-stopped" in r.text and "✗ Failed" in r.text
        data = _chart(r.text)
        assert data["history"]["best"] == [0.8, 0.9, 0.9, 0.9]  # type: ignore[index]
        assert "/static/parcoords.js" in r.text and 'id="parcoords"' in r.text
        assert 'href="/trials/default/tune-a"' in r.text
        assert r.text.count('<svg class="scatter-svg"') == 2  # lr and optimizer
        r = await client.get("/static/parcoords.js")
        assert r.status_code == 200 and "javascript" in r.headers["content-type"]
        r = await client.get("/experiments/default/missing")
        assert r.status_code == 404
        r = await client.get("/trials/default/tune-b")
        assert r.status_code == 200 and "Trial tune-b" in r.text and "★ best" in r.text
        assert 'href="/experiments/default/tune"' in r.text
        assert 'href="/yaml/trials.kubeflow.org/default/tune-b"' in r.text
        assert 'id="no-curve"' in r.text and "cannot read the observation log" in r.text
        r = await client.get("/trials/default/nope")
        assert r.status_code == 404 and "no Trial" in r.text


async def test_registry_without_tracking_says_why(tmp_path: Path) -> None:
    store = _store(tmp_path)
    async with console(store, MlopsPages(store)) as client:
        r = await client.get("/registry")
        assert r.status_code == 200
        assert "install the mlflow extra" in r.text and 'id="registry-unavailable"' in r.text
        r = await client.post("/registry", data={"name": "iris", "version": "1", "alias": "x"})
        assert r.status_code == 503 and "install the mlflow extra" in r.text


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    from mlflow import MlflowClient

    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as srv:
        c = MlflowClient(srv.url)
        exp = c.create_experiment("clf")
        c.create_registered_model("clf")
        for accuracy in (0.8, 0.9):
            run = c.create_run(exp)
            c.log_metric(run.info.run_id, "accuracy", accuracy)
            c.create_model_version("clf", f"runs:/{run.info.run_id}/model", run.info.run_id)
        c.set_registered_model_alias("clf", "champion", "1")
        yield srv


@needs_mlflow
async def test_promote_moves_the_alias_and_says_which_services_roll(
    tmp_path: Path, mlflow: MlflowServer
) -> None:
    from mlflow import MlflowClient

    store = _store(tmp_path)
    store.create(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "clf", "namespace": "default"},
            "spec": {
                "predictor": {
                    "model": {
                        "modelFormat": {"name": "sklearn"},
                        "storageUri": "models:/clf@champion",
                    }
                }
            },
        }
    )
    mlops = MlopsPages(store, registry=TrackingRegistry(ExternalTracking(mlflow.url)))
    async with console(store, mlops) as client:
        r = await client.get("/registry")
        assert r.status_code == 200
        assert 'id="model-clf"' in r.text and "@champion → version 1" in r.text
        assert "accuracy=0.8" in r.text and "accuracy=0.9" in r.text
        rolls = re.search(r'<span class="rolls-list">(.*?)</span>', r.text)
        assert rolls is not None and rolls.group(1) == "default/clf"
        assert "wonderland models promote clf 2 --alias champion" in r.text

        form = {"name": "clf", "version": "2", "alias": "champion"}
        r = await client.post("/registry", data=form, headers={"origin": ""})
        assert r.status_code == 403  # no Origin: refused before anything moves
        r = await client.post("/registry", data={**form, "version": "7"})
        assert r.status_code == 404 and "Not promoted" in r.text
        r = await client.post("/registry", data={**form, "alias": "no spaces"})
        assert r.status_code == 422 and "letters, digits" in r.text
        assert MlflowClient(mlflow.url).get_model_version_by_alias("clf", "champion").version == "1"

        r = await client.post("/registry", data=form)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/registry?moved=clf&alias=champion&version=2")
        assert MlflowClient(mlflow.url).get_model_version_by_alias("clf", "champion").version == "2"
        r = await client.get(r.headers["location"])
        assert "now points at version 2 (was version 1)" in r.text
        assert "@champion → version 2" in r.text  # not the cached page from before
        r = await client.post("/registry", data=form)
        assert r.status_code == 409 and "already is version 2" in r.text


async def test_a_real_pods_log_is_followed_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path / "home", gateway_port=0, api_port=0, backoff_seconds=0.2)
    platform = Platform.open(settings)
    platform.install_plugins(("wonderland.workloads",))
    await platform.start()
    try:
        store = platform.store
        logs = platform.get(PodLogSource)  # type: ignore[type-abstract]
        assert logs is not None
        mlops = MlopsPages(store, logs=logs)
        script = "import time\nfor i in range(5):\n    print(f'step {i}', flush=True)\n    time.sleep(0.3)\n"
        async with console(store, mlops) as client:
            r = await client.get("/logs/default/nope")
            assert r.status_code == 404
            store.create(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "trainer", "namespace": "default"},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "main",
                                "image": "python:3.12",
                                "command": [sys.executable, "-c", script],
                            }
                        ],
                    },
                }
            )

            async def started() -> bool:  # 409 until the container has started
                r = await client.get("/logs/default/trainer", params={"container": "main"})
                return r.status_code != 409

            await wait_until(started, 30, "the trainer's container to start")
            chunks: list[str] = []
            async with client.stream(
                "GET", "/logs/default/trainer", params={"container": "main"}
            ) as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/plain")
                async for text in stream.aiter_text():
                    chunks.append(text)
            lines = "".join(chunks).splitlines()
            assert lines == [f"step {i}" for i in range(5)]  # the whole log, then it ended
            assert mlops.open_logs == 0
            monkeypatch.setattr(mlops_pages, "MAX_LOG_STREAMS", 0)
            r = await client.get("/logs/default/trainer", params={"container": "main"})
            assert r.status_code == 429 and "logs are followed already" in r.text
    finally:
        await platform.stop()
        platform.store.close()


@needs_mlflow
async def test_the_runs_metric_history_charts_by_step_while_mlflow_runs(
    tmp_path: Path, mlflow: MlflowServer
) -> None:
    from mlflow import MlflowClient

    from wonderland.tracking.server import TrackingServer

    c = MlflowClient(mlflow.url)
    run = c.create_run(c.create_experiment("curve"))
    for step in range(5):
        c.log_metric(run.info.run_id, "val_loss", 1.0 / (step + 1), step=step * 10)
    store = _store(tmp_path)
    job = add_trainjob(store)
    job["metadata"]["annotations"] = {"tracking.wonderland.dev/run-id": run.info.run_id}
    store.update(job)
    mlops = MlopsPages(store, registry=TrackingRegistry(ExternalTracking(mlflow.url)))
    async with console(store, mlops) as client:
        r = await client.get("/training/default/iris")
        assert r.status_code == 200
        assert 'data-chart="run:val_loss"' in r.text and "last 0.2 at step 40, 5 points" in r.text
        data = _chart(r.text)
        (series,) = data["run"]  # type: ignore[misc]
        assert series["step"] == [0, 10, 20, 30, 40] and series["v"][0] == 1.0
    # a tracking server that sleeps is not woken by the page: it says so instead
    asleep = TrackingServer(Settings(home=tmp_path / "home", mlflow_port=0))
    mlops = MlopsPages(store, registry=TrackingRegistry(asleep))
    async with console(store, mlops) as client:
        r = await client.get("/training/default/iris")
        assert r.status_code == 200 and 'id="run-note"' in r.text and "asleep" in r.text
        assert asleep.running_uri() is None


def _logged_model_run(url: str, accuracy: float, tags: dict[str, str] | None = None) -> str:
    """A run that logged a real sklearn model (an MLflow 3 logged model named "model"),
    one metric, one parameter and one more artifact; its id."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(url)
    mlflow.set_experiment("outputs")
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(x, [0, 0, 1, 1])
    with mlflow.start_run(tags=tags) as run:
        mlflow.log_metric("accuracy", accuracy)
        mlflow.log_param("C", str(accuracy))
        mlflow.log_text("hello", "notes/readme.txt")
        mlflow.sklearn.log_model(model, name="model")
    return str(run.info.run_id)


@needs_mlflow
async def test_register_a_jobs_model_then_deploy_compare_archive_and_trace_it(
    tmp_path: Path, mlflow: MlflowServer
) -> None:
    from mlflow import MlflowClient

    store = _store(tmp_path)
    job = add_trainjob(store)
    first = _logged_model_run(
        mlflow.url,
        0.7,
        {
            "wonderland.kind": "TrainJob",
            "wonderland.namespace": "default",
            "wonderland.name": "iris",
        },
    )
    second = _logged_model_run(mlflow.url, 0.95)
    job["metadata"]["annotations"] = {"tracking.wonderland.dev/run-id": first}
    store.update(job)
    mlops = MlopsPages(store, registry=TrackingRegistry(ExternalTracking(mlflow.url)))
    c = MlflowClient(mlflow.url)
    async with console(store, mlops) as client:
        r = await client.get("/training/default/iris")
        assert r.status_code == 200 and 'id="outputs-h"' in r.text
        assert '<th scope="row">notes/</th>' in r.text  # the run's artifacts
        assert 'data-model="model"' in r.text and "Register model" in r.text
        assert f"mlflow.register_model(&#39;runs:/{first}/model&#39;, &#39;iris&#39;)" in r.text

        form = {"run_id": first, "path": "model", "name": "iris-clf"}
        r = await client.post("/registry/register", data=form, headers={"origin": ""})
        assert r.status_code == 403
        r = await client.post("/registry/register", data={**form, "path": "nope"})
        assert r.status_code == 422 and "logged no model named" in r.text
        r = await client.post("/registry/register", data={**form, "name": "bad name"})
        assert r.status_code == 422
        r = await client.post("/registry/register", data=form)
        assert r.status_code == 303 and "registered=iris-clf&version=1" in r.headers["location"]
        mv = c.get_model_version("iris-clf", "1")
        assert mv.run_id == first and mv.source.startswith("models:/m-")
        r = await client.post("/registry/register", data={**form, "run_id": second})
        assert r.status_code == 303 and "version=2" in r.headers["location"]
        r = await client.get(r.headers["location"])
        assert "Registered iris-clf version 2" in r.text

        # compare: the two runs' metrics and parameters side by side
        r = await client.get("/registry/compare", params={"name": "iris-clf", "a": "1", "b": "2"})
        assert r.status_code == 200
        row = re.search(r'<tr data-metric="accuracy">(.*?)</tr>', r.text, re.S)
        assert row is not None and "0.7" in row.group(1) and "0.95" in row.group(1)
        assert "▲ +0.25" in row.group(1)
        assert 'data-param="C" class="differs"' in r.text
        r = await client.get("/registry/compare", params={"name": "iris-clf", "a": "1", "b": "9"})
        assert r.status_code == 404
        r = await client.get("/registry/compare", params={"name": "iris-clf", "a": "x", "b": "2"})
        assert r.status_code == 422

        # deploy: a new InferenceService that follows an alias, then a pinned version
        c.set_registered_model_alias("iris-clf", "champion", "1")
        deploy = {"name": "iris-clf", "ref": "@champion", "namespace": "default", "isvc": "clf"}
        r = await client.post("/registry/deploy", data=deploy, headers={"origin": ""})
        assert r.status_code == 403
        r = await client.post("/registry/deploy", data={**deploy, "ref": "champion!"})
        assert r.status_code == 422 and "neither a version" in r.text
        r = await client.post("/registry/deploy", data={**deploy, "isvc": "Bad_Name"})
        assert r.status_code == 422 and "not deployed" in r.text
        r = await client.post("/registry/deploy", data=deploy)
        assert r.status_code == 303 and "created=1" in r.headers["location"]
        isvc = store.get("inferenceservices.serving.kserve.io", "default", "clf")
        model = isvc["spec"]["predictor"]["model"]
        assert model == {
            "modelFormat": {"name": "mlflow"},
            "storageUri": "models:/iris-clf@champion",
        }
        r = await client.get(r.headers["location"])
        assert "InferenceService default/clf created models:/iris-clf@champion" in r.text
        assert "kubectl apply -f -" in r.text
        r = await client.post("/registry/deploy", data={**deploy, "ref": "2"})
        assert r.status_code == 303 and "created" not in r.headers["location"]
        isvc = store.get("inferenceservices.serving.kserve.io", "default", "clf")
        assert isvc["spec"]["predictor"]["model"]["storageUri"] == "models:/iris-clf/2"
        assert isvc["metadata"]["generation"] == 2  # patched, not made again
        r = await client.get(r.headers["location"])
        assert "kubectl patch inferenceservice clf -n default --type merge" in r.text

        # archive: refused while served, then aliases removed and the tag set; restore
        isvc["status"] = {
            "modelRegistry": {"name": "iris-clf", "version": "2"},
            "components": {"predictor": {"latestReadyRevision": "clf-predictor-00002"}},
        }
        store.update_status(isvc)
        r = await client.post("/registry/archive", data={"name": "iris-clf", "version": "2"})
        assert r.status_code == 409 and "served by default/clf" in r.text
        r = await client.post("/registry/archive", data={"name": "iris-clf", "version": "1"})
        assert r.status_code == 303 and "removed=champion" in r.headers["location"]
        archived = c.get_model_version("iris-clf", "1")
        assert archived.tags == {"archived": "true"} and archived.aliases == []
        r = await client.get(r.headers["location"])
        assert "version 1 is archived (aliases removed: champion)" in r.text
        assert '<tr data-version="1" class="archived">' in r.text
        r = await client.post(
            "/registry/archive", data={"name": "iris-clf", "version": "1", "action": "restore"}
        )
        assert r.status_code == 303
        assert c.get_model_version("iris-clf", "1").tags == {}

        # lineage: the TrainJob and run → version 1; version 2 → the InferenceService revision
        r = await client.get("/registry/lineage", params={"name": "iris-clf", "version": "1"})
        assert r.status_code == 200
        assert '<a href="/training/default/iris">TrainJob default/iris</a>' in r.text
        assert 'id="not-served"' in r.text
        r = await client.get("/registry/lineage", params={"name": "iris-clf", "version": "2"})
        assert "InferenceService default/clf, revision clf-predictor-00002" in r.text
        assert 'id="no-workload"' in r.text
        r = await client.get("/registry/lineage", params={"name": "iris-clf", "version": "7"})
        assert r.status_code == 404
