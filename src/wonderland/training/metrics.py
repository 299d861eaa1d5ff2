"""TrainJob metrics on the daemon's registry, read from the TrainJobs at each scrape.

Kubeflow Trainer's controller exports only controller-runtime's defaults; what training
code reports to the status endpoint (``status.trainerStatus``) is exported here:

- ``wonderland_trainjob_progress_percentage{namespace, trainjob}``
- ``wonderland_trainjob_estimated_remaining_seconds{namespace, trainjob}``
- ``wonderland_trainjob_metric{namespace, trainjob, metric}``: the last reported value of
  each metric (numeric values only; ``trainerStatus.metrics`` values are strings)
- ``wonderland_trainjobs{namespace, phase}``: TrainJobs by phase, one of ``Created``,
  ``Running`` (a replicated job has active Pods), ``Suspended``, ``Complete``, ``Failed``.

A deleted TrainJob's series go with it: nothing is kept between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from pydantic import Field

from wonderland.store import Store
from wonderland.training.status_endpoint import TRAINJOBS
from wonderland.workloads.views import ConditionsView, ObjectMetaView, View

__all__ = ["PHASES", "TrainJobCollector", "phase_of"]

PHASES = ("Created", "Running", "Suspended", "Complete", "Failed")


class _JobStatus(View):
    name: str = ""
    active: int | None = None


class _Metric(View):
    name: str = ""
    value: str = ""


class _Reported(View):
    """``status.trainerStatus``, as the status endpoint wrote it."""

    progressPercentage: int | None = None
    estimatedRemainingSeconds: int | None = None
    metrics: list[_Metric] = Field(default_factory=list)


class _Status(ConditionsView):
    jobsStatus: list[_JobStatus] = Field(default_factory=list)
    trainerStatus: _Reported | None = None


class _TrainJob(View):
    metadata: ObjectMetaView = Field(default_factory=ObjectMetaView)
    status: _Status = Field(default_factory=_Status)


def phase_of(status: _Status) -> str:
    """The TrainJob's phase from its conditions and its jobs' Pods."""
    for kind in ("Failed", "Complete", "Suspended"):
        if status.is_true(kind):
            return kind
    if any((job.active or 0) > 0 for job in status.jobsStatus):
        return "Running"
    return "Created"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class TrainJobCollector:
    """A Prometheus collector over the store's TrainJobs."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        labels = ["namespace", "trainjob"]
        progress = GaugeMetricFamily(
            "wonderland_trainjob_progress_percentage",
            "The progress the TrainJob's training code last reported, in percent",
            labels=labels,
        )
        remaining = GaugeMetricFamily(
            "wonderland_trainjob_estimated_remaining_seconds",
            "The time to completion the TrainJob's training code last estimated",
            labels=labels,
        )
        metric = GaugeMetricFamily(
            "wonderland_trainjob_metric",
            "The last value the TrainJob's training code reported for a metric",
            labels=[*labels, "metric"],
        )
        phases = GaugeMetricFamily(
            "wonderland_trainjobs", "TrainJobs by phase", labels=["namespace", "phase"]
        )
        counts: dict[tuple[str, str], int] = {}
        items, _ = self.store.list(TRAINJOBS)
        for raw in items:
            job = _TrainJob.model_validate(raw)
            ns, name = job.metadata.namespace, job.metadata.name
            key = (ns, phase_of(job.status))
            counts[key] = counts.get(key, 0) + 1
            reported = job.status.trainerStatus
            if reported is None:
                continue
            if reported.progressPercentage is not None:
                progress.add_metric([ns, name], reported.progressPercentage)
            if reported.estimatedRemainingSeconds is not None:
                remaining.add_metric([ns, name], reported.estimatedRemainingSeconds)
            for m in reported.metrics:
                value = _number(m.value)
                if value is not None:
                    metric.add_metric([ns, name, m.name], value)
        namespaces = sorted({ns for ns, _ in counts})
        for ns in namespaces:  # every phase of a namespace with TrainJobs, zeros included
            for phase in PHASES:
                phases.add_metric([ns, phase], counts.get((ns, phase), 0))
        yield from (progress, remaining, metric, phases)
