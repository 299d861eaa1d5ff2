"""The Knative Pod Autoscaler (KPA) algorithm as a pure function of metrics and a clock.

``ScalingSpec.from_revision`` reads ``config-autoscaler`` plus a revision's
``autoscaling.knative.dev/*`` annotations and ``containerConcurrency``.
``KPADecider.scale`` is ``pkg/autoscaler/scaling/autoscaler.go Scale()``;
``RevisionScaler.decide`` adds what Knative's PodAutoscaler reconciler does around it:
min/max/initial scale, activation and scale-to-zero after the stable window plus the
grace period (or the retention period when longer).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from wonderland.autoscaler.config import AutoscalerConfig, parse_duration
from wonderland.autoscaler.metrics import MetricWindow
from wonderland.errors import InvalidError

__all__ = [
    "ANNOTATION_PREFIX",
    "Decision",
    "KPADecider",
    "RevisionScaler",
    "ScaleResult",
    "ScalingSpec",
    "autoscaling_annotation",
]

ANNOTATION_PREFIX = "autoscaling.knative.dev/"
TARGET_MIN = 0.01

# kebab-case name -> legacy camelCase alias, both accepted as Knative does.
_ALIASES = {
    "min-scale": "minScale",
    "max-scale": "maxScale",
    "initial-scale": "initialScale",
    "target-utilization-percentage": "targetUtilizationPercentage",
    "scale-down-delay": "scaleDownDelay",
    "scale-to-zero-pod-retention-period": "scaleToZeroPodRetentionPeriod",
    "panic-window-percentage": "panicWindowPercentage",
    "panic-threshold-percentage": "panicThresholdPercentage",
    "target-burst-capacity": "targetBurstCapacity",
    "activation-scale": "activationScale",
}
KNOWN_ANNOTATIONS = (
    "class",
    "metric",
    "target",
    "window",
    "metric-aggregation-algorithm",
    *_ALIASES,
)


def autoscaling_annotation(annotations: Mapping[str, str], name: str) -> str | None:
    """The value of ``autoscaling.knative.dev/<name>`` or its camelCase alias."""
    value = annotations.get(ANNOTATION_PREFIX + name)
    if value is None and name in _ALIASES:
        value = annotations.get(ANNOTATION_PREFIX + _ALIASES[name])
    return None if value is None else str(value)


def _number(annotations: Mapping[str, str], name: str) -> float | None:
    raw = autoscaling_annotation(annotations, name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise InvalidError(
            f"metadata.annotations[{ANNOTATION_PREFIX}{name}]: {raw!r} is not a number"
        ) from None


def _int(annotations: Mapping[str, str], name: str) -> int | None:
    value = _number(annotations, name)
    if value is None:
        return None
    if value != int(value) or value < 0:
        raise InvalidError(
            f"metadata.annotations[{ANNOTATION_PREFIX}{name}]: must be a whole number >= 0"
        )
    return int(value)


def _duration(annotations: Mapping[str, str], name: str) -> float | None:
    raw = autoscaling_annotation(annotations, name)
    if raw is None:
        return None
    return parse_duration(raw, f"metadata.annotations[{ANNOTATION_PREFIX}{name}]")


@dataclass(frozen=True)
class ScalingSpec:
    """Everything the KPA needs for one revision; durations in seconds."""

    metric: str
    total_value: float
    target_value: float
    target_burst_capacity: float
    panic_threshold: float
    stable_window: float
    panic_window: float
    max_scale_up_rate: float
    max_scale_down_rate: float
    scale_down_delay: float
    min_scale: int
    max_scale: int
    initial_scale: int
    activation_scale: int
    enable_scale_to_zero: bool
    scale_to_zero_grace_period: float
    scale_to_zero_pod_retention_period: float
    activator_capacity: float = 100.0

    @classmethod
    def from_revision(
        cls,
        config: AutoscalerConfig,
        annotations: Mapping[str, str] | None,
        container_concurrency: int = 0,
    ) -> ScalingSpec:
        """Combine cluster defaults, annotations and ``containerConcurrency``.

        Raises InvalidError naming the annotation when a value is malformed or out of
        Knative's bounds.
        """
        ann = annotations or {}
        prefix = ANNOTATION_PREFIX
        cls_name = autoscaling_annotation(ann, "class")
        if cls_name not in (None, "kpa.autoscaling.knative.dev"):
            raise InvalidError(
                f"metadata.annotations[{prefix}class]: {cls_name!r} is not supported here; "
                "only kpa.autoscaling.knative.dev (the default) runs on one machine"
            )
        algorithm = autoscaling_annotation(ann, "metric-aggregation-algorithm") or "linear"
        if algorithm.lower() != "linear":
            raise InvalidError(
                f"metadata.annotations[{prefix}metric-aggregation-algorithm]: {algorithm!r} is "
                "not supported here; use 'linear' (the default) or leave it out"
            )
        metric = autoscaling_annotation(ann, "metric") or "concurrency"
        if metric not in ("concurrency", "rps"):
            raise InvalidError(
                f"metadata.annotations[{prefix}metric]: {metric!r} is not supported by the KPA; "
                "use 'concurrency' or 'rps'"
            )
        if metric == "rps":
            total = config.requests_per_second_target_default
        elif container_concurrency > 0:
            total = float(container_concurrency)
        else:
            total = config.container_concurrency_target_default
        target_ann = _number(ann, "target")
        if target_ann is not None:
            if target_ann < TARGET_MIN:
                raise InvalidError(f"metadata.annotations[{prefix}target]: must be >= 0.01")
            total = target_ann
            if metric == "concurrency" and container_concurrency > 0:
                total = min(total, float(container_concurrency))
        tu_ann = _number(ann, "target-utilization-percentage")
        if tu_ann is not None:
            if not 1 <= tu_ann <= 100:
                raise InvalidError(
                    f"metadata.annotations[{prefix}target-utilization-percentage]: "
                    "must be between 1 and 100"
                )
            utilization = tu_ann / 100.0
        else:
            utilization = config.target_utilization
        target = max(TARGET_MIN, total * utilization)

        window = _duration(ann, "window")
        stable_window = config.stable_window if window is None else window
        if not 6.0 <= stable_window <= 3600.0:
            raise InvalidError(f"metadata.annotations[{prefix}window]: must be between 6s and 1h")
        pwp = _number(ann, "panic-window-percentage")
        panic_pct = config.panic_window_percentage if pwp is None else pwp
        if not 1.0 <= panic_pct <= 100.0:
            raise InvalidError(
                f"metadata.annotations[{prefix}panic-window-percentage]: must be in [1, 100]"
            )
        ptp = _number(ann, "panic-threshold-percentage")
        threshold = config.panic_threshold_percentage if ptp is None else ptp
        if not 110.0 <= threshold <= 1000.0:
            raise InvalidError(
                f"metadata.annotations[{prefix}panic-threshold-percentage]: must be in [110, 1000]"
            )
        tbc = _number(ann, "target-burst-capacity")
        burst = config.target_burst_capacity if tbc is None else tbc
        if burst < 0 and burst != -1:
            raise InvalidError(
                f"metadata.annotations[{prefix}target-burst-capacity]: must be -1, 0 or positive"
            )
        min_scale = _int(ann, "min-scale")
        max_scale = _int(ann, "max-scale")
        lo = config.min_scale if min_scale is None else min_scale
        hi = config.max_scale if max_scale is None else max_scale
        if config.max_scale_limit > 0 and (hi == 0 or hi > config.max_scale_limit):
            if max_scale is not None and (hi == 0 or hi > config.max_scale_limit):
                raise InvalidError(
                    f"metadata.annotations[{prefix}max-scale]: must be between 1 and "
                    f"max-scale-limit ({config.max_scale_limit})"
                )
            hi = config.max_scale_limit
        if hi and lo > hi:
            raise InvalidError(
                f"metadata.annotations[{prefix}min-scale]: min-scale ({lo}) is greater than "
                f"max-scale ({hi})"
            )
        initial = _int(ann, "initial-scale")
        if initial == 0 and not config.allow_zero_initial_scale:
            raise InvalidError(
                f"metadata.annotations[{prefix}initial-scale]: 0 needs allow-zero-initial-scale "
                "set to true in config-autoscaler"
            )
        activation = _int(ann, "activation-scale")
        if activation is not None and activation < 1:
            raise InvalidError(f"metadata.annotations[{prefix}activation-scale]: must be >= 1")
        delay = _duration(ann, "scale-down-delay")
        retention = _duration(ann, "scale-to-zero-pod-retention-period")
        return cls(
            metric=metric,
            total_value=total,
            target_value=target,
            target_burst_capacity=burst,
            panic_threshold=threshold / 100.0,
            stable_window=stable_window,
            panic_window=stable_window * panic_pct / 100.0,
            max_scale_up_rate=config.max_scale_up_rate,
            max_scale_down_rate=config.max_scale_down_rate,
            scale_down_delay=config.scale_down_delay if delay is None else delay,
            min_scale=lo,
            max_scale=hi,
            initial_scale=config.initial_scale if initial is None else initial,
            activation_scale=1 if activation is None else activation,
            enable_scale_to_zero=config.enable_scale_to_zero,
            scale_to_zero_grace_period=config.scale_to_zero_grace_period,
            scale_to_zero_pod_retention_period=(
                config.scale_to_zero_pod_retention_period if retention is None else retention
            ),
            activator_capacity=config.activator_capacity,
        )


@dataclass(frozen=True)
class ScaleResult:
    """One KPA decision: desired pods and excess burst capacity (negative: activator
    stays in the path)."""

    desired: int
    excess_burst_capacity: int
    panicking: bool


class KPADecider:
    """Knative's ``autoscaler.Scale()``: stable/panic windows, panic mode, rate limits,
    activation scale, scale-down delay and excess burst capacity."""

    def __init__(self, spec: ScalingSpec) -> None:
        self.spec = spec
        span = max(spec.stable_window, spec.panic_window) + 2
        self.window = MetricWindow(span)
        self.panic_time: float | None = None
        self.max_panic_pods = 0
        self._delay: deque[tuple[float, int]] = deque()
        # the stable and panic averages of the last scale() (the exported observations)
        self.observed: tuple[float, float] | None = None

    def update_spec(self, spec: ScalingSpec) -> None:
        if spec.stable_window > self.spec.stable_window:
            old = self.window
            self.window = MetricWindow(spec.stable_window + 2)
            self.window._buckets = old._buckets
            self.window._first = old._first
            self.window._last = old._last
        self.spec = spec

    def record(self, now: float, value: float) -> None:
        """Record one per-second observation of the revision's total concurrency or RPS."""
        self.window.record(now, value)

    def scale(self, now: float, ready_pods: int, reachable: bool = True) -> ScaleResult | None:
        """Decide; None when there is no data yet (Knative's invalid result)."""
        spec = self.spec
        stable = self.window.average(now, spec.stable_window)
        panic = self.window.average(now, spec.panic_window)
        if stable is None or panic is None:
            return None
        self.observed = (stable, panic)
        ready = max(1.0, float(ready_pods))
        max_up = math.ceil(spec.max_scale_up_rate * ready)
        max_down = math.floor(ready / spec.max_scale_down_rate) if reachable else 0
        dspc = math.ceil(stable / spec.target_value - 1e-9)
        dppc = math.ceil(panic / spec.target_value - 1e-9)
        desired_stable = int(min(max(dspc, max_down), max_up))
        desired_panic = int(min(max(dppc, max_down), max_up))
        if spec.activation_scale > 1:
            if dspc > 0 and spec.activation_scale > desired_stable:
                desired_stable = spec.activation_scale
            if dppc > 0 and spec.activation_scale > desired_panic:
                desired_panic = spec.activation_scale
        over = dppc / ready >= spec.panic_threshold
        if over:
            self.panic_time = now
        elif self.panic_time is not None and self.panic_time + spec.stable_window < now:
            self.panic_time = None
            self.max_panic_pods = 0
        desired = desired_stable
        if self.panic_time is not None:
            desired = max(desired, desired_panic)
            if desired > self.max_panic_pods:
                self.max_panic_pods = desired
            elif desired < self.max_panic_pods:
                desired = self.max_panic_pods
        if spec.scale_down_delay > 0:
            self._delay.append((now, desired))
            while self._delay and self._delay[0][0] <= now - spec.scale_down_delay:
                self._delay.popleft()
            desired = max(d for _, d in self._delay)
        if spec.target_burst_capacity == 0:
            ebc = 0
        elif spec.target_burst_capacity > 0:
            ebc = math.floor(ready_pods * spec.total_value - spec.target_burst_capacity - panic)
        else:
            ebc = -1
        return ScaleResult(desired, int(ebc), self.panic_time is not None)


