"""The Training and Registry pages in headless Chromium against a real `wonderland up`:
follow a real TrainJob's metric chart and its node's log to completion without a reload,
then promote a registered model version in the form and see the alias move in MLflow;
watch a real Katib Experiment fill its best trial, charts and trials table. Screenshots are
kept in the test's tmp directory (``console-trainjob.png``, ``console-registry.png``,
``console-experiments.png``, ``console-experiment.png``)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.axe import assert_accessible
from _support.browser import chromium_page, screenshots
from _support.daemon import WonderlandDaemon, running_daemon
from _support.mlflow import needs_mlflow

pytestmark = [pytest.mark.e2e, pytest.mark.slow, needs_mlflow]

TIMEOUT_MS = 120_000
REPORTS = 8
# What a training program does: report progress and a falling loss to the trainer status
# endpoint (as kubeflow.trainer.update_trainjob_status does) and print each epoch.
TRAIN = f"""
import json, os, ssl, time, urllib.request
from datetime import UTC, datetime
import mlflow, mlflow.sklearn  # MLFLOW_TRACKING_URI and MLFLOW_RUN_ID: the TrainJob's run
mlflow.start_run()
url = os.environ["KUBEFLOW_TRAINER_SERVER_URL"]
token = open(os.environ["KUBEFLOW_TRAINER_SERVER_TOKEN"]).read().strip()
ctx = ssl.create_default_context(cafile=os.environ["KUBEFLOW_TRAINER_SERVER_CA_CERT"])
for epoch in range({REPORTS}):
    loss = 1.0 / (epoch + 1)
    print(f"epoch {{epoch}} loss {{loss:.4f}}", flush=True)
    mlflow.log_metric("val_loss", loss * 2, step=epoch * 100)
    body = {{"trainerStatus": {{
        "progressPercentage": int((epoch + 1) * 100 / {REPORTS}),
        "estimatedRemainingSeconds": {REPORTS} - epoch,
        "metrics": [{{"name": "loss", "value": f"{{loss:.4f}}"}}],
        "lastUpdatedTime": datetime.now(UTC).isoformat(),
    }}}}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
        headers={{"Authorization": "Bearer " + token, "Content-Type": "application/json"}})
    urllib.request.urlopen(request, timeout=10, context=ctx).close()
    time.sleep(1.2)
from sklearn.linear_model import LogisticRegression
model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
mlflow.sklearn.log_model(model, name="model")
mlflow.end_run()
print("training done", flush=True)
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[WonderlandDaemon]:
    wd = WonderlandDaemon.in_tmp(tmp_path)
    with running_daemon(wd):
        yield wd


def _trainjob() -> str:
    return json.dumps(
        {
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "TrainJob",
            "metadata": {"name": "curve"},
            "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "trainer": {"command": [sys.executable, "-c", TRAIN]},
            },
        }
    )


