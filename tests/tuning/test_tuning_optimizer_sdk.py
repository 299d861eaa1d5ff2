"""The Kubeflow SDK's ``OptimizerClient`` (``kubeflow`` 0.5, unchanged, in its own
virtualenv) against a real `wonderland up`: it creates a Katib Experiment whose trials are
TrainJobs running the SDK's generated command, parameters arriving as strings, metrics from
the StdOut collector; then reads the job, its trials, the best result and the best trial's
log (from the collector sidecar's container name), and deletes it."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator

import pytest
from _support.daemon import WonderlandDaemon, wait_for
from _support.kubeflow_sdk import kubeflow_python, run_sdk

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WonderlandDaemon]:
    kubeflow_python()
    started = WonderlandDaemon.in_tmp(tmp_path_factory.mktemp("optimizer")).start()
    try:
        yield started
    finally:
        started.stop()


SCRIPT = textwrap.dedent(
    """
    import json
    from kubeflow.optimizer import (
        GridSearch, Objective, OptimizerClient, RandomSearch, Search, TrialConfig,
    )
    from kubeflow.optimizer.types.optimization_types import Direction
    from kubeflow.trainer import CustomTrainer, TrainJobTemplate

    def train(lr, optimizer):
        # the SDK passes every parameter as a string
        assert isinstance(lr, str) and isinstance(optimizer, str), (lr, optimizer)
        penalty = 0.0 if optimizer == "adam" else 0.5
        loss = (float(lr) - 0.01) ** 2 + penalty
        print("training with", optimizer, "lr", lr, flush=True)
        print(f"loss={loss:.8f}", flush=True)

    client = OptimizerClient()

    def wait(job_name):
        # The SDK lists a job's Trials, then reads each Trial's TrainJob: a Trial listed in
        # the instant before its TrainJob exists makes that read 404 (Katib, on a cluster
        # too, creates the Trial first). Poll again, as a user would.
        for _ in range(3):
            try:
                return client.wait_for_job_status(job_name, timeout=240, polling_interval=1)
            except RuntimeError as exc:
                if "Failed to list Trials" not in str(exc):
                    raise
                last = exc
        raise last

    name = client.optimize(
        trial_template=TrainJobTemplate(trainer=CustomTrainer(func=train)),
        search_space={
            "lr": Search.loguniform(0.001, 0.1),
            "optimizer": Search.choice(["adam", "sgd"]),
        },
        trial_config=TrialConfig(num_trials=4, parallel_trials=2),
        objectives=[Objective("loss", Direction.MINIMIZE)],
        algorithm=RandomSearch(random_state=3),
    )
    print("NAME", name, flush=True)
    job = wait(name)
    print("JOB", json.dumps({
        "status": job.status,
        "trials": sorted(t.name for t in job.trials),
        "trial_status": sorted({t.trainjob.status for t in job.trials}),
        "num_trials": job.trial_config.num_trials,
        "algorithm": job.algorithm.algorithm_name,
    }), flush=True)
    listed = [j.name for j in client.list_jobs()]
    print("LISTED", json.dumps(listed), flush=True)
    best = client.get_best_results(name)
    print("BEST", json.dumps({
        "parameters": best.parameters,
        "metrics": [[m.name, m.latest, m.min, m.max] for m in best.metrics],
    }), flush=True)
    logs = list(client.get_job_logs(name))
    print("LOGS", json.dumps(logs), flush=True)

    grid = client.optimize(
        trial_template=TrainJobTemplate(trainer=CustomTrainer(func=train)),
        search_space={"lr": Search.choice([0.01, 0.05]), "optimizer": Search.choice(["adam"])},
        trial_config=TrialConfig(num_trials=2, parallel_trials=2),
        algorithm=GridSearch(),
    )
    done = wait(grid)
    print("GRID", json.dumps({
        "status": done.status,
        "best": client.get_best_results(grid).parameters,
        "tried": sorted(t.parameters["lr"] for t in done.trials),
    }), flush=True)
    client.delete_job(name)
    client.delete_job(grid)
    print("DELETED", json.dumps([name, grid]), flush=True)
    """
)


def test_optimize_get_list_best_logs_and_delete(daemon: WonderlandDaemon) -> None:
    result = run_sdk(SCRIPT, daemon.home / "kubeconfig", timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    out = {
        line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) if " " in line else None
        for line in result.stdout.splitlines()
        if line.split(" ", 1)[0] in ("JOB", "LISTED", "BEST", "LOGS", "GRID", "DELETED")
    }
    name = result.stdout.split("NAME ", 1)[1].split()[0]
    job = out["JOB"]
    assert job["status"] == "Complete"
    assert len(job["trials"]) == 4 and all(t.startswith(f"{name}-") for t in job["trials"])
    assert job["trial_status"] == ["Complete"]
    assert (job["num_trials"], job["algorithm"]) == (4, "random")
    assert name in out["LISTED"]

    best = out["BEST"]
    assert set(best["parameters"]) == {"lr", "optimizer"}
    assert 0.001 <= float(best["parameters"]["lr"]) <= 0.1
    (metric,) = best["metrics"]
    assert metric[0] == "loss"
    expected = (float(best["parameters"]["lr"]) - 0.01) ** 2
    expected += 0.0 if best["parameters"]["optimizer"] == "adam" else 0.5
    assert abs(float(metric[1]) - expected) < 1e-6

    # the best trial's output, read from the StdOut collector's container name
    logs = "\n".join(out["LOGS"])
    assert f"training with {best['parameters']['optimizer']} lr {best['parameters']['lr']}" in logs
    assert f"loss={float(metric[1]):.8f}" in logs

    grid = out["GRID"]
    assert grid["status"] == "Complete"
    assert grid["tried"] == ["0.01", "0.05"]
    assert grid["best"] == {"lr": "0.01", "optimizer": "adam"}

    deleted = out["DELETED"]

    def gone() -> bool:
        listing = daemon.ok("get", "experiments", "-o", "name")
        trainjobs = daemon.ok("get", "trainjobs", "-o", "name")
        return not any(n in listing or n in trainjobs for n in deleted)

    wait_for(gone, 60, "the deleted experiments and their trials to go", interval=0.5)


def test_the_collector_container_is_refused_on_pods_that_are_not_stdout_trials(
    daemon: WonderlandDaemon,
) -> None:
    job = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "plain"},
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {"command": ["python", "-c", "print('hello')"]},
        },
    }
    daemon.ok("apply", "-f", "-", stdin=json.dumps(job))

    def pod() -> str:
        return daemon.ok(
            "get", "pods", "-l", "jobset.sigs.k8s.io/jobset-name=plain", "-o", "name"
        ).strip()

    name = wait_for(pod, 60, "the plain TrainJob's pod", interval=0.5).split("/")[-1]
    wait_for(lambda: "hello" in daemon.ok("logs", name), 60, "its log", interval=0.5)
    refused = daemon.run("logs", name, "-c", "metrics-logger-and-collector")
    assert refused.returncode != 0
    assert "container metrics-logger-and-collector is not valid" in refused.stderr
