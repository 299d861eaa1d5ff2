"""MLflow runs made for Jobs, TrainJobs and Katib trials, against a real MLflow server."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.daemon import free_port, wait_until
from _support.mlflow import MlflowServer, mlflow_server, needs_mlflow

from wonderland.errors import NotFoundError
from wonderland.platform import Platform
from wonderland.runtime.kubelet import Kubelet
from wonderland.runtime.logs import LogOptions
from wonderland.settings import Settings
from wonderland.store import Store
from wonderland.tracking.access import ExternalTracking, TrackingAccess
from wonderland.tracking.client import RestClient
from wonderland.tracking.code import MAX_FILES, code_digest, git_commit
from wonderland.tracking.runs import (
    OPT_OUT_ANNOTATION,
    RUN_ENDED_ANNOTATION,
    RUN_ID_ANNOTATION,
    add_run_env,
    experiment_name,
)

pytestmark = needs_mlflow

Obj = dict[str, Any]
JOBS = "jobs.batch"
TRAINJOBS = "trainjobs.trainer.kubeflow.org"
TRIALS = "trials.kubeflow.org"
PLUGINS = ("wonderland.workloads", "wonderland.training", "wonderland.tuning")

LOGS_A_METRIC = (
    "import mlflow\n"
    "with mlflow.start_run() as run:\n"
    "    mlflow.log_metric('loss', 0.5)\n"
    "    print('run', run.info.run_id)\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as running:
        yield running


async def start(home: Path, access: TrackingAccess) -> Platform:
    settings = Settings(home=home, gateway_port=0, api_port=0, metrics_port=0, backoff_seconds=0.2)
    platform = Platform.open(settings)
    platform.provide(TrackingAccess, access)  # type: ignore[type-abstract]
    platform.install_plugins(PLUGINS)
    await platform.start()
    return platform


@pytest.fixture
async def platform(tmp_path: Path, server: MlflowServer) -> AsyncIterator[Platform]:
    started = await start(tmp_path / "home", ExternalTracking(server.url))
    try:
        yield started
    finally:
        await started.stop()
        started.store.close()


def job(name: str, command: list[str], annotations: Obj | None = None, **container: Any) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "python:3.12", "command": command, **container}
                    ],
                }
            },
        },
    }


def condition(store: Store, resource: str, name: str) -> str | None:
    try:
        obj = store.get(resource, "default", name)
    except NotFoundError:
        return None
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] in ("Complete", "Failed") and c["status"] == "True":
            return str(c["type"])
    return None


async def ended(store: Store, resource: str, name: str, timeout: float = 60) -> Obj:
    """The object once it finished and its run was ended (or it has no run)."""

    def done() -> Obj | None:
        if condition(store, resource, name) is None:
            return None
        obj = store.get(resource, "default", name)
        annotations = obj["metadata"].get("annotations") or {}
        if RUN_ID_ANNOTATION in annotations and RUN_ENDED_ANNOTATION not in annotations:
            return None
        return obj

    result: Obj = await wait_until(done, timeout, f"{name} to end with its run")
    return result


def run_of(server: MlflowServer, run_id: str) -> tuple[str, dict[str, str], dict[str, float]]:
    """(status, tags, latest metrics) of a run."""
    with RestClient(server.url) as client:
        run = client.get_run(run_id)
    data = run.get("data") or {}
    tags = {t["key"]: t["value"] for t in data.get("tags") or []}
    metrics = {m["key"]: float(m["value"]) for m in data.get("metrics") or []}
    return str(run["info"]["status"]), tags, metrics


def runs_in(server: MlflowServer, experiment: str) -> list[Obj]:
    with RestClient(server.url) as client:
        found = client.experiment_by_name(experiment)
        if found is None:
            return []
        return client.search_runs([str(found["experiment_id"])])


def pod_env(store: Store, job_name: str) -> dict[str, str]:
    items, _ = store.list("pods", "default", {"batch.kubernetes.io/job-name": job_name})
    assert items, f"no pods of {job_name}"
    env = items[0]["spec"]["containers"][0].get("env") or []
    return {e["name"]: str(e.get("value")) for e in env}


def log_of(platform: Platform, job_name: str, container: str = "main") -> str:
    items, _ = platform.store.list("pods", "default", {"batch.kubernetes.io/job-name": job_name})
    kubelet = platform.require(Kubelet)
    out = ""
    for pod in items:
        name = pod["metadata"]["name"]
        out += kubelet.read_log("default", name, container, False, LogOptions()).decode()
    return out


def events(store: Store, name: str) -> list[str]:
    items, _ = store.list("events", "default")
    return [
        f"{e['type']} {e['reason']}: {e['message']}"
        for e in items
        if e["involvedObject"]["name"] == name
    ]


def git_repo(folder: Path) -> str:
    folder.mkdir(parents=True)
    (folder / "train.py").write_text(LOGS_A_METRIC)
    git = ["git", "-C", str(folder), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "train"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    return head.stdout.strip()


# -- units ---------------------------------------------------------------------------------


def test_code_digest_covers_paths_and_bytes_and_skips_caches(tmp_path: Path) -> None:
    code = tmp_path / "code"
    (code / "pkg" / "__pycache__").mkdir(parents=True)
    (code / ".venv-x").mkdir()
    (code / "train.py").write_text("print(1)\n")
    (code / "pkg" / "m.py").write_text("x = 1\n")
    first = code_digest(code)
    assert first is not None and first.startswith("sha256:") and len(first) == 7 + 64
    (code / "pkg" / "__pycache__" / "m.pyc").write_bytes(b"junk")
    (code / ".venv-x" / "lib.py").write_text("ignored")
    assert code_digest(code) == first
    (code / "pkg" / "m.py").write_text("x = 2\n")
    assert code_digest(code) != first
    expected = hashlib.sha256()
    for rel, data in (("pkg/m.py", b"x = 2\n"), ("train.py", b"print(1)\n")):
        expected.update(rel.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    assert code_digest(code) == f"sha256:{expected.hexdigest()}"
    assert code_digest(tmp_path / "missing") is None
    assert git_commit(code) is None
    many = tmp_path / "many"
    many.mkdir()
    for i in range(MAX_FILES + 1):
        (many / f"f{i}").write_text("")
    assert code_digest(many) is None  # past the limit: no digest rather than a partial one


def test_run_env_and_experiment_names() -> None:
    spec: Obj = {
        "initContainers": [{"name": "init"}],
        "containers": [
            {"name": "a", "env": [{"name": "MLFLOW_RUN_ID", "value": "mine"}]},
            {"name": "b", "env": [{"name": "X", "value": "1"}]},
        ],
    }
    add_run_env(spec, "r1")
    assert spec["initContainers"][0]["env"] == [{"name": "MLFLOW_RUN_ID", "value": "r1"}]
    assert spec["containers"][0]["env"] == [{"name": "MLFLOW_RUN_ID", "value": "mine"}]
    assert spec["containers"][1]["env"][-1] == {"name": "MLFLOW_RUN_ID", "value": "r1"}
    assert experiment_name("default", "iris") == "iris"
    assert experiment_name("team-a", "iris") == "team-a/iris"


# -- Jobs ----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_job_continues_its_run_from_user_code(
    platform: Platform, server: MlflowServer, tmp_path: Path
) -> None:
    code = tmp_path / "repo"
    commit = git_repo(code)
    store = platform.store
    store.create(
        job(
            "fit",
            [sys.executable, "train.py"],
            workingDir=str(code),
            env=[{"name": "MLFLOW_TRACKING_URI", "value": server.url}],
        )
    )
    obj = await ended(store, JOBS, "fit")
    assert condition(store, JOBS, "fit") == "Complete", log_of(platform, "fit")
    run_id = obj["metadata"]["annotations"][RUN_ID_ANNOTATION]
    assert f"run {run_id}" in log_of(platform, "fit")
    assert pod_env(store, "fit")["MLFLOW_RUN_ID"] == run_id
    status, tags, metrics = run_of(server, run_id)
    assert status == "FINISHED"
    assert metrics == {"loss": 0.5}
    assert tags["wonderland.kind"] == "Job"
    assert tags["wonderland.namespace"] == "default"
    assert tags["wonderland.name"] == "fit"
    assert tags["wonderland.uid"] == obj["metadata"]["uid"]
    assert tags["mlflow.runName"] == "fit"
    assert tags["mlflow.source.name"] == "Job/default/fit"
    assert tags["mlflow.source.git.commit"] == commit
    assert tags["wonderland.code.digest"] == code_digest(code)
    assert [r["info"]["run_id"] for r in runs_in(server, "fit")] == [run_id]


@pytest.mark.slow
async def test_silent_failing_and_opted_out_jobs(platform: Platform, server: MlflowServer) -> None:
    store = platform.store
    store.create(job("quiet", ["sh", "-c", "true"]))
    store.create(job("broken", ["sh", "-c", "exit 3"]))
    store.create(job("private", ["sh", "-c", "true"], annotations={OPT_OUT_ANNOTATION: "off"}))
    quiet = await ended(store, JOBS, "quiet")
    broken = await ended(store, JOBS, "broken")
    private = await ended(store, JOBS, "private")
    assert condition(store, JOBS, "broken") == "Failed"
    status, tags, metrics = run_of(server, quiet["metadata"]["annotations"][RUN_ID_ANNOTATION])
    assert (status, tags["wonderland.name"], metrics) == ("FINISHED", "quiet", {})
    assert "wonderland.code.digest" not in tags  # no workingDir: no code folder
    status, tags, _ = run_of(server, broken["metadata"]["annotations"][RUN_ID_ANNOTATION])
    assert (status, tags["wonderland.name"]) == ("FAILED", "broken")
    assert RUN_ID_ANNOTATION not in (private["metadata"].get("annotations") or {})
    assert "MLFLOW_RUN_ID" not in pod_env(store, "private")
    assert runs_in(server, "private") == []


@pytest.mark.slow
async def test_an_unreachable_server_neither_blocks_nor_fails_the_job(tmp_path: Path) -> None:
    platform = await start(tmp_path / "home", ExternalTracking(f"http://127.0.0.1:{free_port()}"))
    try:
        store = platform.store
        store.create(job("offline", ["sh", "-c", "true"]))
        obj = await ended(store, JOBS, "offline", timeout=30)
        assert condition(store, JOBS, "offline") == "Complete"
        assert RUN_ID_ANNOTATION not in (obj["metadata"].get("annotations") or {})
        assert "MLFLOW_RUN_ID" not in pod_env(store, "offline")
        warnings = [e for e in events(store, "offline") if "MLflowRunFailed" in e]
        assert warnings and "cannot be reached" in warnings[0], events(store, "offline")
    finally:
        await platform.stop()
        platform.store.close()


# -- TrainJobs and trials ------------------------------------------------------------------


@pytest.mark.slow
async def test_a_trainjob_has_one_run_that_its_jobs_continue(
    platform: Platform, server: MlflowServer
) -> None:
    store = platform.store
    store.create(
        {
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "TrainJob",
            "metadata": {"name": "tj"},
            "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "trainer": {"command": ["python", "-c", "print('trained')"]},
            },
        }
    )
    obj = await ended(store, TRAINJOBS, "tj")
    assert condition(store, TRAINJOBS, "tj") == "Complete"
    run_id = obj["metadata"]["annotations"][RUN_ID_ANNOTATION]
    jobset = store.get("jobsets.jobset.x-k8s.io", "default", "tj")
    assert jobset["metadata"]["annotations"][RUN_ID_ANNOTATION] == run_id
    jobs, _ = store.list(JOBS, "default", {"jobset.sigs.k8s.io/jobset-name": "tj"})
    assert jobs
    for child in jobs:
        assert child["metadata"]["annotations"][RUN_ID_ANNOTATION] == run_id
        assert pod_env(store, child["metadata"]["name"])["MLFLOW_RUN_ID"] == run_id
        assert runs_in(server, child["metadata"]["name"]) == []
    assert [r["info"]["run_id"] for r in runs_in(server, "tj")] == [run_id]
    status, tags, _ = run_of(server, run_id)
    assert status == "FINISHED"
    assert (tags["wonderland.kind"], tags["wonderland.name"]) == ("TrainJob", "tj")
    assert tags["wonderland.uid"] == obj["metadata"]["uid"]


@pytest.mark.slow
async def test_a_trainjob_mounting_a_dataset_records_its_digest_and_logs_it_as_an_input(
    platform: Platform, server: MlflowServer, tmp_path: Path
) -> None:
    from wonderland import datasets

    source = tmp_path / "iris"
    source.mkdir()
    (source / "iris.csv").write_text("sepal_length,species\n5.1,setosa\n6.8,versicolor\n")
    store = platform.store
    added = datasets.add(store, platform.settings.home, "iris", str(source))
    store.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "scratch"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Mi"}},
            },
        }
    )
    # the node reads the dataset where the claim is mounted
    read = "print(open('/data/iris/iris.csv').read().splitlines()[2])"
    store.create(
        {
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "TrainJob",
            "metadata": {"name": "on-iris"},
            "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "trainer": {"command": ["python", "-c", read]},
                "runtimePatches": [
                    {
                        "manager": "example.com/user",
                        "trainingRuntimeSpec": {
                            "template": {
                                "spec": {
                                    "replicatedJobs": [
                                        {
                                            "name": "node",
                                            "template": {
                                                "spec": {
                                                    "template": {
                                                        "spec": {
                                                            "volumes": [
                                                                {
                                                                    "name": "iris",
                                                                    "persistentVolumeClaim": {
                                                                        "claimName": "iris",
                                                                        "readOnly": True,
                                                                    },
                                                                },
                                                                {
                                                                    "name": "scratch",
                                                                    "persistentVolumeClaim": {
                                                                        "claimName": "scratch"
                                                                    },
                                                                },
                                                            ],
                                                            "containers": [
                                                                {
                                                                    "name": "node",
                                                                    "volumeMounts": [
                                                                        {
                                                                            "name": "iris",
                                                                            "mountPath": "/data/iris",
                                                                        }
                                                                    ],
                                                                }
                                                            ],
                                                        }
                                                    }
                                                }
                                            },
                                        }
                                    ]
                                }
                            }
                        },
                    }
                ],
            },
        }
    )
    obj = await ended(store, TRAINJOBS, "on-iris")
    assert condition(store, TRAINJOBS, "on-iris") == "Complete", obj.get("status")
    assert "6.8,versicolor" in log_of(platform, "on-iris-node-0", "node")
    # the dataset claim, not the plain one, with its digest as `data add` recorded it
    assert obj["status"]["datasets"] == [
        {"name": "iris", "digest": added.digest, "source": str(source)}
    ]
    run_id = obj["metadata"]["annotations"][RUN_ID_ANNOTATION]
    with RestClient(server.url) as client:
        run = client.get_run(run_id)
    inputs = (run.get("inputs") or {}).get("dataset_inputs") or []
    assert len(inputs) == 1, run.get("inputs")
    dataset = inputs[0]["dataset"]
    tags = {t["key"]: t["value"] for t in inputs[0].get("tags") or []}
    assert dataset["name"] == "iris"
    assert dataset["digest"] == added.digest.removeprefix("sha256:")[:12]
    assert tags == {"mlflow.data.context": "training", "wonderland.dataset.digest": added.digest}


def _trial_job(
    command: list[str], volumes: list[Obj] | None = None, mounts: list[Obj] | None = None
) -> Obj:
    """A trial's Job: one try of ``command`` in the ``training-container``."""
    container: Obj = {"name": "training-container", "image": "python:3.12", "command": command}
    pod: Obj = {"restartPolicy": "Never", "containers": [container]}
    if volumes:
        pod["volumes"] = volumes
    if mounts:
        container["volumeMounts"] = mounts
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {"backoffLimit": 0, "template": {"spec": pod}},
    }


