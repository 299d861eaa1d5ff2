"""Kubeflow's data-access kinds: PodDefaults now, Notebooks with their controller.

``install(platform)`` registers the PodDefault webhook as the pods' mutating admission step
and creates the shipped PodDefaults (``access-mlflow``, ``access-kube-api``) in the
``default`` namespace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wonderland.notebooks import defaults, poddefaults
from wonderland.tracking.access import TrackingAccess

if TYPE_CHECKING:
    from wonderland.platform import Platform

__all__ = ["install"]


def install(platform: Platform) -> None:
    """Add the PodDefault webhook and the shipped PodDefaults to ``platform``."""
    poddefaults.install()
    tracking = platform.get(TrackingAccess)  # type: ignore[type-abstract]
    uri = tracking.client_uri if tracking is not None and tracking.enabled else None
    defaults.ensure_shipped(platform.store, uri)
