"""The protocol-agnostic sidecar core: building blocks over the configured components.

The HTTP and gRPC adapters parse requests, call a method here and map
:class:`~wonderland.dapr.errors.APIError` to their wire format. Nothing here knows
about a web framework or protobuf.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wonderland import __version__
from wonderland.dapr.building_blocks.configuration import (
    ConfigSink,
    ConfigSubscription,
    ConfigurationBlock,
)
from wonderland.dapr.building_blocks.pubsub import PubSubBlock
from wonderland.dapr.building_blocks.secrets import SecretsBlock
from wonderland.dapr.building_blocks.state import (
    StateBlock,
    StateEntry,
    StateWrite,
    malformed,
    state_not_found,
)
from wonderland.dapr.components import create_component
from wonderland.dapr.components.base import (
    Component,
    ComponentContext,
    ConfigurationStoreComponent,
    PubSubComponent,
    SecretNotFoundError,
    SecretStoreComponent,
    StateStoreComponent,
)
from wonderland.dapr.errors import (
    ComponentConfigError,
    ResourceError,
)
from wonderland.dapr.metrics import SidecarMetrics, metrics_settings
from wonderland.dapr.resiliency import ResiliencyEngine
from wonderland.dapr.resources import ComponentResource, ResourceSet, expand_template

__all__ = [
    "ConfigSink",
    "DaprRuntime",
    "RuntimeOptions",
    "StateWrite",
    "default_state_dir",
    "malformed",
    "state_not_found",
]

log = logging.getLogger("wonderland.dapr")


def default_state_dir() -> Path:
    """``$WONDERLAND_HOME/dapr`` (default ``~/.wonderland/dapr``)."""
    return Path(os.environ.get("WONDERLAND_HOME", "~/.wonderland")).expanduser() / "dapr"


@dataclass(slots=True)
class RuntimeOptions:
    """Everything the sidecar is started with (``dapr run``'s flags)."""

    app_id: str
    app_port: int | None = None
    app_protocol: str = "http"
    app_channel_address: str = "127.0.0.1"
    http_port: int = 3500
    grpc_port: int = 50001
    namespace: str = ""
    api_token: str = ""
    app_api_token: str = ""
    state_dir: Path = field(default_factory=default_state_dir)
    resources: ResourceSet = field(default_factory=ResourceSet)
    max_body_bytes: int = 4 * 1024 * 1024
    #: Requests the sidecar sends the app at once (``--app-max-concurrency``); 0: no limit.
    app_max_concurrency: int = 0
    #: Log every call of the HTTP API at info level (``--enable-api-logging``).
    api_logging: bool = False
    #: App health checks (``--enable-app-health-check``), with daprd's defaults.
    app_health_check: bool = False
    app_health_path: str = "/healthz"
    app_health_interval: float = 5.0
    app_health_timeout: float = 0.5
    app_health_threshold: int = 3
    #: Folder where sidecars register for service invocation (default ``<state_dir>/apps``).
    name_resolution_dir: Path | None = None
    #: Metrics endpoint (``--metrics-port``, ``--enable-metrics``); 0 picks a free port and
    #: None means daprd's 9090, or a free port when 9090 is taken (the daemon's
    #: monitoring endpoint uses it too).
    metrics_port: int | None = None
    enable_metrics: bool = True


class DaprRuntime(StateBlock, PubSubBlock, SecretsBlock, ConfigurationBlock):
    """State, pub/sub, secrets, configuration and metadata for one app id."""

    def __init__(self, options: RuntimeOptions) -> None:
        self.opts = options
        self.app_id = options.app_id
        self.state: dict[str, StateEntry] = {}
        self.pubsubs: dict[str, PubSubComponent] = {}
        self.secret_stores: dict[str, SecretStoreComponent] = {}
        self.config_stores: dict[str, ConfigurationStoreComponent] = {}
        self.resources: dict[str, ComponentResource] = {}
        cfg = options.resources.configuration
        self.metrics = SidecarMetrics(
            options.app_id,
            options.namespace,
            metrics_settings(
                cfg.spec if cfg is not None else None,
                f"{cfg.source}: Configuration {cfg.name!r}" if cfg is not None else "",
                options.enable_metrics,
            ),
        )
        resiliencies = options.resources.resiliencies
        self.resiliency = ResiliencyEngine(
            [r.spec for r in resiliencies],
            [r.name for r in resiliencies],
            self.metrics if self.metrics.enabled else None,
        )
        for r in resiliencies:
            self.metrics.resiliency_loaded(r.name)
        self.extended: dict[str, str] = {}
        self.ready = False
        self._config_subs: dict[str, ConfigSubscription] = {}
        self._ids = itertools.count(1)
        self.subscriptions: Any = None  # set by the sidecar: SubscriptionManager
        self.shutdown_requested = asyncio.Event()
        self._secret_scopes: dict[str, dict[str, Any]] = {}
        if cfg is not None:
            for scope in (cfg.spec.get("secrets") or {}).get("scopes") or []:
                self._secret_scopes[str(scope.get("storeName"))] = scope
            ignored = sorted(set(cfg.spec) - {"secrets", "features", "metrics", "tracing"})
            if ignored:
                log.warning(
                    "%s: Configuration %r: spec.%s not enforced by this sidecar (only secrets.scopes, metrics and tracing are)",
                    cfg.source,
                    cfg.name,
                    ", spec.".join(ignored),
                )

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Create and initialise components: secret stores first, for ``secretKeyRef``."""
        ctx = ComponentContext(self.app_id, self.opts.namespace, str(self.opts.state_dir))
        comps = sorted(
            self.opts.resources.components,
            key=lambda c: 0 if c.building_block == "secretstores" else 1,
        )
        for res in comps:
            try:
                metadata = await self._resolve_metadata(res)
                comp = create_component(res.name, res.type, res.version, metadata, ctx)
                await asyncio.wait_for(comp.init(), max(res.init_timeout, 5.0) * 6)
            except (ComponentConfigError, ResourceError) as exc:
                self.metrics.component_init_failed(res.type, res.name, "init")
                if res.ignore_errors:
                    log.warning("component %s skipped (ignoreErrors): %s", res.name, exc)
                    continue
                raise ComponentConfigError(f"{res.source}: {exc}") from None
            except Exception as exc:
                self.metrics.component_init_failed(res.type, res.name, "init")
                if res.ignore_errors:
                    log.warning("component %s skipped (ignoreErrors): %s", res.name, exc)
                    continue
                raise ComponentConfigError(
                    f"{res.source}: component {res.name!r} ({res.type}) failed to initialise: "
                    f"{type(exc).__name__}: {exc}. Check that its backend is running and the metadata is right."
                ) from None
            self._register(res, comp)
            self.metrics.component_loaded(res.type)
            log.info("component loaded: %s (%s/%s)", res.name, res.type, res.version)
        self.ready = True

    def _register(self, res: ComponentResource, comp: Component) -> None:
        self.resources[res.name] = res
        if isinstance(comp, StateStoreComponent):
            mode = comp.meta.get("keyPrefix", "appid")
            self.state[res.name] = StateEntry(comp, mode)
        elif isinstance(comp, PubSubComponent):
            self.pubsubs[res.name] = comp
        elif isinstance(comp, SecretStoreComponent):
            self.secret_stores[res.name] = comp
        elif isinstance(comp, ConfigurationStoreComponent):
            self.config_stores[res.name] = comp

    async def _resolve_metadata(self, res: ComponentResource) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in res.metadata:
            if item.secret_name is not None:
                store_name = res.secret_store or "kubernetes"
                store = self.secret_stores.get(store_name)
                if store is None:
                    raise ResourceError(
                        f"component {res.name!r}: metadata {item.name!r} uses secretKeyRef but secret "
                        f"store {store_name!r} is not loaded; set auth.secretStore to a loaded secret store"
                    )
                try:
                    secret = await store.get(item.secret_name, {})
                except SecretNotFoundError:
                    raise ResourceError(
                        f"component {res.name!r}: metadata {item.name!r}: secret {item.secret_name!r} "
                        f"not found in secret store {store_name!r}"
                    ) from None
                key = item.secret_key or item.secret_name
                if key not in secret:
                    raise ResourceError(
                        f"component {res.name!r}: metadata {item.name!r}: secret {item.secret_name!r} "
                        f"has no key {key!r}"
                    )
                out[item.name] = secret[key]
            elif item.env_ref is not None:
                out[item.name] = os.environ.get(item.env_ref, "")
            else:
                out[item.name] = expand_template(item.value or "", self.app_id, self.opts.namespace)
        return out

    async def close(self) -> None:
        for sub in list(self._config_subs.values()):
            with contextlib.suppress(Exception):
                await sub.closer()
        self._config_subs.clear()
        comps: list[Component] = [e.component for e in self.state.values()]
        comps += list(self.pubsubs.values()) + list(self.config_stores.values())
        comps += list(self.secret_stores.values())
        for comp in comps:
            try:
                await comp.close()
            except Exception as exc:
                log.warning("closing component %s: %s", comp.name, exc)

    # -- metadata --------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        comps = []
        for name, res in self.resources.items():
            comp: Component | None = (
                self.state[name].component
                if name in self.state
                else self.pubsubs.get(name)
                or self.secret_stores.get(name)
                or self.config_stores.get(name)
            )
            caps = list(comp.CAPABILITIES) if comp is not None else []
            comps.append(
                {"name": name, "type": res.type, "version": res.version, "capabilities": caps}
            )
        subs = self.subscriptions.describe() if self.subscriptions is not None else []
        out: dict[str, Any] = {
            "id": self.app_id,
            "runtimeVersion": f"wonderland-{__version__}",
            "enabledFeatures": [],
            "actors": [],
            "components": comps,
            "extended": dict(self.extended),
            "subscriptions": subs,
            "httpEndpoints": [],
            "appConnectionProperties": {
                "channelAddress": self.opts.app_channel_address,
                "protocol": self.opts.app_protocol,
            },
        }
        if self.opts.app_port:
            out["appConnectionProperties"]["port"] = self.opts.app_port
        if self.opts.app_health_check:
            out["appConnectionProperties"]["health"] = {
                "healthCheckPath": self.opts.app_health_path,
                "healthProbeInterval": f"{self.opts.app_health_interval:g}s",
                "healthProbeTimeout": f"{self.opts.app_health_timeout * 1000:g}ms",
                "healthThreshold": self.opts.app_health_threshold,
            }
        if self.opts.resources.resiliencies:
            out["resiliencies"] = [{"name": r.name} for r in self.opts.resources.resiliencies]
        return out
