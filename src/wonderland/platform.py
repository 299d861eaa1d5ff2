"""The platform seam: what the daemon hands to every subsystem.

The daemon opens the store, creates the controller manager, then imports each module
named in :data:`PLUGINS` and calls its ``install(platform)``. A plugin registers
reconcilers on ``platform.controllers``, admission checks into ``platform.admission``
(the store's own, so a second platform in the same process does not run them), and
long-running services (gateway, runtime) with :meth:`Platform.add_service`.
Services start in order after the controllers and stop in reverse order on shutdown.
A plugin whose kinds have checks also has ``install_admission(admission, settings)``:
:func:`default_admission` collects them for validating manifests with no platform.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from wonderland.api.admission import Admission
from wonderland.api.core_checks import core_admission
from wonderland.controllers import ControllerManager
from wonderland.errors import ConfigError
from wonderland.settings import Settings
from wonderland.store import Store

__all__ = ["PLUGINS", "Platform", "PlatformService", "default_admission"]

log = logging.getLogger("wonderland.platform")

# Modules with an ``install(platform: Platform) -> None`` function, installed in order.
# Monitoring comes first: every later plugin may register metrics on its MetricsHub.
# Tracking next: later plugins (the kubelet's environment) ask for its TrackingAccess.
PLUGINS: tuple[str, ...] = (
    "wonderland.monitoring",
    "wonderland.tracking",
    "wonderland.workloads",
    # the PodDefault webhook (every pod), Notebooks (the kubelet runs their images)
    "wonderland.notebooks",
    "wonderland.training",
    "wonderland.tuning",
    "wonderland.serving",
    "wonderland.dapr.platform",
    "wonderland.kserve",
    # the payload sink and the drift detector's image need the kubelet and the gateway
    "wonderland.monitoring.model_plugin",
    # last: the console shows what every other plugin runs, through the gateway
    "wonderland.console",
)

T = TypeVar("T")


@runtime_checkable
class PlatformService(Protocol):
    """A long-running part of the platform (gateway, process supervisor, ...)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Platform:
    """The store, the controllers, the state directory and the settings, in one place."""

    store: Store
    controllers: ControllerManager
    state_dir: Path
    settings: Settings
    services: list[PlatformService] = field(default_factory=list)
    # Facts services publish for clients, e.g. ``info["gateway"] = "http://127.0.0.1:8080"``;
    # the daemon writes them into ``<state_dir>/daemon.json`` once everything started.
    info: dict[str, Any] = field(default_factory=dict)
    # Called with ``info`` after each ``publish`` once the daemon wrote daemon.json, so a
    # fact that changes while the platform runs (the tracking server's state) stays current.
    on_info: Callable[[dict[str, Any]], None] | None = None
    _started: list[PlatformService] = field(default_factory=list, repr=False)
    _provided: dict[type, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, settings: Settings) -> Platform:
        """A platform on the settings' state directory (opens the store)."""
        state_dir = settings.state_dir
        if not state_dir.exists():
            state_dir.mkdir(parents=True, mode=0o700)
        store = Store.open(state_dir)
        return cls(store, ControllerManager(store), state_dir, settings)

    @property
    def admission(self) -> Admission:
        """The checks, defaults and mutating steps of this platform's store."""
        return self.store.admission

    def add_service(self, service: PlatformService) -> None:
        """Start ``service`` after the controllers; stop it in reverse order."""
        self.services.append(service)

    def publish(self, key: str, value: Any) -> None:
        """Set ``info[key]`` and tell ``on_info`` (the daemon rewrites daemon.json)."""
        self.info[key] = value
        if self.on_info is not None:
            self.on_info(self.info)

    def provide(self, kind: type[T], value: T) -> None:
        """Make ``value`` available to later plugins and to the daemon as ``kind`` (a class
        or Protocol), e.g. the kubelet that serving's replicas run on."""
        self._provided[kind] = value

    def get(self, kind: type[T]) -> T | None:
        """What a plugin provided as ``kind``, or None."""
        value = self._provided.get(kind)
        return value  # type: ignore[no-any-return]

    def require(self, kind: type[T]) -> T:
        """What a plugin provided as ``kind``; ConfigError naming it when none did."""
        value = self.get(kind)
        if value is None:
            raise ConfigError(
                f"no plugin provides {kind.__name__}; install the plugin that does first "
                f"(PLUGINS: {', '.join(PLUGINS)})"
            )
        return value

    def install_plugins(self, modules: tuple[str, ...] | None = None) -> None:
        """Import each plugin module and call its ``install(self)``."""
        for name in PLUGINS if modules is None else modules:
            module = importlib.import_module(name)
            install = getattr(module, "install", None)
            if install is None:
                raise ConfigError(f"plugin module {name} has no install(platform) function")
            install(self)
            log.debug("installed plugin %s", name)

    async def start(self) -> None:
        await self.controllers.start()
        for service in self.services:
            await service.start()
            self._started.append(service)

    async def stop(self) -> None:
        while self._started:
            service = self._started.pop()
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", type(service).__name__)
        await self.controllers.stop()


def default_admission(settings: Settings, modules: tuple[str, ...] | None = None) -> Admission:
    """The admission a platform with ``modules`` (every plugin) has, without a store: the
    core checks and each plugin's ``install_admission``. ``wonderland apply`` checks
    manifests with it before it sends them, so a mistake is reported with its file and
    line. Checks that read other objects need a store and run on the daemon only."""
    admission = core_admission()
    for name in PLUGINS if modules is None else modules:
        install = getattr(importlib.import_module(name), "install_admission", None)
        if install is not None:
            install(admission, settings)
    return admission
