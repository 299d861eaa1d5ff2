"""TrainJobs on an in-process platform: the runtimes Trainer ships, the JobSet a TrainJob
becomes, the pods and the environment each node gets, conditions, suspension, deadlines
and what admission refuses. Every node is a real process."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from _support.daemon import wait_until
from training_support import JOBSETS, TRAINJOBS, Trainer, py, trainjob

from wonderland.errors import InvalidError
from wonderland.platform import Platform
from wonderland.settings import Settings
from wonderland.store import Store

ENV_DUMP = (
    "import json, os; print(json.dumps({k: v for k, v in os.environ.items() "
    "if k.startswith(('PET_', 'KUBEFLOW_TRAINER', 'JAX_', 'DMLC_'))}))"
)


def env_of(trainer: Trainer, pod: str) -> dict[str, str]:
    line = trainer.log(pod).strip().splitlines()[-1]
    return dict(json.loads(line))


async def test_the_shipped_runtimes_are_installed(trainer: Trainer) -> None:
    items, _ = trainer.store.list("clustertrainingruntimes.trainer.kubeflow.org", None)
    frameworks = {
        o["metadata"]["name"]: o["metadata"]["labels"]["trainer.kubeflow.org/framework"]
        for o in items
    }
    assert frameworks == {
        "torch-distributed": "torch",
        "deepspeed-distributed": "deepspeed",
        "mlx-distributed": "mlx",
        "jax-distributed": "jax",
        "xgboost-distributed": "xgboost",
        "torchtune-llama3.2-1b": "torchtune",
        "torchtune-llama3.2-3b": "torchtune",
        "torchtune-qwen2.5-1.5b": "torchtune",
    }
    version = trainer.store.get("configmaps", "kubeflow-system", "kubeflow-trainer-public")
    assert version["data"]["kubeflow_trainer_version"] == "v2.3.0"


async def test_two_nodes_run_with_the_torch_environment_as_jobset_pods(trainer: Trainer) -> None:
    trainer.create(
        trainjob(
            "tj", numNodes=2, command=py(ENV_DUMP), resourcesPerNode={"requests": {"cpu": "2"}}
        )
    )
    done = await trainer.finished("tj")
    assert (done["type"], done["reason"], done["message"]) == (
        "Complete",
        "AllJobsCompleted",
        "jobset completed successfully",
    )
    pods = trainer.pods("tj")
    assert len(pods) == 2
    for pod in pods:
        labels = pod["metadata"]["labels"]
        assert pod["metadata"]["name"].startswith("tj-node-0-")
        assert labels["jobset.sigs.k8s.io/replicatedjob-name"] == "node"
        assert pod["spec"]["containers"][0]["name"] == "node"
        assert pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "2"
        assert pod["status"]["phase"] == "Succeeded"
    job = trainer.store.get("jobs.batch", "default", "tj-node-0")
    assert job["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"
    envs = [env_of(trainer, p["metadata"]["name"]) for p in pods]
    ranks = sorted(e["PET_NODE_RANK"] for e in envs)
    assert ranks == ["0", "1"]
    for env in envs:
        assert env["PET_NNODES"] == "2"
        assert env["PET_NPROC_PER_NODE"] == "2"  # the CPU request, no GPUs
        assert env["PET_MASTER_ADDR"] == "127.0.0.1"
    assert len({e["PET_MASTER_PORT"] for e in envs}) == 1
    status = trainer.status("tj")
    assert status["jobsStatus"] == [
        {"name": "node", "ready": 0, "succeeded": 1, "failed": 0, "active": 0, "suspended": 0}
    ]
    jobset = trainer.store.get(JOBSETS, "default", "tj")
    owner = jobset["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("TrainJob", "tj", True)
    snapshot = trainer.store.get("configmaps", "default", "tj-runtime-snapshot")
    assert "torch-distributed" in snapshot["data"]["runtime"]


@pytest.mark.slow
async def test_a_2x2_ddp_job_trains_on_cpu_with_torchrun(trainer: Trainer) -> None:
    script = textwrap.dedent(
        """
        import os, torch, torch.distributed as dist
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x = torch.randn(32, 4) + rank
        y = torch.randint(0, 3, (32,))
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        total = torch.tensor([float(rank)])
        dist.all_reduce(total)
        weight = model.module.weight.detach().sum().item()
        # one write(2) per line: two processes share a node's stdout, and PYTHONUNBUFFERED
        # splits a print() into the text and its newline, which can interleave
        os.write(1, f"rank={rank} world={world} sum={total.item()} weight={weight:.6f}\\n".encode())
        dist.destroy_process_group()
        """
    )
    trainer.create(
        trainjob(
            "ddp",
            numNodes=2,
            numProcPerNode=2,
            command=["torchrun", "--no-python", "python", "-c", script],
        )
    )
    done = await trainer.finished("ddp", timeout=120)
    assert done["type"] == "Complete", trainer.events("ddp")
    lines = [
        line
        for pod in trainer.pods("ddp")
        for line in trainer.log(pod["metadata"]["name"]).splitlines()
        if line.startswith("rank=")
    ]
    assert sorted(line.split()[0] for line in lines) == [f"rank={r}" for r in range(4)]
    assert all("world=4 sum=6.0" in line for line in lines)
    # the weights stay in sync across every process, which is what DDP is for
    assert len({line.split("weight=")[1] for line in lines}) == 1


async def test_suspend_and_resume(trainer: Trainer) -> None:
    trainer.create(trainjob("sus", command=py("print('ran')"), spec={"suspend": True}))
    await wait_until(lambda: trainer.condition("sus", "Suspended"), 20, "suspended")
    cond = trainer.condition("sus", "Suspended")
    assert cond is not None and (cond["reason"], cond["message"]) == (
        "Suspended",
        "TrainJob is suspended",
    )
    await wait_until(
        lambda: trainer.store.get(JOBSETS, "default", "sus")["spec"].get("suspend"), 20
    )
    assert trainer.pods("sus") == []
    job = trainer.job("sus")
    job["spec"]["suspend"] = False
    trainer.store.update(job)
    done = await trainer.finished("sus")
    assert done["type"] == "Complete"
    resumed = next(c for c in trainer.status("sus")["conditions"] if c["type"] == "Suspended")
    assert (resumed["status"], resumed["reason"], resumed["message"]) == (
        "False",
        "Resumed",
        "TrainJob is resumed",
    )


async def test_an_active_deadline_fails_the_job_and_removes_its_pods(trainer: Trainer) -> None:
    trainer.create(
        trainjob(
            "slow", command=py("import time; time.sleep(60)"), spec={"activeDeadlineSeconds": 1}
        )
    )
    done = await trainer.finished("slow", timeout=30)
    assert (done["type"], done["reason"], done["message"]) == (
        "Failed",
        "DeadlineExceeded",
        "TrainJob exceeded its active deadline",
    )
    await wait_until(lambda: not trainer.pods("slow"), 30, "the pods to go")


async def test_a_failing_node_fails_the_job_and_its_log_stays(trainer: Trainer) -> None:
    trainer.create(trainjob("boom", command=py("import sys; print('loss=nan'); sys.exit(3)")))
    done = await trainer.finished("boom", timeout=60)
    assert done["type"] == "Failed"
    assert done["reason"] == "FailedJobs"
    pods = trainer.pods("boom")
    assert pods and all(p["status"]["phase"] == "Failed" for p in pods)
    assert "loss=nan" in trainer.log(pods[0]["metadata"]["name"])


async def test_an_image_the_machine_cannot_run_says_what_to_install(trainer: Trainer) -> None:
    trainer.create(trainjob("jx", runtime="mlx-distributed", command=["python", "-c", "0"]))

    def waiting() -> str:
        for pod in trainer.pods("jx"):
            for status in pod.get("status", {}).get("containerStatuses") or []:
                reason = (status.get("state") or {}).get("waiting", {}).get("reason")
                if reason == "ErrImagePull":
                    return str(status["state"]["waiting"]["message"])
        return ""

    message = await wait_until(waiting, 30, "ErrImagePull")
    assert "lacks mlx" in message and "pip install mlx" in message


# -- admission -----------------------------------------------------------------------------


def test_a_runtime_that_does_not_exist_is_refused(trainer: Trainer) -> None:
    with pytest.raises(InvalidError, match="specified clusterTrainingRuntime must be created"):
        trainer.create(trainjob("x", runtime="no-such-runtime"))
    with pytest.raises(InvalidError, match="specified trainingRuntime must be created"):
        trainer.create(
            {**trainjob("y"), "spec": {"runtimeRef": {"name": "nope", "kind": "TrainingRuntime"}}}
        )
    with pytest.raises(InvalidError, match=r"unsupported runtime: Foo\.example\.com"):
        trainer.create(
            {
                **trainjob("z"),
                "spec": {"runtimeRef": {"name": "a", "kind": "Foo", "apiGroup": "example.com"}},
            }
        )


def test_another_store_in_the_same_process_does_not_run_the_platforms_checks(
    trainer: Trainer, tmp_path: Path
) -> None:
    """The TrainJob webhook and defaults belong to the platform that installed training:
    a plain store and a second platform without training (same process) keep a TrainJob
    as written, while the first platform still refuses it."""
    other = Platform.open(Settings(home=tmp_path / "other", gateway_port=0, api_port=0))
    other.install_plugins(("wonderland.workloads",))
    plain = Store.open(tmp_path / "plain")
    try:
        for store in (plain, other.store):
            kept = store.create(trainjob("x", runtime="no-such-runtime"))
            assert kept["spec"] == {"runtimeRef": {"name": "no-such-runtime"}}
        with pytest.raises(InvalidError, match="specified clusterTrainingRuntime must be created"):
            trainer.create(trainjob("x", runtime="no-such-runtime"))
        # the core kinds' checks hold in every store
        for store in (plain, other.store, trainer.store):
            secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
            with pytest.raises(InvalidError, match=r"data\.k: is not base64"):
                store.create({**secret, "data": {"k": "not base64!"}})
    finally:
        plain.close()
        other.store.close()


def test_initializers_need_a_runtime_with_initializer_jobs(trainer: Trainer) -> None:
    body = trainjob("init")
    body["spec"]["initializer"] = {"dataset": {"storageUri": "hf://org/data"}}
    with pytest.raises(
        InvalidError,
        match="must have dataset-initializer job when trainJob is configured with input datasetConfig",
    ):
        trainer.create(body)


def test_reserved_and_bounded_fields_are_refused(trainer: Trainer) -> None:
    with pytest.raises(InvalidError, match=r"must not have reserved envs.*PET_MASTER_PORT"):
        trainer.create(trainjob("env", env=[{"name": "PET_MASTER_PORT", "value": "1"}]))
    with pytest.raises(InvalidError, match="numProcPerNode must be greater than or equal to 1"):
        trainer.create(trainjob("np", numProcPerNode=0))
    with pytest.raises(InvalidError, match="a lowercase RFC 1035 label"):
        trainer.create(trainjob("1bad"))
    body = trainjob("uri", runtime="torchtune-llama3.2-1b")
    body["spec"]["initializer"] = {"model": {"storageUri": "not a uri"}}
    with pytest.raises(InvalidError, match="storageUri may be empty, or it must be a valid URI"):
        trainer.create(body)


def test_the_trainer_is_immutable(trainer: Trainer) -> None:
    created = trainer.create(trainjob("imm", command=py("0"), spec={"suspend": True}))
    created["spec"]["trainer"]["command"] = py("1")
    with pytest.raises(InvalidError, match=r"spec.trainer: Invalid value: field is immutable"):
        trainer.store.update(created)


def test_a_runtime_whose_trainer_job_has_two_replicas_is_refused(trainer: Trainer) -> None:
    runtime = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainingRuntime",
        "metadata": {"name": "two", "labels": {"trainer.kubeflow.org/framework": "torch"}},
        "spec": {
            "mlPolicy": {"numNodes": 1, "torch": {}},
            "template": {
                "spec": {
                    "replicatedJobs": [
                        {
                            "name": "node",
                            "replicas": 2,
                            "template": {
                                "metadata": {
                                    "labels": {
                                        "trainer.kubeflow.org/trainjob-ancestor-step": "trainer"
                                    }
                                },
                                "spec": {
                                    "template": {
                                        "spec": {
                                            "containers": [{"name": "node", "image": "python"}]
                                        }
                                    }
                                },
                            },
                        }
                    ]
                }
            },
        },
    }
    with pytest.raises(InvalidError, match=r"replicas: Invalid value: 2: always must be 1"):
        trainer.create(runtime)
    runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["replicas"] = 1
    runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"][
        "spec"
    ]["containers"][0]["name"] = "trainer"
    with pytest.raises(
        InvalidError, match="must contain the required container for the ancestor: trainer"
    ):
        trainer.create(runtime)


def test_trainjob_kind_is_registered_with_the_crd_columns(trainer: Trainer) -> None:
    from wonderland.api import printing, registry

    kind = registry.lookup("trainjobs")
    assert kind.resource == TRAINJOBS
    table = printing.table(
        kind,
        [
            {
                "metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "status": {
                    "conditions": [{"type": "Suspended", "status": "False"}, {"type": "Complete"}],
                    "trainerStatus": {
                        "progressPercentage": 40,
                        "metrics": [{"name": "loss", "value": "0.25"}],
                    },
                },
            }
        ],
    )
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "State", "Age", "Progress", "Metrics"]
    assert table["rows"][0]["cells"][1] == "Complete"
    assert table["rows"][0]["cells"][3:] == ["40%", "loss=0.25"]


def _runtime_with_initializer(name: str) -> dict[str, object]:
    ancestor = "trainer.kubeflow.org/trainjob-ancestor-step"
    mount = [{"name": "initializer", "mountPath": "/workspace"}]
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainingRuntime",
        "metadata": {"name": name, "labels": {"trainer.kubeflow.org/framework": "torch"}},
        "spec": {
            "mlPolicy": {"numNodes": 1, "torch": {}},
            "template": {
                "spec": {
                    "volumeClaimPolicies": [
                        {
                            "templates": [
                                {
                                    "metadata": {"name": "initializer"},
                                    "spec": {
                                        "accessModes": ["ReadWriteOnce"],
                                        "resources": {"requests": {"storage": "1Gi"}},
                                    },
                                }
                            ]
                        }
                    ],
                    "replicatedJobs": [
                        {
                            "name": "dataset-initializer",
                            "template": {
                                "metadata": {"labels": {ancestor: "dataset-initializer"}},
                                "spec": {
                                    "template": {
                                        "spec": {
                                            "containers": [
                                                {
                                                    "name": "dataset-initializer",
                                                    "image": "ghcr.io/kubeflow/trainer/dataset-initializer",
                                                    "volumeMounts": mount,
                                                }
                                            ]
                                        }
                                    }
                                },
                            },
                        },
                        {
                            "name": "node",
                            "dependsOn": [{"name": "dataset-initializer", "status": "Complete"}],
                            "template": {
                                "metadata": {"labels": {ancestor: "trainer"}},
                                "spec": {
                                    "template": {
                                        "spec": {
                                            "containers": [
                                                {
                                                    "name": "node",
                                                    "image": "pytorch/pytorch",
                                                    "volumeMounts": mount,
                                                }
                                            ]
                                        }
                                    }
                                },
                            },
                        },
                    ],
                }
            },
        },
    }


def _pods_by_job(trainer: Trainer, name: str) -> dict[str, dict[str, Any]]:
    """The TrainJob's pods by replicated job (dataset-initializer, node, ...)."""
    return {
        p["metadata"]["labels"]["jobset.sigs.k8s.io/replicatedjob-name"]: p
        for p in trainer.pods(name)
    }


