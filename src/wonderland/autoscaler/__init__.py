"""The KPA autoscaler: Knative's algorithm as a pure function of metric windows and a clock."""

from __future__ import annotations

from wonderland.autoscaler.config import AutoscalerConfig, parse_duration
from wonderland.autoscaler.kpa import (
    ANNOTATION_PREFIX,
    Decision,
    KPADecider,
    RevisionScaler,
    ScaleResult,
    ScalingSpec,
    autoscaling_annotation,
)
from wonderland.autoscaler.metrics import MetricWindow

__all__ = [
    "ANNOTATION_PREFIX",
    "AutoscalerConfig",
    "Decision",
    "KPADecider",
    "MetricWindow",
    "RevisionScaler",
    "ScaleResult",
    "ScalingSpec",
    "autoscaling_annotation",
    "parse_duration",
]
