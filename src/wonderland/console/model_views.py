"""The Models list: InferenceServices with their component readiness, canary split and
the request rate and latency of ``/wonderland/v1/top?kind=models``, as typed data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wonderland.console.views import (
    Condition,
    TopRow,
    conditions_of,
    list_objects,
    meta_of,
    ready_condition,
)
from wonderland.store import Store

__all__ = ["ModelRow", "ModelsPage", "models"]


@dataclass(frozen=True)
class ModelRow:
    namespace: str
    name: str
    url: str
    ready: Condition
    predictor: Condition
    transformer: Condition | None  # None when the InferenceService has no transformer
    model_format: str
    storage_uri: str
    latest_revision: str  # the predictor's newest ready revision
    latest_percent: int | None  # its share of the traffic; None before any split is known
    previous_revision: str  # the previous rolled-out revision (a canary's stable side)
    previous_percent: int
    request_rate: float | None
    latency_p50: float | None  # seconds
    latency_p95: float | None

    @property
    def canary(self) -> bool:
        """Traffic is split between the latest and the previous rolled-out revision."""
        return self.previous_percent > 0


@dataclass(frozen=True)
class ModelsPage:
    models: list[ModelRow]
    metrics_available: bool
    resource_version: str


def _split(
    component: Mapping[str, Any],
) -> tuple[str, int | None, str, int]:
    """(latest revision, its percent, previous rolled-out revision, its percent) of a
    component's status (``status.components.predictor``)."""
    latest = str(
        component.get("latestReadyRevision")
        or component.get("latestRolledoutRevision")
        or component.get("latestCreatedRevision")
        or ""
    )
    previous = str(component.get("previousRolledoutRevision") or "")
    traffic = [t for t in component.get("traffic") or [] if isinstance(t, dict)]
    if not traffic:
        return latest, None, previous, 0
    latest_pct = previous_pct = 0
    for t in traffic:
        percent = int(t.get("percent") or 0)
        name = str(t.get("revisionName") or "")
        if t.get("latestRevision") or (name and name == latest):
            latest_pct += percent
        elif name and name == previous:
            previous_pct += percent
    return latest, latest_pct, previous, previous_pct


def models(
    store: Store, top: Mapping[tuple[str, str], TopRow], namespace: str | None = None
) -> ModelsPage:
    """Every InferenceService (of ``namespace``, or all): readiness of the predictor and
    the transformer, URL, the canary split and the request rate and latency percentiles
    of ``/wonderland/v1/top?kind=models``."""
    rv = store.resource_version
    rows: list[ModelRow] = []
    items = [
        i
        for i in list_objects(store, "inferenceservices.serving.kserve.io")
        if namespace is None or meta_of(i).get("namespace") == namespace
    ]
    for isvc in sorted(items, key=lambda i: (meta_of(i).get("namespace"), meta_of(i).get("name"))):
        meta = meta_of(isvc)
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        spec = isvc.get("spec") or {}
        status = isvc.get("status") or {}
        conds = conditions_of(isvc)
        unknown = Condition("Unknown", "", "not reconciled yet")
        predictor = spec.get("predictor") or {}
        model = predictor.get("model") or {}
        components = status.get("components") or {}
        latest, latest_pct, previous, previous_pct = _split(components.get("predictor") or {})
        m = top.get((ns, name))
        rows.append(
            ModelRow(
                ns,
                name,
                str(status.get("url") or ""),
                ready_condition(isvc),
                conds.get("PredictorReady", unknown),
                conds.get("TransformerReady", unknown) if spec.get("transformer") else None,
                str((model.get("modelFormat") or {}).get("name") or ""),
                str(model.get("storageUri") or predictor.get("storageUri") or ""),
                latest,
                latest_pct,
                previous,
                previous_pct,
                m.value("request_rate") if m else None,
                m.value("latency_p50") if m else None,
                m.value("latency_p95") if m else None,
            )
        )
    return ModelsPage(rows, bool(top), str(rv))
