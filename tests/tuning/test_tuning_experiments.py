"""Experiments on an in-process platform: trials as batch Jobs that print ``loss=...``,
suggestions from each algorithm, the counters and optimal trial, and the ends."""

from __future__ import annotations

import pytest
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
