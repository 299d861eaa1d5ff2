"""Workloads as a cluster runs them: Pods on one Node, Jobs, CronJobs, JobSets and storage.

``install(platform)`` registers the admission defaults and checks, the kubelet (the pod
reconciler, which also registers the Node and serves ``pods/log`` and ``metrics.k8s.io``),
the service account token issuer (``platform.require(TokenIssuer)``), the Node, Job,
CronJob, JobSet, PersistentVolumeClaim and PersistentVolume controllers, and the default
StorageClass. Later plugins find the kubelet with ``platform.require(Kubelet)``. When the
tracking plugin provides a ``TrackingAccess``, every container gets ``MLFLOW_TRACKING_URI``
and the Job controller makes and continues MLflow runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wonderland.api.admission import Admission
from wonderland.control.sources import PodLogSource, ResourceMetricsSource
from wonderland.controllers import events
from wonderland.runtime.kubelet import Kubelet, NodeReconciler
from wonderland.runtime.metrics import KubeletAPI
from wonderland.settings import Settings
from wonderland.tokens import ServiceAccountTokenIssuer, TokenIssuer
from wonderland.tracing.runtime import TraceCollector, TracesPodEnv
from wonderland.tracking.access import TrackingAccess, TrackingPodEnv
from wonderland.workloads import admission, jobset_admission, storage
from wonderland.workloads.cronjobs import CronJobReconciler
from wonderland.workloads.jobs import JobReconciler
from wonderland.workloads.jobsets import JobSetReconciler

if TYPE_CHECKING:
    from wonderland.platform import Platform

__all__ = ["install", "install_admission"]


def install_admission(into: Admission, settings: Settings) -> None:
    """Register the pods', Jobs', CronJobs', claims' and JobSets' defaults and checks."""
    admission.install(into)
    jobset_admission.install(into, settings.jobset_features().get("RestartJob", False))


def install(platform: Platform) -> Kubelet:
    """Add the node, its kubelet and the workload controllers to ``platform``."""
    install_admission(platform.admission, platform.settings)
    restart_job = platform.settings.jobset_features().get("RestartJob", False)
    tokens = ServiceAccountTokenIssuer(platform.state_dir)
    platform.provide(TokenIssuer, tokens)  # type: ignore[type-abstract]
    kubelet = Kubelet(
        platform.store, platform.state_dir, platform.settings, events.record, tokens=tokens
    )
    tracking = platform.get(TrackingAccess)  # type: ignore[type-abstract]
    if tracking is not None:
        # every container reaches MLflow's tracking server with no configuration
        kubelet.add_env_source(TrackingPodEnv(tracking))
    collector = platform.get(TraceCollector)  # type: ignore[type-abstract]
    if collector is not None:
        # an OpenTelemetry SDK in any container exports to the daemon's trace store
        kubelet.add_env_source(TracesPodEnv(collector))
    api = KubeletAPI(kubelet)
    platform.provide(Kubelet, kubelet)
    platform.provide(PodLogSource, api)  # type: ignore[type-abstract]
    platform.provide(ResourceMetricsSource, api)  # type: ignore[type-abstract]
    controllers = platform.controllers
    controllers.register(kubelet, workers=8)
    controllers.register(NodeReconciler(kubelet), workers=1)
    controllers.register(storage.ClaimReconciler(platform.store, platform.state_dir, events.record))
    controllers.register(storage.VolumeReconciler(platform.store, platform.state_dir))
    tracking = platform.get(TrackingAccess)  # type: ignore[type-abstract]
    controllers.register(
        JobReconciler(platform.store, platform.settings, events.record, tracking=tracking),
        workers=4,
    )
    controllers.register(CronJobReconciler(platform.store, events.record), workers=2)
    controllers.register(
        JobSetReconciler(platform.store, events.record, restart_job=restart_job), workers=2
    )
    storage.ensure_default_class(platform.store)
    platform.add_service(kubelet)
    return kubelet
