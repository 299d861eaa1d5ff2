"""The KPA algorithm against Knative's defaults and annotations, with a fake clock."""

from __future__ import annotations

import pytest

from wonderland.autoscaler import (
    AutoscalerConfig,
    KPADecider,
    RevisionScaler,
    ScalingSpec,
    parse_duration,
)
from wonderland.errors import InvalidError

A = "autoscaling.knative.dev/"


def spec(annotations: dict[str, str] | None = None, cc: int = 0, **cfg: object) -> ScalingSpec:
    return ScalingSpec.from_revision(AutoscalerConfig(**cfg), annotations, cc)  # type: ignore[arg-type]


def feed(target: KPADecider | RevisionScaler, start: float, end: float, value: float) -> None:
    """Record one value per second for seconds start..end inclusive."""
    t = start
    while t <= end:
        target.record(t, value)
        t += 1.0


def test_defaults_match_knative() -> None:
    cfg = AutoscalerConfig()
    assert cfg.stable_window == 60.0
    assert cfg.panic_window == 6.0
    assert cfg.target_utilization == 0.7
    assert cfg.scale_to_zero_grace_period == 30.0
    assert cfg.target_burst_capacity == 211.0
    assert cfg.tick_interval == 2.0
    s = spec()
    assert s.target_value == pytest.approx(70.0)
    assert s.panic_threshold == 2.0
    assert s.max_scale_up_rate == 1000.0
    assert s.max_scale_down_rate == 2.0


def test_target_from_container_concurrency_and_annotations() -> None:
    assert spec(cc=10).target_value == pytest.approx(7.0)
    # target is capped at containerConcurrency
    assert spec({A + "target": "50"}, cc=10).target_value == pytest.approx(7.0)
    assert spec({A + "target": "20"}).target_value == pytest.approx(14.0)
    assert spec({A + "metric": "rps"}).target_value == pytest.approx(140.0)
    assert spec({A + "target-utilization-percentage": "50"}).target_value == pytest.approx(50.0)
    assert spec({A + "targetUtilizationPercentage": "80"}).target_value == pytest.approx(80.0)
    assert spec({A + "window": "20s"}).panic_window == pytest.approx(2.0)
    assert spec({A + "minScale": "2", A + "max-scale": "4"}).min_scale == 2


@pytest.mark.parametrize(
    ("annotations", "needle"),
    [
        ({A + "window": "2s"}, "window"),
        ({A + "metric": "cpu"}, "metric"),
        ({A + "min-scale": "5", A + "max-scale": "2"}, "min-scale"),
        ({A + "panic-threshold-percentage": "50"}, "panic-threshold-percentage"),
        ({A + "target": "abc"}, "target"),
        ({A + "scale-down-delay": "ten minutes"}, "scale-down-delay"),
        ({A + "initial-scale": "0"}, "allow-zero-initial-scale"),
        ({A + "metric-aggregation-algorithm": "weighted-exponential"}, "linear"),
    ],
)
def test_bad_annotations_are_rejected_with_the_field(
    annotations: dict[str, str], needle: str
) -> None:
    with pytest.raises(InvalidError, match=needle):
        spec(annotations)


def test_configmap_parsing() -> None:
    cfg = AutoscalerConfig.from_configmap(
        {
            "stable-window": "1m30s",
            "scale-to-zero-grace-period": "10s",
            "enable-scale-to-zero": "false",
            "container-concurrency-target-default": "10",
            "_example": "ignored",
        }
    )
    assert cfg.stable_window == 90.0
    assert cfg.scale_to_zero_grace_period == 10.0
    assert cfg.enable_scale_to_zero is False
    assert cfg.container_concurrency_target_default == 10.0
    with pytest.raises(InvalidError, match="stable-window"):
        AutoscalerConfig.from_configmap({"stable-window": "1s"})
    assert parse_duration("500ms", "x") == 0.5
    with pytest.raises(InvalidError, match="duration"):
        parse_duration("5 s", "x")


def test_stable_scaling_follows_average_concurrency() -> None:
    d = KPADecider(spec())
    feed(d, 0, 60, 140.0)  # 140 concurrent / 70 per pod
    r = d.scale(60.0, ready_pods=2)
    assert r is not None and r.desired == 2 and not r.panicking
    assert KPADecider(spec()).scale(0.0, 1) is None  # no data yet


def test_panic_mode_scales_up_fast_and_never_down_while_panicking() -> None:
    d = KPADecider(spec())
    feed(d, 0, 54, 10.0)
    feed(d, 55, 60, 700.0)  # a burst inside the 6 s panic window
    r = d.scale(60.0, ready_pods=1)
    assert r is not None and r.panicking
    assert r.desired == 10  # ceil(700 / 70)
    feed(d, 61, 70, 0.0)
    r2 = d.scale(70.0, ready_pods=10)
    assert r2 is not None and r2.panicking and r2.desired == 10  # held at max panic pods
    feed(d, 71, 125, 0.0)
    r3 = d.scale(125.0, ready_pods=10)
    assert r3 is not None and not r3.panicking
    assert r3.desired == 5  # out of panic: max scale-down rate 2x


