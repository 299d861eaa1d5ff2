"""Kubeflow's data-access kinds: PodDefaults and Notebooks (docs/notebooks.md).

``install(platform)`` registers the PodDefault webhook as the pods' mutating admission
step, creates the shipped PodDefaults (``access-mlflow``, ``access-kube-api``) in the
``default`` namespace, adds the notebook images to the kubelet's image resolver, and
registers the notebook controller and, with ``WONDERLAND_ENABLE_CULLING=true``, the culler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wonderland.api.admission import Admission
from wonderland.controllers import events
from wonderland.notebooks import defaults, poddefaults
from wonderland.notebooks.controller import NOTEBOOKS, NotebookReconciler, check_notebook
from wonderland.notebooks.culling import CullingReconciler, HTTPKernels
from wonderland.notebooks.images import NotebookImageProvider
from wonderland.notebooks.routes import NotebookRoutes
from wonderland.runtime.kubelet import Kubelet
from wonderland.settings import Settings
from wonderland.tracking.access import TrackingAccess

if TYPE_CHECKING:
    from wonderland.platform import Platform

__all__ = ["install", "install_admission"]


class _ShippedDefaults:
    """Creates the shipped PodDefaults at install, and brings ``access-mlflow`` up to date
    once the tracking front listens (its port may be picked at start)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def refresh(self) -> None:
        tracking = self.platform.get(TrackingAccess)  # type: ignore[type-abstract]
        uri = tracking.client_uri if tracking is not None and tracking.enabled else None
        defaults.ensure_shipped(self.platform.store, uri)

    async def start(self) -> None:
        self.refresh()

    async def stop(self) -> None:
        return None


def install_admission(into: Admission, settings: Settings) -> None:
    """Register the PodDefault webhook (pods' mutating step) and the Notebook check."""
    poddefaults.install(into)
    into.register(NOTEBOOKS, check_notebook)


def install(platform: Platform) -> None:
    """Add PodDefaults and Notebooks to ``platform`` (see the module docstring)."""
    install_admission(platform.admission, platform.settings)
    shipped = _ShippedDefaults(platform)
    shipped.refresh()
    platform.add_service(shipped)
    kubelet = platform.get(Kubelet)
    if kubelet is not None:
        kubelet.resolver.add_provider(NotebookImageProvider())
    settings = platform.settings
    routes = NotebookRoutes(platform)
    tracking = platform.get(TrackingAccess)  # type: ignore[type-abstract]
    platform.controllers.register(
        NotebookReconciler(
            platform.store, events.record, on_change=routes.update, tracking=tracking
        )
    )
    platform.add_service(routes)
    if settings.enable_culling == "true":
        platform.controllers.register(
            CullingReconciler(
                platform.store,
                HTTPKernels(platform.store),
                settings.cull_idle_time,
                settings.idleness_check_period,
            ),
            workers=1,
        )
