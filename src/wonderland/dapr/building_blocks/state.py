"""The state building block of :class:`~wonderland.dapr.runtime.DaprRuntime`."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from wonderland.dapr.components.base import (
    DeleteRequest,
    GetResponse,
    SetRequest,
    StateStoreComponent,
)
from wonderland.dapr.errors import APIError, ETagInvalidError, ETagMismatchError
from wonderland.dapr.metrics import SidecarMetrics
from wonderland.dapr.resiliency import ResiliencyEngine
from wonderland.dapr.resources import ComponentResource

if TYPE_CHECKING:
    from wonderland.dapr.runtime import RuntimeOptions

__all__ = [
    "MAX_TRANSACTION_OPS",
    "StateBlock",
    "StateEntry",
    "StateWrite",
    "malformed",
    "state_not_found",
]

MAX_TRANSACTION_OPS = 10_000

T = TypeVar("T")

# daprd's operation tag values (pkg/diagnostics: Get, Set, Delete, BulkGet, StateQuery).
_OPERATIONS = {
    "ERR_STATE_GET": "get",
    "ERR_STATE_SAVE": "set",
    "ERR_STATE_DELETE": "delete",
    "ERR_STATE_BULK_GET": "bulk_get",
    "ERR_STATE_QUERY": "query",
}


@dataclass(slots=True)
class StateWrite:
    """A save request item as both APIs receive it."""

    key: str
    value: bytes
    etag: str | None = None
    concurrency: str = ""
    consistency: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def state_not_found(name: str) -> APIError:
    return APIError(
        400,
        "ERR_STATE_STORE_NOT_FOUND",
        f"state store {name} is not found",
        grpc_code="INVALID_ARGUMENT",
        reason="DAPR_STATE_NOT_FOUND",
    )


def malformed(message: str) -> APIError:
    return APIError(400, "ERR_MALFORMED_REQUEST", message, grpc_code="INVALID_ARGUMENT")


@dataclass(slots=True)
class StateEntry:
    component: StateStoreComponent
    prefix_mode: str


class StateBlock:
    """State operations: keys prefixed per ``keyPrefix``, ETags, TTL, transactions, query."""

    opts: RuntimeOptions
    app_id: str
    state: dict[str, StateEntry]
    resources: dict[str, ComponentResource]
    resiliency: ResiliencyEngine
    metrics: SidecarMetrics

    def _store(self, name: str) -> StateEntry:
        entry = self.state.get(name)
        if entry is None:
            if not self.state:
                raise APIError(
                    500,
                    "ERR_STATE_STORE_NOT_CONFIGURED",
                    "state store is not configured",
                    grpc_code="FAILED_PRECONDITION",
                    reason="DAPR_STATE_NOT_CONFIGURED",
                )
            raise state_not_found(name)
        return entry

    def _key(self, store: str, entry: StateEntry, key: str) -> str:
        if "||" in key:
            raise APIError(
                400,
                "ERR_MALFORMED_REQUEST",
                f"input key/keyPrefix '{key}' can't contain '||'",
                grpc_code="INVALID_ARGUMENT",
                reason="DAPR_STATE_ILLEGAL_KEY",
            )
        mode = entry.prefix_mode
        if mode == "appid":
            return f"{self.app_id}||{key}"
        if mode == "none":
            return key
        if mode == "name":
            return f"{store}||{key}"
        if mode == "namespace":
            ns = self.opts.namespace
            return f"{ns}.{self.app_id}||{key}" if ns else f"{self.app_id}||{key}"
        return f"{mode}||{key}"

    def _unkey(self, key: str) -> str:
        return key.split("||", 1)[1] if "||" in key else key

    @staticmethod
    def _ttl(metadata: dict[str, str]) -> int | None:
        raw = metadata.get("ttlInSeconds")
        if raw is None or raw == "":
            return None
        try:
            ttl = int(raw)
        except ValueError:
            raise APIError(
                400,
                "ERR_MALFORMED_REQUEST",
                f"incorrect value for metadata 'ttlInSeconds': {raw!r} is not an integer",
                grpc_code="INVALID_ARGUMENT",
            ) from None
        return None if ttl < 0 else ttl

    def _set_request(self, store: str, entry: StateEntry, item: StateWrite) -> SetRequest:
        if not item.key:
            raise malformed('"key" is a required field')
        if item.concurrency not in {"", "first-write", "last-write"}:
            raise malformed(
                f"invalid concurrency {item.concurrency!r}; use first-write or last-write"
            )
        if item.consistency not in {"", "eventual", "strong"}:
            raise malformed(f"invalid consistency {item.consistency!r}; use eventual or strong")
        return SetRequest(
            key=self._key(store, entry, item.key),
            value=item.value,
            etag=item.etag or None,
            first_write=item.concurrency == "first-write",
            ttl=self._ttl(item.metadata),
            metadata=item.metadata,
        )

    async def _state_call(
        self, store: str, op: str, fn: Callable[[], Awaitable[T]], code: str
    ) -> T:
        res = self.resources[store]
        policy = self.resiliency.component(store, res.type, "outbound")
        if not self.metrics.enabled:
            return await self._guarded(store, op, policy.run(fn), code)
        start = time.perf_counter()
        ok = False
        try:
            result = await self._guarded(store, op, policy.run(fn), code)
            ok = True
            return result
        finally:
            self.metrics.component_op(
                "state", store, _OPERATIONS.get(code, op), ok, time.perf_counter() - start
            )

    async def _guarded(self, store: str, op: str, call: Awaitable[T], code: str) -> T:
        try:
            return await call
        except APIError:
            raise
        except ETagMismatchError as exc:
            raise APIError(
                409,
                "ERR_STATE_DELETE" if op == "deleting" else "ERR_STATE_SAVE",
                f"failed {op} state in state store {store}: {exc}",
                grpc_code="ABORTED",
                reason="DAPR_STATE_ETAG_MISMATCH",
            ) from None
        except ETagInvalidError as exc:
            raise APIError(
                400,
                "ERR_STATE_DELETE" if op == "deleting" else "ERR_STATE_SAVE",
                f"failed {op} state: invalid etag value: {exc}",
                grpc_code="INVALID_ARGUMENT",
                reason="DAPR_STATE_ETAG_INVALID",
            ) from None
        except Exception as exc:
            raise APIError(
                500,
                code,
                f"failed {op} state from state store {store}: {exc}",
                grpc_code="INTERNAL",
            ) from None

    async def get_state(self, store: str, key: str) -> GetResponse | None:
        entry = self._store(store)
        full = self._key(store, entry, key)
        return await self._state_call(
            store, "getting", lambda: entry.component.get(full), "ERR_STATE_GET"
        )

    async def save_state(self, store: str, items: list[StateWrite]) -> None:
        entry = self._store(store)
        reqs = [self._set_request(store, entry, i) for i in items]
        if len(reqs) == 1:
            await self._state_call(
                store, "saving", lambda: entry.component.set(reqs[0]), "ERR_STATE_SAVE"
            )
            return
        # Bulk save: every item is tried; failures are joined into one error (partial success).
        errors: list[APIError] = []
        for req in reqs:
            try:
                await self._state_call(
                    store,
                    "saving",
                    functools.partial(entry.component.set, req),
                    "ERR_STATE_SAVE",
                )
            except APIError as exc:
                errors.append(exc)
        if errors:
            first = errors[0]
            raise APIError(
                first.status,
                first.code,
                "; ".join(e.message for e in errors),
                grpc_code=first.grpc_code,
                reason=first.reason,
            )

    async def delete_state(
        self,
        store: str,
        key: str,
        etag: str | None,
        concurrency: str = "",
        metadata: dict[str, str] | None = None,
    ) -> None:
        entry = self._store(store)
        if concurrency not in {"", "first-write", "last-write"}:
            raise malformed(f"invalid concurrency {concurrency!r}; use first-write or last-write")
        req = DeleteRequest(
            self._key(store, entry, key), etag or None, concurrency == "first-write", metadata or {}
        )
        await self._state_call(
            store, "deleting", lambda: entry.component.delete(req), "ERR_STATE_DELETE"
        )

    async def bulk_get_state(self, store: str, keys: list[str]) -> list[dict[str, Any]]:
        entry = self._store(store)
        full = [self._key(store, entry, k) for k in keys]
        got: list[GetResponse | None] = await self._state_call(
            store, "getting", lambda: entry.component.bulk_get(full), "ERR_STATE_BULK_GET"
        )
        out: list[dict[str, Any]] = []
        for key, item in zip(keys, got, strict=True):
            row: dict[str, Any] = {"key": key}
            if item is not None:
                row["data"] = item.data
                row["etag"] = item.etag
                if item.expire_at is not None:
                    row["metadata"] = {"ttlExpireTime": _rfc3339(item.expire_at)}
            out.append(row)
        return out

    @staticmethod
    def response_metadata(item: GetResponse) -> dict[str, str]:
        return {"ttlExpireTime": _rfc3339(item.expire_at)} if item.expire_at is not None else {}

    async def transact(self, store: str, ops: list[tuple[str, StateWrite]]) -> None:
        entry = self._store(store)
        if "TRANSACTIONAL" not in entry.component.CAPABILITIES:
            raise APIError(
                500,
                "ERR_STATE_STORE_NOT_SUPPORTED",
                f"state store {store} doesn't support transaction",
                grpc_code="UNIMPLEMENTED",
            )
        if len(ops) > MAX_TRANSACTION_OPS:
            raise APIError(
                400,
                "ERR_STATE_STORE_TOO_MANY_TRANSACTIONS",
                f"the transaction contains {len(ops)} operations, more than the {MAX_TRANSACTION_OPS} allowed",
                grpc_code="INVALID_ARGUMENT",
            )
        reqs: list[SetRequest | DeleteRequest] = []
        for op, item in ops:
            if op == "upsert":
                reqs.append(self._set_request(store, entry, item))
            elif op == "delete":
                if not item.key:
                    raise malformed('"key" is a required field')
                reqs.append(
                    DeleteRequest(
                        self._key(store, entry, item.key),
                        item.etag or None,
                        item.concurrency == "first-write",
                        item.metadata,
                    )
                )
            else:
                raise APIError(
                    400,
                    "ERR_NOT_SUPPORTED_STATE_OPERATION",
                    f"operation type {op} not supported",
                    grpc_code="UNIMPLEMENTED",
                )
        res = self.resources[store]
        start = time.perf_counter()
        ok = False
        try:
            await self.resiliency.component(store, res.type, "outbound").run(
                lambda: entry.component.transact(reqs)
            )
            ok = True
        except Exception as exc:
            raise APIError(
                500,
                "ERR_STATE_TRANSACTION",
                f"error while executing state transaction: {exc}",
                grpc_code="INTERNAL",
            ) from None
        finally:
            self.metrics.component_op(
                "state", store, "transaction", ok, time.perf_counter() - start
            )

    async def query_state(
        self, store: str, query: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], str]:
        from wonderland.dapr.query import run_query

        entry = self._store(store)
        if "QUERY_API" not in entry.component.CAPABILITIES:
            raise APIError(
                500,
                "ERR_STATE_STORE_NOT_SUPPORTED",
                f"state store {store} doesn't support query",
                grpc_code="INTERNAL",
            )
        prefix = self._key(store, entry, "")
        rows = await self._state_call(
            store, "querying", lambda: entry.component.scan(prefix), "ERR_STATE_QUERY"
        )
        try:
            return run_query([(self._unkey(k), v) for k, v in rows], query)
        except ValueError as exc:
            raise APIError(
                400,
                "ERR_STATE_QUERY",
                f"failed query in state store {store}: {exc}",
                grpc_code="INVALID_ARGUMENT",
            ) from None
