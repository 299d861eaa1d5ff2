"""An experiment continues where it was when the platform restarts mid-way: the study is
rebuilt from the Suggestion and Trials in the store."""

from __future__ import annotations

from pathlib import Path

from _support.daemon import wait_until
from tuning_support import SUGGESTIONS, experiment, start_tuner


async def test_a_restarted_platform_continues_the_experiment(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code = "import sys, time; time.sleep(0.2); print('loss=' + sys.argv[1])"
    first = await start_tuner(home)
    try:
        first.create(
            experiment(
                "resume",
                algorithm="tpe",
                settings={"n_startup_trials": "2", "random_state": "5"},
                command=["python", "-c", code, "${trialParameters.x}"],
                max_trials=5,
                parallel=1,
            )
        )
        await wait_until(
            lambda: (first.status("resume").get("trialsSucceeded") or 0) >= 2,
            30,
            "two succeeded trials",
        )
        before = {
            t["metadata"]["name"]: t["spec"]["parameterAssignments"]
            for t in first.trials("resume")
            if (t.get("status") or {}).get("conditions", [{}])[-1].get("type") == "Succeeded"
        }
    finally:
        await first.stop()
    second = await start_tuner(home)
    try:
        done = await second.finished("resume", timeout=60)
        assert done["reason"] == "ExperimentMaxTrialsReached"
        trials = second.trials("resume")
        assert len(trials) == 5
        after = {t["metadata"]["name"]: t["spec"]["parameterAssignments"] for t in trials}
        for name, assignments in before.items():
            assert after[name] == assignments
        suggestion = second.store.get(SUGGESTIONS, "default", "resume")
        assert suggestion["status"]["suggestionCount"] == 5
        assert len({str(a) for a in after.values()}) == 5  # no assignment handed out twice
    finally:
        await second.stop()
