"""Trials: the run object they create, the File and TrainJob collectors, early stopping,
ConfigMap templates, retained runs and deletion."""

from __future__ import annotations

import json
from pathlib import Path

from _support.daemon import wait_until
from tuning_support import TRIALS, Tuner, experiment, trial_condition

from wonderland.api import registry
from wonderland.tuning.collectors import trainer_status_metrics

WRITE = (
    "import os, sys; os.makedirs('/var/log/katib', exist_ok=True); "
    "open('/var/log/katib/metrics.log', 'w').write({line!r}.replace('X', sys.argv[1]))"
)


async def test_the_trial_job_carries_labels_env_and_the_trial_name(tuner: Tuner) -> None:
    code = "import os, sys; print('loss=' + sys.argv[1]); print('name=' + os.environ['KATIB_TRIAL_NAME'])"
    spec = experiment(
        "labels",
        command=["python", "-c", code, "${trialParameters.x}"],
        max_trials=1,
        parallel=1,
    )
    spec["spec"]["trialTemplate"]["retain"] = True
    tuner.create(spec)
    await tuner.finished("labels")
    trial = tuner.trials("labels")[0]
    name = trial["metadata"]["name"]
    job = tuner.store.get("jobs.batch", "default", name)
    assert job["metadata"]["labels"]["katib.kubeflow.org/trial"] == name
    assert job["metadata"]["labels"]["katib.kubeflow.org/experiment"] == "labels"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "Trial"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "KATIB_TRIAL_NAME", "value": name} in container["env"]
    assert trial["metadata"]["labels"]["katib.kubeflow.org/experiment"] == "labels"
    assert trial["spec"]["runSpec"]["metadata"]["name"] == name
    row = registry.lookup("experiment").row(tuner.experiment("labels"))  # type: ignore[misc]
    assert row[1:4] == ["Succeeded", "True", "1/1"] and row[4].startswith("loss=")
    # Deleting the experiment deletes its trials and their Jobs.
    tuner.store.delete("experiments.kubeflow.org", "default", "labels")
    assert not tuner.store.list(TRIALS, "default")[0]
    assert not tuner.store.list("jobs.batch", "default")[0]


async def test_runs_are_deleted_after_the_trial_unless_retained(tuner: Tuner) -> None:
    tuner.create(experiment("gone", max_trials=1, parallel=1))
    await tuner.finished("gone")
    name = tuner.trials("gone")[0]["metadata"]["name"]
    await wait_until(
        lambda: (
            not tuner.store.list("jobs.batch", "default", {"katib.kubeflow.org/trial": name})[0]
        ),
        what="the trial's Job to be deleted",
    )


async def test_the_file_collector_reads_text_and_json_inside_the_pod(tuner: Tuner) -> None:
    for fmt, line in (("TEXT", "epoch=1 loss=X\n"), ("JSON", '{"loss": "X", "epoch": 1}\n')):
        name = f"file-{fmt.lower()}"
        tuner.create(
            experiment(
                name,
                command=["python", "-c", WRITE.format(line=line), "${trialParameters.x}"],
                max_trials=1,
                parallel=1,
                metricsCollectorSpec={
                    "collector": {"kind": "File"},
                    "source": {
                        "fileSystemPath": {
                            "path": "/var/log/katib/metrics.log",
                            "format": fmt,
                            "kind": "File",
                        }
                    },
                },
            )
        )
        done = await tuner.finished(name)
        assert done["reason"] == "ExperimentMaxTrialsReached", tuner.trials(name)
        trial = tuner.trials(name)[0]
        assert trial_condition(trial) == "Succeeded"
        x = trial["spec"]["parameterAssignments"][0]["value"]
        assert trial["status"]["observation"]["metrics"] == [
            {"name": "loss", "min": x, "max": x, "latest": x}
        ]


