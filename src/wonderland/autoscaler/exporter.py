"""The autoscaler's metrics under Knative's names.

Knative >= 1.19 (OpenTelemetry, Prometheus form): ``kn_revision_pods_desired``,
``kn_revision_pods_requested``, ``kn_revision_pods_count``,
``kn_revision_pods_not_ready_count``, ``kn_revision_pods_pending_count``,
``kn_revision_pods_terminating_count``, ``kn_revision_concurrency_stable`` / ``_panic`` /
``_target``, ``kn_revision_rps_stable`` / ``_panic``, ``kn_revision_capacity_excess`` and the
histogram ``kn_autoscaler_scrape_duration_seconds``; labels ``k8s_namespace_name``,
``kn_service_name``, ``kn_configuration_name``, ``kn_revision_name``.

Knative <= 1.18 (OpenCensus, ``autoscaler_`` prefix): ``autoscaler_desired_pods``,
``autoscaler_requested_pods``, ``autoscaler_actual_pods``, ``autoscaler_not_ready_pods``,
``autoscaler_pending_pods``, ``autoscaler_terminating_pods``,
``autoscaler_stable_request_concurrency``, ``autoscaler_panic_request_concurrency``,
``autoscaler_target_concurrency_per_pod``, ``autoscaler_stable_requests_per_second``,
``autoscaler_panic_requests_per_second``, ``autoscaler_target_requests_per_second``,
``autoscaler_excess_burst_capacity`` and ``autoscaler_panic_mode``; labels
``namespace_name``, ``service_name``, ``configuration_name``, ``revision_name``.

As in Knative, a revision scaled on concurrency reports the concurrency gauges and one
scaled on requests per second the RPS gauges. The values come from a
:class:`ScalerSource` (the serving system): its windows, its last decision, its replicas.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

__all__ = ["SCRAPE_BUCKETS", "AutoscalerMetrics", "ScalerSnapshot", "ScalerSource"]

SCRAPE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_KN = ["k8s_namespace_name", "kn_service_name", "kn_configuration_name", "kn_revision_name"]
_LEGACY = ["namespace_name", "service_name", "configuration_name", "revision_name"]


@dataclass(frozen=True)
class ScalerSnapshot:
    """What the autoscaler knows of one revision now."""

    namespace: str
    service: str
    configuration: str
    revision: str
    metric: str  # concurrency | rps
    desired: int  # the autoscaler's decision
    requested: int  # what was asked of the replicas' supervisor
    ready: int
    not_ready: int
    pending: int
    terminating: int
    stable: float | None  # the stable and panic window averages of ``metric``
    panic: float | None
    target: float  # per pod, after the target utilization
    excess_burst_capacity: int
    panicking: bool


class ScalerSource(Protocol):
    """Where the autoscaler's state is read (the serving system)."""

    def scaler_snapshots(self) -> Iterable[ScalerSnapshot]: ...


class _Scrapes:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(SCRAPE_BUCKETS) + 1)
        self.count = 0
        self.sum = 0.0


