"""A real `wonderland up`: what a TrainJob's training code reports to the status endpoint
shows on the daemon's metrics endpoint, and goes when the TrainJob is deleted."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from _support.daemon import WonderlandDaemon, wait_for
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# What kubeflow.trainer.update_trainjob_status() sends, with the standard library only.
REPORT = """
import json, os, ssl, urllib.request
from datetime import datetime, timezone
token = open(os.environ["KUBEFLOW_TRAINER_SERVER_TOKEN"]).read().strip()
tls = ssl.create_default_context(cafile=os.environ["KUBEFLOW_TRAINER_SERVER_CA_CERT"])
body = {"trainerStatus": {
    "progressPercentage": 40,
    "estimatedRemainingSeconds": 30,
    "metrics": [
        {"name": "loss", "value": "0.25"},
        {"name": "accuracy", "value": "0.9"},
        {"name": "stage", "value": "warmup"},
    ],
    "lastUpdatedTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
}}
request = urllib.request.Request(
    os.environ["KUBEFLOW_TRAINER_SERVER_URL"],
    data=json.dumps(body).encode(),
    method="POST",
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
)
with urllib.request.urlopen(request, context=tls, timeout=30) as reply:
    print("sent", reply.status)
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WonderlandDaemon]:
    started = WonderlandDaemon.in_tmp(tmp_path_factory.mktemp("training-metrics")).start()
    try:
        yield started
    finally:
        started.stop()


def _metrics_url(daemon: WonderlandDaemon) -> str:
    def published() -> str | None:
        info = json.loads((daemon.home / "daemon.json").read_text())
        url = (info.get("monitoring") or {}).get("url")
        return f"{url}/metrics" if url else None

    return wait_for(published, 30, "the monitoring endpoint's URL")


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_reported_progress_and_metrics_are_gauges_until_the_trainjob_goes(
    daemon: WonderlandDaemon,
) -> None:
    url = _metrics_url(daemon)
    job = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "gauged"},
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {"command": [sys.executable, "-c", REPORT]},
        },
    }
    daemon.ok("apply", "-f", "-", stdin=json.dumps(job))
    job_labels = {"namespace": "default", "trainjob": "gauged"}

    def reported() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        samples = _samples(url)
        found = _get(samples, "wonderland_trainjob_progress_percentage", **job_labels)
        return samples if found is not None else None

    samples = wait_for(reported, 90, "the reported progress on /metrics")
    assert _get(samples, "wonderland_trainjob_progress_percentage", **job_labels) == 40
    assert _get(samples, "wonderland_trainjob_estimated_remaining_seconds", **job_labels) == 30
    assert _get(samples, "wonderland_trainjob_metric", metric="loss", **job_labels) == 0.25
    assert _get(samples, "wonderland_trainjob_metric", metric="accuracy", **job_labels) == 0.9
    # a value that is not a number is in the TrainJob's status, not on /metrics
    assert _get(samples, "wonderland_trainjob_metric", metric="stage", **job_labels) is None

    def complete() -> bool:
        s = _samples(url)
        return _get(s, "wonderland_trainjobs", namespace="default", phase="Complete") == 1

    wait_for(complete, 90, "the TrainJob to count as Complete")
    samples = _samples(url)
    assert _get(samples, "wonderland_trainjobs", namespace="default", phase="Running") == 0

    daemon.ok("delete", "trainjob", "gauged")

    def gone() -> bool:
        s = _samples(url)
        return not any(
            name.startswith("wonderland_trainjob_") and ("trainjob", "gauged") in labels
            for name, labels in s
        )

    wait_for(gone, 60, "the deleted TrainJob's series to go")
