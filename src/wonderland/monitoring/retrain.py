"""Retraining on a drift event: a TrainJob from a template, once per event, one at a time.

The drift detector publishes a CloudEvent (``type: org.kubeflow.serving.inference.drift``)
on a pub/sub topic; a subscriber hands it to :meth:`Retrainer.on_event`, which makes a
TrainJob from a template (any TrainJob manifest) with:

- the name ``<template name>-<first 10 hex of sha256(ce-id)>``, so a redelivered event
  (same ``ce-id``) finds its TrainJob instead of making a second one;
- the label ``mdlc.wonderland.dev/loop: <loop>`` and annotations naming the event, its
  source, the InferenceService and the drifted features;
- the trainer's env ``DRIFT_EVENT_ID``, ``DRIFT_SOURCE`` and ``DRIFT_FEATURES``, so the
  training code can record why it ran.

While a TrainJob of the same loop has not finished (no ``Complete`` nor ``Failed``
condition), a new event starts nothing: the answer says which one runs. The API is behind
the :class:`TrainJobApi` protocol (the ``kubernetes`` client in a Pod, a dict in tests).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "DRIFT_EVENT_TYPE",
    "DriftEvent",
    "DriftEventError",
    "RetrainOutcome",
    "Retrainer",
    "TrainJobApi",
    "trainjob_for",
]

DRIFT_EVENT_TYPE = "org.kubeflow.serving.inference.drift"
LOOP_LABEL = "mdlc.wonderland.dev/loop"
EVENT_ANNOTATION = "mdlc.wonderland.dev/drift-event-id"
SOURCE_ANNOTATION = "mdlc.wonderland.dev/drift-source"
ISVC_ANNOTATION = "mdlc.wonderland.dev/inference-service"
FEATURES_ANNOTATION = "mdlc.wonderland.dev/drift-features"

Obj = dict[str, Any]


class DriftEventError(ValueError):
    """The event is not a drift report this subscriber can act on (a 4xx for the sender)."""


@dataclass(frozen=True)
class DriftEvent:
    """What a retrain needs from the detector's CloudEvent."""

    id: str
    source: str
    inference_service: str
    namespace: str
    detected: bool
    features: tuple[Mapping[str, Any], ...]
    # the registered model version whose reference sample the window was tested against
    # ("" when the reference is not from the registry)
    reference_version: str = ""

    @property
    def drifted(self) -> list[str]:
        return [str(f.get("name")) for f in self.features if f.get("drift")]

    def summary(self) -> str:
        parts = []
        for f in self.features:
            if not f.get("drift"):
                continue
            figures = [f"{f.get('method', 'score')}={_num(f.get('score'))}"]
            if f.get("pValue") is not None:
                figures.append(f"p={_num(f.get('pValue'))}")
            parts.append(f"{f.get('name')} ({', '.join(figures)})")
        return ", ".join(parts) or "no feature flagged"

    @classmethod
    def from_cloudevent(cls, event: Mapping[str, Any]) -> DriftEvent:
        """From a structured CloudEvent (``id``, ``type``, ``source``, ``data``) as Dapr
        delivers it; ``data`` may be a JSON string."""
        ce_id = str(event.get("id") or "")
        if not ce_id:
            raise DriftEventError("the CloudEvent has no id; a drift event needs one (ce-id)")
        if event.get("type") != DRIFT_EVENT_TYPE:
            raise DriftEventError(
                f"CloudEvent type {event.get('type')!r} is not {DRIFT_EVENT_TYPE}; "
                "subscribe this function to the drift topic only"
            )
        data = event.get("data")
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except ValueError:
                raise DriftEventError("the drift event's data is not JSON") from None
        if not isinstance(data, Mapping):
            raise DriftEventError("the drift event's data must be a JSON object")
        isvc = str(data.get("inferenceService") or "")
        if not isvc:
            raise DriftEventError("the drift event's data has no inferenceService")
        features = data.get("features") or []
        if not isinstance(features, list) or not all(isinstance(f, Mapping) for f in features):
            raise DriftEventError("the drift event's data.features must be a list of objects")
        return cls(
            ce_id,
            str(event.get("source") or ""),
            isvc,
            str(data.get("namespace") or "default"),
            bool(data.get("detected", True)),
            tuple(features),
            str(data.get("referenceVersion") or ""),
        )


