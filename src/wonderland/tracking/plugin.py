"""The tracking plugin: MLflow's tracking server as a platform component.

``install(platform)`` provides :class:`~wonderland.tracking.access.TrackingAccess` to later
plugins (the kubelet gives every container ``MLFLOW_TRACKING_URI`` through it), adds the
:class:`~wonderland.tracking.server.TrackingServer` as a service, publishes its URL and
state as ``info["mlflow"]`` (daemon.json, the banner, ``wonderland get cs``) and,
once the front listens, routes ``mlflow.<domain>`` and ``mlflow.kubeflow.svc.cluster.local``
through the gateway to it. With ``WONDERLAND_MLFLOW_TRACKING_URI`` set it provides that
server instead and runs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wonderland.gateway import HostRoute, RevisionTarget, RoutingTable
from wonderland.tracking.access import ExternalTracking, TrackingAccess
from wonderland.tracking.server import (
    PLATFORM_NAMESPACE,
    TrackingServer,
    TrackingStatus,
    redact_uri,
    service_hosts,
)

if TYPE_CHECKING:
    from wonderland.platform import Platform

__all__ = ["INFO_KEY", "ROUTE_KEY", "install"]

INFO_KEY = "mlflow"
ROUTE_KEY = f"{PLATFORM_NAMESPACE}/mlflow"


def install(platform: Platform) -> None:
    """Provide tracking to the platform (see the module docstring)."""
    settings = platform.settings
    if settings.mlflow_tracking_uri:
        external = ExternalTracking(settings.mlflow_tracking_uri)
        platform.provide(TrackingAccess, external)  # type: ignore[type-abstract]
        status = TrackingStatus(url=redact_uri(external.client_uri), state="external")
        platform.publish(INFO_KEY, status.as_info())
        return

    server = TrackingServer(settings)

    def publish(status: TrackingStatus) -> None:
        platform.publish(INFO_KEY, status.as_info())

    def route(port: int) -> None:
        table = platform.get(RoutingTable)
        gateway = platform.info.get("gateway")
        if table is None or not isinstance(gateway, str):
            return  # no serving plugin: no gateway to route through
        route_through_gateway(table, server.client_uri, port, settings.domain)
        server.gateway_url = (
            f"http://{service_hosts(settings.domain)[0]}:{gateway.rsplit(':', 1)[1]}"
        )

    server.on_status = publish
    server.on_listening = route
    platform.provide(TrackingAccess, server)  # type: ignore[type-abstract]
    platform.add_service(server)
    publish(server.status())


def route_through_gateway(table: RoutingTable, client_uri: str, port: int, domain: str) -> None:
    """Route the tracking server's host names to its front (``client_uri``'s host, ``port``),
    as a revision whose one endpoint is the front: the gateway's request wakes MLflow."""
    host = client_uri.split("://", 1)[1].rsplit(":", 1)[0].strip("[]")
    target = RevisionTarget(PLATFORM_NAMESPACE, "mlflow")
    target.set_endpoints([(host, port, "mlflow")])
    route = HostRoute(ROUTE_KEY, [(target, 100)])
    table.set_route(ROUTE_KEY, dict.fromkeys(service_hosts(domain), route))
