"""The data the Training, Experiments and Registry pages show, from a real store (and a
real MLflow server for the registry)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _support.daemon import wait_until
from _support.mlflow import MlflowServer, mlflow_server, needs_mlflow
from mlops_objects import add_experiment, add_node_pods, add_trainjob, report

import wonderland.platform
from wonderland.console.registry_views import promote_commands, registry
from wonderland.console.training_views import MAX_SERIES, MetricHistory, training, trainjob
from wonderland.console.tuning_views import experiment, experiments
from wonderland.console.tuning_views import trial as trial_page
from wonderland.store import Store

NOW = datetime(2026, 12, 3, 7, 0, 30, tzinfo=UTC)


def _store(tmp_path: Path) -> Store:
    for name in wonderland.platform.PLUGINS:
        importlib.import_module(name)
    return Store.open(tmp_path)


def test_training_list_shows_progress_eta_and_the_key_metric(tmp_path: Path) -> None:
    store = _store(tmp_path)
    add_trainjob(store)
    assert training(store).jobs[0].progress is None  # nothing reported yet
    report(store, "iris", "2026-12-03T07:00:10Z", {"loss": "0.9", "accuracy": "0.5"}, 40, 100)
    (row,) = training(store, now=NOW).jobs
    assert (row.name, row.runtime, row.phase, row.nodes) == (
        "iris",
        "torch-distributed",
        "Running",
        2,
    )
    assert row.progress == 40
    assert row.eta == "about 1m 20s left"  # 100 s estimated 20 s ago
    assert row.key_metric == "loss=0.9"
    assert training(store, "other").jobs == []


def test_history_keeps_every_report_once_and_is_bounded(tmp_path: Path) -> None:
    store = _store(tmp_path)
    add_trainjob(store)
    add_node_pods(store)
    history = MetricHistory(store, max_points=3)
    for i, loss in enumerate(("0.9", "0.7", "0.5", "0.4")):
        job = report(
            store, "iris", f"2026-12-03T07:00:1{i}Z", {"loss": loss, "note": "n/a"}, i * 25
        )
        history.observe(job)
        history.observe(job)  # the same report twice is one point
    page = trainjob(store, history, "default", "iris", now=NOW)
    (loss,) = page.metrics  # "n/a" is no number: no chart for it
    assert loss.name == "loss" and loss.v == [0.7, 0.5, 0.4]  # the oldest point dropped
    assert loss.t[1] - loss.t[0] == 1.0
    assert (loss.last, loss.low, loss.high) == (0.4, 0.4, 0.7)
    assert page.chart_data["metrics"][0]["v"] == [0.7, 0.5, 0.4]
    assert page.last_metrics == [("loss", "0.4"), ("note", "n/a")]
    assert [(p.node, p.container) for p in page.pods] == [("node-0", "node"), ("node-1", "node")]
    assert [(e.name, e.value) for e in page.env] == [("EPOCHS", "60"), ("HF_TOKEN", "(hidden)")]
    assert [e.object for e in page.events] == ["TrainJob/iris"]  # not the Service's event
    many = {f"m{i}": "1" for i in range(MAX_SERIES + 5)}
    history.observe(report(store, "iris", "2026-12-03T07:01:00Z", many))
    assert len(history.series("default", "iris")) == MAX_SERIES
    history.forget("default", "iris")
    assert history.series("default", "iris") == []


async def test_history_follows_the_store_watch(tmp_path: Path) -> None:
    store = _store(tmp_path)
    add_trainjob(store)
    report(store, "iris", "2026-12-03T07:00:10Z", {"loss": "0.9"})
    history = MetricHistory(store)
    await history.start()
    try:
        report(store, "iris", "2026-12-03T07:00:20Z", {"loss": "0.5"})
        await wait_until(
            lambda: (series := history.series("default", "iris")) and len(series[0].v) == 2,
            10,
            "the second report in the history",
        )
        assert history.series("default", "iris")[0].v == [0.9, 0.5]
        store.delete("trainjobs.trainer.kubeflow.org", "default", "iris")
        await wait_until(lambda: history.series("default", "iris") == [], 10, "the series gone")
    finally:
        await history.stop()


def test_a_job_older_than_the_history_says_where_its_charts_start(tmp_path: Path) -> None:
    store = _store(tmp_path)
    add_trainjob(store)
    fresh = MetricHistory(store)
    assert trainjob(store, fresh, "default", "iris").history_since == ""
    restarted = MetricHistory(store)  # a daemon that started after the job
    restarted.since = datetime.now(UTC) + timedelta(seconds=5)
    page = trainjob(store, restarted, "default", "iris")
    assert page.history_since == restarted.since.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_finished_job_has_a_duration_and_no_eta(tmp_path: Path) -> None:
    store = _store(tmp_path)
    job = add_trainjob(store)
    created = job["metadata"]["creationTimestamp"]
    job = report(store, "iris", created, {"loss": "0.1"}, 100, 0)
    start = datetime.fromisoformat(created.replace("Z", "+00:00"))
    end = start + timedelta(minutes=2, seconds=5)
    job["status"]["conditions"] = [
        {
            "type": "Complete",
            "status": "True",
            "reason": "JobSetCompleted",
            "lastTransitionTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    ]
    store.update_status(job)
    (row,) = training(store).jobs
    assert row.phase == "Complete" and row.eta == ""
    assert row.duration == "2m 5s"  # creation to completion, not to now


def test_experiments_list_and_page(tmp_path: Path) -> None:
    store = _store(tmp_path)
    add_experiment(store)
    (row,) = experiments(store).experiments
    assert (row.status, row.objective) == ("Running", "maximize accuracy")
    assert (row.succeeded, row.running, row.failed, row.early_stopped) == (2, 0, 1, 1)
    assert (row.optimal_trial, row.optimal_value) == ("tune-b", "0.9")
    page = experiment(store, "default", "tune")
    assert page.best is not None and page.best.name == "tune-b"
    assert page.best.params == {"lr": "0.1", "optimizer": "adam"}
    states = {t.name: (t.state, t.objective, t.marked) for t in page.trials}
    assert states == {
        "tune-a": ("Succeeded", 0.8, False),
        "tune-b": ("Succeeded", 0.9, False),
        "tune-c": ("EarlyStopped", 0.5, True),
        "tune-d": ("Failed", None, True),
    }
    assert page.missing == ""
    history = page.chart_data["history"]
    assert history["objective"] == [0.8, 0.9, 0.5, None]
    assert history["best"] == [0.8, 0.9, 0.9, 0.9]  # the running best, maximizing
    parallel = page.chart_data["parallel"]
    assert parallel["axes"] == [
        {"name": "lr", "kind": "number"},
        {"name": "optimizer", "kind": "category", "categories": ["sgd", "adam"]},
    ]
    assert [line["trial"] for line in parallel["lines"]] == ["tune-a", "tune-b", "tune-c"]


def test_an_experiment_without_values_says_why(tmp_path: Path) -> None:
    from mlops_objects import KATIB

    store = _store(tmp_path)
    add_experiment(store, "tune")
    store.create(
        {
            "apiVersion": KATIB,
            "kind": "Experiment",
            "metadata": {"name": "fresh", "namespace": "default"},
            "spec": store.get("experiments.kubeflow.org", "default", "tune")["spec"],
        }
    )
    page = experiment(store, "default", "fresh")
    assert page.trials == [] and page.best is None
    assert page.missing.startswith("No trials yet")
    for trial in ("tune-a", "tune-b", "tune-c"):
        obj = store.get("trials.kubeflow.org", "default", trial)
        obj["status"].pop("observation", None)
        store.update_status(obj)
    assert "the metrics collector found no value" in experiment(store, "default", "tune").missing


def test_trials_in_the_order_the_suggestion_handed_them_out(tmp_path: Path) -> None:
    from mlops_objects import KATIB

    store = _store(tmp_path)
    add_experiment(store)
    # all four trials were created within one second: the names decide, wrongly
    assert [t.name for t in experiment(store, "default", "tune").trials] == [
        "tune-a",
        "tune-b",
        "tune-c",
        "tune-d",
    ]
    handed = ["tune-d", "tune-b", "tune-a", "tune-c"]
    suggestion = store.create(
        {
            "apiVersion": KATIB,
            "kind": "Suggestion",
            "metadata": {"name": "tune", "namespace": "default"},
            "spec": {"algorithm": {"algorithmName": "random"}, "requests": 4},
        }
    )
    suggestion["status"] = {"suggestions": [{"name": n} for n in handed], "suggestionCount": 4}
    store.update_status(suggestion)
    page = experiment(store, "default", "tune")
    assert [t.name for t in page.trials] == handed
    assert page.chart_data["history"]["names"] == handed
    assert page.chart_data["history"]["best"] == [None, 0.9, 0.9, 0.9]


def test_a_scatter_per_parameter_against_the_objective(tmp_path: Path) -> None:
    store = _store(tmp_path)
    add_experiment(store)
    page = experiment(store, "default", "tune")
    lr, optimizer = page.scatters
    assert (lr.parameter, optimizer.parameter) == ("lr", "optimizer")
    assert lr.svg.count("<circle") == 3  # the failed trial has no objective
    assert 'data-trial="tune-b"' in lr.svg and 'r="6"' in lr.svg  # the best is larger
    assert lr.summary == "3 trials; the best accuracy (0.9) at lr=0.1"
    assert ">sgd</text>" in optimizer.svg and ">adam</text>" in optimizer.svg
    trial_obj = store.get("trials.kubeflow.org", "default", "tune-a")
    trial_obj["spec"]["parameterAssignments"][1]["value"] = "<b>"
    store.update(trial_obj)
    hostile = experiment(store, "default", "tune").scatters[1].svg
    assert "<b>" not in hostile and "&lt;b&gt;" in hostile


def test_a_trial_page_has_its_curve_pods_and_conditions(tmp_path: Path) -> None:
    from wonderland.tuning.observation_store import SqliteObservationLogStore
    from wonderland.tuning.observations import MetricLog

    store = _store(tmp_path)
    add_experiment(store)
    store.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "tune-b-job-xyz",
                "namespace": "default",
                "labels": {"katib.kubeflow.org/trial": "tune-b"},
            },
            "spec": {
                "containers": [
                    {"name": "metrics-logger", "image": "x"},
                    {"name": "training-container", "image": "python:3.12"},
                ]
            },
        }
    )
    store.create(  # a TrainJob trial's pod: named after the trial's JobSet
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "tune-b-node-0-0-abc",
                "namespace": "default",
                "labels": {"jobset.sigs.k8s.io/jobset-name": "tune-b"},
            },
            "spec": {"containers": [{"name": "node", "image": "x"}]},
        }
    )
    logs = SqliteObservationLogStore(tmp_path / "obs.db", lambda name: True)
    start = datetime(2026, 12, 3, 7, 0, 0, tzinfo=UTC)
    logs.report(
        "tune-b",
        [
            MetricLog(start + timedelta(seconds=i), "accuracy", v)
            for i, v in enumerate(("0.5", "unavailable", "0.7", "0.9"))
        ],
    )
    page = trial_page(store, logs.get, "default", "tune-b")
    assert (page.experiment, page.objective_metric, page.row.best) == ("tune", "accuracy", True)
    assert page.row.objective == 0.9 and page.row.params == {"lr": "0.1", "optimizer": "adam"}
    (curve,) = page.curves["metrics"]
    assert curve["name"] == "accuracy" and curve["v"] == [0.5, 0.7, 0.9]
    assert curve["t"][2] - curve["t"][0] == 3.0
    assert page.curve_note == ""
    assert [(p.name, p.container) for p in page.pods] == [
        ("tune-b-job-xyz", "training-container"),
        ("tune-b-node-0-0-abc", "node"),
    ]
    assert ("Succeeded", "True", "TrialSucceeded", "") in page.conditions
    empty = trial_page(store, logs.get, "default", "tune-d")
    assert empty.curves["metrics"] == [] and empty.curve_note.startswith("No value reported")
    assert trial_page(store, None, "default", "tune-a").curve_note.startswith("This console cannot")


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as srv:
        yield srv


@needs_mlflow
def test_registry_versions_aliases_runs_and_serving(mlflow: MlflowServer) -> None:
    from mlflow import MlflowClient

    c = MlflowClient(mlflow.url)
    exp = c.create_experiment("iris")
    c.create_registered_model("iris", tags={"team": "ds"})
    for accuracy in (0.8, 0.9):
        run = c.create_run(exp, run_name=f"train-{accuracy}")
        c.log_metric(run.info.run_id, "accuracy", accuracy)
        c.create_model_version("iris", f"runs:/{run.info.run_id}/model", run.info.run_id)
    c.set_registered_model_alias("iris", "champion", "1")
    c.set_model_version_tag("iris", "2", "validated", "yes")
    isvcs = [
        {
            "metadata": {"name": "iris", "namespace": "default"},
            "spec": {"predictor": {"model": {"storageUri": "models:/iris@champion"}}},
            "status": {
                "modelRegistry": {"uri": "models:/iris@champion", "name": "iris", "version": "1"}
            },
        },
        {
            "metadata": {"name": "iris-next", "namespace": "team"},
            "spec": {"predictor": {"model": {"storageUri": "models:/iris/latest"}}},
            "status": {"modelRegistry": {"name": "iris", "version": "2"}},
        },
        {
            "metadata": {"name": "other", "namespace": "default"},
            "spec": {"predictor": {"model": {"storageUri": "s3://bucket/model"}}},
        },
    ]
    page = registry(mlflow.url, isvcs)
    (model,) = page.models
    assert (model.name, model.aliases, model.tags) == ("iris", {"champion": "1"}, {"team": "ds"})
    newest, oldest = model.versions
    assert (newest.version, newest.aliases, newest.tags) == ("2", [], {"validated": "yes"})
    assert newest.metrics == {"accuracy": 0.9} and newest.run_name == "train-0.9"
    assert newest.served_by == ["team/iris-next"]
    assert (oldest.version, oldest.aliases, oldest.served_by) == (
        "1",
        ["champion"],
        ["default/iris"],
    )
    assert model.rolls("champion") == ["default/iris"]
    assert model.rolls("latest") == ["team/iris-next"]
    assert model.rolls("challenger") == []
    cli, py = promote_commands("iris", "2", "champion")
    assert cli == "wonderland models promote iris 2 --alias champion"
    assert "set_registered_model_alias('iris', 'champion', '2')" in py