def _num(value: Any) -> str:
    try:
        return f"{float(value):.3g}"
    except (TypeError, ValueError):
        return str(value)


class TrainJobApi(Protocol):
    """The TrainJobs of one namespace (``trainer.kubeflow.org/v1alpha1``)."""

    def list(self, namespace: str, label_selector: str) -> Sequence[Obj]: ...

    def get(self, namespace: str, name: str) -> Obj | None: ...

    def create(self, namespace: str, body: Obj) -> Obj: ...


@dataclass(frozen=True)
class RetrainOutcome:
    """``action``: ``started`` (a new TrainJob), ``duplicate`` (this event's TrainJob exists),
    ``busy`` (another retrain runs) or ``ignored`` (the event reports no drift)."""

    action: str
    trainjob: str
    message: str


def _finished(job: Mapping[str, Any]) -> bool:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return True
    return False


def trainjob_for(template: Mapping[str, Any], event: DriftEvent, loop: str) -> Obj:
    """The TrainJob ``template`` makes for ``event`` (see the module's docstring)."""
    body = copy.deepcopy(dict(template))
    meta = body.setdefault("metadata", {})
    prefix = str(meta.get("name") or meta.get("generateName") or "retrain").rstrip("-")
    meta.pop("generateName", None)
    digest = hashlib.sha256(event.id.encode()).hexdigest()[:10]
    meta["name"] = f"{prefix[:52]}-{digest}"
    meta["namespace"] = event.namespace
    meta.setdefault("labels", {})[LOOP_LABEL] = loop
    meta.setdefault("annotations", {}).update(
        {
            EVENT_ANNOTATION: event.id,
            SOURCE_ANNOTATION: event.source,
            ISVC_ANNOTATION: event.inference_service,
            FEATURES_ANNOTATION: ",".join(event.drifted),
        }
    )
    trainer = body.setdefault("spec", {}).setdefault("trainer", {})
    extra = {
        "DRIFT_EVENT_ID": event.id,
        "DRIFT_SOURCE": event.source,
        "DRIFT_FEATURES": event.summary(),
    }
    env = [e for e in trainer.get("env") or [] if e.get("name") not in extra]
    trainer["env"] = env + [{"name": k, "value": v} for k, v in extra.items()]
    return body


class Retrainer:
    """Starts the loop's retraining TrainJob for a drift event (see the module)."""

    def __init__(self, api: TrainJobApi, template: Mapping[str, Any], loop: str) -> None:
        if template.get("kind") != "TrainJob":
            raise ValueError(f"the retrain template must be a TrainJob, got {template.get('kind')}")
        self.api = api
        self.template = template
        self.loop = loop

    def on_event(self, event: DriftEvent) -> RetrainOutcome:
        if not event.detected:
            return RetrainOutcome("ignored", "", "the event reports no drift")
        body = trainjob_for(self.template, event, self.loop)
        name = body["metadata"]["name"]
        if self.api.get(event.namespace, name) is not None:
            return RetrainOutcome(
                "duplicate", name, f"event {event.id} already started TrainJob {name}"
            )
        running = [
            j
            for j in self.api.list(event.namespace, f"{LOOP_LABEL}={self.loop}")
            if not _finished(j)
        ]
        if running:
            other = running[0]["metadata"]["name"]
            return RetrainOutcome(
                "busy", other, f"TrainJob {other} is still retraining; event {event.id} waits"
            )
        self.api.create(event.namespace, body)
        return RetrainOutcome(
            "started", name, f"TrainJob {name} started: drift in {event.summary()}"
        )
