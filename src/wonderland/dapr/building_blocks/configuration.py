"""The configuration building block of :class:`~wonderland.dapr.runtime.DaprRuntime`."""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wonderland.dapr.components.base import Closer, ConfigItem, ConfigurationStoreComponent
from wonderland.dapr.errors import APIError
from wonderland.dapr.metrics import SidecarMetrics

__all__ = ["ConfigSink", "ConfigSubscription", "ConfigurationBlock"]


@dataclass(slots=True)
class ConfigSubscription:
    store: str
    keys: list[str]
    closer: Closer


ConfigSink = Callable[[str, dict[str, ConfigItem]], Awaitable[None]]


class ConfigurationBlock:
    """Configuration reads and change subscriptions."""

    config_stores: dict[str, ConfigurationStoreComponent]
    _config_subs: dict[str, ConfigSubscription]
    _ids: itertools.count[int]
    metrics: SidecarMetrics

    def _config_store(self, name: str) -> ConfigurationStoreComponent:
        store = self.config_stores.get(name)
        if store is None:
            if not self.config_stores:
                raise APIError(
                    500,
                    "ERR_CONFIGURATION_STORE_NOT_CONFIGURED",
                    "configuration stores not configured",
                    grpc_code="FAILED_PRECONDITION",
                )
            raise APIError(
                400,
                "ERR_CONFIGURATION_STORE_NOT_FOUND",
                f"failed finding configuration store with key {name}",
                grpc_code="INVALID_ARGUMENT",
            )
        return store

    async def get_configuration(
        self, store: str, keys: list[str], metadata: dict[str, str]
    ) -> dict[str, ConfigItem]:
        comp = self._config_store(store)
        start = time.perf_counter()
        ok = False
        try:
            got = await comp.get(keys, metadata)
            ok = True
            return got
        except Exception as exc:
            raise APIError(
                500,
                "ERR_CONFIGURATION_GET",
                f"failed to get {keys} from Configuration store {store}: {exc}",
                grpc_code="INTERNAL",
            ) from None
        finally:
            self.metrics.component_op(
                "configuration", store, "get", ok, time.perf_counter() - start
            )

    async def subscribe_configuration(
        self, store: str, keys: list[str], metadata: dict[str, str], sink: ConfigSink
    ) -> str:
        comp = self._config_store(store)
        sub_id = f"{store}-{next(self._ids)}-{int(time.time() * 1000)}"

        async def handler(items: dict[str, ConfigItem]) -> None:
            await sink(sub_id, items)

        try:
            closer = await comp.subscribe(keys, metadata, handler)
        except Exception as exc:
            raise APIError(
                500,
                "ERR_CONFIGURATION_SUBSCRIBE",
                f"failed to subscribe {keys} from Configuration store {store}: {exc}",
                grpc_code="INTERNAL",
            ) from None
        self._config_subs[sub_id] = ConfigSubscription(store, keys, closer)
        return sub_id

    async def unsubscribe_configuration(self, store: str, sub_id: str) -> None:
        self._config_store(store)
        sub = self._config_subs.pop(sub_id, None)
        if sub is None:
            raise APIError(
                500,
                "ERR_CONFIGURATION_UNSUBSCRIBE",
                f"failed to unsubscribe subscription {sub_id!r} from Configuration store {store}: "
                "subscription does not exist",
                grpc_code="INTERNAL",
            )
        await sub.closer()