@dataclass(frozen=True)
class Decision:
    """What the revision should run now and why."""

    desired: int
    reason: str
    excess_burst_capacity: int = 0
    panicking: bool = False


class RevisionScaler:
    """The PodAutoscaler around the KPA: bounds, initial scale, activation, scale to zero.

    ``decide(now, ready, reachable)`` is pure in the sense that it reads only its
    arguments and the recorded metrics; the caller owns the clock.
    """

    def __init__(self, spec: ScalingSpec, now: float) -> None:
        self.decider = KPADecider(spec)
        self.created = now
        self.reached_initial = spec.initial_scale == 0
        self.active_since: float | None = now  # Knative's PA starts Active (initial scale)
        self.inactive_since: float | None = None
        self.desired = spec.initial_scale
        self.activating = False

    @property
    def spec(self) -> ScalingSpec:
        return self.decider.spec

    def update_spec(self, spec: ScalingSpec) -> None:
        self.decider.update_spec(spec)

    def record(self, now: float, value: float) -> None:
        self.decider.record(now, value)

    def poke(self, now: float) -> int:
        """A request arrived while the revision is at zero (the activator's poke):
        scale up at once to max(1, activation-scale, min-scale)."""
        spec = self.spec
        self.activating = True
        self.inactive_since = None
        self.active_since = now
        want = max(1, spec.activation_scale, spec.min_scale)
        if spec.max_scale:
            want = min(want, spec.max_scale)
        self.desired = max(self.desired, want)
        return self.desired

    def decide(self, now: float, ready_pods: int, reachable: bool = True) -> Decision:
        spec = self.spec
        if ready_pods >= max(1, spec.initial_scale):
            self.reached_initial = True
        if ready_pods > 0:
            self.activating = False
        result = self.decider.scale(now, ready_pods, reachable)
        lower = spec.min_scale if reachable else 0
        if not self.reached_initial:
            want = max(spec.initial_scale, lower)
            self.desired = min(want, spec.max_scale) if spec.max_scale else want
            return Decision(self.desired, "InitialScale")
        if result is None:
            want = max(self.desired, lower)
            if spec.max_scale:
                want = min(want, spec.max_scale)
            self.desired = want
            return Decision(want, "NoData")
        want = result.desired
        if spec.max_scale:
            want = min(want, spec.max_scale)
        want = max(want, lower)
        if self.activating and want == 0:
            # A held request is waiting for the first replica; never cancel that.
            want = max(1, spec.activation_scale)
        if want > 0:
            self.inactive_since = None
            if self.active_since is None:
                self.active_since = now
            self.desired = want
            return Decision(want, "Scaled", result.excess_burst_capacity, result.panicking)
        return self._to_zero(now, result)

    def _to_zero(self, now: float, result: ScaleResult) -> Decision:
        spec = self.spec
        if not spec.enable_scale_to_zero:
            self.desired = 1
            return Decision(1, "ScaleToZeroDisabled", result.excess_burst_capacity)
        if self.desired == 0:
            return Decision(0, "Inactive", result.excess_burst_capacity)
        if self.inactive_since is None:
            active_for = now - (self.active_since if self.active_since is not None else now)
            if active_for < spec.stable_window:
                return Decision(self.desired, "ActiveForLessThanStableWindow")
            self.inactive_since = now
        wait = max(spec.scale_to_zero_grace_period, spec.scale_to_zero_pod_retention_period)
        if now - self.inactive_since < wait:
            return Decision(self.desired, "ScaleToZeroGracePeriod", result.excess_burst_capacity)
        self.desired = 0
        self.active_since = None
        return Decision(0, "NoTraffic", result.excess_burst_capacity)