class AutoscalerMetrics:
    """A collector (``collect()``) of the OpenTelemetry names and ``legacy()`` of the
    OpenCensus ones, read from ``source`` when scraped."""

    def __init__(self, source: ScalerSource) -> None:
        self.source = source
        self._scrapes: dict[tuple[str, str], _Scrapes] = {}

    def observe_scrape(self, namespace: str, revision: str, seconds: float) -> None:
        """One scrape of a revision's statistics took ``seconds``."""
        key = (namespace, revision)
        entry = self._scrapes.get(key)
        if entry is None:
            entry = self._scrapes[key] = _Scrapes()
        entry.buckets[bisect_left(SCRAPE_BUCKETS, seconds)] += 1
        entry.count += 1
        entry.sum += seconds

    def forget(self, namespace: str, revision: str) -> None:
        self._scrapes.pop((namespace, revision), None)

    def collect(self) -> Iterator[Metric]:
        snaps = list(self.source.scaler_snapshots())
        gauges = {
            name: GaugeMetricFamily(name, doc, labels=_KN)
            for name, doc in (
                ("kn_revision_pods_desired", "Number of pods the autoscaler wants"),
                ("kn_revision_pods_requested", "Number of pods requested from the deployment"),
                ("kn_revision_pods_count", "Number of pods that are ready"),
                ("kn_revision_pods_not_ready_count", "Number of pods that are not ready"),
                ("kn_revision_pods_pending_count", "Number of pods that are pending"),
                ("kn_revision_pods_terminating_count", "Number of pods that are terminating"),
                ("kn_revision_concurrency_stable", "Average concurrency over the stable window"),
                ("kn_revision_concurrency_panic", "Average concurrency over the panic window"),
                ("kn_revision_concurrency_target", "The desired concurrency per pod"),
                ("kn_revision_rps_stable", "Average requests per second over the stable window"),
                ("kn_revision_rps_panic", "Average requests per second over the panic window"),
                ("kn_revision_capacity_excess", "Excess burst capacity observed"),
            )
        }
        scrape = HistogramMetricFamily(
            "kn_autoscaler_scrape_duration_seconds",
            "Time to scrape a revision's metrics",
            labels=_KN,
            unit="seconds",
        )
        for s in snaps:
            labels = [s.namespace, s.service, s.configuration, s.revision]
            for name, value in (
                ("kn_revision_pods_desired", s.desired),
                ("kn_revision_pods_requested", s.requested),
                ("kn_revision_pods_count", s.ready),
                ("kn_revision_pods_not_ready_count", s.not_ready),
                ("kn_revision_pods_pending_count", s.pending),
                ("kn_revision_pods_terminating_count", s.terminating),
                ("kn_revision_capacity_excess", s.excess_burst_capacity),
            ):
                gauges[name].add_metric(labels, value)
            kind = "rps" if s.metric == "rps" else "concurrency"
            if s.stable is not None and s.panic is not None:
                gauges[f"kn_revision_{kind}_stable"].add_metric(labels, s.stable)
                gauges[f"kn_revision_{kind}_panic"].add_metric(labels, s.panic)
            if kind == "concurrency":
                gauges["kn_revision_concurrency_target"].add_metric(labels, s.target)
            entry = self._scrapes.get((s.namespace, s.revision))
            if entry is not None:
                cumulative: list[tuple[str, float]] = []
                total = 0
                for bound, n in zip(SCRAPE_BUCKETS, entry.buckets, strict=False):
                    total += n
                    cumulative.append((repr(float(bound)), float(total)))
                cumulative.append(("+Inf", float(entry.count)))
                scrape.add_metric(labels, cumulative, entry.sum)
        yield from gauges.values()
        yield scrape

    def legacy(self) -> Iterator[Metric]:
        """The OpenCensus-era families (gauges: their names need no munging)."""
        snaps = list(self.source.scaler_snapshots())
        families = {
            name: Metric(f"autoscaler_{name}", doc, "gauge")
            for name, doc in (
                ("desired_pods", "Number of pods autoscaler wants to allocate"),
                ("requested_pods", "Number of pods autoscaler requested from Kubernetes"),
                ("actual_pods", "Number of pods that are allocated currently"),
                ("not_ready_pods", "Number of pods that are not ready currently"),
                ("pending_pods", "Number of pods that are pending currently"),
                ("terminating_pods", "Number of pods that are terminating currently"),
                (
                    "stable_request_concurrency",
                    "Average of requests count per observed pod over the stable window",
                ),
                (
                    "panic_request_concurrency",
                    "Average of requests count per observed pod over the panic window",
                ),
                (
                    "target_concurrency_per_pod",
                    "The desired number of concurrent requests for each pod",
                ),
                (
                    "stable_requests_per_second",
                    "Average requests-per-second per observed pod over the stable window",
                ),
                (
                    "panic_requests_per_second",
                    "Average requests-per-second per observed pod over the panic window",
                ),
                ("target_requests_per_second", "The desired requests-per-second for each pod"),
                (
                    "excess_burst_capacity",
                    "Excess burst capacity overserved over the stable window",
                ),
                ("panic_mode", "1 if autoscaler is in panic mode, 0 otherwise"),
            )
        }
        for s in snaps:
            labels = dict(
                zip(_LEGACY, (s.namespace, s.service, s.configuration, s.revision), strict=True)
            )
            values: list[tuple[str, float]] = [
                ("desired_pods", s.desired),
                ("requested_pods", s.requested),
                ("actual_pods", s.ready),
                ("not_ready_pods", s.not_ready),
                ("pending_pods", s.pending),
                ("terminating_pods", s.terminating),
                ("excess_burst_capacity", s.excess_burst_capacity),
                ("panic_mode", 1 if s.panicking else 0),
            ]
            if s.metric == "rps":
                if s.stable is not None and s.panic is not None:
                    values += [("stable_requests_per_second", s.stable)]
                    values += [("panic_requests_per_second", s.panic)]
                values.append(("target_requests_per_second", s.target))
            else:
                if s.stable is not None and s.panic is not None:
                    values += [("stable_request_concurrency", s.stable)]
                    values += [("panic_request_concurrency", s.panic)]
                values.append(("target_concurrency_per_pod", s.target))
            for name, value in values:
                families[name].add_sample(f"autoscaler_{name}", labels, float(value))
        yield from families.values()