def _experiment(name: str, trial_job: Obj, trials: int) -> Obj:
    """A random-search Experiment of ``trials`` trials over one double ``x`` in [0, 1],
    minimising the ``loss`` the trial prints."""
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parameters": [
                {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
            ],
            "maxTrialCount": trials,
            "parallelTrialCount": trials,
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": trial_job,
            },
        },
    }


@pytest.mark.slow
async def test_a_trial_mounting_a_dataset_records_its_digest_and_logs_it_as_an_input(
    platform: Platform, server: MlflowServer, tmp_path: Path
) -> None:
    pytest.importorskip("optuna")
    from wonderland import datasets

    source = tmp_path / "iris.csv"
    source.write_text("x\n0.3\n")
    store = platform.store
    added = datasets.add(store, platform.settings.home, "iris", str(source))
    code = "import sys; x = float(open('/data/iris.csv').read().split()[1]); print(f'loss={x}')"
    trial_job = _trial_job(
        [sys.executable, "-c", code, "${trialParameters.x}"],
        volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "iris"}}],
        mounts=[{"name": "d", "mountPath": "/data"}],
    )
    store.create(_experiment("on-data", trial_job, trials=1))

    def ended_trial() -> Obj | None:
        items, _ = store.list(TRIALS, "default", {"katib.kubeflow.org/experiment": "on-data"})
        done = [t for t in items if RUN_ENDED_ANNOTATION in t["metadata"].get("annotations", {})]
        return done[0] if done else None

    trial = await wait_until(ended_trial, 90, "the trial to end its run")
    assert trial["status"]["datasets"] == [
        {"name": "iris", "digest": added.digest, "source": str(source)}
    ]
    status, _, metrics = run_of(server, trial["metadata"]["annotations"][RUN_ID_ANNOTATION])
    assert (status, metrics["loss"]) == ("FINISHED", 0.3)  # it read the mounted file
    with RestClient(server.url) as client:
        run = client.get_run(trial["metadata"]["annotations"][RUN_ID_ANNOTATION])
    (dataset_input,) = run["inputs"]["dataset_inputs"]
    tags = {t["key"]: t["value"] for t in dataset_input["tags"]}
    assert dataset_input["dataset"]["name"] == "iris"
    assert tags["wonderland.dataset.digest"] == added.digest


