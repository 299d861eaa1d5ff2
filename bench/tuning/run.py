"""Tuning: the per-trial overhead of a Katib Experiment, and 50 trials against Optuna alone.

1. **Per-trial overhead** (p50/p99): an Experiment of ``--trials`` batch Job trials, one at
   a time (``parallelTrialCount: 1``), whose objective only prints ``loss=<x>``. Each trial
   process prints the wall-clock time it started (its first statement) and the time it is
   about to exit. The overhead of a trial is the gap from one trial's exit to the next
   trial's start: the platform sees the pod finish, the Job complete, the trial controller
   reads the metric from the log, the Suggestion asks Optuna for the next point, and the
   next Trial, Job and Pod are created and its process started, including the Python
   interpreter's own start (measured alone as a floor). Both ends come from the trial
   processes' own clocks, so no API timestamp (they have second resolution) and no
   observer sits in the figure. A watch on the Trials splits the gap into three parts by
   when the bench saw each trial's ``Succeeded`` and the next Trial's creation.
2. **50 trials of a 0.5 s objective**, ``parallelTrialCount: 2``, algorithm ``random``:
   create -> the Experiment's ``Succeeded`` condition seen through a watch, against, in the
   same run, Optuna's own ``study.optimize(objective, n_trials=50, n_jobs=2)`` with a
   ``RandomSampler``, the objective sleeping 0.5 s in-process, and the same with the
   objective run as a subprocess (``python -c``, the program the trials run), since Optuna
   alone starts no processes.

    python bench/tuning/run.py [--trials 40] [--rounds 1]

Katib itself cannot run here; its per-trial cost on a cluster (pod scheduling, the metrics
collector sidecar that polls the training process once a second) is cited in
docs/tuning.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests"))
from _support.kube import KubeClientDaemon  # noqa: E402

GROUP, VERSION = "kubeflow.org", "v1beta1"

# Prints its start, the objective and its exit time (both wall clock).
PRINTER = (
    "import sys, time; began = time.time(); x = float(sys.argv[1]); "
    "print('started', repr(began)); print(f'loss={(x - 0.3) ** 2:.6f}'); "
    "print('exit', repr(time.time()), flush=True)"
)
# Sleeps 0.5 s, then reports a known function of its two parameters.
SLEEPER = (
    "import sys, time; time.sleep(0.5); x, y = float(sys.argv[1]), float(sys.argv[2]); "
    "print(f'loss={(x - 0.3) ** 2 + (y + 0.1) ** 2:.6f}', flush=True)"
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(name: str, values: list[float], unit: str = "ms") -> str:
    return (
        f"  {name:<48} p50 {pct(values, 0.5):8.1f} {unit}   p99 {pct(values, 0.99):8.1f} {unit}"
        f"   n={len(values)}"
    )


def experiment(
    name: str, code: str, params: list[str], *, trials: int, parallel: int, keep: bool
) -> dict[str, Any]:
    space = {"min": "-1", "max": "1"}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": parallel,
            "maxTrialCount": trials,
            "maxFailedTrialCount": trials,
            "parameters": [
                {"name": p, "parameterType": "double", "feasibleSpace": space} for p in params
            ],
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "retain": keep,
                "trialParameters": [{"name": p, "reference": p} for p in params],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "backoffLimit": 0,
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [
                                    {
                                        "name": "training-container",
                                        "image": "python:3.12",
                                        "command": [
                                            "python",
                                            "-c",
                                            code,
                                            *(f"${{trialParameters.{p}}}" for p in params),
                                        ],
                                    }
                                ],
                            }
                        },
                    },
                },
            },
        },
    }


class Daemon(KubeClientDaemon):
    def __init__(self) -> None:
        super().__init__("wl-bench-tuning-")

    def create(self, body: dict[str, Any]) -> None:
        self.api.create_namespaced_custom_object(GROUP, VERSION, "default", "experiments", body)

    def delete(self, name: str) -> None:
        self.api.delete_namespaced_custom_object(GROUP, VERSION, "default", "experiments", name)

    def wait_finished(self, name: str, timeout: float = 600) -> tuple[str, float]:
        """Watch the experiment until it has Succeeded or Failed; the condition and the
        wall-clock time the bench saw it."""
        from kubernetes import watch

        w = watch.Watch()
        for event in w.stream(
            self.api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "default",
            "experiments",
            timeout_seconds=int(timeout),
        ):
            obj = event["object"]
            if obj["metadata"]["name"] != name:
                continue
            for c in (obj.get("status") or {}).get("conditions") or []:
                if c["type"] in ("Succeeded", "Failed") and c["status"] == "True":
                    seen = time.time()
                    w.stop()
                    return str(c["type"]), seen
        raise TimeoutError(name)

    def trials(self, experiment: str) -> list[dict[str, Any]]:
        items = self.api.list_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            "trials",
            label_selector=f"katib.kubeflow.org/experiment={experiment}",
        )["items"]
        return list(items)

    def job_log(self, name: str) -> str:
        pods = self.core.list_namespaced_pod(
            "default", label_selector=f"batch.kubernetes.io/job-name={name}"
        ).items
        return str(self.core.read_namespaced_pod_log(pods[0].metadata.name, "default"))


class TrialWatch:
    """When the bench saw each trial of one experiment created and succeeded."""

    def __init__(self, d: Daemon, experiment: str) -> None:
        self.d = d
        self.experiment = experiment
        self.added: dict[str, float] = {}
        self.succeeded: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TrialWatch:
        self._thread.start()
        time.sleep(0.3)  # the watch is open before the experiment exists
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        from kubernetes import watch

        w = watch.Watch()
        for event in w.stream(
            self.d.api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "default",
            "trials",
            label_selector=f"katib.kubeflow.org/experiment={self.experiment}",
            timeout_seconds=600,
        ):
            now = time.time()
            obj = event["object"]
            name = obj["metadata"]["name"]
            self.added.setdefault(name, now)
            conditions = (obj.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Succeeded" and c["status"] == "True" for c in conditions):
                self.succeeded.setdefault(name, now)
            if self._stop.is_set():
                w.stop()


def interpreter_start(runs: int = 20) -> list[float]:
    """Popen of ``python -c`` to its first statement: the floor every trial pays."""
    out = []
    for _ in range(runs):
        began = time.time()
        done = subprocess.run(
            [sys.executable, "-c", "import time; print(repr(time.time()))"],
            capture_output=True,
            text=True,
            check=True,
        )
        out.append((float(done.stdout) - began) * 1000)
    return out


def bench_overhead(d: Daemon, count: int) -> None:
    print(f"1. per-trial overhead: {count} trials one at a time, the objective only prints")
    name = "overhead"
    with TrialWatch(d, name) as seen:
        d.create(experiment(name, PRINTER, ["x"], trials=count, parallel=1, keep=True))
        state, _ = d.wait_finished(name)
    assert state == "Succeeded", state
    runs = []
    for trial in d.trials(name):
        trial_name = trial["metadata"]["name"]
        lines = dict(line.split(" ", 1) for line in d.job_log(trial_name).splitlines()[:3:2])
        runs.append((float(lines["started"]), float(lines["exit"]), trial_name))
    runs.sort()
    gaps, observed, suggested, started = [], [], [], []
    for (_, exit_at, prev), (start_at, _, nxt) in itertools.pairwise(runs):
        gaps.append((start_at - exit_at) * 1000)
        if prev in seen.succeeded and nxt in seen.added:
            observed.append((seen.succeeded[prev] - exit_at) * 1000)
            suggested.append((seen.added[nxt] - seen.succeeded[prev]) * 1000)
            started.append((start_at - seen.added[nxt]) * 1000)
    print(row("trial exits -> next trial's process running", gaps))
    print(f"  {'of which (seen through a watch on Trials):':<48}")
    print(row("  exit -> trial Succeeded (metric observed)", observed))
    print(row("  Succeeded -> next Trial created (suggestion)", suggested))
    print(row("  Trial created -> its process running", started))
    print(row("floor: `python -c` start, Popen -> first line", interpreter_start()))
    print(f"  {'aim':<48} p50 <= 150 ms per trial")
    d.delete(name)


def optuna_peer(n_jobs: int, trials: int, as_subprocess: bool) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -1, 1)
        y = trial.suggest_float("y", -1, 1)
        if as_subprocess:
            done = subprocess.run(
                [sys.executable, "-c", SLEEPER, repr(x), repr(y)],
                capture_output=True,
                text=True,
                check=True,
            )
            return float(done.stdout.strip().split("=", 1)[1])
        time.sleep(0.5)
        return (x - 0.3) ** 2 + (y + 0.1) ** 2

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    began = time.perf_counter()
    study.optimize(objective, n_trials=trials, n_jobs=n_jobs)
    return time.perf_counter() - began


def bench_fifty(d: Daemon, rounds: int, trials: int = 50) -> None:
    print(f"2. {trials} trials of a 0.5 s objective, 2 at a time, random search")
    ours, in_process, as_process = [], [], []
    for r in range(rounds):
        in_process.append(optuna_peer(2, trials, as_subprocess=False))
        as_process.append(optuna_peer(2, trials, as_subprocess=True))
        name = f"fifty-{r}"
        began = time.time()
        d.create(experiment(name, SLEEPER, ["x", "y"], trials=trials, parallel=2, keep=False))
        state, seen = d.wait_finished(name)
        ours.append(seen - began)
        assert state == "Succeeded", state
        done = [t for t in d.trials(name) if "Succeeded" in str(t.get("status"))]
        assert len(done) == trials, len(done)
        d.delete(name)
    floor = trials / 2 * 0.5
    mine = statistics.median(ours)
    print(f"  {'the objective alone (25 rounds of 0.5 s)':<48} {floor:8.2f} s")
    print(
        f"  {'Optuna study.optimize(n_jobs=2), in-process':<48} {statistics.median(in_process):8.2f} s"
    )
    print(
        f"  {'Optuna study.optimize(n_jobs=2), `python -c`':<48} {statistics.median(as_process):8.2f} s"
    )
    print(f"  {'wonderland Experiment (create -> Succeeded)':<48} {mine:8.2f} s")
    print(
        f"  {'ratio':<48} {mine / statistics.median(in_process):8.2f}x in-process, "
        f"{mine / statistics.median(as_process):.2f}x subprocess (aim <= 1.15x)"
    )
    if rounds > 1:
        print(
            f"  (median of {rounds}; wonderland each round: {', '.join(f'{v:.2f}' for v in ours)} s)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with Daemon() as d:
        bench_overhead(d, args.trials)
        bench_fifty(d, args.rounds)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
