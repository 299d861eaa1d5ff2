"""Admission checks for InferenceServices, as KServe's validating webhook makes them.

Refused at apply (field path and what to do): a predictor with both or neither of
``model`` and ``containers``, ``canaryTrafficPercent`` outside 0-100, ``minReplicas``
above ``maxReplicas``, negative scaling numbers, ``scaleMetric`` cpu/memory (Kubernetes'
HPA), a ``logger`` without ``url``, a ``storageUri`` scheme KServe does not know, a
deployment mode other than serverless, and names KServe refuses.
"""

from __future__ import annotations

import re
from typing import Any

from wonderland.api.admission import Admission
from wonderland.errors import InvalidError
from wonderland.tracking.uris import is_tracking_uri, parse

__all__ = ["check_inference_service", "register_checks"]

Obj = dict[str, Any]

ISVCS = "inferenceservices.serving.kserve.io"
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
_SERVERLESS = ("Serverless", "Knative", "")
# KServe's SupportedStorageURIPrefixList, plus the schemes this platform adds.
_KNOWN_SCHEMES = (
    "gs://",
    "s3://",
    "pvc://",
    "file://",
    "https://",
    "http://",
    "hdfs://",
    "webhdfs://",
    "oci://",
    "oci+native://",
    "oci+fetch://",
    "hf://",
    "models:/",
    "runs:/",
    "mlflow-artifacts:",
)


def _component(path: str, comp: Obj) -> None:
    for field in ("minReplicas", "maxReplicas", "containerConcurrency", "timeout"):
        value = comp.get(field)
        if value is not None and value < 0:
            raise InvalidError(f"{path}.{field}", f"must be 0 or more, got {value}")
    low, high = comp.get("minReplicas"), comp.get("maxReplicas")
    if low is not None and high and low > high:
        raise InvalidError(
            f"{path}.minReplicas",
            f"minReplicas ({low}) cannot be greater than maxReplicas ({high})",
        )
    target = comp.get("scaleTarget")
    if target is not None and target <= 0:
        raise InvalidError(f"{path}.scaleTarget", f"must be more than 0, got {target}")
    canary = comp.get("canaryTrafficPercent")
    if canary is not None and not 0 <= canary <= 100:
        raise InvalidError(
            f"{path}.canaryTrafficPercent", f"must be between 0 and 100, got {canary}"
        )
    if comp.get("scaleMetric") in ("cpu", "memory"):
        raise InvalidError(
            f"{path}.scaleMetric",
            f"{comp['scaleMetric']!r} scaling needs Kubernetes' HPA; on this platform use "
            "'concurrency' or 'rps' (Knative's KPA)",
        )
    logger = comp.get("logger")
    if logger is not None and not logger.get("url"):
        raise InvalidError(f"{path}.logger.url", "give the URL that receives the CloudEvents")
    containers = comp.get("containers") or []
    if len(containers) > 1:
        raise InvalidError(
            f"{path}.containers", "one container per component runs on this platform"
        )


def check_inference_service(new: Obj, old: Obj | None) -> None:
    """Refuse InferenceServices KServe's webhook refuses, or that cannot run here."""
    meta = new.get("metadata") or {}
    name = str(meta.get("name") or "")
    if name and not _NAME.match(name):
        raise InvalidError(
            "metadata.name",
            f"{name!r}: an InferenceService name must consist of lower case letters, digits "
            "or '-', start with a letter and end with a letter or digit",
        )
    mode = (meta.get("annotations") or {}).get(_MODE_ANNOTATION, "")
    if mode not in _SERVERLESS:
        raise InvalidError(
            f"metadata.annotations[{_MODE_ANNOTATION}]",
            f"{mode!r}: this platform runs InferenceServices in serverless mode (Knative); "
            "remove the annotation or set it to Serverless",
        )
    spec = new.get("spec") or {}
    predictor = spec.get("predictor") or {}
    has_model = predictor.get("model") is not None
    has_containers = bool(predictor.get("containers"))
    if has_model == has_containers:
        raise InvalidError(
            "spec.predictor",
            "give exactly one of model (modelFormat, storageUri) or containers",
        )
    for which in ("predictor", "transformer", "explainer"):
        comp = spec.get(which)
        if comp is not None:
            _component(f"spec.{which}", comp)
    for which in ("transformer", "explainer"):
        comp = spec.get(which)
        if comp is not None and not comp.get("containers"):
            raise InvalidError(f"spec.{which}.containers", f"give the {which}'s container")
    uri = str((predictor.get("model") or {}).get("storageUri") or "")
    if is_tracking_uri(uri):
        # models:/NAME@ALIAS, runs:/RUN/PATH ...: malformed ones are refused at apply
        parse(uri, "spec.predictor.model.storageUri")
        return
    has_scheme = "://" in uri or uri.startswith("models:/")
    if has_scheme and not uri.lower().startswith(_KNOWN_SCHEMES):
        raise InvalidError(
            "spec.predictor.model.storageUri",
            f"{uri.split('://')[0]}:// is not a storage scheme KServe knows; use a path, "
            "file://, pvc://, s3://, http(s)://, hf:// or an MLflow models:/ or runs:/ URI",
        )


def register_checks(admission: Admission) -> None:
    """Register the InferenceService check into ``admission``."""
    admission.register(ISVCS, check_inference_service)
