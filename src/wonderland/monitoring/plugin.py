"""The monitoring plugin: the daemon's metrics hub and its HTTP endpoint, the scrape
targets as a Prometheus file service discovery file, the scrape loop that keeps the
metrics history (``/federate``, ``/wonderland/v1/history``, ``top``, ``targets``), and (``WONDERLAND_PROMETHEUS=on``,
``wonderland up --prometheus``) a real Prometheus that scrapes them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wonderland.monitoring.filesd import TARGETS_FILE, FileSDWriter, daemon_targets
from wonderland.monitoring.history import HistoryStore
from wonderland.monitoring.history_api import HistoryApi
from wonderland.monitoring.hub import MetricsHub
from wonderland.monitoring.prometheus import INFO_KEY as PROMETHEUS_INFO_KEY
from wonderland.monitoring.prometheus import PrometheusServer, PrometheusStatus
from wonderland.monitoring.recorder import HISTORY_FILE, MetricsRecorder
from wonderland.monitoring.scrape import MetricsScraper
from wonderland.monitoring.server import MonitoringServer
from wonderland.monitoring.traces import TraceEndpoint, install_routes
from wonderland.tracing.runtime import TraceCollector
from wonderland.tracing.store import TraceStore

if TYPE_CHECKING:
    from wonderland.platform import Platform

__all__ = ["INFO_KEY", "install"]

INFO_KEY = "monitoring"


class _Publishing:
    """Starts the server, then publishes its URL and state."""

    def __init__(self, platform: Platform, server: MonitoringServer, traces: TraceEndpoint) -> None:
        self.platform = platform
        self.server = server
        self.traces = traces

    async def start(self) -> None:
        await self.server.start()
        if self.server.status.state == "running":
            self.traces.base_url = self.server.url
        self.platform.publish(INFO_KEY, self.server.status.as_info())

    async def stop(self) -> None:
        await self.server.stop()


def install(platform: Platform) -> None:
    """Provide the :class:`MetricsHub` and serve it on ``bind:metrics_port`` (with the
    trace endpoints and the :class:`TraceStore` behind them); keep
    ``<home>/monitoring/targets.json`` current; run Prometheus when it is on."""
    hub = MetricsHub()
    platform.provide(MetricsHub, hub)
    settings = platform.settings
    server = MonitoringServer(hub, settings.bind, settings.metrics_port)
    # the last traces: spans from the gateway (in process) and from Pods (OTLP, Zipkin)
    store = TraceStore(settings.traces_max, settings.traces_max_bytes)
    traces = TraceEndpoint(store, settings.tracing)
    install_routes(hub, store)
    platform.provide(TraceStore, store)
    platform.provide(TraceCollector, traces)  # type: ignore[type-abstract]
    platform.add_service(_Publishing(platform, server, traces))
    targets = platform.state_dir / TARGETS_FILE
    # after the endpoint: the daemon's own targets are read from what it published
    writer = FileSDWriter(platform.store, targets, lambda: daemon_targets(platform.info))
    platform.add_service(writer)

    def own_instance() -> str:
        own = daemon_targets(platform.info)
        return next((t.address for t in own if ("component", "daemon") in t.labels), "daemon")

    interval = settings.metrics_scrape_seconds
    scraper = MetricsScraper(
        writer.targets, hub.registry, own_instance, timeout=max(1.0, min(10.0, interval))
    )
    history = HistoryStore(step=interval, max_series=settings.metrics_history_series)
    platform.provide(HistoryStore, history)  # read in process by the console's charts
    recorder = MetricsRecorder(
        scraper, history, platform.state_dir / HISTORY_FILE, interval=interval
    )
    HistoryApi(recorder).install(hub)
    platform.add_service(recorder)
    if settings.prometheus != "on":
        platform.publish(PROMETHEUS_INFO_KEY, PrometheusStatus(url="", state="off").as_info())
        return

    def publish(status: PrometheusStatus) -> None:
        platform.publish(PROMETHEUS_INFO_KEY, status.as_info())

    prometheus = PrometheusServer(settings, targets, on_status=publish)
    platform.add_service(prometheus)
    publish(prometheus.status())
