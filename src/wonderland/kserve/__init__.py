"""KServe's InferenceService on the platform (serverless mode, on Knative Serving).

``install(platform)`` writes the built-in ClusterServingRuntimes into the store and
registers the InferenceService reconciler, which turns each InferenceService into the
Knative Services ``<name>-predictor`` (and ``-transformer``, ``-explainer``) that the
serving plugin runs. See docs/inference-service.md.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from wonderland.api.admission import Admission
from wonderland.errors import AlreadyExistsError, NotFoundError
from wonderland.kserve import validation
from wonderland.settings import Settings

if TYPE_CHECKING:
    from wonderland.kserve.reconciler import InferenceServiceReconciler
    from wonderland.platform import Platform

__all__ = ["install", "install_admission"]

log = logging.getLogger("wonderland.kserve")


def install_admission(into: Admission, settings: Settings) -> None:
    """Register the InferenceService check."""
    validation.register_checks(into)


def install(platform: Platform) -> InferenceServiceReconciler:
    """Add KServe's InferenceService (and the built-in runtimes) to ``platform``."""
    from wonderland.kserve.reconciler import InferenceServiceReconciler
    from wonderland.kserve.runtimes import CLUSTER_RUNTIMES, builtin_runtimes

    install_admission(platform.admission, platform.settings)

    store = platform.store
    for runtime in builtin_runtimes():
        name = runtime["metadata"]["name"]
        try:
            current = store.get(CLUSTER_RUNTIMES, None, name)
        except NotFoundError:
            try:
                store.create(runtime)
            except AlreadyExistsError:
                pass
            continue
        if current.get("spec") != runtime["spec"] and (
            (current["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by")
            == "wonderland"
        ):
            body = dict(current)
            body["spec"] = runtime["spec"]
            store.update(body)
    from wonderland.kserve.forkserver import ForkServerService

    forkserver = ForkServerService(platform.state_dir)
    reconciler = InferenceServiceReconciler(platform, platform.settings.domain)
    if forkserver.usable:
        platform.add_service(forkserver)
        reconciler.forkserver = forkserver
    from wonderland.kserve.model_pins import ModelPins
    from wonderland.kserve.reconciler import ISVCS
    from wonderland.tracking.access import TrackingAccess

    # storageUri models:/NAME@ALIAS follows the alias (tracking installs before kserve)
    pins = ModelPins(
        platform.get(TrackingAccess),  # type: ignore[type-abstract]
        platform.settings.mlflow_poll_seconds,
        lambda namespace, name: platform.controllers.enqueue(ISVCS, namespace, name),
    )
    reconciler.pins = pins
    platform.add_service(pins)
    platform.controllers.register(reconciler)
    return reconciler
