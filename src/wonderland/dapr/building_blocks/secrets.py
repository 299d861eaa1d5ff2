"""The secrets building block of :class:`~wonderland.dapr.runtime.DaprRuntime`."""

from __future__ import annotations

import time
from typing import Any

from wonderland.dapr.components.base import SecretNotFoundError, SecretStoreComponent
from wonderland.dapr.errors import APIError
from wonderland.dapr.metrics import SidecarMetrics
from wonderland.dapr.resiliency import ResiliencyEngine
from wonderland.dapr.resources import ComponentResource

__all__ = ["SecretsBlock"]


class SecretsBlock:
    """Secret reads, filtered by the Configuration's ``secrets.scopes``."""

    secret_stores: dict[str, SecretStoreComponent]
    resources: dict[str, ComponentResource]
    resiliency: ResiliencyEngine
    _secret_scopes: dict[str, dict[str, Any]]
    metrics: SidecarMetrics

    def _secret_store(self, name: str) -> SecretStoreComponent:
        store = self.secret_stores.get(name)
        if store is None:
            if not self.secret_stores:
                raise APIError(
                    500,
                    "ERR_SECRET_STORES_NOT_CONFIGURED",
                    "secret store is not configured",
                    grpc_code="FAILED_PRECONDITION",
                )
            raise APIError(
                401,
                "ERR_SECRET_STORE_NOT_FOUND",
                f"failed finding secret store with key {name}",
                grpc_code="INVALID_ARGUMENT",
            )
        return store

    def _secret_allowed(self, store: str, key: str) -> bool:
        scope = self._secret_scopes.get(store)
        if scope is None:
            return True
        if key in (scope.get("deniedSecrets") or []):
            return False
        allowed = scope.get("allowedSecrets") or []
        if allowed:
            return key in allowed
        return str(scope.get("defaultAccess", "allow")) != "deny"

    async def get_secret(self, store: str, key: str, metadata: dict[str, str]) -> dict[str, str]:
        comp = self._secret_store(store)
        if not self._secret_allowed(store, key):
            raise APIError(
                403,
                "ERR_PERMISSION_DENIED",
                f"access denied by policy to get {key!r} from {store!r}",
                grpc_code="PERMISSION_DENIED",
            )
        res = self.resources[store]
        start = time.perf_counter()
        ok = False
        try:
            got = await self.resiliency.component(store, res.type, "outbound").run(
                lambda: comp.get(key, metadata)
            )
            ok = True
            return got
        except SecretNotFoundError:
            raise APIError(
                500,
                "ERR_SECRET_GET",
                f"failed getting secret with key {key} from secret store {store}: secret {key} not found",
                grpc_code="INTERNAL",
            ) from None
        except Exception as exc:
            raise APIError(
                500,
                "ERR_SECRET_GET",
                f"failed getting secret with key {key} from secret store {store}: {exc}",
                grpc_code="INTERNAL",
            ) from None
        finally:
            self.metrics.component_op("secret", store, "get", ok, time.perf_counter() - start)

    async def bulk_secret(self, store: str, metadata: dict[str, str]) -> dict[str, dict[str, str]]:
        comp = self._secret_store(store)
        start = time.perf_counter()
        ok = False
        try:
            got = await comp.bulk_get(metadata)
            ok = True
        except Exception as exc:
            raise APIError(
                500,
                "ERR_SECRET_GET",
                f"failed getting secrets from secret store {store}: {exc}",
                grpc_code="INTERNAL",
            ) from None
        finally:
            self.metrics.component_op("secret", store, "bulk_get", ok, time.perf_counter() - start)
        return {k: v for k, v in got.items() if self._secret_allowed(store, k)}