def test_follow_a_trainjob_to_completion_and_promote_a_version(
    daemon: WonderlandDaemon, tmp_path: Path
) -> None:
    from mlflow import MlflowClient
    from playwright.sync_api import expect

    info = json.loads((daemon.home / "daemon.json").read_text())
    console_url = info["console"]["url"]
    token = (daemon.home / "token").read_text().strip()
    page: Any
    shots = screenshots(tmp_path)
    with chromium_page(TIMEOUT_MS) as page:
        page.goto(console_url + "/training")
        page.get_by_label("Platform token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/training$"))
        expect(page.locator("#training-empty")).to_be_visible()
        expect(page.locator("#live-status")).to_have_text("live")

        daemon.ok("apply", "-f", "-", stdin=_trainjob())
        job = page.locator('tr[data-trainjob="default/curve"]')
        expect(job).to_be_visible(timeout=TIMEOUT_MS)  # arrived over the stream
        job.get_by_role("link", name="curve").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("TrainJob curve")
        page.evaluate("window.__notReloaded = true")
        nav = page.get_by_role("navigation", name="Pages")

        # the chart grows point by point while the job runs, the log follows
        loss = page.locator('figure[data-chart="loss"]')
        expect(loss.locator("canvas")).to_be_visible(timeout=TIMEOUT_MS)
        expect(loss.locator("figcaption")).to_contain_text(
            f"over {REPORTS} reports", timeout=TIMEOUT_MS
        )
        log = page.locator("pre.log")
        expect(log).to_contain_text("epoch 0 loss 1.0000", timeout=TIMEOUT_MS)
        expect(log).to_contain_text("training done", timeout=TIMEOUT_MS)
        expect(page.locator("#job-phase")).to_contain_text("Complete", timeout=TIMEOUT_MS)
        expect(page.locator("#progress")).to_contain_text("100%")
        expect(loss.locator("figcaption")).to_contain_text("last 0.125, min 0.125, max 1")
        run_loss = page.locator('figure[data-chart="run:val_loss"]')
        expect(run_loss.locator("canvas")).to_be_visible(timeout=TIMEOUT_MS)
        expect(run_loss.locator("figcaption")).to_contain_text(
            f"last 0.25 at step {(REPORTS - 1) * 100}, {REPORTS} points", timeout=TIMEOUT_MS
        )
        assert page.evaluate("window.__notReloaded === true")
        # the log is one element kept across the page's live refreshes: still whole
        text = log.inner_text()
        assert [f"epoch {i} loss" in text for i in range(REPORTS)] == [True] * REPORTS
        page.screenshot(path=str(shots / "console-trainjob.png"), full_page=True)
        assert_accessible(page, "TrainJob")

        # the model the job logged: register it from the job's page, then deploy it
        produced = page.locator('#run-models li[data-model="model"]')
        expect(produced).to_be_visible(timeout=TIMEOUT_MS)
        produced.get_by_label("Registered model").fill("curve-model")
        produced.get_by_role("button", name="Register model").click()
        expect(page.locator("#registry-notice")).to_contain_text("Registered curve-model version 1")
        deploy = page.locator("#model-curve-model form.deploy-form")
        deploy.get_by_label("Version or alias").select_option("1")
        deploy.get_by_label("InferenceService").fill("curve")
        deploy.get_by_role("button", name="Deploy").click()
        expect(page.locator("#registry-notice")).to_contain_text(
            "InferenceService default/curve created models:/curve-model/1"
        )

        nav.get_by_role("link", name="Training").click()
        row = page.locator('tr[data-trainjob="default/curve"]')
        expect(row).to_contain_text("Complete")
        expect(row.locator(".key-metric")).to_have_text("loss=0.1250")
        assert_accessible(page, "Training")

        nav.get_by_role("link", name="Experiments").click()
        expect(page.locator("#experiments-empty")).to_be_visible()
        page.screenshot(path=str(shots / "console-experiments.png"), full_page=True)
        assert_accessible(page, "Experiments")

        # the registry: two versions of a model, champion on 1; promote 2 in the form
        client = MlflowClient(info["mlflow"]["url"])
        exp = client.create_experiment("clf")
        client.create_registered_model("clf")
        for accuracy in (0.8, 0.9):
            run = client.create_run(exp)
            client.log_metric(run.info.run_id, "accuracy", accuracy)
            client.create_model_version("clf", f"runs:/{run.info.run_id}/model", run.info.run_id)
        client.set_registered_model_alias("clf", "champion", "1")
        nav.get_by_role("link", name="Registry").click()
        model = page.locator("#model-clf")
        expect(model.locator(".aliases")).to_contain_text("@champion → version 1")
        form = model.locator("form.promote-form")
        form.get_by_label("Version").select_option("2")
        form.get_by_label("Alias").fill("champion")
        form.get_by_role("button", name="Promote").click()
        expect(page.locator("#promoted")).to_contain_text("now points at version 2 (was version 1)")
        expect(page.locator("#model-clf .aliases")).to_contain_text("@champion → version 2")
        assert client.get_model_version_by_alias("clf", "champion").version == "2"
        page.screenshot(path=str(shots / "console-registry.png"), full_page=True)
        assert_accessible(page, "Registry")
        model.locator("form.compare-form").get_by_role("button", name="Compare").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("clf")
        expect(page.locator("main")).to_contain_text("accuracy")
        assert_accessible(page, "Compare versions")
        nav.get_by_role("link", name="Registry").click()
        page.locator("#model-clf").get_by_role("link", name="Lineage of version 2").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("clf")
        assert_accessible(page, "Lineage")
    for name in ("console-trainjob.png", "console-registry.png", "console-experiments.png"):
        assert (shots / name).stat().st_size > 0


