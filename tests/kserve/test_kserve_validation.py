"""Admission of InferenceServices: what KServe's webhook refuses is refused at apply, with
the field path and what to do."""

from __future__ import annotations

from typing import Any

import pytest

from wonderland.api.core_checks import core_admission
from wonderland.errors import InvalidError
from wonderland.kserve.validation import register_checks

admission = core_admission()
register_checks(admission)


def isvc(predictor: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    meta = {"name": extra.pop("name", "iris"), "namespace": "default"}
    if "annotations" in extra:
        meta["annotations"] = extra.pop("annotations")
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": meta,
        "spec": {
            "predictor": predictor
            or {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://b/m"}},
            **extra,
        },
    }


MODEL = {"modelFormat": {"name": "sklearn"}, "storageUri": "/models/iris"}


def test_a_valid_inference_service_is_admitted() -> None:
    admission.admit(isvc({"model": MODEL, "minReplicas": 0, "canaryTrafficPercent": 10}))


@pytest.mark.parametrize(
    ("obj", "field", "text"),
    [
        (isvc({"model": MODEL, "containers": [{"image": "x"}]}), "spec.predictor", "exactly one"),
        (isvc({"minReplicas": 1}), "spec.predictor", "exactly one"),
        (
            isvc({"model": MODEL, "canaryTrafficPercent": 120}),
            "spec.predictor.canaryTrafficPercent",
            "between 0 and 100",
        ),
        (
            isvc({"model": MODEL, "minReplicas": 3, "maxReplicas": 2}),
            "spec.predictor.minReplicas",
            "cannot be greater than maxReplicas",
        ),
        (
            isvc({"model": MODEL, "scaleMetric": "cpu"}),
            "spec.predictor.scaleMetric",
            "HPA",
        ),
        (
            isvc({"model": MODEL, "logger": {"mode": "all"}}),
            "spec.predictor.logger.url",
            "URL",
        ),
        (
            isvc({"model": {**MODEL, "storageUri": "ftp://host/m"}}),
            "spec.predictor.model.storageUri",
            "ftp://",
        ),
        (
            isvc(
                {"model": MODEL}, annotations={"serving.kserve.io/deploymentMode": "RawDeployment"}
            ),
            "metadata.annotations",
            "serverless",
        ),
        (isvc({"model": MODEL}, name="1iris"), "metadata.name", "start with a letter"),
        (isvc({"model": MODEL}, transformer={"minReplicas": 1}), "spec.transformer", "container"),
    ],
)
def test_refused_with_the_field_and_what_to_do(obj: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(InvalidError) as err:
        admission.admit(obj)
    assert (err.value.field or "").startswith(field), err.value
    assert text in str(err.value)
