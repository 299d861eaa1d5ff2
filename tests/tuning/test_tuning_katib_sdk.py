"""The Katib SDK (``kubeflow-katib`` 0.19, unchanged, from ``.venv-katib``) against a real
`wonderland up`: ``KatibClient.tune`` with an objective function, the StdOut and Push
collectors, waiting, the optimal trial, listing and deleting.

``tune`` makes each trial a batch Job whose ``training-container`` runs ``bash -c`` with the
objective's source written to a file and ``python -u`` on it, in ``base_image``. The
default image (``docker.io/pytorch/pytorch``) runs in the platform's own environment; the
Push test's image is mapped by the daemon's ``wonderland.yaml`` to ``.venv-katib``, where
``kubeflow.katib.report_metrics`` is importable.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator

import pytest
from _support.daemon import WonderlandDaemon, wait_for
from _support.katib_sdk import KATIB_PYTHON, katib_python, run_katib_sdk

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRIAL_IMAGE = "wonderland.test/katib-trial:0.19.0"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WonderlandDaemon]:
    katib_python()
    tmp = tmp_path_factory.mktemp("katib-sdk")
    project = tmp / "project"
    project.mkdir()
    # The image the Push trials name runs in the Katib SDK's environment.
    (project / "wonderland.yaml").write_text(
        "build:\n  artifacts:\n"
        f"    - image: {TRIAL_IMAGE.split(':')[0]}\n"
        f"      environment: {KATIB_PYTHON.parent.parent}\n"
    )
    daemon = WonderlandDaemon.in_tmp(tmp, cwd=project)
    # The daemon runs in the project folder: a relative PYTHONPATH (PYTHONPATH=src) must
    # still name this checkout.
    if daemon.env.get("PYTHONPATH"):
        paths = daemon.env["PYTHONPATH"].split(os.pathsep)
        daemon.env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in paths)
    started = daemon.start()
    try:
        yield started
    finally:
        started.stop()


def _sdk(daemon: WonderlandDaemon, body: str) -> dict[str, object]:
    """Run ``body`` (which sets ``out``) with the SDK; ``out`` as JSON."""
    script = "import json\nfrom kubeflow import katib\n" + textwrap.dedent(body)
    script += "\nprint('OUT ' + json.dumps(out), flush=True)\n"
    result = run_katib_sdk(script, daemon.home / "kubeconfig")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("OUT "))
    return dict(json.loads(line[4:]))


def test_tune_with_an_objective_function_and_the_stdout_collector(
    daemon: WonderlandDaemon,
) -> None:
    out = _sdk(
        daemon,
        """
        def objective(parameters):
            import time
            time.sleep(0.2)
            result = 4 * int(parameters["a"]) - float(parameters["b"]) ** 2
            print(f"result={result}")

        client = katib.KatibClient()
        client.tune(
            name="tune-stdout",
            objective=objective,
            parameters={
                "a": katib.search.int(min=10, max=20),
                "b": katib.search.double(min=0.1, max=0.2),
            },
            objective_metric_name="result",
            max_trial_count=4,
            parallel_trial_count=2,
            resources_per_trial={"cpu": "1"},
        )
        exp = client.wait_for_experiment_condition(
            "tune-stdout", timeout=180, polling_interval=1
        )
        best = client.get_optimal_hyperparameters("tune-stdout")
        trials = client.list_trials("tune-stdout")
        out = {
            "succeeded": client.is_experiment_succeeded("tune-stdout"),
            "reason": exp.status.conditions[-1].reason,
            "image": exp.spec.trial_template.trial_spec["spec"]["template"]["spec"][
                "containers"
            ][0]["image"],
            "best": best.best_trial_name,
            "best_params": {p.name: p.value for p in best.parameter_assignments},
            "best_metric": [
                (m.name, m.latest) for m in best.observation.metrics
            ],
            "trials": [
                (
                    t.metadata.name,
                    t.status.conditions[-1].type,
                    {p.name: p.value for p in t.spec.parameter_assignments},
                    [(m.name, m.latest) for m in t.status.observation.metrics],
                )
                for t in trials
            ],
        }
        client.delete_experiment("tune-stdout")
        """,
    )
    assert out["succeeded"] is True and out["reason"] == "ExperimentMaxTrialsReached"
    assert str(out["image"]).startswith("docker.io/pytorch/pytorch:")
    trials = out["trials"]
    assert isinstance(trials, list) and len(trials) == 4
    results = {}
    for name, state, params, metrics in trials:
        assert state == "Succeeded"
        expected = 4 * int(params["a"]) - float(params["b"]) ** 2
        assert metrics[0][0] == "result" and float(metrics[0][1]) == pytest.approx(expected)
        results[name] = expected
    assert out["best"] == max(results, key=lambda k: results[k])  # tune() maximizes by default
    best_params = out["best_params"]
    assert isinstance(best_params, dict)
    assert float(out["best_metric"][0][1]) == pytest.approx(  # type: ignore[index]
        4 * int(best_params["a"]) - float(best_params["b"]) ** 2
    )
    # delete_experiment takes the trials and their Jobs with it.
    wait_for(
        lambda: '"items": []' in daemon.ok("get", "trials", "-o", "json").replace("\n", ""),
        30,
        "the deleted experiment's trials to go",
    )


def test_tune_with_report_metrics_and_the_push_collector(daemon: WonderlandDaemon) -> None:
    # the address `wonderland up` prints (and keeps in daemon.json) for clients outside trials
    db_manager = json.loads((daemon.home / "daemon.json").read_text())["katib-db-manager"]
    out = _sdk(
        daemon,
        f"""
        def objective(parameters):
            from kubeflow.katib import report_metrics
            lr = float(parameters["lr"])
            for step in range(3):
                report_metrics({{"loss": (lr - 0.05) ** 2 + 0.1 / (step + 1), "step": step}})

        client = katib.KatibClient()
        client.tune(
            name="tune-push",
            objective=objective,
            base_image={TRIAL_IMAGE!r},
            parameters={{"lr": katib.search.double(min=0.01, max=0.1)}},
            objective_metric_name="loss",
            additional_metric_names=["step"],
            objective_type="minimize",
            max_trial_count=3,
            parallel_trial_count=3,
            metrics_collector_config={{"kind": "Push"}},
        )
        exp = client.wait_for_experiment_condition("tune-push", timeout=180, polling_interval=1)
        best = client.get_optimal_hyperparameters("tune-push")
        logs = client.get_trial_metrics(best.best_trial_name, db_manager_address={db_manager!r})
        out = {{
            "logged": [(l.metric.name, float(l.metric.value)) for l in logs],
            "collector": exp.spec.metrics_collector_spec.collector.kind,
            "reason": exp.status.conditions[-1].reason,
            "best": best.best_trial_name,
            "trials": [
                (
                    t.metadata.name,
                    t.status.conditions[-1].type,
                    float(t.spec.parameter_assignments[0].value),
                    {{m.name: (m.min, m.max, m.latest) for m in t.status.observation.metrics}},
                )
                for t in client.list_trials("tune-push")
            ],
        }}
        """,
    )
    assert out["collector"] == "Push" and out["reason"] == "ExperimentMaxTrialsReached"
    trials = out["trials"]
    assert isinstance(trials, list) and len(trials) == 3
    finals = {}
    for name, state, lr, metrics in trials:
        assert state == "Succeeded", trials
        first, last = (lr - 0.05) ** 2 + 0.1, (lr - 0.05) ** 2 + 0.1 / 3
        low, high, latest = (float(v) for v in metrics["loss"])
        assert (low, high, latest) == pytest.approx((last, first, last))
        assert metrics["step"][2] == "2"
        finals[name] = last
    assert out["best"] == min(finals, key=lambda k: finals[k])
    # KatibClient.get_trial_metrics reads the best trial's whole log back from the platform
    logged = out["logged"]
    assert isinstance(logged, list)
    assert [v for n, v in logged if n == "step"] == [0.0, 1.0, 2.0]
    losses = [v for n, v in logged if n == "loss"]
    assert len(losses) == 3 and losses[-1] == pytest.approx(finals[str(out["best"])])