async def test_a_trainjob_trial_runs_on_the_node_and_its_stdout_is_collected(tuner: Tuner) -> None:
    spec = experiment("tj", max_trials=1, parallel=1)
    template = spec["spec"]["trialTemplate"]
    template["primaryContainerName"] = "node"
    template["trialSpec"] = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {
                "command": [
                    "python",
                    "-c",
                    "import sys; print('loss=' + sys.argv[1])",
                    "${trialParameters.x}",
                ]
            },
        },
    }
    tuner.create(spec)
    done = await tuner.finished("tj")
    assert done["reason"] == "ExperimentMaxTrialsReached"
    stored = tuner.experiment("tj")["spec"]["trialTemplate"]
    assert stored["primaryPodLabels"] == {
        "jobset.sigs.k8s.io/replicatedjob-name": "node",
        "batch.kubernetes.io/job-completion-index": "0",
    }
    assert stored["successCondition"] == 'status.conditions.#(type=="Complete")#|#(status=="True")#'
    trial = tuner.trials("tj")[0]
    assert trial_condition(trial) == "Succeeded"
    x = trial["spec"]["parameterAssignments"][0]["value"]
    assert trial["status"]["observation"]["metrics"][0]["latest"] == x


def test_trainer_status_metrics_are_read_as_reported() -> None:
    run = {
        "status": {
            "trainerStatus": {
                "lastUpdatedTime": "2026-01-01T00:00:00Z",
                "metrics": [{"name": "loss", "value": "0.5"}, {"name": "other", "value": "1"}],
            }
        }
    }
    logs = trainer_status_metrics(run, ["loss"])
    assert [(log.name, log.value) for log in logs] == [("loss", "0.5")]


async def test_median_stop_stops_a_trial_worse_than_the_first_ones(
    tuner: Tuner, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    code = (
        "import sys, time; p = sys.argv[2]; "
        "n = int(open(p).read()) if __import__('os').path.exists(p) else 0; "
        "open(p, 'w').write(str(n + 1)); "
        "loss = 0.1 if n < 2 else 9.0\n"
        "for i in range(3 if n < 2 else 100):\n"
        "    print(f'loss={loss}', flush=True); time.sleep(0.1)"
    )
    tuner.create(
        experiment(
            "median",
            command=["python", "-c", code, "${trialParameters.x}", str(counter)],
            max_trials=3,
            parallel=1,
            earlyStopping={
                "algorithmName": "medianstop",
                "algorithmSettings": [
                    {"name": "min_trials_required", "value": "2"},
                    {"name": "start_step", "value": "2"},
                ],
            },
        )
    )
    done = await tuner.finished("median", timeout=30)
    assert done["reason"] == "ExperimentMaxTrialsReached"
    status = tuner.status("median")
    assert status["trialsSucceeded"] == 2 and status["trialsEarlyStopped"] == 1
    stopped = tuner.trial(status["earlyStoppedTrialList"][0])
    rule = stopped["spec"]["earlyStoppingRules"][0]
    assert (rule["name"], float(rule["value"]), rule["comparison"], rule["startStep"]) == (
        "loss",
        0.1,
        "greater",
        2,
    )
    cond = stopped["status"]["conditions"][-1]
    assert (cond["type"], cond["reason"]) == ("EarlyStopped", "TrialEarlyStopped")
    assert stopped["status"]["observation"]["metrics"][0]["latest"] == "9.0"


async def test_a_trial_template_from_a_config_map(tuner: Tuner) -> None:
    spec = experiment("cm", max_trials=1, parallel=1)
    template = spec["spec"]["trialTemplate"]
    job = template.pop("trialSpec")
    tuner.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "templates", "namespace": "default"},
            "data": {"job.yaml": json.dumps(job)},
        }
    )
    template["configMap"] = {
        "configMapName": "templates",
        "configMapNamespace": "default",
        "templatePath": "job.yaml",
    }
    spec["spec"]["trialTemplate"]["successCondition"] = (
        'status.conditions.#(type=="Complete")#|#(status=="True")#'
    )
    spec["spec"]["trialTemplate"]["failureCondition"] = (
        'status.conditions.#(type=="Failed")#|#(status=="True")#'
    )
    tuner.create(spec)
    done = await tuner.finished("cm")
    assert done["reason"] == "ExperimentMaxTrialsReached"
    assert trial_condition(tuner.trials("cm")[0]) == "Succeeded"
