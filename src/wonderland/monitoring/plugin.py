"""The monitoring plugin: the daemon's metrics hub and its HTTP endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wonderland.monitoring.hub import MetricsHub
from wonderland.monitoring.server import MonitoringServer

if TYPE_CHECKING:
    from wonderland.platform import Platform

__all__ = ["INFO_KEY", "install"]

INFO_KEY = "monitoring"


class _Publishing:
    """Starts the server, then publishes its URL and state."""

    def __init__(self, platform: Platform, server: MonitoringServer) -> None:
        self.platform = platform
        self.server = server

    async def start(self) -> None:
        await self.server.start()
        self.platform.publish(INFO_KEY, self.server.status.as_info())

    async def stop(self) -> None:
        await self.server.stop()


def install(platform: Platform) -> None:
    """Provide the :class:`MetricsHub` and serve it on ``bind:metrics_port``."""
    hub = MetricsHub()
    platform.provide(MetricsHub, hub)
    server = MonitoringServer(hub, platform.settings.bind, platform.settings.metrics_port)
    platform.add_service(_Publishing(platform, server))