def _experiment() -> str:
    """A random search over x in [0, 1] minimizing (x - 0.3)^2, four trials, two at once;
    each trial is a batch Job printing ``loss=...`` for Katib's StdOut collector."""
    objective = "import sys; x = float(sys.argv[1]); print(f'loss={(x - 0.3) ** 2:.6f}')"
    template = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "training-container",
                            "image": "python:3.12",
                            "command": [sys.executable, "-c", objective, "${trialParameters.x}"],
                        }
                    ],
                }
            }
        },
    }
    return json.dumps(
        {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Experiment",
            "metadata": {"name": "quad"},
            "spec": {
                "objective": {"type": "minimize", "objectiveMetricName": "loss"},
                "algorithm": {"algorithmName": "random"},
                "parameters": [
                    {
                        "name": "x",
                        "parameterType": "double",
                        "feasibleSpace": {"min": "0", "max": "1"},
                    }
                ],
                "parallelTrialCount": 2,
                "maxTrialCount": 4,
                "trialTemplate": {
                    "retain": True,  # the trials' pods stay, so their logs can be read
                    "primaryContainerName": "training-container",
                    "trialParameters": [{"name": "x", "reference": "x"}],
                    "trialSpec": template,
                },
            },
        }
    )


def test_an_experiment_fills_its_charts_live(daemon: WonderlandDaemon, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    info = json.loads((daemon.home / "daemon.json").read_text())
    token = (daemon.home / "token").read_text().strip()
    daemon.ok("apply", "-f", "-", stdin=_experiment())
    page: Any
    shots = screenshots(tmp_path)
    with chromium_page(TIMEOUT_MS) as page:
        page.goto(info["console"]["url"] + "/experiments/default/quad")
        page.get_by_label("Platform token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Experiment quad")
        page.evaluate("window.__notReloaded = true")
        expect(page.locator("#exp-phase")).to_contain_text("Succeeded", timeout=TIMEOUT_MS)
        expect(page.locator("#trials tbody tr")).to_have_count(4)
        best = page.locator("#best-trial")
        expect(best).to_contain_text("loss =")
        expect(page.locator('figure[data-chart="objective"] canvas')).to_be_visible()
        lines = page.locator("#parcoords svg polyline")
        expect(lines).to_have_count(4)
        expect(page.locator("#parcoords svg .pc-axis")).to_have_count(2)  # x and the objective
        page.get_by_label("x", exact=True).uncheck()
        expect(page.locator("#parcoords svg .pc-axis")).to_have_count(1)
        page.get_by_label("x", exact=True).check()
        # reorder from the keyboard: x moves right of the objective, and stays there
        axes = page.locator("#parcoords svg .pc-axis")
        expect(axes.first).to_have_attribute("data-axis", "x")
        page.get_by_role("button", name="Move x right").focus()
        page.keyboard.press("Enter")
        expect(axes.first).to_have_attribute("data-axis", "objective")
        expect(page.get_by_role("button", name="Move x left")).to_be_focused()
        expect(page.get_by_role("button", name="Move x right")).to_be_disabled()
        # or with the mouse: drag x's name back onto the first axis
        page.locator('.pc-axis[data-axis="x"] .pc-name').drag_to(
            page.locator('.pc-axis[data-axis="objective"] .pc-name')
        )
        expect(axes.first).to_have_attribute("data-axis", "x")
        # a scatter of x against the objective, a point per trial, the best one larger
        expect(page.locator('#scatters figure[data-parameter="x"] circle')).to_have_count(4)
        expect(page.locator('#scatters circle[r="6"]')).to_have_count(1)
        # sorting by the objective puts the best trial first
        page.locator("#trials thead").get_by_role("button", name="loss").click()
        first = page.locator("#trials tbody tr").first
        expect(first).to_contain_text("★ best")
        assert page.evaluate("window.__notReloaded === true")
        page.screenshot(path=str(shots / "console-experiment.png"), full_page=True)
        assert_accessible(page, "Experiment")
        # the best trial's page: its loss charted from the observation log, its pod's log
        best.get_by_role("link", name="Trial page").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Trial quad-")
        expect(page.locator("#trial-phase")).to_contain_text("★ best")
        expect(page.locator('figure[data-chart="loss"] canvas')).to_be_visible()
        expect(page.locator('figure[data-chart="loss"] figcaption')).to_contain_text(
            "over 1 report"
        )
        expect(page.locator("pre.log")).to_contain_text("loss=", timeout=TIMEOUT_MS)
        page.get_by_role("link", name="quad", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Experiment quad")
        page.screenshot(path=str(shots / "console-trial.png"), full_page=True)
        assert_accessible(page, "Trial")
    assert (shots / "console-experiment.png").stat().st_size > 0
