"""Katib's controller metrics and the trials' latest observations on the monitoring
endpoint of a platform with the monitoring plugin, after a real one-trial Experiment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from _support.daemon import wait_until
from prometheus_client.parser import text_string_to_metric_families
from tuning_support import PLUGINS, TRIALS, Tuner, experiment

from wonderland.platform import Platform
from wonderland.settings import Settings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def monitored(tmp_path: Path) -> AsyncIterator[Tuner]:
    settings = Settings(
        home=tmp_path / "home",
        gateway_port=0,
        api_port=0,
        mlflow_port=0,
        metrics_port=0,
        backoff_seconds=0.2,
    )
    platform = Platform.open(settings)
    platform.install_plugins(("wonderland.monitoring", *PLUGINS))
    await platform.start()
    tuner = Tuner(platform)
    try:
        yield tuner
    finally:
        await tuner.stop()


async def _samples(tuner: Tuner) -> Samples:
    url = tuner.platform.info["monitoring"]["url"] + "/metrics"
    async with httpx.AsyncClient() as client:
        text = (await client.get(url, timeout=10)).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def test_a_one_trial_experiment_moves_katibs_counters_and_shows_its_metric(
    monitored: Tuner,
) -> None:
    before = await _samples(monitored)
    assert _get(before, "katib_experiment_created_total", namespace="default") is None
    monitored.create(experiment("once", max_trials=1, parallel=1))
    done = await monitored.finished("once")
    assert done["type"] == "Succeeded"
    (trial,) = monitored.trials("once")
    trial_name = trial["metadata"]["name"]
    latest = float(trial["status"]["observation"]["metrics"][0]["latest"])

    async def counted() -> Samples | None:
        s = await _samples(monitored)
        ok = _get(s, "katib_experiment_succeeded_total", namespace="default") == 1
        return s if ok else None

    s = await wait_until(counted, 30, "the experiment's success to be counted")
    for kind in ("experiment", "trial"):
        assert _get(s, f"katib_{kind}_created_total", namespace="default") == 1
        assert _get(s, f"katib_{kind}_succeeded_total", namespace="default") == 1
        assert _get(s, f"katib_{kind}_failed_total", namespace="default") in (None, 0)
    assert _get(s, "katib_experiments_current", namespace="default", status="Succeeded") == 1
    assert _get(s, "katib_trials_current", namespace="default", status="Succeeded") == 1
    metric = {"namespace": "default", "experiment": "once", "trial": trial_name}
    assert _get(s, "wonderland_trial_metric", metric="loss", **metric) == latest

    monitored.store.delete(TRIALS, "default", trial_name)

    async def deleted() -> Samples | None:
        s = await _samples(monitored)
        ok = _get(s, "katib_trial_deleted_total", namespace="default") == 1
        return s if ok else None

    s = await wait_until(deleted, 30, "the trial's deletion to be counted")
    assert _get(s, "wonderland_trial_metric", metric="loss", **metric) is None
