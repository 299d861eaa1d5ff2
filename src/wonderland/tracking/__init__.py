"""MLflow tracking and the model registry on the platform.

``access.py`` the seam other areas use (:class:`TrackingAccess`), ``client.py`` a small
REST client of MLflow's API, ``uris.py`` ``models:/``/``runs:/``/``mlflow-artifacts:`` URIs,
``resolve.py`` from such a URI to files through the registry, ``server.py`` and
``mlflow_process.py`` the lean tracking server process, ``front.py`` its front (the relay), ``plugin.py`` the
platform plugin (``install(platform)``, first in ``PLUGINS``), ``runs.py`` the runs made
for TrainJobs, Jobs and Katib trials, ``code.py`` the digest and git commit of their code,
``registry.py`` promotion by alias and lineage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wonderland.platform import Platform

__all__ = ["install"]


def install(platform: Platform) -> None:
    """Add the tracking server (:func:`wonderland.tracking.plugin.install`); imported here
    on call so that ``wonderland.tracking.client`` users do not load the gateway."""
    from wonderland.tracking.plugin import install as install_tracking

    install_tracking(platform)
