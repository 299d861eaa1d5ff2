"""The promotion policy: when a canary's challenger becomes champion, stays out, or waits."""

from __future__ import annotations

import pytest

from wonderland.monitoring.promotion import (
    PromotionPolicy,
    RevisionStats,
    judge,
    stats_from_exposition,
)

POLICY = PromotionPolicy(min_requests=20, max_seconds=60)


def _stats(name: str, requests: float, errors: float, at_ms: float) -> RevisionStats:
    """Every request took about ``at_ms``: all observations in the bucket ending there."""
    bounds = [0.001, 0.005, 0.01, 0.05, 0.1, float("inf")]
    return RevisionStats(
        name, requests, errors, tuple((b, requests if b >= at_ms / 1000 else 0.0) for b in bounds)
    )


def test_a_challenger_no_worse_than_the_champion_is_promoted() -> None:
    verdict = judge(POLICY, _stats("v1", 400, 2, 10), _stats("v2", 100, 0, 10), 30)
    assert verdict is not None and verdict.promote
    assert "no worse than the champion after 100 requests" in verdict.reason


def test_the_verdict_waits_for_enough_canary_requests_then_gives_up() -> None:
    assert judge(POLICY, _stats("v1", 50, 0, 10), _stats("v2", 5, 0, 10), 10) is None
    verdict = judge(POLICY, _stats("v1", 50, 0, 10), _stats("v2", 5, 0, 10), 61)
    assert verdict is not None and not verdict.promote
    assert verdict.reason.startswith("not enough traffic: the challenger answered 5 requests")


def test_an_error_rate_above_the_margin_keeps_the_champion() -> None:
    # 1% vs 3%: above 1% + 0.01
    verdict = judge(POLICY, _stats("v1", 100, 1, 10), _stats("v2", 100, 3, 10), 30)
    assert verdict is not None and not verdict.promote
    assert "error rate 0.030 is above the champion's 0.010 + 0.01" in verdict.reason
    # 2% is within the margin
    verdict = judge(POLICY, _stats("v1", 100, 1, 10), _stats("v2", 100, 2, 10), 30)
    assert verdict is not None and verdict.promote


def test_a_slower_p95_keeps_the_champion_unless_the_difference_is_noise() -> None:
    verdict = judge(POLICY, _stats("v1", 100, 0, 10), _stats("v2", 100, 0, 50), 30)
    assert verdict is not None and not verdict.promote
    assert verdict.reason.startswith("p95 latency 48.0 ms is above 1.2 x the champion's 9.8 ms")
    # 4.8 ms vs 0.95 ms: five times slower, but under the 5 ms slack
    verdict = judge(POLICY, _stats("v1", 100, 0, 1), _stats("v2", 100, 0, 5), 30)
    assert verdict is not None and verdict.promote


def test_figures_come_from_a_model_servers_exposition_and_count_from_a_base() -> None:
    text = """# TYPE inference_requests counter
inference_requests_total{model_name="iris",protocol="rest",code="200"} 90.0
inference_requests_total{model_name="iris",protocol="rest",code="500"} 10.0
inference_requests_total{model_name="iris",protocol="rest",code="400"} 5.0
# TYPE request_predict_seconds histogram
request_predict_seconds_bucket{model_name="iris",le="0.001"} 50.0
request_predict_seconds_bucket{model_name="iris",le="0.01"} 100.0
request_predict_seconds_bucket{model_name="iris",le="+Inf"} 100.0
request_predict_seconds_count{model_name="iris"} 100.0
request_predict_seconds_sum{model_name="iris"} 0.3
"""
    stats = stats_from_exposition(text, "iris-predictor-00002")
    assert (stats.revision, stats.requests, stats.errors) == ("iris-predictor-00002", 105, 10)
    assert stats.latency(0.5) == pytest.approx(0.001)
    assert stats.latency(0.95) == pytest.approx(0.001 + 0.009 * 0.9)
    later = RevisionStats(
        stats.revision, 125, 10, ((0.001, 70.0), (0.01, 120.0), (float("inf"), 120.0))
    )
    delta = later.since(stats)
    assert (delta.requests, delta.errors, delta.error_rate) == (20, 0, 0)
    assert delta.buckets == ((0.001, 20.0), (0.01, 20.0), (float("inf"), 20.0))


def test_a_policy_with_impossible_thresholds_is_refused() -> None:
    with pytest.raises(ValueError, match="min_requests must be at least 1"):
        PromotionPolicy(min_requests=0)
    with pytest.raises(ValueError, match="latency_quantile"):
        PromotionPolicy(latency_quantile=1.5)
