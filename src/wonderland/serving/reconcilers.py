"""Service -> Configuration + Route -> Revisions, reconciled as Knative Serving does.

Each reconciler is level-triggered: it reads the object and its children from the
store, converges them, and writes ``status`` with Knative's conditions and reasons.
"""

from __future__ import annotations

from wonderland.serving.configmaps import ConfigMapReconciler
from wonderland.serving.configuration import ConfigurationReconciler
from wonderland.serving.revision import RevisionReconciler
from wonderland.serving.route import RouteReconciler
from wonderland.serving.service import ServiceReconciler

__all__ = [
    "ConfigMapReconciler",
    "ConfigurationReconciler",
    "RevisionReconciler",
    "RouteReconciler",
    "ServiceReconciler",
]
