"""Experiments on an in-process platform: trials as batch Jobs that print ``loss=...``,
suggestions from each algorithm, the counters and optimal trial, and the ends."""

from __future__ import annotations

from pathlib import Path

import pytest
from _support.daemon import wait_until
from tuning_support import SUGGESTIONS, Tuner, assignment, experiment, trial_condition


async def test_random_search_runs_max_trials_and_reports_the_best(tuner: Tuner) -> None:
    tuner.create(experiment("rnd", settings={"random_state": "7"}))
    done = await tuner.finished("rnd")
    assert (done["type"], done["reason"]) == ("Succeeded", "ExperimentMaxTrialsReached")
    status = tuner.status("rnd")
    trials = tuner.trials("rnd")
    assert len(trials) == 4 and status["trials"] == 4 and status["trialsSucceeded"] == 4
    losses = {
        t["metadata"]["name"]: float(t["status"]["observation"]["metrics"][0]["min"])
        for t in trials
    }
    best = status["currentOptimalTrial"]
    assert best["bestTrialName"] == min(losses, key=lambda k: losses[k])
    x = float(best["parameterAssignments"][0]["value"])
    assert best["observation"]["metrics"][0]["latest"] == f"{(x - 0.3) ** 2:.6f}"
    for trial in trials:
        assert trial["metadata"]["name"].startswith("rnd-")
        assert trial_condition(trial) == "Succeeded"
        assert 0 <= float(assignment(trial, "x")) <= 1
    suggestion = tuner.store.get(SUGGESTIONS, "default", "rnd")
    assert suggestion["status"]["suggestionCount"] == 4
    assert [c["type"] for c in status["conditions"]] == ["Created", "Running", "Succeeded"]
    assert status["startTime"] and status["completionTime"]


TWO_PARAMS = [
    {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
    {"name": "y", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "5"}},
]


@pytest.mark.parametrize(
    ("algorithm", "settings"),
    [
        ("tpe", {"n_startup_trials": "2", "n_ei_candidates": "8", "random_state": "1"}),
        ("multivariate-tpe", {"n_startup_trials": "2", "random_state": "1"}),
        ("cmaes", {"sigma": "0.2", "random_state": "3"}),
        ("sobol", {"random_state": "1"}),
        ("bayesianoptimization", {"n_initial_points": "2", "random_state": "1"}),
    ],
)
async def test_each_algorithm_suggests_within_the_search_space(
    tuner: Tuner, algorithm: str, settings: dict[str, str]
) -> None:
    code = "import sys; x, y = float(sys.argv[1]), int(sys.argv[2]); print(f'loss={(x - 0.3) ** 2 + y}')"
    tuner.create(
        experiment(
            "alg",
            algorithm=algorithm,
            settings=settings,
            parameters=TWO_PARAMS,
            command=["python", "-c", code, "${trialParameters.x}", "${trialParameters.y}"],
            max_trials=5,
            parallel=1,
        )
    )
    done = await tuner.finished("alg")
    assert done["reason"] == "ExperimentMaxTrialsReached"
    trials = tuner.trials("alg")
    assert len(trials) == 5
    for trial in trials:
        assert 0 <= float(assignment(trial, "x")) <= 1
        assert assignment(trial, "y") in {"1", "2", "3", "4", "5"}
    assert tuner.status("alg")["trialsSucceeded"] == 5


async def test_grid_visits_every_combination_once_then_ends(tuner: Tuner) -> None:
    grid = [
        {
            "name": "x",
            "parameterType": "double",
            "feasibleSpace": {"min": "0.1", "max": "0.3", "step": "0.1"},
        },
        {"name": "y", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}},
    ]
    spec = experiment(
        "grid",
        algorithm="grid",
        parameters=grid,
        command=[
            "python",
            "-c",
            "import sys; print('loss=' + sys.argv[1])",
            "${trialParameters.x}",
            "${trialParameters.y}",
        ],
        parallel=3,
    )
    del spec["spec"]["maxTrialCount"]
    tuner.create(spec)
    done = await tuner.finished("grid")
    assert (done["type"], done["reason"]) == ("Succeeded", "ExperimentSuggestionEndReached")
    seen = sorted((assignment(t, "x"), assignment(t, "y")) for t in tuner.trials("grid"))
    assert seen == [(x, y) for x in ("0.1", "0.2", "0.3") for y in ("a", "b")]
    suggestion = tuner.store.get(SUGGESTIONS, "default", "grid")
    assert suggestion["status"]["conditions"][-1]["reason"] == "SuggestionExhausted"


