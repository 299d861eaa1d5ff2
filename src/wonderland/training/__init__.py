"""Training as Kubeflow Trainer v2 runs it: TrainJob, TrainingRuntime and
ClusterTrainingRuntime (``trainer.kubeflow.org/v1alpha1``) on JobSets, Jobs and Pods.

``install(platform)`` registers the admission checks (also those of the OptimizationJob API,
whose controller comes with tuning), the TrainJob controller, the images
the runtimes name (:mod:`.images`), the trainer status endpoint on the control API
(:mod:`.status_endpoint`), the runtimes Trainer ships (:mod:`.catalog`) and, with the
monitoring plugin's :class:`~wonderland.monitoring.hub.MetricsHub`, the TrainJob gauges
(:mod:`.metrics`). It needs the
workloads plugin (the kubelet, the token issuer) installed first; with a
:class:`~wonderland.tracking.access.TrackingAccess` provided, TrainJobs get MLflow runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wonderland.api.admission import Admission
from wonderland.control.sources import ActionRegistry, ControlEndpoint
from wonderland.controllers import events
from wonderland.monitoring.hub import MetricsHub
from wonderland.runtime.kubelet import Kubelet
from wonderland.settings import Settings
from wonderland.tokens import TokenIssuer
from wonderland.tracking.access import TrackingAccess
from wonderland.training import admission, catalog, optimization_admission
from wonderland.training.images import TrainingImageProvider
from wonderland.training.metrics import TrainJobCollector
from wonderland.training.status_endpoint import TrainerStatusEndpoint
from wonderland.training.status_env import StatusEnvironment
from wonderland.training.trainjobs import TRAINJOBS, TrainJobReconciler

if TYPE_CHECKING:
    from wonderland.platform import Platform

__all__ = ["install", "install_admission"]


def install_admission(into: Admission, settings: Settings) -> None:
    """Register the TrainJob, runtime and OptimizationJob defaults and checks."""
    admission.install(into)
    optimization_admission.install(into)


def install(platform: Platform) -> None:
    """Add the TrainJob controller, its admission checks and status endpoint."""
    install_admission(platform.admission, platform.settings)
    kubelet = platform.require(Kubelet)
    kubelet.resolver.add_provider(TrainingImageProvider(home=platform.settings.home))
    tokens = platform.require(TokenIssuer)  # type: ignore[type-abstract]
    endpoint = platform.get(ControlEndpoint)
    status_env = StatusEnvironment(endpoint) if endpoint is not None else None
    actions = platform.get(ActionRegistry)
    if actions is None:
        actions = ActionRegistry()
        platform.provide(ActionRegistry, actions)
    actions.add(TRAINJOBS, "status", TrainerStatusEndpoint(platform.store, tokens))
    tracking = platform.get(TrackingAccess)  # type: ignore[type-abstract]
    platform.controllers.register(
        TrainJobReconciler(platform.store, events.record, status_env, tracking=tracking),
        workers=2,
    )
    catalog.ensure_defaults(platform.store)
    hub = platform.get(MetricsHub)
    if hub is not None:  # progress, remaining time and metrics the training code reports
        hub.registry.register(TrainJobCollector(platform.store))  # type: ignore[arg-type]
