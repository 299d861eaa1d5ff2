"""Training against a real `wonderland up`: the official Kubeflow SDK (its own virtualenv,
unchanged), the trainer status endpoint as the SDK's reporter calls it from inside a node,
kubectl and the wonderland CLI."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _support.daemon import WONDERLAND, WonderlandDaemon, wait_for
from _support.kube import kubectl_for
from _support.kubeflow_sdk import kubeflow_python, run_sdk

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WonderlandDaemon]:
    started = WonderlandDaemon.in_tmp(tmp_path_factory.mktemp("training")).start()
    try:
        yield started
    finally:
        started.stop()


def _trainjob(daemon: WonderlandDaemon, name: str) -> dict[str, object]:
    out = daemon.ok("get", "trainjob", name, "-o", "json")
    return dict(json.loads(out))


def _command_job(name: str, command: list[str], **trainer: object) -> str:
    """A TrainJob on torch-distributed running ``command``, as JSON for ``apply -f -``."""
    return json.dumps(
        {
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "TrainJob",
            "metadata": {"name": name},
            "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "trainer": {"command": command, **trainer},
            },
        }
    )


def test_the_sdk_lists_runtimes_trains_streams_logs_and_deletes(daemon: WonderlandDaemon) -> None:
    script = textwrap.dedent(
        """
        import json, time
        from kubeflow.trainer import CustomTrainer, TrainerClient

        def train():
            import os, time
            import torch.distributed as dist
            dist.init_process_group("gloo")
            rank, world = dist.get_rank(), dist.get_world_size()
            for step in range(4):
                print(f"rank {rank}/{world} step {step}", flush=True)
                time.sleep(0.4)
            dist.destroy_process_group()

        client = TrainerClient()
        runtimes = sorted((r.name, r.trainer.framework) for r in client.list_runtimes())
        print("RUNTIMES", json.dumps(runtimes), flush=True)
        name = client.train(
            runtime=client.get_runtime("torch-distributed"),
            trainer=CustomTrainer(func=train, num_nodes=2, resources_per_node={"cpu": 1}),
        )
        print("NAME", name, flush=True)
        client.wait_for_job_status(name, {"Running"}, timeout=60, polling_interval=1)
        received = []
        for line in client.get_job_logs(name, follow=True):
            received.append((time.monotonic(), line))
        job = client.wait_for_job_status(name, timeout=120, polling_interval=1)
        steps = sorted((s.name, s.status) for s in job.steps)
        print("JOB", json.dumps({"status": job.status, "nodes": job.num_nodes, "steps": steps}))
        lines = [line for _, line in received if "step" in line]
        spread = received[-1][0] - received[0][0] if received else 0
        print("LOGS", json.dumps({"lines": lines, "spread": spread}))
        reasons = sorted({e.reason for e in client.get_job_events(name)})
        print("EVENTS", json.dumps(reasons))
        client.delete_job(name)
        print("DELETED", name)
        """
    )
    result = run_sdk(script, daemon.home / "kubeconfig")
    assert result.returncode == 0, result.stderr[-3000:]
    out = {
        line.split(" ", 1)[0]: line.split(" ", 1)[1]
        for line in result.stdout.splitlines()
        if line.split(" ", 1)[0] in ("RUNTIMES", "NAME", "JOB", "LOGS", "EVENTS", "DELETED")
    }
    runtimes = json.loads(out["RUNTIMES"])
    assert ["torch-distributed", "torch"] in runtimes
    assert ["xgboost-distributed", "xgboost"] in runtimes
    job = json.loads(out["JOB"])
    assert job["status"] == "Complete"
    assert job["nodes"] == 2
    assert job["steps"] == [["node-0", "Succeeded"], ["node-1", "Succeeded"]]
    logs = json.loads(out["LOGS"])
    # one process per node (the CPU request); node-0's lines arrive while it runs
    assert logs["lines"] == [f"rank 0/2 step {i}" for i in range(4)]
    assert logs["spread"] > 0.8
    events = json.loads(out["EVENTS"])
    assert {"AllJobsCompleted", "Scheduled", "Started"} <= set(events)
    name = out["DELETED"].strip()

    def gone() -> bool:
        listing = daemon.ok(
            "get", "pods", "-l", f"jobset.sigs.k8s.io/jobset-name={name}", "-o", "name"
        )
        return not listing.strip()

    wait_for(gone, 30, "the deleted TrainJob's pods to go")


def test_progress_reported_from_a_node_reaches_the_trainjob(daemon: WonderlandDaemon) -> None:
    sdk = kubeflow_python()
    report = (
        "from kubeflow.trainer import update_trainjob_status as u; "
        "ok = u(progress_percent=40, estimated_remaining_seconds=30, "
        "metrics={'loss': 0.25, 'accuracy': 0.9}); print('sent', ok)"
    )
    daemon.ok("apply", "-f", "-", stdin=_command_job("reporter", [str(sdk), "-c", report]))

    def reported() -> dict[str, object] | None:
        status = _trainjob(daemon, "reporter").get("status") or {}
        assert isinstance(status, dict)
        return status.get("trainerStatus") or None

    trainer_status = wait_for(reported, 60, "trainerStatus")
    assert trainer_status["progressPercentage"] == 40
    assert trainer_status["estimatedRemainingSeconds"] == 30
    assert trainer_status["metrics"] == [
        {"name": "loss", "value": "0.25"},
        {"name": "accuracy", "value": "0.9"},
    ]
    wait_for(
        lambda: "Complete" in daemon.ok("get", "trainjob", "reporter"), 60, "reporter to finish"
    )
    table = daemon.ok("get", "trainjob", "reporter")
    assert table.splitlines()[0].split() == ["NAME", "STATE", "AGE", "PROGRESS", "METRICS"]
    assert "40%" in table and "loss=0.25,accuracy=0.9" in table
    pods = daemon.ok("get", "pods", "-l", "jobset.sigs.k8s.io/jobset-name=reporter", "-o", "name")
    log = daemon.ok("logs", pods.split()[0])
    assert "sent True" in log


def test_the_status_endpoint_refuses_what_upstream_refuses(daemon: WonderlandDaemon) -> None:
    import ssl

    import httpx

    base = daemon.server + "/apis/trainer.kubeflow.org/v1alpha1/namespaces/default/trainjobs"
    ca = daemon.home / "tls" / "server.crt"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as client:
        anonymous = client.post(f"{base}/reporter/status", json={"trainerStatus": {}})
        assert anonymous.status_code == 403
        assert anonymous.json()["reason"] == "Forbidden"
        kubeconfig_token = _kubeconfig_token(daemon.home / "kubeconfig")
        wrong = client.post(
            f"{base}/reporter/status",
            json={"trainerStatus": {"progressPercentage": 1}},
            headers={"Authorization": f"Bearer {kubeconfig_token}"},
        )
        assert wrong.status_code == 403  # the platform's own token is not a pod's
        huge = client.post(f"{base}/reporter/status", content=b"{" + b" " * 70_000 + b"}")
        assert huge.status_code == 413


def _kubeconfig_token(path: Path) -> str:
    import yaml

    config = yaml.safe_load(path.read_text())
    return str(config["users"][0]["user"]["token"])


def test_kubectl_and_the_cli_show_trainjobs_and_follow_their_logs(daemon: WonderlandDaemon) -> None:
    kubectl = kubectl_for(daemon)
    runtimes = kubectl("get", "clustertrainingruntimes")
    assert runtimes.returncode == 0, runtimes.stderr
    assert "torch-distributed" in runtimes.stdout
    manifest = _command_job(
        "chatty",
        [
            "python",
            "-c",
            "import os, time\n"
            "for i in range(3):\n"
            "    print('node', os.environ['PET_NODE_RANK'], 'line', i, flush=True)\n"
            "    time.sleep(0.3)",
        ],
        numNodes=2,
    )
    started = time.monotonic()
    follow = subprocess.Popen(
        [*WONDERLAND, "logs", "trainjob/chatty", "-f"],
        env=daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        created = kubectl("apply", "-f", "-", stdin=manifest)
        assert created.returncode == 0, created.stderr
        out, err = follow.communicate(timeout=90)
    finally:
        if follow.poll() is None:
            follow.kill()
    assert follow.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 6, out
    assert {line.split("]")[0] + "]" for line in lines} == {
        f"[pod/{pod}/node]"
        for pod in daemon.ok(
            "get", "pods", "-l", "jobset.sigs.k8s.io/jobset-name=chatty", "-o", "name"
        )
        .replace("pod/", "")
        .split()
    }
    assert time.monotonic() - started < 60
    table = kubectl("get", "trainjobs")
    assert table.stdout.splitlines()[0].split() == ["NAME", "STATE", "AGE"]
    assert "chatty" in table.stdout and "Complete" in table.stdout


def test_the_iris_example_trains_reports_and_is_served(daemon: WonderlandDaemon) -> None:
    """examples/training: the DDP TrainJob writes a model that an InferenceService serves."""
    import httpx
    import yaml

    examples = Path(__file__).resolve().parents[2] / "examples" / "training"
    daemon.ok("apply", "-f", str(examples / "iris-ddp.yaml"))
    wait_for(
        lambda: "Complete" in daemon.ok("get", "trainjob", "iris"), 120, "the iris job to finish"
    )
    status = _trainjob(daemon, "iris")["status"]
    assert isinstance(status, dict)
    trainer_status = status["trainerStatus"]
    assert trainer_status["progressPercentage"] == 100
    metrics = {m["name"]: float(m["value"]) for m in trainer_status["metrics"]}
    assert metrics["accuracy"] > 0.9
    pods = daemon.ok("get", "pods", "-l", "jobset.sigs.k8s.io/jobset-name=iris", "-o", "name")
    logs = daemon.ok("logs", pods.split()[0])
    assert "model written to /model/model.pt" in logs
    daemon.ok("apply", "-f", str(examples / "iris-serve.yaml"))

    def ready() -> bool:
        isvc = yaml.safe_load(daemon.ok("get", "isvc", "iris-torch", "-o", "yaml"))
        conditions = (isvc.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_for(ready, 120, "isvc/iris-torch Ready")
    isvc = yaml.safe_load(daemon.ok("get", "isvc", "iris-torch", "-o", "yaml"))
    host = isvc["status"]["url"].split("://", 1)[1]
    answer = httpx.post(
        daemon.gateway + "/v1/models/iris-torch:predict",
        json={"instances": [[6.8, 2.8, 4.8, 1.4], [5.1, 3.5, 1.4, 0.2]]},
        headers={"Host": host},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [1, 0]


def test_a_transformers_trainer_reports_progress_with_no_code_change(
    daemon: WonderlandDaemon,
) -> None:
    """transformers turns its Kubeflow callback on by itself when the trainer's variables are
    set: progress and the logged loss reach the TrainJob."""
    program = textwrap.dedent(
        """
        import torch
        from transformers import Trainer, TrainingArguments

        class Tiny(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(4, 2)

            def forward(self, x, labels):
                logits = self.layer(x)
                return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}

        data = [{"x": torch.randn(4), "labels": torch.tensor(i % 2)} for i in range(64)]
        args = TrainingArguments(
            output_dir="out", max_steps=20, per_device_train_batch_size=8, logging_steps=5,
            save_strategy="no", use_cpu=True, disable_tqdm=True,
        )
        Trainer(model=Tiny(), args=args, train_dataset=data).train()
        print("trained")
        """
    )
    daemon.ok("apply", "-f", "-", stdin=_command_job("hf", ["python", "-c", program]))
    wait_for(lambda: "Complete" in daemon.ok("get", "trainjob", "hf"), 120, "hf to finish")
    status = _trainjob(daemon, "hf")["status"]
    assert isinstance(status, dict)
    trainer_status = status["trainerStatus"]
    assert trainer_status["progressPercentage"] == 100
    names = {m["name"] for m in trainer_status["metrics"]}
    assert "loss" in names or "train_loss" in names, trainer_status