def test_max_scale_up_rate_limits_growth() -> None:
    d = KPADecider(spec(max_scale_up_rate=2.0))
    feed(d, 0, 60, 7000.0)
    r = d.scale(60.0, ready_pods=3)
    assert r is not None and r.desired == 6


def test_scale_down_delay_keeps_the_highest_recent_decision() -> None:
    d = KPADecider(spec({A + "scale-down-delay": "30s"}))
    feed(d, 0, 60, 280.0)
    assert d.scale(60.0, ready_pods=4).desired == 4  # type: ignore[union-attr]
    feed(d, 61, 130, 0.0)
    # stable window is empty now but the delay window still remembers 4 for 30 s
    r = d.scale(85.0, ready_pods=4)
    assert r is not None and r.desired == 4
    d.scale(125.0, ready_pods=4)
    assert d.scale(130.0, ready_pods=4).desired == 2  # type: ignore[union-attr]


def test_excess_burst_capacity() -> None:
    d = KPADecider(spec())
    feed(d, 0, 60, 0.0)
    assert d.scale(60.0, 1).excess_burst_capacity < 0  # type: ignore[union-attr]
    d0 = KPADecider(spec({A + "target-burst-capacity": "0"}))
    feed(d0, 0, 60, 0.0)
    assert d0.scale(60.0, 1).excess_burst_capacity == 0  # type: ignore[union-attr]
    d1 = KPADecider(spec({A + "target-burst-capacity": "-1"}))
    feed(d1, 0, 60, 0.0)
    assert d1.scale(60.0, 5).excess_burst_capacity == -1  # type: ignore[union-attr]
    d2 = KPADecider(spec({A + "target-burst-capacity": "50"}))
    feed(d2, 0, 60, 10.0)
    assert d2.scale(60.0, 3).excess_burst_capacity == 300 - 50 - 10  # type: ignore[union-attr]


def test_idle_revision_goes_to_zero_after_stable_window_plus_grace() -> None:
    s = RevisionScaler(spec(), now=0.0)
    assert s.decide(0.0, ready_pods=0).desired == 1  # initial scale 1
    t = 1.0
    zero_at = None
    while t < 200:
        s.record(t, 0.0)
        if s.decide(t, ready_pods=0 if zero_at else 1).desired == 0 and zero_at is None:
            zero_at = t
        t += 2.0
    assert zero_at is not None
    assert 60.0 + 30.0 <= zero_at <= 60.0 + 30.0 + 4.0


def test_retention_period_and_disabled_scale_to_zero() -> None:
    s = RevisionScaler(spec({A + "scale-to-zero-pod-retention-period": "2m"}), now=0.0)
    zero_at = None
    for t in range(1, 400, 2):
        s.record(float(t), 0.0)
        if s.decide(float(t), 1).desired == 0:
            zero_at = t
            break
    assert zero_at is not None and zero_at >= 60 + 120
    never = RevisionScaler(spec(enable_scale_to_zero=False), now=0.0)
    for t in range(1, 400, 2):
        never.record(float(t), 0.0)
        assert never.decide(float(t), 1).desired == 1


def test_min_max_initial_and_activation_scale() -> None:
    s = RevisionScaler(spec({A + "min-scale": "2", A + "initial-scale": "3"}), now=0.0)
    assert s.decide(0.0, 0).desired == 3
    for t in range(1, 300, 2):
        s.record(float(t), 0.0)
        d = s.decide(float(t), 3 if t < 100 else 2)
    assert d.desired == 2  # min-scale holds
    # an unreachable revision (no traffic) ignores min-scale
    for t in range(300, 500, 2):
        s.record(float(t), 0.0)
        d = s.decide(float(t), 1, reachable=False)
    assert d.desired == 0
    capped = RevisionScaler(spec({A + "max-scale": "3"}), now=0.0)
    feed(capped, 0, 60, 7000.0)
    capped.decide(0.0, 1)
    assert capped.decide(60.0, 1).desired == 3
    act = RevisionScaler(spec({A + "activation-scale": "3"}), now=0.0)
    for t in range(1, 200, 2):
        act.record(float(t), 0.0)
        act.decide(float(t), 1)
    assert act.desired == 0
    assert act.poke(201.0) == 3
    act.record(201.0, 1.0)
    assert act.decide(201.5, 0).desired == 3  # still waking: do not give up the held request