async def test_the_goal_ends_the_experiment(tuner: Tuner) -> None:
    spec = experiment(
        "goal",
        objective={"type": "maximize", "objectiveMetricName": "accuracy", "goal": 0.5},
        command=["python", "-c", "print('accuracy=0.9')"],
        parameters=[
            {"name": "x", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}}
        ],
        max_trials=10,
        parallel=1,
    )
    spec["spec"]["trialTemplate"]["trialParameters"] = [{"name": "x", "reference": "x"}]
    spec["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ] = ["${trialParameters.x}"]
    tuner.create(spec)
    done = await tuner.finished("goal")
    assert (done["type"], done["reason"], done["message"]) == (
        "Succeeded",
        "ExperimentGoalReached",
        "Experiment has succeeded because Objective goal has reached",
    )
    assert tuner.status("goal")["trials"] == 1


async def test_failed_trials_fail_the_experiment_at_max_failed_trial_count(tuner: Tuner) -> None:
    tuner.create(
        experiment(
            "bad",
            command=["python", "-c", "import sys; sys.exit(3)", "${trialParameters.x}"],
            maxFailedTrialCount=2,
            max_trials=5,
        )
    )
    done = await tuner.finished("bad")
    assert (done["type"], done["reason"]) == ("Failed", "ExperimentFailed")
    status = tuner.status("bad")
    assert status["trialsFailed"] >= 2 and len(status["failedTrialList"]) == status["trialsFailed"]
    trial = tuner.trial(status["failedTrialList"][0])
    failed = trial["status"]["conditions"][-1]
    assert failed["type"] == "Failed"
    assert failed["reason"].startswith("TrialFailed. Job reason: BackoffLimitExceeded")


async def test_a_trial_without_the_metric_is_metrics_unavailable_naming_what_was_read(
    tuner: Tuner,
) -> None:
    tuner.create(
        experiment(
            "nometric",
            command=[
                "python",
                "-c",
                "print('epoch 1 done'); print('val-acc: 0.5')",
                "${trialParameters.x}",
            ],
            max_trials=1,
            parallel=1,
        )
    )
    done = await tuner.finished("nometric")
    # As on Katib: without maxFailedTrialCount the trial counts towards maxTrialCount.
    assert (done["type"], done["reason"]) == ("Succeeded", "ExperimentMaxTrialsReached")
    status = tuner.status("nometric")
    assert status["trialMetricsUnavailable"] == 1
    trial = tuner.trial(status["metricsUnavailableTrialList"][0])
    cond = trial["status"]["conditions"][-1]
    assert cond["type"] == "MetricsUnavailable" and cond["reason"] == "MetricsUnavailable"
    assert 'the objective metric "loss" was not found by the StdOut collector' in cond["message"]
    assert 'container "training-container"' in cond["message"]
    assert "val-acc: 0.5" in cond["message"]


# Prints loss=x once the file named by argv[2] exists (the test's go-ahead).
GATED = (
    "import pathlib, sys, time\n"
    "go = pathlib.Path(sys.argv[2])\n"
    "deadline = time.monotonic() + 60\n"
    "while not go.exists() and time.monotonic() < deadline:\n"
    "    time.sleep(0.05)\n"
    "print('loss=' + sys.argv[1])\n"
)


async def test_lowering_parallel_trial_count_deletes_the_newest_active_trials(
    tuner: Tuner, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    tuner.create(
        experiment(
            "narrow",
            command=["python", "-c", GATED, "${trialParameters.x}", str(go)],
            max_trials=4,
            parallel=3,
        )
    )

    def running() -> list[str]:
        names = tuner.status("narrow").get("runningTrialList") or []
        return names if len(names) == 3 else []

    await wait_until(running, 60, "three running trials")
    # The order trials were created in: the order their assignments were handed out.
    handed = tuner.store.get(SUGGESTIONS, "default", "narrow")["status"]["suggestions"]
    assert len(handed) == 3
    oldest, newer = handed[0]["name"], [a["name"] for a in handed[1:]]
    body = tuner.experiment("narrow")
    body["spec"]["parallelTrialCount"] = 1
    tuner.store.update(body)

    def only_oldest() -> bool:
        return [t["metadata"]["name"] for t in tuner.trials("narrow")] == [oldest]

    await wait_until(only_oldest, 30, "the two newest trials to be deleted")
    # Their Jobs and pods go with them (the processes are stopped), their assignments
    # are withdrawn from the Suggestion.
    await wait_until(
        lambda: (
            not any(
                tuner.store.list("pods", "default", {"katib.kubeflow.org/trial": n})[0]
                for n in newer
            )
        ),
        30,
        "the deleted trials' pods to go",
    )
    suggestion = tuner.store.get(SUGGESTIONS, "default", "narrow")
    assert [a["name"] for a in suggestion["status"]["suggestions"]] == [oldest]
    assert suggestion["spec"]["requests"] == 1
    events, _ = tuner.store.list("events", "default")
    assert any(
        e.get("reason") == "TrialsDeleted" and "parallelTrialCount is 1" in e.get("message", "")
        for e in events
    )
    go.touch()
    done = await tuner.finished("narrow")
    assert done["reason"] == "ExperimentMaxTrialsReached"
    trials = tuner.trials("narrow")
    names = [t["metadata"]["name"] for t in trials]
    assert len(trials) == 4 and oldest in names and not set(newer) & set(names)
    assert all(trial_condition(t) == "Succeeded" for t in trials)
    assert tuner.status("narrow").get("trialsRunning") == 0
    # No assignment was handed out twice.
    assert len({assignment(t, "x") for t in trials}) == 4


@pytest.mark.parametrize("policy", ["LongRunning", "FromVolume"])
async def test_raising_max_trial_count_resumes_a_resumable_experiment(
    tuner: Tuner, policy: str
) -> None:
    tuner.create(experiment("again", max_trials=2, parallel=2, resumePolicy=policy))
    done = await tuner.finished("again")
    assert done["reason"] == "ExperimentMaxTrialsReached"
    first = {t["metadata"]["name"] for t in tuner.trials("again")}
    body = tuner.experiment("again")
    body["spec"]["maxTrialCount"] = 4
    tuner.store.update(body)

    def resumed_and_done() -> bool:
        status = tuner.status("again")
        ended = any(
            c["type"] == "Succeeded" and c["status"] == "True"
            for c in status.get("conditions") or []
        )
        return ended and status.get("trialsSucceeded") == 4

    await wait_until(resumed_and_done, 60, f"the {policy} experiment to run 2 more trials")
    trials = tuner.trials("again")
    assert first < {t["metadata"]["name"] for t in trials}
    assert len({assignment(t, "x") for t in trials}) == 4
    types = [c["type"] for c in tuner.status("again")["conditions"]]
    assert "Restarting" in types
