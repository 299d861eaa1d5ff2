"""The fixed set of derived series, from one scrape and the one before it.

Per object (a revision, a model, a Dapr sidecar, a training job or trial) a
:class:`SeriesDeriver` turns the samples of every target into a handful of numbers:

- ``request_rate`` and ``error_rate`` (requests/s, server errors/s): counter deltas over
  the time between two scrapes; a counter that went down was reset (its new value is the
  increase, as Prometheus's ``rate`` takes it); a counter that appears in a target scraped
  the round before starts from 0 there (a client library creates a labelled child on its
  first event), so the first requests of a revision count;
- ``latency_p50``/``p95``/``p99`` (seconds): ``histogram_quantile`` over the deltas of the
  histogram's buckets since the last scrape (no request in between: no value);
- gauges as they are: ``replicas``, ``desired_replicas``, ``queue_depth``, ``in_flight``,
  ``progress`` and ``metric:<name>`` (training and trial metrics);
- ``cold_starts``: how many happened since the last scrape;
- for revisions, ``rate_1xx``, ``rate_3xx`` and ``rate_4xx`` (requests/s of that status
  class, written once the class was answered: the rest are ``error_rate``, 5xx, and
  ``request_rate`` less all of them, 2xx), and the autoscaler's window averages
  ``concurrency_stable``/``concurrency_panic`` (or ``rps_stable``/``rps_panic`` for a
  revision scaled on requests per second), written while it reports them;
- for models, ``preprocess_p50``/``_p95`` and ``postprocess_p50``/``_p95`` (seconds, the
  model server's ``request_preprocess_seconds`` and ``request_postprocess_seconds``; the
  predict step is ``latency_*``).

The sources are the upstream names (Knative's ``kn_*``, KServe's, Dapr's ``dapr_http_*``)
and, where a peer has none, wonderland's gateway gauges, used only when the upstream name
is absent for that object.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from wonderland.monitoring.history import SeriesKey
from wonderland.monitoring.scrape import Sample, TargetScrape

__all__ = [
    "CHART_SERIES",
    "KINDS",
    "KIND_SERIES",
    "QUANTILES",
    "SeriesDeriver",
    "histogram_quantile",
]

QUANTILES = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}
STAGE_QUANTILES = {"latency_p50": 0.5, "latency_p95": 0.95}  # a model's pre/postprocess
_TRAFFIC = ("request_rate", "error_rate", *QUANTILES)
KIND_SERIES: dict[str, tuple[str, ...]] = {
    "revisions": (
        *_TRAFFIC,
        "replicas",
        "desired_replicas",
        "in_flight",
        "queue_depth",
        "cold_starts",
    ),  # plus the status classes and autoscaler windows they had (CHART_SERIES)
    "models": _TRAFFIC,
    "sidecars": _TRAFFIC,
    "jobs": ("progress",),  # plus metric:<name>
}
KINDS = tuple(KIND_SERIES)
# series written only when their source is there, kept for charts (not ``top`` columns)
CHART_SERIES: dict[str, tuple[str, ...]] = {
    "revisions": (
        "rate_1xx",
        "rate_3xx",
        "rate_4xx",
        "concurrency_stable",
        "concurrency_panic",
        "rps_stable",
        "rps_panic",
    ),
    "models": ("preprocess_p50", "preprocess_p95", "postprocess_p50", "postprocess_p95"),
}

_GRPC_SERVER_ERRORS = frozenset(
    {"UNKNOWN", "INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "DATA_LOSS", "UNIMPLEMENTED"}
)

Identity = tuple[str, str, str]  # kind, namespace, name


def _server_error(code: str) -> bool:
    return code.startswith("5") or code.upper() in _GRPC_SERVER_ERRORS


def _revision(labels: Mapping[str, str]) -> Identity | None:
    name = labels.get("kn_revision_name") or labels.get("revision")
    if not name:
        return None
    return "revisions", labels.get("k8s_namespace_name") or labels.get("namespace", ""), name


def _model(labels: Mapping[str, str]) -> Identity | None:
    name = labels.get("model_name")
    return ("models", labels.get("namespace", ""), name) if name else None


def _sidecar(labels: Mapping[str, str]) -> Identity | None:
    name = labels.get("app_id")
    return ("sidecars", labels.get("namespace", ""), name) if name else None


def _trainjob(labels: Mapping[str, str]) -> Identity | None:
    name = labels.get("trainjob")
    return ("jobs", labels.get("namespace", ""), name) if name else None


def _trial(labels: Mapping[str, str]) -> Identity | None:
    name = labels.get("trial")
    return ("jobs", labels.get("namespace", ""), name) if name else None


@dataclass(frozen=True)
class _Rule:
    """How one sample name feeds one series of an object."""

    identity: Callable[[Mapping[str, str]], Identity | None]
    series: str
    how: str  # rate | errors | classes | increase | bucket | gauge | metric
    fallback: bool = False  # used only when no primary source fed the series
    scale: float = 1.0  # for bucket bounds (Dapr's are milliseconds)
    error_label: str = ""


def _rules() -> dict[str, list[_Rule]]:
    kn = "kn_serving_invocation_duration_seconds"
    dapr_requests = [_Rule(_sidecar, "request_rate", "rate")]
    dapr_errors = [_Rule(_sidecar, "error_rate", "errors", error_label="status")]
    return {
        f"{kn}_count": [
            _Rule(_revision, "request_rate", "rate"),
            _Rule(_revision, "error_rate", "errors", error_label="http_response_status_code"),
            _Rule(_revision, "rate", "classes", error_label="http_response_status_code"),
        ],
        f"{kn}_bucket": [_Rule(_revision, "latency", "bucket")],
        "kn_serving_queue_depth": [_Rule(_revision, "queue_depth", "gauge")],
        "kn_revision_pods_count": [_Rule(_revision, "replicas", "gauge")],
        "kn_revision_pods_desired": [_Rule(_revision, "desired_replicas", "gauge")],
        "faas_coldstarts_total": [_Rule(_revision, "cold_starts", "increase")],
        "kn_revision_concurrency_stable": [_Rule(_revision, "concurrency_stable", "gauge")],
        "kn_revision_concurrency_panic": [_Rule(_revision, "concurrency_panic", "gauge")],
        "kn_revision_rps_stable": [_Rule(_revision, "rps_stable", "gauge")],
        "kn_revision_rps_panic": [_Rule(_revision, "rps_panic", "gauge")],
        "wonderland_revision_requests_in_flight": [_Rule(_revision, "in_flight", "gauge")],
        "wonderland_revision_ready_endpoints": [
            _Rule(_revision, "replicas", "gauge", fallback=True)
        ],
        "wonderland_revision_requests_queued": [
            _Rule(_revision, "queue_depth", "gauge", fallback=True)
        ],
        "inference_requests_total": [
            _Rule(_model, "request_rate", "rate"),
            _Rule(_model, "error_rate", "errors", error_label="code"),
        ],
        "request_predict_seconds_count": [_Rule(_model, "request_rate", "rate", fallback=True)],
        "request_predict_seconds_bucket": [_Rule(_model, "latency", "bucket")],
        "request_preprocess_seconds_bucket": [_Rule(_model, "preprocess", "bucket")],
        "request_postprocess_seconds_bucket": [_Rule(_model, "postprocess", "bucket")],
        "dapr_http_server_request_count": dapr_requests,
        "dapr_http_server_request_count_total": dapr_requests,
        "dapr_http_server_response_count": dapr_errors,
        "dapr_http_server_response_count_total": dapr_errors,
        "dapr_http_server_latency_bucket": [_Rule(_sidecar, "latency", "bucket", scale=0.001)],
        "wonderland_trainjob_progress_percentage": [_Rule(_trainjob, "progress", "gauge")],
        "wonderland_trainjob_metric": [_Rule(_trainjob, "metric", "metric")],
        "wonderland_trial_metric": [_Rule(_trial, "metric", "metric")],
    }


RULES = _rules()


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """Prometheus's ``histogram_quantile`` over cumulative ``(le, count)`` buckets: linear
    interpolation inside the bucket the rank falls in, the lowest bucket starting at 0,
    the highest finite bound when the rank falls in ``+Inf``; NaN with no observations."""
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]) or not 0 <= q <= 1:
        return math.nan
    bounds = [b for b, _ in ordered]
    counts: list[float] = []
    top = 0.0
    for _, c in ordered:  # cumulative counts never fall (resets can skew the deltas)
        top = max(top, c)
        counts.append(top)
    total = counts[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    i = next(i for i, c in enumerate(counts) if c >= rank)
    if i == len(counts) - 1:
        return bounds[-2]
    upper = bounds[i]
    if i == 0:
        if upper <= 0:
            return upper
        lower, below = 0.0, 0.0
    else:
        lower, below = bounds[i - 1], counts[i - 1]
    within = counts[i] - below
    if within <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / within


class SeriesDeriver:
    """Derives the series of each scrape; remembers each counter's last value."""

    def __init__(self) -> None:
        self._prev: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float]] = {}
        self._targets: dict[str, float] = {}  # when each target was last scraped up
        self._target_at: float | None = None  # the previous scrape of the sample's target

    def derive(self, scrapes: Iterable[TargetScrape]) -> list[tuple[SeriesKey, float]]:
        primary: dict[tuple[Identity, str], float] = {}
        fallback: dict[tuple[Identity, str], float] = {}
        buckets: dict[tuple[Identity, str], dict[float, float]] = {}
        seen: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float]] = {}
        targets: dict[str, float] = {}
        for scrape in scrapes:
            if scrape.health.health == "up":
                targets[scrape.health.url] = scrape.at
            self._target_at = self._targets.get(scrape.health.url)
            for sample in scrape.samples:
                rules = RULES.get(sample.name)
                if rules is None:
                    continue
                for rule in rules:
                    self._apply(rule, sample, scrape.at, primary, fallback, buckets, seen)
        self._prev = seen
        self._targets = targets
        out: dict[tuple[Identity, str], float] = dict(fallback)
        out.update(primary)
        for (identity, prefix), by_le in buckets.items():
            quantiles = QUANTILES if prefix == "latency" else STAGE_QUANTILES
            for series, q in quantiles.items():
                value = histogram_quantile(q, by_le.items())
                if not math.isnan(value):
                    out[(identity, series.replace("latency", prefix, 1))] = value
        return [
            (SeriesKey(identity[0], identity[1], identity[2], series), value)
            for (identity, series), value in out.items()
        ]

    def _delta(
        self,
        sample: Sample,
        at: float,
        seen: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float]],
    ) -> tuple[float, float] | None:
        """The increase of a counter since the last scrape and the seconds between them;
        None the first time it is seen."""
        key = (sample.name, tuple(sorted(sample.labels.items())))
        known = seen.get(key)
        if known is None:
            known = seen[key] = (sample.value, at)
        prev = self._prev.get(key)
        if prev is None and self._target_at is not None and not sample.name.endswith("_created"):
            prev = (0.0, self._target_at)
        if prev is None or at <= prev[1]:
            return None
        value = known[0]
        increase = value - prev[0] if value >= prev[0] else value
        return increase, at - prev[1]

    def _apply(
        self,
        rule: _Rule,
        sample: Sample,
        at: float,
        primary: dict[tuple[Identity, str], float],
        fallback: dict[tuple[Identity, str], float],
        buckets: dict[tuple[Identity, str], dict[float, float]],
        seen: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float]],
    ) -> None:
        identity = rule.identity(sample.labels)
        if identity is None:
            return
        into = fallback if rule.fallback else primary
        how = rule.how
        if how == "gauge":
            if not math.isnan(sample.value):
                into[(identity, rule.series)] = (
                    into.get((identity, rule.series), 0.0) + sample.value
                )
            return
        if how == "metric":
            metric = sample.labels.get("metric")
            if metric and not math.isnan(sample.value):
                into[(identity, f"metric:{metric}")] = sample.value
            return
        if how == "classes":  # 1xx, 3xx, 4xx apart; 2xx is the rest, 5xx the errors
            code = sample.labels.get(rule.error_label, "")
            if len(code) != 3 or code[0] not in "134" or not code.isdigit():
                return
            series = f"{rule.series}_{code[0]}xx"
            how = "rate"
        else:
            series = rule.series
        delta = self._delta(sample, at, seen)
        if delta is None:
            return
        increase, seconds = delta
        if how == "bucket":
            try:
                le = float(sample.labels.get("le", "")) * rule.scale
            except ValueError:
                return
            by_le = buckets.setdefault((identity, rule.series), {})
            by_le[le] = by_le.get(le, 0.0) + increase
            return
        if how == "errors":
            if not _server_error(sample.labels.get(rule.error_label, "")):
                increase = 0.0
            value = increase / seconds
        elif how == "rate":
            value = increase / seconds
        else:  # increase
            value = increase
        into[(identity, series)] = into.get((identity, series), 0.0) + value
