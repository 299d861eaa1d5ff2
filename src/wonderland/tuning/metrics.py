"""Katib's controller metrics, and each trial's latest observation, on the daemon's registry.

Katib (``pkg/controller.v1beta1/{experiment,trial}/util/prometheus_metrics.go``) exports
counters labelled ``namespace``: ``katib_experiment_{created,deleted,succeeded,failed}_total``
and ``katib_trial_{created,deleted,succeeded,failed}_total``, and the gauges
``katib_experiments_current{namespace, status}`` and ``katib_trials_current{namespace,
status}`` (objects by the type of their last condition, ``Unknown`` without one, read
from the objects at each scrape). Upstream counts creation and deletion when its
finalizer is added and removed; here they are counted from the store's watch (an object
added, deleted), and success and failure when the ``Succeeded`` or ``Failed`` condition
turns True. As upstream's, the counters start at zero with the daemon: objects already
there are not counted again.

``wonderland_trial_metric{namespace, experiment, trial, metric}`` is the ``latest`` value of
each metric in a trial's ``status.observation`` (numeric values only); the series of a
deleted trial go with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from pydantic import Field

from wonderland.store import Store
from wonderland.tuning.admission import EXPERIMENTS, TRIALS
from wonderland.tuning.status import StatusView, TrialStatusView, as_float
from wonderland.tuning.suggestions import EXPERIMENT_LABEL
from wonderland.workloads.views import ObjectMetaView, View

__all__ = ["KatibMetrics"]

log = logging.getLogger("wonderland.tuning.metrics")

_KINDS = {EXPERIMENTS: "experiment", TRIALS: "trial"}
_FINISHED = ("Succeeded", "Failed")


class _Object(View):
    metadata: ObjectMetaView = Field(default_factory=ObjectMetaView)
    status: StatusView = Field(default_factory=StatusView)

    def last_condition(self) -> str:
        """Katib's ``GetLastConditionType``; ``Unknown`` without conditions."""
        return self.status.conditions[-1].type if self.status.conditions else "Unknown"

    def finished(self) -> frozenset[str]:
        return frozenset(kind for kind in _FINISHED if self.status.is_true(kind))


class _Trial(View):
    metadata: ObjectMetaView = Field(default_factory=ObjectMetaView)
    status: TrialStatusView = Field(default_factory=TrialStatusView)


class _Counts:
    """One kind's four counters, named as Katib names them."""

    def __init__(self, kind: str, plural: str, registry: CollectorRegistry) -> None:
        def counter(what: str) -> Counter:
            return Counter(
                f"katib_{kind}_{what}_total",
                f"The total number of {what} {plural}",
                ["namespace"],
                registry=registry,
            )

        self.created = counter("created")
        self.deleted = counter("deleted")
        self.succeeded = counter("succeeded")
        self.failed = counter("failed")


class _CurrentCollector:
    """``katib_{experiments,trials}_current`` and ``wonderland_trial_metric``, read from
    the store at each scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        for resource, plural in ((EXPERIMENTS, "experiments"), (TRIALS, "trials")):
            family = GaugeMetricFamily(
                f"katib_{plural}_current",
                f"The number of current katib {plural} in the cluster",
                labels=["namespace", "status"],
            )
            counts: dict[tuple[str, str], int] = {}
            items, _ = self.store.list(resource)
            for raw in items:
                obj = _Object.model_validate(raw)
                key = (obj.metadata.namespace, obj.last_condition())
                counts[key] = counts.get(key, 0) + 1
            for (namespace, status), n in sorted(counts.items()):
                family.add_metric([namespace, status], n)
            yield family
        metric = GaugeMetricFamily(
            "wonderland_trial_metric",
            "The latest observed value of a trial's metric",
            labels=["namespace", "experiment", "trial", "metric"],
        )
        trials, _ = self.store.list(TRIALS)
        for raw in trials:
            trial = _Trial.model_validate(raw)
            observation = trial.status.observation
            if observation is None or not observation.metrics:
                continue
            meta = trial.metadata
            experiment = meta.labels.get(EXPERIMENT_LABEL, "")
            for m in observation.metrics:
                value = as_float(m.latest)
                if value is not None:
                    metric.add_metric([meta.namespace, experiment, meta.name, m.name], value)
        yield metric


class KatibMetrics:
    """A platform service: counts Experiments and Trials created, finished and deleted
    from the store's watch, and registers the scrape-time gauges."""

    def __init__(self, store: Store, registry: CollectorRegistry) -> None:
        self.store = store
        self.counts = {
            EXPERIMENTS: _Counts("experiment", "experiments", registry),
            TRIALS: _Counts("trial", "trials", registry),
        }
        registry.register(_CurrentCollector(store))  # type: ignore[arg-type]
        self._finished: dict[tuple[str, str, str], frozenset[str]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def _relist(self, resource: str) -> str:
        items, rv = self.store.list(resource)
        for key in [k for k in self._finished if k[0] == resource]:
            del self._finished[key]
        for raw in items:
            obj = _Object.model_validate(raw)
            self._finished[(resource, obj.metadata.namespace, obj.metadata.name)] = obj.finished()
        return rv

    def observe(self, kind: str, resource: str, raw: dict[str, Any]) -> None:
        """Count one watch event of an Experiment or a Trial."""
        obj = _Object.model_validate(raw)
        namespace = obj.metadata.namespace
        key = (resource, namespace, obj.metadata.name)
        counts = self.counts[resource]
        if kind == "DELETED":
            self._finished.pop(key, None)
            counts.deleted.labels(namespace).inc()
            return
        if kind == "ADDED":
            counts.created.labels(namespace).inc()
        before = self._finished.get(key, frozenset())
        now = obj.finished()
        self._finished[key] = now
        if "Succeeded" in now and "Succeeded" not in before:
            counts.succeeded.labels(namespace).inc()
        if "Failed" in now and "Failed" not in before:
            counts.failed.labels(namespace).inc()

    async def _follow(self, resource: str, since: str) -> None:
        while True:
            try:
                async for event in self.store.watch(resource, since):
                    since = str(event.rv)
                    self.observe(event.type, resource, event.object)
            except asyncio.CancelledError:
                raise
            except Exception:  # an expired resourceVersion, a store hiccup: list again
                log.warning("following %s failed; listing again", resource, exc_info=True)
                await asyncio.sleep(1.0)
                since = self._relist(resource)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for resource in _KINDS:
            since = self._relist(resource)
            self._tasks.append(loop.create_task(self._follow(resource, since)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