async def test_the_dataset_initializer_fills_the_workspace_before_the_node_starts(
    trainer: Trainer, tmp_path: Path
) -> None:
    if not trainer.kubelet.sandbox.available:
        pytest.skip(f"mount namespaces are not available here: {trainer.kubelet.sandbox.reason}")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("x,y\n1,2\n")
    (data / "notes.md").write_text("ignored")
    trainer.create(_runtime_with_initializer("with-data"))
    body = trainjob(
        "fed",
        runtime="with-data",
        command=["sh", "-c", "ls /workspace/dataset; cat /workspace/dataset/train.csv"],
    )
    body["spec"]["runtimeRef"]["kind"] = "TrainingRuntime"
    body["spec"]["initializer"] = {
        "dataset": {
            "storageUri": f"file://{data}",
            "env": [{"name": "IGNORE_PATTERNS", "value": "*.md"}],
        }
    }
    trainer.create(body)
    done = await trainer.finished("fed", timeout=60)
    assert done["type"] == "Complete", trainer.events("fed")
    pods = _pods_by_job(trainer, "fed")
    init_log = trainer.log(pods["dataset-initializer"]["metadata"]["name"], "dataset-initializer")
    assert "Dataset has been downloaded" in init_log
    node_log = trainer.log(pods["node"]["metadata"]["name"])
    assert node_log.splitlines() == ["train.csv", "x,y", "1,2"]
    # the node started only after the initializer had finished
    init_done = pods["dataset-initializer"]["status"]["containerStatuses"][0]["state"]["terminated"]
    node_started = pods["node"]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert node_started["startedAt"] >= init_done["finishedAt"]


