"""Monitoring: the daemon's metrics endpoint, scrape targets, history, traces and drift.

``install(platform)`` (first in ``PLUGINS``) provides a :class:`~wonderland.monitoring.hub.MetricsHub`
to later plugins: the in-daemon parts (gateway, autoscaler, controllers) register their
Prometheus collectors on ``hub.registry`` and add HTTP routes to the monitoring endpoint
(``bind:metrics_port``, 9090 by default) with ``hub.add_route``. ``targets.py`` says where a
Pod's own ``/metrics`` is, for the federating endpoint and for a real Prometheus's file
service discovery. Facts: ``docs/monitoring.md``.
"""

from __future__ import annotations

from wonderland.monitoring.plugin import install

__all__ = ["install"]
