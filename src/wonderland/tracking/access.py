"""The seam between the tracking server and the rest of the platform.

The tracking plugin provides a :class:`TrackingAccess` (``platform.get(TrackingAccess)``);
controllers that make runs (TrainJob, Job, Trial), the kubelet that injects
``MLFLOW_TRACKING_URI`` and the InferenceService controller that resolves ``models:/``
URIs use it and nothing else of the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

__all__ = [
    "OPT_OUT_ANNOTATION",
    "TRACKING_URI_ENV",
    "ExternalTracking",
    "TrackingAccess",
    "TrackingPodEnv",
    "opted_out",
]

# ``tracking.wonderland.dev/mlflow: "off"`` on a Pod (or its template): no MLFLOW_TRACKING_URI
OPT_OUT_ANNOTATION = "tracking.wonderland.dev/mlflow"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


def opted_out(annotations: Mapping[str, str] | None) -> bool:
    """Whether ``tracking.wonderland.dev/mlflow: "off"`` is among ``annotations``."""
    value = (annotations or {}).get(OPT_OUT_ANNOTATION)
    return value is not None and str(value).strip().lower() == "off"


@runtime_checkable
class TrackingAccess(Protocol):
    @property
    def enabled(self) -> bool:
        """Whether there is a tracking server to use (the extra is installed and not turned
        off, or an external one is configured)."""
        ...

    @property
    def client_uri(self) -> str:
        """What MLflow clients on this machine use as ``MLFLOW_TRACKING_URI``
        (``http://127.0.0.1:5000``): the platform's front door, which wakes the server."""
        ...

    async def wake(self) -> str:
        """The base URL to call the running server at, starting it first if it is stopped
        (its clients wait, they do not fail); :class:`TrackingUnavailable` when it cannot
        run. Each call counts as activity for the idle timer."""
        ...

    def running_uri(self) -> str | None:
        """The base URL of the server if it runs now, else None; for background checks
        (alias lookups) that must neither start it nor keep it up."""
        ...


class ExternalTracking:
    """An MLflow server the platform does not run (``WONDERLAND_MLFLOW_TRACKING_URI``, or
    a server a test started): always up as far as the platform knows."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")

    @property
    def enabled(self) -> bool:
        return True

    @property
    def client_uri(self) -> str:
        return self.uri

    async def wake(self) -> str:
        return self.uri

    def running_uri(self) -> str | None:
        return self.uri


class TrackingPodEnv:
    """``MLFLOW_TRACKING_URI`` for every container of a pod (the kubelet's
    ``PodEnvSource``): the front on this machine, which wakes the server; nothing when
    tracking is not enabled or the pod is annotated ``tracking.wonderland.dev/mlflow:
    "off"``. A container's own ``env`` still wins."""

    def __init__(self, access: TrackingAccess) -> None:
        self.access = access

    def __call__(self, annotations: Mapping[str, str]) -> Mapping[str, str]:
        if opted_out(annotations) or not self.access.enabled:
            return {}
        return {TRACKING_URI_ENV: self.access.client_uri}
