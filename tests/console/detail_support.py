"""What the Service and InferenceService page tests share: a real store with the console's
objects, a real metrics history behind a real MetricsHub, and a routing table that saw
a real cold start."""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from console_objects import _with_status, add_broken, add_service, ready
from prometheus_client import CollectorRegistry, Gauge

import wonderland.platform
from wonderland.autoscaler.exporter import ScalerSnapshot
from wonderland.gateway import RoutingTable
from wonderland.gateway.table import Endpoint
from wonderland.monitoring.history import HistoryStore, SeriesKey
from wonderland.monitoring.history_api import HistoryApi
from wonderland.monitoring.hub import MetricsHub
from wonderland.monitoring.recorder import MetricsRecorder
from wonderland.monitoring.scrape import MetricsScraper
from wonderland.store import Store

STEP = 1.0


@dataclass
class Metrics:
    hub: MetricsHub
    recorder: MetricsRecorder
    scraper: MetricsScraper
    drift: CollectorRegistry


def open_store(tmp_path: Path) -> Store:
    for name in wonderland.platform.PLUGINS:
        importlib.import_module(name)  # every kind the platform registers
    store = Store.open(tmp_path)
    add_service(store)
    add_broken(store)
    return store


def metrics() -> Metrics:
    """A MetricsHub with the history's routes over a real recorder whose own registry
    holds a drift detector's gauges for the ``iris`` InferenceService."""
    registry = CollectorRegistry()
    labels = ["inferenceservice", "feature", "method"]
    score = Gauge("wonderland_drift_score", "", labels, registry=registry)
    p_value = Gauge("wonderland_drift_p_value", "", labels, registry=registry)
    detected = Gauge("wonderland_drift_detected", "", ["inferenceservice"], registry=registry)
    for feature, s, p in (("petal_length", 0.61, 0.0004), ("sepal_width", 0.12, 0.41)):
        score.labels("iris", feature, "ks").set(s)
        p_value.labels("iris", feature, "ks").set(p)
    detected.labels("iris").set(1)
    # the reference sample, as the detector summarizes it
    shape = Gauge(
        "wonderland_drift_reference_rows", "", ["inferenceservice", "what"], registry=registry
    )
    shape.labels("iris", "rows").set(150)
    shape.labels("iris", "columns").set(2)
    Gauge("wonderland_drift_reference_version", "", ["inferenceservice"], registry=registry).labels(
        "iris"
    ).set(7)
    summary = Gauge(
        "wonderland_drift_reference_summary",
        "",
        ["inferenceservice", "feature", "kind", "stat"],
        registry=registry,
    )
    for stat, value in (("mean", 3.758), ("stddev", 1.76), ("min", 1.0), ("max", 6.9)):
        summary.labels("iris", "petal_length", "numeric", stat).set(value)
    summary.labels("iris", "species", "categorical", "categories").set(3)
    scraper = MetricsScraper(lambda: [], registry, lambda: "daemon")
    recorder = MetricsRecorder(scraper, HistoryStore(step=STEP, slots=600), None, interval=STEP)
    hub = MetricsHub()
    HistoryApi(recorder).install(hub)
    return Metrics(hub, recorder, scraper, registry)


def write_history(
    recorder: MetricsRecorder, rows: Iterable[tuple[str, str, str, float]], ago: Iterable[float]
) -> None:
    """Write each (kind, name, series, value) at each of ``ago`` seconds back from now."""
    now = time.time()
    rows = list(rows)
    for back in ago:
        recorder.store.write(
            now - back,
            [
                (SeriesKey(kind, "default", name, series), value)
                for kind, name, series, value in rows
            ],
        )


def cold_started_table() -> RoutingTable:
    """A routing table whose hello-00002 woke from zero: a request held, then a replica."""
    table = RoutingTable()
    target = table.revision("default", "hello-00002")

    class Held:
        size = 0  # request bytes the activator's byte budget counts

        def grant(self, endpoint: Endpoint) -> None:
            endpoint.in_flight -= 1

        def fail(self, status: int, message: str) -> None:
            raise AssertionError(message)

    assert target.wait(Held())
    time.sleep(0.02)  # a cold start that takes a measurable while, as the page shows it
    target.set_endpoints([("127.0.0.1", 9, "hello-00002-deployment-1")])
    return table


class Scaler:
    """The autoscaler's view of hello's revisions (a ScalerSource)."""

    def scaler_snapshots(self) -> list[ScalerSnapshot]:
        return [
            ScalerSnapshot(
                "default",
                "hello",
                "hello",
                "hello-00002",
                "concurrency",
                desired=3,
                requested=3,
                ready=2,
                not_ready=1,
                pending=1,
                terminating=0,
                stable=4.5,
                panic=9.25,
                target=1.4,
                excess_burst_capacity=0,
                panicking=True,
            ),
            ScalerSnapshot(
                "other",
                "x",
                "x",
                "x-00001",
                "concurrency",
                desired=1,
                requested=1,
                ready=1,
                not_ready=0,
                pending=0,
                terminating=0,
                stable=0.0,
                panic=0.0,
                target=1.0,
                excess_burst_capacity=0,
                panicking=False,
            ),
        ]


def add_ready_model(store: Store, name: str = "flowers", logger: bool = True) -> None:
    """A ready InferenceService with a 90/10 canary and (optionally) a payload logger."""
    predictor: dict[str, object] = {
        "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "file:///m"}
    }
    if logger:
        predictor["logger"] = {
            "mode": "all",
            "url": "http://message-dumper.default.svc.cluster.local",
        }
    _with_status(
        store,
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"predictor": predictor},
        },
        {
            "conditions": [*ready(), {"type": "PredictorReady", "status": "True"}],
            "url": f"http://{name}.default.127.0.0.1.sslip.io",
            "address": {"url": f"http://{name}.default.svc.cluster.local"},
            "components": {
                "predictor": {
                    "url": f"http://{name}-predictor.default.127.0.0.1.sslip.io",
                    "latestReadyRevision": f"{name}-predictor-00002",
                    "latestCreatedRevision": f"{name}-predictor-00002",
                    "previousRolledoutRevision": f"{name}-predictor-00001",
                    "traffic": [
                        {
                            "revisionName": f"{name}-predictor-00002",
                            "percent": 10,
                            "latestRevision": True,
                        },
                        {"revisionName": f"{name}-predictor-00001", "percent": 90},
                    ],
                }
            },
        },
    )
