"""The canary's verdict: promote the challenger to champion, keep the champion, or wait.

A challenger serves a share of an InferenceService's traffic as a canary (KServe's
``canaryTrafficPercent``) next to the champion's revision. :func:`judge` compares the two
revisions' live figures, read from their model servers' ``/metrics`` (each revision's
pods, found through :mod:`wonderland.monitoring.targets`), under a
:class:`PromotionPolicy`:

- wait until the challenger has answered ``min_requests`` requests (the canary's share of
  live traffic), at most ``max_seconds`` after the canary started serving; a challenger
  that has not seen that many by then is kept out (``not enough traffic``);
- then promote when its error rate is at most the champion's plus ``error_rate_margin``
  **and** its ``latency_quantile`` (p95) predict latency at most ``latency_ratio`` times the
  champion's (differences under ``latency_slack_seconds``, 5 ms, are noise); otherwise
  keep the champion and say which threshold failed.

Pure functions over figures, so the policy is tested without processes; :func:`scrape` is
the one place that reads live metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from wonderland.monitoring.targets import targets_of

__all__ = [
    "PromotionPolicy",
    "RevisionStats",
    "Verdict",
    "judge",
    "scrape",
    "stats_from_exposition",
]

# The model server's names (wonderland.inference.metrics): requests by outcome, and the
# predict step's latency histogram (KServe's request_predict_seconds).
REQUESTS = "inference_requests"
LATENCY = "request_predict_seconds"


@dataclass(frozen=True)
class PromotionPolicy:
    """The documented thresholds (docs/monitoring.md, "The retraining loop")."""

    min_requests: int = 20
    max_seconds: float = 120.0
    error_rate_margin: float = 0.01
    latency_ratio: float = 1.2
    latency_quantile: float = 0.95
    # differences below this many seconds are noise, whatever the ratio (a 0.3 ms model)
    latency_slack_seconds: float = 0.005

    def __post_init__(self) -> None:
        if self.min_requests < 1:
            raise ValueError(f"min_requests must be at least 1, got {self.min_requests}")
        if not 0 < self.latency_quantile < 1:
            raise ValueError(f"latency_quantile must be in (0, 1), got {self.latency_quantile}")
        if self.latency_ratio <= 0 or self.error_rate_margin < 0 or self.max_seconds <= 0:
            raise ValueError(
                "latency_ratio and max_seconds must be positive, error_rate_margin not negative"
            )

    def describe(self) -> str:
        return (
            f"after {self.min_requests} canary requests (within {self.max_seconds:g}s): "
            f"error rate <= champion's + {self.error_rate_margin:g} and "
            f"p{self.latency_quantile * 100:g} latency <= {self.latency_ratio:g} x champion's "
            f"(or within {self.latency_slack_seconds * 1000:g} ms of it)"
        )


@dataclass(frozen=True)
class RevisionStats:
    """One revision's counters since its model servers started (summed over its pods).

    ``buckets`` is the cumulative latency histogram: ``(upper bound in seconds, count)``
    sorted by bound, ending with ``+Inf``."""

    revision: str
    requests: float = 0.0
    errors: float = 0.0
    buckets: tuple[tuple[float, float], ...] = field(default_factory=tuple)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def latency(self, quantile: float) -> float | None:
        """The quantile of the predict latency in seconds, interpolated inside its bucket as
        Prometheus' ``histogram_quantile`` does; None without observations."""
        return _quantile(quantile, self.buckets)

    def since(self, base: RevisionStats | None) -> RevisionStats:
        """What happened after ``base`` (an earlier reading of the same revision)."""
        if base is None:
            return self
        before = dict(base.buckets)
        return RevisionStats(
            self.revision,
            max(0.0, self.requests - base.requests),
            max(0.0, self.errors - base.errors),
            tuple((le, max(0.0, n - before.get(le, 0.0))) for le, n in self.buckets),
        )


@dataclass(frozen=True)
class Verdict:
    """``promote`` True: move ``champion`` to the challenger; False: keep the champion."""

    promote: bool
    reason: str
    champion: RevisionStats
    challenger: RevisionStats


