"""A drift event's TrainJob: made from the template, once per event id, one at a time."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from wonderland.monitoring.retrain import (
    DriftEvent,
    DriftEventError,
    Retrainer,
    trainjob_for,
)

TEMPLATE = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "examples/mdlc/retrain/trainjob.yaml").read_text()
)


def _event(ce_id: str = "e-1", **data: Any) -> dict[str, Any]:
    body = {
        "inferenceService": "iris-mdlc",
        "namespace": "default",
        "detected": True,
        "features": [
            {"name": "petal_length", "method": "ks", "score": 0.9, "pValue": 1e-9, "drift": True},
            {"name": "sepal_width", "method": "ks", "score": 0.1, "pValue": 0.5, "drift": False},
        ],
        **data,
    }
    return {
        "id": ce_id,
        "type": "org.kubeflow.serving.inference.drift",
        "source": "/wonderland/drift-detector/default/iris-mdlc",
        "data": body,
    }


class MemoryTrainJobs:
    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}

    def list(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        key, _, value = label_selector.partition("=")
        return [
            j
            for (ns, _), j in self.jobs.items()
            if ns == namespace and j["metadata"].get("labels", {}).get(key) == value
        ]

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.jobs.get((namespace, name))

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.jobs[(namespace, body["metadata"]["name"])] = copy.deepcopy(body)
        return body


def test_the_trainjob_names_the_event_and_hands_it_to_the_training_code() -> None:
    event = DriftEvent.from_cloudevent(_event())
    job = trainjob_for(TEMPLATE, event, "iris-mdlc")
    meta = job["metadata"]
    assert meta["name"].startswith("iris-retrain-") and len(meta["name"]) == 23
    assert meta["labels"]["mdlc.wonderland.dev/loop"] == "iris-mdlc"
    assert meta["annotations"]["mdlc.wonderland.dev/drift-event-id"] == "e-1"
    assert meta["annotations"]["mdlc.wonderland.dev/drift-features"] == "petal_length"
    env = {e["name"]: e["value"] for e in job["spec"]["trainer"]["env"]}
    assert env["ALIAS"] == "challenger" and env["C"] == "1.0"  # the template's own
    assert env["DRIFT_EVENT_ID"] == "e-1"
    assert env["DRIFT_FEATURES"] == "petal_length (ks=0.9, p=1e-09)"
    assert job["spec"]["runtimePatches"] == TEMPLATE["spec"]["runtimePatches"]
    assert "DRIFT_EVENT_ID" not in str(TEMPLATE)  # the template is left alone


def test_one_trainjob_per_event_and_none_while_one_runs() -> None:
    api = MemoryTrainJobs()
    retrainer = Retrainer(api, TEMPLATE, "iris-mdlc")
    first = retrainer.on_event(DriftEvent.from_cloudevent(_event("e-1")))
    assert first.action == "started" and len(api.jobs) == 1
    again = retrainer.on_event(DriftEvent.from_cloudevent(_event("e-1")))
    assert (again.action, again.trainjob) == ("duplicate", first.trainjob)
    busy = retrainer.on_event(DriftEvent.from_cloudevent(_event("e-2")))
    assert (busy.action, busy.trainjob) == ("busy", first.trainjob)
    assert len(api.jobs) == 1
    api.jobs[("default", first.trainjob)]["status"] = {
        "conditions": [{"type": "Complete", "status": "True"}]
    }
    later = retrainer.on_event(DriftEvent.from_cloudevent(_event("e-2")))
    assert later.action == "started" and len(api.jobs) == 2
    quiet = retrainer.on_event(DriftEvent.from_cloudevent(_event("e-3", detected=False)))
    assert quiet.action == "ignored" and len(api.jobs) == 2


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({**_event(), "id": ""}, "has no id"),
        ({**_event(), "type": "org.kubeflow.serving.inference.request"}, "subscribe this function"),
        ({**_event(), "data": "not json"}, "not JSON"),
        (_event(inferenceService=""), "no inferenceService"),
        (_event(features="petal_length"), "must be a list of objects"),
    ],
)
def test_events_that_are_not_drift_reports_are_refused(event: dict[str, Any], message: str) -> None:
    with pytest.raises(DriftEventError, match=message):
        DriftEvent.from_cloudevent(event)


def test_the_event_names_the_reference_version_it_was_tested_against() -> None:
    assert DriftEvent.from_cloudevent(_event(referenceVersion="2")).reference_version == "2"
    # a detector whose reference is a file (not a registered version) sends ""
    assert DriftEvent.from_cloudevent(_event()).reference_version == ""
