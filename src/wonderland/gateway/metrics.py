"""Gateway metrics in the Prometheus text format, served at ``/metrics`` on the gateway
for any Host that is not a route (e.g. ``http://127.0.0.1:8080/metrics``).

Knative has no cold-start metric (serving issue #13459); this exports one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from wonderland.gateway.table import RevisionTarget, RoutingTable

__all__ = ["GatewayMetrics"]


class _TableCollector:
    def __init__(self, table: RoutingTable) -> None:
        self.table = table

    def collect(self) -> Iterator[Any]:
        in_flight = GaugeMetricFamily(
            "wonderland_revision_requests_in_flight",
            "Requests at the gateway for a revision, queued ones included",
            labels=["namespace", "revision"],
        )
        ready = GaugeMetricFamily(
            "wonderland_revision_ready_endpoints",
            "Ready replicas the gateway sends a revision's requests to",
            labels=["namespace", "revision"],
        )
        queued = GaugeMetricFamily(
            "wonderland_revision_requests_queued",
            "Requests held by the activator or the containerConcurrency queue",
            labels=["namespace", "revision"],
        )
        for target in list(self.table.revisions.values()):
            labels = [target.namespace, target.name]
            in_flight.add_metric(labels, target.in_flight)
            ready.add_metric(labels, len(target.endpoints))
            queued.add_metric(labels, len(target.waiters))
        yield in_flight
        yield ready
        yield queued


class GatewayMetrics:
    """The gateway's Prometheus registry: cold starts plus per-revision gauges."""

    def __init__(self, table: RoutingTable) -> None:
        self.registry = CollectorRegistry()
        self.cold_start = Histogram(
            "wonderland_revision_cold_start_seconds",
            "Time from the first request held for a revision at zero until a replica was ready",
            ["namespace", "revision"],
            buckets=(0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1, 2, 5, 10, 30),
            registry=self.registry,
        )
        self.registry.register(_TableCollector(table))  # type: ignore[arg-type]

    def observe_cold_start(self, target: RevisionTarget, seconds: float) -> None:
        self.cold_start.labels(target.namespace, target.name).observe(seconds)

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data