def _quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    if not buckets:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # as Prometheus: the highest finite bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def judge(
    policy: PromotionPolicy,
    champion: RevisionStats,
    challenger: RevisionStats,
    elapsed: float,
) -> Verdict | None:
    """The verdict on the canary ``elapsed`` seconds after it started serving, or None to
    keep watching."""
    if challenger.requests < policy.min_requests:
        if elapsed < policy.max_seconds:
            return None
        return Verdict(
            False,
            f"not enough traffic: the challenger answered {challenger.requests:g} requests in "
            f"{elapsed:.0f}s, the policy needs {policy.min_requests}",
            champion,
            challenger,
        )
    q = policy.latency_quantile
    label = f"p{q * 100:g}"
    ch_err, ch_lat = challenger.error_rate, challenger.latency(q)
    base_err, base_lat = champion.error_rate, champion.latency(q)
    figures = f"error rate {ch_err:.3f} vs {base_err:.3f}, {label} {_ms(ch_lat)} vs {_ms(base_lat)}"
    if ch_err > base_err + policy.error_rate_margin:
        return Verdict(
            False,
            f"error rate {ch_err:.3f} is above the champion's {base_err:.3f} + "
            f"{policy.error_rate_margin:g} ({label} {_ms(ch_lat)} vs {_ms(base_lat)})",
            champion,
            challenger,
        )
    if (
        ch_lat is not None
        and base_lat is not None
        and ch_lat > policy.latency_ratio * base_lat
        and ch_lat - base_lat > policy.latency_slack_seconds
    ):
        return Verdict(
            False,
            f"{label} latency {_ms(ch_lat)} is above {policy.latency_ratio:g} x the "
            f"champion's {_ms(base_lat)} (error rate {ch_err:.3f} vs {base_err:.3f})",
            champion,
            challenger,
        )
    return Verdict(
        True,
        f"no worse than the champion after {challenger.requests:g} requests: {figures}",
        champion,
        challenger,
    )


def stats_from_exposition(text: str, revision: str) -> RevisionStats:
    """The figures of one model server of ``revision`` from its Prometheus text: requests,
    errors (codes 5xx and gRPC's INTERNAL/UNAVAILABLE) and the predict latency histogram."""
    requests = errors = 0.0
    bounds: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if family.name in (REQUESTS, REQUESTS + "_total") and sample.name in (
                REQUESTS,
                REQUESTS + "_total",
            ):
                requests += sample.value
                code = str(sample.labels.get("code", ""))
                if code.startswith("5") or code.upper() in ("INTERNAL", "UNAVAILABLE"):
                    errors += sample.value
            elif family.name == LATENCY and sample.name == LATENCY + "_bucket":
                le = float(sample.labels["le"])
                bounds[le] = bounds.get(le, 0.0) + sample.value
    return RevisionStats(revision, requests, errors, tuple(sorted(bounds.items())))


def _add(a: RevisionStats, b: RevisionStats) -> RevisionStats:
    merged = dict(a.buckets)
    for le, n in b.buckets:
        merged[le] = merged.get(le, 0.0) + n
    return RevisionStats(
        a.revision, a.requests + b.requests, a.errors + b.errors, tuple(sorted(merged.items()))
    )


def scrape(pods: Iterable[Mapping[str, Any]], timeout: float = 5.0) -> dict[str, RevisionStats]:
    """Read every running pod's model-server metrics; figures summed per revision. Pods whose
    metrics cannot be read are left out (a replica starting or stopping)."""
    out: dict[str, RevisionStats] = {}
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        for target in targets_of(list(pods)):
            revision = target.label_dict().get("revision", "")
            if not revision:
                continue
            try:
                response = client.get(target.url)
            except httpx.HTTPError:
                continue
            if response.status_code != 200:
                continue
            stats = stats_from_exposition(response.text, revision)
            out[revision] = _add(out[revision], stats) if revision in out else stats
    return out
