"""Cluster-wide autoscaler settings: the ``config-autoscaler`` ConfigMap and its defaults.

Keys, defaults and bounds follow Knative Serving's ``config/core/configmaps/autoscaler.yaml``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from wonderland.errors import InvalidError

__all__ = ["AutoscalerConfig", "parse_duration"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str, where: str) -> float:
    """Parse a Go duration ("60s", "1m30s", "500ms") into seconds.

    ``where`` names the field for the error message.
    """
    value = text.strip()
    if value in ("0", ""):
        return 0.0
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(value) or pos == 0:
        raise InvalidError(
            f"{where}: {text!r} is not a duration; write it as Go does, e.g. '60s', '1m30s', '500ms'"
        )
    return total


def _parse_float(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidError(f"{where}: {text!r} is not a number") from None


def _parse_bool(text: str, where: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "enabled"):
        return True
    if lowered in ("false", "0", "no", "disabled"):
        return False
    raise InvalidError(f"{where}: {text!r} is not a boolean; write true or false")


@dataclass(frozen=True)
class AutoscalerConfig:
    """Values of the ``config-autoscaler`` ConfigMap; durations are in seconds."""

    container_concurrency_target_percentage: float = 70.0
    container_concurrency_target_default: float = 100.0
    requests_per_second_target_default: float = 200.0
    target_burst_capacity: float = 211.0
    stable_window: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    enable_scale_to_zero: bool = True
    scale_to_zero_grace_period: float = 30.0
    scale_to_zero_pod_retention_period: float = 0.0
    activator_capacity: float = 100.0
    initial_scale: int = 1
    allow_zero_initial_scale: bool = False
    min_scale: int = 0
    max_scale: int = 0
    scale_down_delay: float = 0.0
    max_scale_limit: int = 0
    # Not a Knative key: how often the autoscaler decides (Knative's tick is fixed at 2 s).
    tick_interval: float = 2.0

    @classmethod
    def from_configmap(cls, data: Mapping[str, str] | None) -> AutoscalerConfig:
        """Build the settings from a ConfigMap's ``data``; unknown keys are ignored as
        Knative does (``_example`` among them), malformed values are rejected."""
        cfg = cls()
        if not data:
            return cfg
        changes: dict[str, object] = {}
        names = {f.name: f for f in fields(cls)}
        for key, raw in data.items():
            attr = key.replace("-", "_")
            if attr not in names or attr == "tick_interval":
                continue
            where = f"ConfigMap knative-serving/config-autoscaler: data.{key}"
            default = getattr(cfg, attr)
            text = str(raw)
            if isinstance(default, bool):
                changes[attr] = _parse_bool(text, where)
            elif attr in (
                "stable_window",
                "scale_to_zero_grace_period",
                "scale_to_zero_pod_retention_period",
                "scale_down_delay",
            ):
                changes[attr] = parse_duration(text, where)
            elif isinstance(default, int):
                changes[attr] = int(_parse_float(text, where))
            else:
                changes[attr] = _parse_float(text, where)
        cfg = replace(cfg, **changes)  # type: ignore[arg-type]
        cfg.validate()
        return cfg

    @property
    def target_utilization(self) -> float:
        """The utilisation fraction: values <= 1 are read as a fraction already."""
        pct = self.container_concurrency_target_percentage
        return pct if pct <= 1 else pct / 100.0

    @property
    def panic_window(self) -> float:
        return self.stable_window * self.panic_window_percentage / 100.0

    def validate(self) -> None:
        where = "ConfigMap knative-serving/config-autoscaler"
        if not 6.0 <= self.stable_window <= 3600.0:
            raise InvalidError(f"{where}: stable-window must be between 6s and 1h")
        if not 1.0 <= self.panic_window_percentage <= 100.0:
            raise InvalidError(f"{where}: panic-window-percentage must be in [1, 100]")
        if not 110.0 <= self.panic_threshold_percentage <= 1000.0:
            raise InvalidError(f"{where}: panic-threshold-percentage must be in [110, 1000]")
        if self.max_scale_up_rate <= 1.0 or self.max_scale_down_rate <= 1.0:
            raise InvalidError(f"{where}: max-scale-up-rate and max-scale-down-rate must be > 1")
        if self.target_burst_capacity < 0 and self.target_burst_capacity != -1:
            raise InvalidError(f"{where}: target-burst-capacity must be -1, 0 or positive")
        if self.min_scale < 0 or self.max_scale < 0 or self.initial_scale < 0:
            raise InvalidError(f"{where}: min-scale, max-scale and initial-scale must be >= 0")
        if self.initial_scale == 0 and not self.allow_zero_initial_scale:
            raise InvalidError(
                f"{where}: initial-scale is 0 but allow-zero-initial-scale is false; "
                "set allow-zero-initial-scale: 'true' to allow it"
            )
