"""The model-monitoring plugin: the payload sink and the drift detector's image.

Installed after serving and KServe (it needs the kubelet and the gateway's routing table):
the sink's routes go on the :class:`~wonderland.monitoring.hub.MetricsHub`, its store under
``<state_dir>/monitoring/payloads.db`` with the ``WONDERLAND_PAYLOAD_*`` limits, and once
the monitoring endpoint listens the gateway routes
``payload-logger.wonderland-system.svc.cluster.local`` to it, so an InferenceService's
``logger.url`` can name it. The image ``wonderland/drift-detector`` maps to
``python -m wonderland.monitoring.drift``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from wonderland.gateway import HostRoute, RevisionTarget, RoutingTable
from wonderland.monitoring.drift.image import DriftDetectorImageProvider
from wonderland.monitoring.hub import MetricsHub
from wonderland.monitoring.payloads import PayloadLimits, PayloadStore
from wonderland.monitoring.plugin import INFO_KEY
from wonderland.monitoring.sink import PLATFORM_NAMESPACE, SERVICE_NAME, PayloadSink, sink_hosts
from wonderland.runtime.kubelet import Kubelet

if TYPE_CHECKING:
    from wonderland.platform import Platform

__all__ = ["ROUTE_KEY", "install"]

ROUTE_KEY = f"{PLATFORM_NAMESPACE}/{SERVICE_NAME}"


class _SinkService:
    """Routes the sink's host names through the gateway once the endpoint listens."""

    def __init__(self, platform: Platform, store: PayloadStore) -> None:
        self.platform = platform
        self.store = store

    async def start(self) -> None:
        table = self.platform.get(RoutingTable)
        info = self.platform.info.get(INFO_KEY) or {}
        if table is None or info.get("state") != "running":
            return  # no gateway, or no endpoint to route to (its state says why)
        parts = urlsplit(str(info["url"]))
        target = RevisionTarget(PLATFORM_NAMESPACE, SERVICE_NAME)
        target.set_endpoints([(parts.hostname or "127.0.0.1", int(parts.port or 0), SERVICE_NAME)])
        route = HostRoute(ROUTE_KEY, [(target, 100)])
        table.set_route(ROUTE_KEY, dict.fromkeys(sink_hosts(), route))

    async def stop(self) -> None:
        table = self.platform.get(RoutingTable)
        if table is not None:
            table.remove_route(ROUTE_KEY)
        self.store.close()


def install(platform: Platform) -> None:
    """Add the payload sink and the drift detector's image (see the module docstring)."""
    hub = platform.require(MetricsHub)
    settings = platform.settings
    limits = PayloadLimits(
        settings.payload_records, settings.payload_max_bytes, settings.payload_max_total_bytes
    )
    store = PayloadStore(platform.state_dir / "monitoring" / "payloads.db", limits)
    PayloadSink(store, hub.registry).install(hub)
    platform.add_service(_SinkService(platform, store))
    kubelet = platform.get(Kubelet)
    if kubelet is not None:
        kubelet.resolver.add_provider(DriftDetectorImageProvider(home=settings.home))
