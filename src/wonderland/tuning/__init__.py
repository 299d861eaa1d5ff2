"""Hyperparameter tuning as Katib runs it: Experiment, Trial and Suggestion
(``kubeflow.org/v1beta1``), with suggestions from Optuna driven ask/tell inside the platform.

``install(platform)`` registers Katib's defaults and validation (:mod:`.admission`), the
Experiment, Suggestion and Trial controllers, the controller of Trainer's OptimizationJob
(:mod:`.optimizationjobs`, alpha; its API and admission come with the training plugin),
the log alias that answers for the StdOut collector's sidecar (:mod:`.collector_logs`),
the observation log (:class:`~wonderland.tuning.observations.ObservationLogStore`, kept in
``<state_dir>/katib-observations.db``), which it provides to later plugins, and Katib's DB
manager for the ``Push`` collector (:mod:`.push`) over that log, whose trial injection the
Trial controller applies to Push trials' runs; with a
:class:`~wonderland.tracking.access.TrackingAccess` provided, trials get MLflow runs; with
the monitoring plugin's MetricsHub, Katib's controller metrics (:mod:`.metrics`). It
needs the workloads plugin (the kubelet) installed first. Optuna comes with the
``tuning`` extra; without it the platform runs and Experiments are refused with a message
naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wonderland.api.admission import Admission
from wonderland.controllers import events
from wonderland.monitoring.hub import MetricsHub
from wonderland.runtime.kubelet import Kubelet
from wonderland.settings import Settings
from wonderland.tracking.access import TrackingAccess
from wonderland.tuning import admission
from wonderland.tuning.collector_logs import StdOutCollectorLogs
from wonderland.tuning.collectors import PodFiles
from wonderland.tuning.experiments import ExperimentReconciler
from wonderland.tuning.metrics import KatibMetrics
from wonderland.tuning.observation_store import SqliteObservationLogStore
from wonderland.tuning.observations import ObservationLogStore
from wonderland.tuning.optimizationjobs import OptimizationJobReconciler
from wonderland.tuning.push import install_push_collector
from wonderland.tuning.suggestions import SuggestionReconciler
from wonderland.tuning.trials import TrialReconciler

if TYPE_CHECKING:
    from wonderland.platform import Platform

__all__ = ["OBSERVATIONS_FILE", "install", "install_admission"]

OBSERVATIONS_FILE = "katib-observations.db"


def install_admission(into: Admission, settings: Settings) -> None:
    """Register the Experiment defaults and checks."""
    admission.install(into)


def install(platform: Platform) -> None:
    """Add the Katib controllers, their admission checks and the observation log."""
    install_admission(platform.admission, platform.settings)
    kubelet = platform.require(Kubelet)
    store = platform.store

    def trial_exists(name: str) -> bool:
        items, _ = store.list(admission.TRIALS)
        return any(t["metadata"]["name"] == name for t in items)

    observations = SqliteObservationLogStore(platform.state_dir / OBSERVATIONS_FILE, trial_exists)
    platform.provide(ObservationLogStore, observations)  # type: ignore[type-abstract]
    # The server takes the SQLite store whole: it is an ObservationLogDeleter too, so
    # DeleteObservationLog works.
    db_manager = install_push_collector(platform, observations)
    tracking = platform.get(TrackingAccess)  # type: ignore[type-abstract]
    platform.controllers.register(
        ExperimentReconciler(store, events.record, tracking=tracking), workers=2
    )
    platform.controllers.register(SuggestionReconciler(store, observations), workers=2)
    platform.controllers.register(
        TrialReconciler(
            store,
            events.record,
            observations,
            PodFiles(kubelet),
            observations.delete,
            push=db_manager,
            tracking=tracking,
        ),
        workers=4,
    )
    platform.controllers.register(OptimizationJobReconciler(store, events.record), workers=2)
    hub = platform.get(MetricsHub)
    if hub is not None:  # Katib's controller metrics and the trials' latest observations
        platform.add_service(KatibMetrics(store, hub.registry))
    # the StdOut collector's sidecar log, which the Kubeflow SDK reads, is the primary's here
    kubelet.add_log_alias(StdOutCollectorLogs(store))
