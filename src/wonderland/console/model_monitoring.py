"""What the InferenceService page shows of a model's monitoring: the newest logged payloads
(the payload sink's items, :func:`payload_rows`) and the drift detector's last window per
feature and its reference sample (its ``wonderland_drift_*`` gauges in the last scrape,
:func:`drift_statistics`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wonderland.console.sources import HistorySource

__all__ = [
    "DriftRow",
    "PayloadRow",
    "ReferenceFeature",
    "ReferenceSummary",
    "drift_statistics",
    "payload_rows",
]

MAX_SHOWN = 2000  # characters of a logged payload the page shows


@dataclass(frozen=True)
class PayloadRow:
    received: str
    component: str
    id: str
    request: str
    response: str


@dataclass(frozen=True)
class DriftRow:
    feature: str
    method: str
    score: float | None
    p_value: float | None


@dataclass(frozen=True)
class ReferenceFeature:
    """One feature of the drift detector's reference sample."""

    feature: str
    kind: str  # numeric | categorical
    mean: float | None = None
    stddev: float | None = None
    min: float | None = None
    max: float | None = None
    categories: int | None = None


@dataclass(frozen=True)
class ReferenceSummary:
    """The sample the drift detector compares live inputs with (its
    ``wonderland_drift_reference_*`` gauges): rows, columns, the registered model version
    it belongs to ("" when not from the registry) and its first features' statistics."""

    rows: int
    columns: int
    version: str
    features: list[ReferenceFeature]


def _shown(part: Any) -> str:
    if not isinstance(part, dict):
        return "(not logged yet)"
    if part.get("omitted"):
        return f"({part.get('size', 0)} bytes, over the sink's size limit: not kept)"
    text = str(part.get("body") if "body" in part else f"base64: {part.get('bodyBase64', '')}")
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + " …"


def payload_rows(items: Sequence[Mapping[str, Any]]) -> list[PayloadRow]:
    return [
        PayloadRow(
            str(i.get("received") or ""),
            str(i.get("component") or ""),
            str(i.get("id") or ""),
            _shown(i.get("request")),
            _shown(i.get("response")),
        )
        for i in items
    ]


async def drift_statistics(
    sources: HistorySource, namespace: str, name: str
) -> tuple[list[DriftRow], bool | None, ReferenceSummary | None]:
    """The drift detector's last window per feature, whether it drifted (None: no
    detector reports), and its reference sample, from the last scrape's gauges."""
    selector = (
        '{__name__=~"wonderland_drift_(score|p_value|detected|reference_rows|'
        'reference_summary|reference_version)",inferenceservice="%s"}'
    )
    samples = await sources.samples(selector % name)
    rows: dict[tuple[str, str], dict[str, float]] = {}
    detected: bool | None = None
    shape: dict[str, float] = {}
    stats: dict[tuple[str, str], dict[str, float]] = {}
    version = ""
    for s in samples:
        if s.labels.get("namespace", namespace) != namespace:
            continue
        if s.name == "wonderland_drift_detected":
            detected = bool(s.value) or bool(detected)
        elif s.name == "wonderland_drift_reference_rows":
            shape[s.labels.get("what", "")] = s.value
        elif s.name == "wonderland_drift_reference_summary":
            key = (s.labels.get("feature", ""), s.labels.get("kind", "numeric"))
            stats.setdefault(key, {})[s.labels.get("stat", "")] = s.value
        elif s.name == "wonderland_drift_reference_version":
            version = str(int(s.value))
        else:
            key = (s.labels.get("feature", ""), s.labels.get("method", ""))
            rows.setdefault(key, {})[s.name] = s.value
    out = [
        DriftRow(
            feature, method, v.get("wonderland_drift_score"), v.get("wonderland_drift_p_value")
        )
        for (feature, method), v in sorted(rows.items())
    ]
    reference = None
    if "rows" in shape:
        features = [
            ReferenceFeature(
                feature,
                kind,
                v.get("mean"),
                v.get("stddev"),
                v.get("min"),
                v.get("max"),
                int(v["categories"]) if "categories" in v else None,
            )
            for (feature, kind), v in stats.items()  # the detector's column order
        ]
        reference = ReferenceSummary(
            int(shape["rows"]), int(shape.get("columns", len(features))), version, features
        )
    return out, detected, reference


# -- the handlers ----------------------------------------------------------------------------
