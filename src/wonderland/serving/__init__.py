"""Knative Serving on one machine: Service, Configuration, Revision and Route.

``install(platform)`` registers the admission checks and reconcilers and adds the
serving system (gateway, replica supervisor, autoscaler) as a platform service. It
provides the gateway's :class:`~wonderland.gateway.RoutingTable`, where platform components
(the tracking server) route their host names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wonderland.api.admission import Admission
from wonderland.errors import NotFoundError
from wonderland.serving import validation
from wonderland.settings import Settings

if TYPE_CHECKING:
    from wonderland.platform import Platform
    from wonderland.serving.system import ServingSystem

__all__ = ["install", "install_admission"]


def install_admission(into: Admission, settings: Settings) -> None:
    """Register the Service, Configuration, Route and Revision checks."""
    validation.register_checks(into)


def install(platform: Platform) -> ServingSystem:
    """Add Knative Serving to ``platform``; returns the serving system (gateway etc.)."""
    from wonderland.autoscaler.exporter import ScalerSource
    from wonderland.gateway import RoutingTable
    from wonderland.serving.reconcilers import (
        ConfigMapReconciler,
        ConfigurationReconciler,
        RevisionReconciler,
        RouteReconciler,
        ServiceReconciler,
    )
    from wonderland.serving.system import REVISIONS, ServingSystem

    system = ServingSystem(platform)
    store = platform.store

    def revision_exists(namespace: str, name: str) -> bool:
        try:
            store.get(REVISIONS, namespace, name)
        except NotFoundError:
            return False
        except Exception:  # the store of a platform that has stopped: no opinion
            return True
        return True

    checks = validation.ServingChecks(
        revision_exists,
        limits=lambda: (
            system.config.max_revision_timeout_seconds,
            system.config.container_concurrency_max_limit,
            system.config.autoscaler,
        ),
        features=lambda: system.config.features,
    )
    validation.register_checks(platform.admission, checks)
    for reconciler in (
        ConfigMapReconciler(system),
        ServiceReconciler(system),
        ConfigurationReconciler(system),
        RevisionReconciler(system),
        RouteReconciler(system),
    ):
        platform.controllers.register(reconciler)
    platform.add_service(system)
    # platform components with a host name (mlflow.<domain>) add their routes to it
    platform.provide(RoutingTable, system.table)
    # the autoscaler's view of each revision (its metrics, the console's autoscaler panel)
    platform.provide(ScalerSource, system)  # type: ignore[type-abstract]
    info = getattr(platform, "info", None)
    if isinstance(info, dict):
        info["gateway"] = system.gateway_url
    return system