async def test_a_dataset_read_through_a_pvc_initializer_source_is_in_the_status(
    trainer: Trainer, tmp_path: Path
) -> None:
    from wonderland import datasets

    source = tmp_path / "iris.csv"
    source.write_text("x,y\n1,2\n")
    added = datasets.add(trainer.store, trainer.platform.settings.home, "iris", str(source))
    trainer.create(_runtime_with_initializer("with-data"))
    body = trainjob("from-claim", runtime="with-data", command=["true"])
    body["spec"]["runtimeRef"]["kind"] = "TrainingRuntime"
    body["spec"]["initializer"] = {"dataset": {"storageUri": "pvc://iris/iris.csv"}}
    trainer.create(body)

    def recorded() -> list[dict[str, str]] | None:
        return trainer.status("from-claim").get("datasets")

    found = await wait_until(recorded, 30, "the TrainJob to record its dataset")
    assert found == [{"name": "iris", "digest": added.digest, "source": str(source)}]


async def test_an_http_dataset_is_cached_in_the_platforms_state_directory(
    trainer: Trainer, tmp_path: Path
) -> None:
    if not trainer.kubelet.sandbox.available:
        pytest.skip(f"mount namespaces are not available here: {trainer.kubelet.sandbox.reason}")
    served = tmp_path / "served"
    served.mkdir()
    (served / "train.csv").write_text("x,y\n3,4\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        trainer.create(_runtime_with_initializer("web-data"))
        body = trainjob("web", runtime="web-data", command=["cat", "/workspace/dataset/train.csv"])
        body["spec"]["runtimeRef"]["kind"] = "TrainingRuntime"
        url = f"http://127.0.0.1:{server.server_address[1]}/train.csv"
        body["spec"]["initializer"] = {"dataset": {"storageUri": url}}
        trainer.create(body)
        done = await trainer.finished("web", timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    assert done["type"] == "Complete", trainer.events("web")
    pods = _pods_by_job(trainer, "web")
    assert trainer.log(pods["node"]["metadata"]["name"]).splitlines() == ["x,y", "3,4"]
    # the download cache is the platform's (its home), not the user's ~/.wonderland
    init_log = trainer.log(pods["dataset-initializer"]["metadata"]["name"], "dataset-initializer")
    cache = trainer.platform.settings.home / "models"
    assert str(cache) in init_log, init_log
    assert any(cache.rglob("*")), "nothing was cached under the platform's home"


def _runtime(
    name: str, policy: dict[str, object], jobs: list[dict[str, object]], **spec: object
) -> dict[str, object]:
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainingRuntime",
        "metadata": {"name": name, "labels": {"trainer.kubeflow.org/framework": name}},
        "spec": {"mlPolicy": policy, "template": {"spec": {"replicatedJobs": jobs, **spec}}},
    }


def _rjob(
    name: str, container: dict[str, object], ancestor: str | None = None, **extra: object
) -> dict[str, object]:
    meta = {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": ancestor}} if ancestor else {}
    return {
        "name": name,
        "template": {"metadata": meta, "spec": {"template": {"spec": {"containers": [container]}}}},
        **extra,
    }


async def test_xgboost_nodes_get_the_tracker_environment(trainer: Trainer) -> None:
    trainer.create(trainjob("xgb", runtime="xgboost-distributed", numNodes=2, command=py(ENV_DUMP)))
    done = await trainer.finished("xgb")
    assert done["type"] == "Complete", trainer.events("xgb")
    envs = [env_of(trainer, p["metadata"]["name"]) for p in trainer.pods("xgb")]
    assert sorted(e["DMLC_TASK_ID"] for e in envs) == ["0", "1"]
    for env in envs:
        assert env["DMLC_TRACKER_URI"] == "127.0.0.1"
        assert env["DMLC_NUM_WORKER"] == "2"
        assert env["DMLC_TRACKER_PORT"].isdigit()


async def test_jax_nodes_get_the_coordinator_environment(trainer: Trainer) -> None:
    node = {"name": "node", "image": "python:3.12"}
    trainer.create(_runtime("jaxish", {"numNodes": 1, "jax": {}}, [_rjob("node", node, "trainer")]))
    body = trainjob("jx2", runtime="jaxish", numNodes=2, command=py(ENV_DUMP))
    body["spec"]["runtimeRef"]["kind"] = "TrainingRuntime"
    trainer.create(body)
    done = await trainer.finished("jx2")
    assert done["type"] == "Complete", trainer.events("jx2")
    envs = [env_of(trainer, p["metadata"]["name"]) for p in trainer.pods("jx2")]
    assert sorted(e["JAX_PROCESS_ID"] for e in envs) == ["0", "1"]
    for env in envs:
        assert env["JAX_NUM_PROCESSES"] == "2"
        assert env["JAX_COORDINATOR_ADDRESS"].startswith("127.0.0.1:")


async def test_an_mpi_launcher_starts_every_rank_from_the_hostfile(trainer: Trainer) -> None:
    if shutil.which("mpirun") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Open MPI is not installed: run `make mpi`")
        pytest.skip("Open MPI is not installed (apt-get install openmpi-bin, or make mpi)")
    if not trainer.kubelet.sandbox.available:
        pytest.skip(f"mount namespaces are not available here: {trainer.kubelet.sandbox.reason}")
    hold = {"name": "node", "image": "python:3.12", "command": ["sleep", "300"]}
    launcher = {"name": "node", "image": "python:3.12"}
    trainer.create(
        _runtime(
            "mpi-local",
            {"numNodes": 1, "mpi": {"numProcPerNode": 2, "sshAuthMountPath": "/tmp/mpi-ssh"}},
            [_rjob("launcher", launcher, "trainer"), _rjob("node", hold)],
            successPolicy={"operator": "All", "targetReplicatedJobs": ["launcher"]},
        )
    )
    command = (
        "cat /etc/mpi/hostfile; ls /tmp/mpi-ssh; "
        "mpirun --allow-run-as-root -n 4 sh -c 'echo rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE'"
    )
    body = trainjob("mpi", runtime="mpi-local", numNodes=2, command=["sh", "-c", command])
    body["spec"]["runtimeRef"]["kind"] = "TrainingRuntime"
    trainer.create(body)
    done = await trainer.finished("mpi", timeout=90)
    assert done["type"] == "Complete", trainer.events("mpi")
    hostfile = trainer.store.get("configmaps", "default", "mpi-mpi-hostfile")["data"]["hostfile"]
    assert hostfile == "localhost slots=4\n"
    secret = trainer.store.get("secrets", "default", "mpi-mpi-ssh-auth")
    assert secret["type"] == "kubernetes.io/ssh-auth"
    launcher_pod = next(
        p
        for p in trainer.pods("mpi")
        if p["metadata"]["labels"]["jobset.sigs.k8s.io/replicatedjob-name"] == "launcher"
    )
    log = trainer.log(launcher_pod["metadata"]["name"]).splitlines()
    assert log[0] == "localhost slots=4"
    assert {"authorized_keys", "id_rsa", "id_rsa.pub"} <= set(log[1:4])
    assert sorted(line for line in log if line.startswith("rank")) == [
        f"rank {r} of 4" for r in range(4)
    ]
    env = {e["name"]: e.get("value") for e in launcher_pod["spec"]["containers"][0]["env"]}
    assert env["OMPI_MCA_orte_default_hostfile"] == "/etc/mpi/hostfile"
    assert env["OMPI_MCA_orte_set_default_slots"] == "2"


async def test_each_node_gets_its_own_gpus_and_too_many_wait(tmp_path: Path) -> None:
    """On a machine with 2 GPUs (WONDERLAND_GPUS=2 stands in for nvidia-smi): 2 nodes of 1
    GPU each see different devices and start one process per GPU; a job asking for more
    GPUs than the machine has stays Pending, not Failed."""
    from wonderland.platform import Platform
    from wonderland.settings import Settings

    platform = Platform.open(
        Settings(home=tmp_path / "home", gateway_port=0, api_port=0, gpus="2", backoff_seconds=0.2)
    )
    platform.install_plugins(("wonderland.workloads", "wonderland.training"))
    await platform.start()
    trainer = Trainer(platform)
    try:
        dump = (
            "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
            "('CUDA_VISIBLE_DEVICES', 'PET_NPROC_PER_NODE', 'PET_NODE_RANK')}))"
        )
        gpu = {"limits": {"nvidia.com/gpu": "1"}}
        trainer.create(trainjob("gpus", numNodes=2, command=py(dump), resourcesPerNode=gpu))
        done = await trainer.finished("gpus")
        assert done["type"] == "Complete", trainer.events("gpus")
        envs = [env_of(trainer, p["metadata"]["name"]) for p in trainer.pods("gpus")]
        assert sorted(e["CUDA_VISIBLE_DEVICES"] for e in envs) == ["0", "1"]
        assert {e["PET_NPROC_PER_NODE"] for e in envs} == {"auto"}
        trainer.create(
            trainjob(
                "greedy", command=py("0"), resourcesPerNode={"limits": {"nvidia.com/gpu": "4"}}
            )
        )

        def unschedulable() -> str:
            for pod in trainer.pods("greedy"):
                for c in pod.get("status", {}).get("conditions") or []:
                    if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable":
                        return str(c["message"])
            return ""

        message = await wait_until(unschedulable, 20, "an Unschedulable node")
        assert message == "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
        assert trainer.condition("greedy", "Failed") is None
    finally:
        await platform.stop()
        platform.store.close()
