"""The developer console: one web page for what the platform runs (docs/console.md).

``install(platform)`` adds the :class:`~wonderland.console.server.ConsoleServer` as a
service. It listens on loopback only (``WONDERLAND_CONSOLE_PORT``, 0 picks a free port)
and, when the platform has a gateway, the gateway routes ``console.<domain>`` to it, as it
does ``mlflow.<domain>`` for the tracking UI. The URL users open is published as
``info["console"]`` (daemon.json, the ``wonderland up`` banner, ``wonderland console``).
Sign-in takes the platform's API token, the one in the kubeconfig.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wonderland.autoscaler.exporter import ScalerSource
from wonderland.console.app_pages import AppPages
from wonderland.console.examples import EXAMPLES_DIR, FileExamples
from wonderland.console.mlops_pages import MlopsPages
from wonderland.console.model_pages import ModelPages
from wonderland.console.registry_views import TrackingRegistry
from wonderland.console.security import ConsoleSessions
from wonderland.console.server import ConsoleServer, ConsoleStatus
from wonderland.console.sources import GatewayModelClient, HistorySource, HubSources, NoSources
from wonderland.console.trace_pages import TracePages
from wonderland.console.tuning_views import ObservationReader
from wonderland.console.views import HubMetrics, MetricsSource, TopRow
from wonderland.control.sources import PodLogSource, ResourceMetricsSource
from wonderland.gateway import HostRoute, RevisionTarget, RoutingTable
from wonderland.kubeconfig import ensure_token
from wonderland.monitoring.history import HistoryStore
from wonderland.monitoring.hub import MetricsHub
from wonderland.tracing.store import TraceStore
from wonderland.tracking.access import TrackingAccess
from wonderland.tuning.observations import ObservationLogStore

if TYPE_CHECKING:
    from wonderland.platform import Platform

__all__ = [
    "HOST_PREFIX",
    "INFO_KEY",
    "ROUTE_KEY",
    "ConsoleServer",
    "ConsoleSessions",
    "console_host",
    "install",
]

INFO_KEY = "console"
HOST_PREFIX = "console"
ROUTE_KEY = "wonderland-system/console"


def console_host(domain: str) -> str:
    """The console's host name under the gateway's domain."""
    return f"{HOST_PREFIX}.{domain}"


class _NoMetrics:
    """A :class:`MetricsSource` for a platform without the monitoring plugin."""

    async def top(self, kind: str) -> dict[tuple[str, str], TopRow]:
        return {}


class _ConsoleService:
    """Routes the console's host name through the gateway, starts the server, publishes."""

    def __init__(self, platform: Platform, server: ConsoleServer) -> None:
        self.platform = platform
        self.server = server

    async def start(self) -> None:
        table = self.platform.get(RoutingTable)
        gateway = self.platform.info.get("gateway")
        host = console_host(self.platform.settings.domain)
        if table is not None and isinstance(gateway, str):
            self.server.allow_gateway(host, int(gateway.rsplit(":", 1)[1]))
        await self.server.start()
        status = self.server.status
        if table is not None and status.state == "running" and self.server.gateway_url:
            target = RevisionTarget("wonderland-system", HOST_PREFIX)
            target.set_endpoints([(self.server.host, self.server.port, HOST_PREFIX)])
            table.set_route(ROUTE_KEY, {host: HostRoute(ROUTE_KEY, [(target, 100)])})
        self.platform.publish(INFO_KEY, status.as_info())

    async def stop(self) -> None:
        table = self.platform.get(RoutingTable)
        if table is not None:
            table.remove_route(ROUTE_KEY)
        await self.server.stop()


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _observation_reader(platform: Platform) -> ObservationReader | None:
    store = platform.get(ObservationLogStore)  # type: ignore[type-abstract]
    if store is None:
        return None
    return lambda trial: store.get(trial)


def install(platform: Platform) -> None:
    """Add the console (see the module docstring)."""
    hub = platform.get(MetricsHub)
    metrics: MetricsSource = HubMetrics(hub) if hub is not None else _NoMetrics()
    state_dir = platform.state_dir
    mlops = MlopsPages(
        platform.store,
        logs=platform.get(PodLogSource),  # type: ignore[type-abstract]
        registry=TrackingRegistry(platform.get(TrackingAccess)),  # type: ignore[type-abstract]
        observations=_observation_reader(platform),
    )
    server = ConsoleServer(
        platform.store,
        lambda: ensure_token(state_dir),
        metrics,
        port=platform.settings.console_port,
        poll_seconds=platform.settings.metrics_scrape_seconds,
        mlops=mlops,
        resources=platform.get(ResourceMetricsSource),  # type: ignore[type-abstract]
    )
    sources: HistorySource = (
        HubSources(hub, platform.get(HistoryStore)) if hub is not None else NoSources()
    )
    step = platform.settings.metrics_scrape_seconds
    gateway = platform.info
    client = GatewayModelClient(lambda: _str_or_none(gateway.get("gateway")))
    AppPages(
        server,
        sources,
        scaler=platform.get(ScalerSource),  # type: ignore[type-abstract]
        table=platform.get(RoutingTable),
        logs=platform.get(PodLogSource),  # type: ignore[type-abstract]
        client=client,
        history_step=step,
    ).install()
    examples = FileExamples(state_dir / EXAMPLES_DIR)  # the try-it box's saved requests
    ModelPages(server, sources, client, examples=examples, history_step=step).install()
    recording = platform.settings.tracing == "on"
    traces = platform.get(TraceStore)
    server.add_pages(TracePages(traces, step, recording=recording, objects=platform.store))
    platform.add_service(_ConsoleService(platform, server))
    platform.provide(ConsoleSessions, server)  # type: ignore[type-abstract]
    platform.publish(INFO_KEY, ConsoleStatus("", "", "stopped").as_info())