@pytest.mark.slow
async def test_each_trial_has_a_run_with_its_params_and_observed_metric(
    platform: Platform, server: MlflowServer
) -> None:
    pytest.importorskip("optuna")
    # the loss is right only when the trial's Job ran inside the trial's run
    code = (
        "import os, sys; x = float(sys.argv[1]); "
        "ok = len(os.environ.get('MLFLOW_RUN_ID', '')) == 32; "
        "print(f'loss={(x - 0.3) ** 2 if ok else 99:.6f}')"
    )
    store = platform.store
    trial_job = _trial_job([sys.executable, "-c", code, "${trialParameters.x}"])
    store.create(_experiment("hp", trial_job, trials=2))

    def trials_ended() -> list[Obj] | None:
        items, _ = store.list(TRIALS, "default", {"katib.kubeflow.org/experiment": "hp"})
        done = [
            t for t in items if RUN_ENDED_ANNOTATION in (t["metadata"].get("annotations") or {})
        ]
        return done if len(done) == 2 else None

    trials = await wait_until(trials_ended, 90, "both trials to end their runs")
    runs = {r["info"]["run_id"]: r for r in runs_in(server, "hp")}
    assert len(runs) == 2
    for trial in trials:
        run_id = trial["metadata"]["annotations"][RUN_ID_ANNOTATION]
        assert run_id in runs
        status, tags, metrics = run_of(server, run_id)
        name = trial["metadata"]["name"]
        assert status == "FINISHED", trial.get("status")
        assert (tags["wonderland.kind"], tags["katib.trial"], tags["katib.experiment"]) == (
            "Trial",
            name,
            "hp",
        )
        x = next(a["value"] for a in trial["spec"]["parameterAssignments"] if a["name"] == "x")
        params = {p["key"]: p["value"] for p in runs[run_id]["data"].get("params") or []}
        assert params == {"x": x}
        assert metrics["loss"] == pytest.approx((float(x) - 0.3) ** 2, abs=1e-5)
        assert runs_in(server, name) == []  # the trial's Job continued the trial's run
