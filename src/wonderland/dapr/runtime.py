"""The protocol-agnostic sidecar core: building blocks over the configured components.

The HTTP and gRPC adapters parse requests, call a method here and map
:class:`~wonderland.dapr.errors.APIError` to their wire format. Nothing here knows
about a web framework or protobuf.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from wonderland import __version__
from wonderland.dapr.cloudevents import new_envelope
from wonderland.dapr.components import create_component
from wonderland.dapr.components.base import (
    Closer,
    Component,
    ComponentContext,
    ConfigItem,
    ConfigurationStoreComponent,
    DeleteRequest,
    GetResponse,
    PubSubComponent,
    SecretNotFoundError,
    SecretStoreComponent,
    SetRequest,
    StateStoreComponent,
)
from wonderland.dapr.errors import (
    APIError,
    ComponentConfigError,
    ETagInvalidError,
    ETagMismatchError,
    ResourceError,
)
from wonderland.dapr.resiliency import ResiliencyEngine
from wonderland.dapr.resources import ComponentResource, ResourceSet, expand_template

__all__ = ["DaprRuntime", "RuntimeOptions", "StateWrite", "default_state_dir"]

log = logging.getLogger("wonderland.dapr")

MAX_TRANSACTION_OPS = 10_000

T = TypeVar("T")


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
    #: App health checks (``--enable-app-health-check``), with daprd's defaults.
    app_health_check: bool = False
    app_health_path: str = "/healthz"
    app_health_interval: float = 5.0
    app_health_timeout: float = 0.5
    app_health_threshold: int = 3
    #: Folder where sidecars register for service invocation (default ``<state_dir>/apps``).
    name_resolution_dir: Path | None = None


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
class _StateEntry:
    component: StateStoreComponent
    prefix_mode: str


@dataclass(slots=True)
class _ConfigSub:
    store: str
    keys: list[str]
    closer: Closer


ConfigSink = Callable[[str, dict[str, ConfigItem]], Awaitable[None]]


class DaprRuntime:
    """State, pub/sub, secrets, configuration and metadata for one app id."""

    def __init__(self, options: RuntimeOptions) -> None:
        self.opts = options
        self.app_id = options.app_id
        self.state: dict[str, _StateEntry] = {}
        self.pubsubs: dict[str, PubSubComponent] = {}
        self.secret_stores: dict[str, SecretStoreComponent] = {}
        self.config_stores: dict[str, ConfigurationStoreComponent] = {}
        self.resources: dict[str, ComponentResource] = {}
        self.resiliency = ResiliencyEngine(r.spec for r in options.resources.resiliencies)
        self.extended: dict[str, str] = {}
        self.ready = False
        self._config_subs: dict[str, _ConfigSub] = {}
        self._ids = itertools.count(1)
        self.subscriptions: Any = None  # set by the sidecar: SubscriptionManager
        self.shutdown_requested = asyncio.Event()
        cfg = options.resources.configuration
        self._secret_scopes: dict[str, dict[str, Any]] = {}
        if cfg is not None:
            for scope in (cfg.spec.get("secrets") or {}).get("scopes") or []:
                self._secret_scopes[str(scope.get("storeName"))] = scope
            ignored = sorted(set(cfg.spec) - {"secrets", "features"})
            if ignored:
                log.warning(
                    "%s: Configuration %r: spec.%s not enforced by this sidecar (only secrets.scopes is)",
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
                if res.ignore_errors:
                    log.warning("component %s skipped (ignoreErrors): %s", res.name, exc)
                    continue
                raise ComponentConfigError(f"{res.source}: {exc}") from None
            except Exception as exc:
                if res.ignore_errors:
                    log.warning("component %s skipped (ignoreErrors): %s", res.name, exc)
                    continue
                raise ComponentConfigError(
                    f"{res.source}: component {res.name!r} ({res.type}) failed to initialise: "
                    f"{type(exc).__name__}: {exc}. Check that its backend is running and the metadata is right."
                ) from None
            self._register(res, comp)
            log.info("component loaded: %s (%s/%s)", res.name, res.type, res.version)
        self.ready = True

    def _register(self, res: ComponentResource, comp: Component) -> None:
        self.resources[res.name] = res
        if isinstance(comp, StateStoreComponent):
            mode = comp.meta.get("keyPrefix", "appid")
            self.state[res.name] = _StateEntry(comp, mode)
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

    # -- state -----------------------------------------------------------------------------

    def _store(self, name: str) -> _StateEntry:
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

    def _key(self, store: str, entry: _StateEntry, key: str) -> str:
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

    def _set_request(self, store: str, entry: _StateEntry, item: StateWrite) -> SetRequest:
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
        try:
            return await policy.run(fn)
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
        try:
            await self.resiliency.component(store, res.type, "outbound").run(
                lambda: entry.component.transact(reqs)
            )
        except Exception as exc:
            raise APIError(
                500,
                "ERR_STATE_TRANSACTION",
                f"error while executing state transaction: {exc}",
                grpc_code="INTERNAL",
            ) from None

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

    # -- pub/sub ---------------------------------------------------------------------------

    def pubsub(self, name: str) -> PubSubComponent:
        if not name:
            raise APIError(
                404,
                "ERR_PUBSUB_EMPTY",
                "pubsub name is empty",
                grpc_code="INVALID_ARGUMENT",
                reason="DAPR_PUBSUB_NAME_EMPTY",
            )
        comp = self.pubsubs.get(name)
        if comp is None:
            if not self.pubsubs:
                raise APIError(
                    400,
                    "ERR_PUBSUB_NOT_CONFIGURED",
                    "no pubsub is configured",
                    grpc_code="FAILED_PRECONDITION",
                    reason="DAPR_PUBSUB_NOT_CONFIGURED",
                )
            raise APIError(
                404,
                "ERR_PUBSUB_NOT_FOUND",
                f"pubsub {name} is not found",
                grpc_code="INVALID_ARGUMENT",
                reason="DAPR_PUBSUB_NOT_FOUND",
                metadata={"pubsubName": name},
            )
        return comp

    def _check_topic(self, name: str, topic: str, publishing: bool) -> None:
        if not topic:
            raise APIError(
                404,
                "ERR_TOPIC_NAME_EMPTY",
                f"topic is empty in pubsub {name}",
                grpc_code="INVALID_ARGUMENT",
                reason="DAPR_PUBSUB_TOPIC_NAME_EMPTY",
            )
        comp = self.pubsubs[name]
        allowed = comp.meta.get("publishingScopes" if publishing else "subscriptionScopes", "")
        allowed_topics = comp.meta.get("allowedTopics", "")
        rules: list[str] = []
        for part in allowed.split(";"):
            app, _, topics = part.partition("=")
            if app.strip() == self.app_id:
                rules = [t.strip() for t in topics.split(",") if t.strip()]
                if topic not in rules:
                    raise self._forbidden(name, topic, publishing)
        if allowed_topics and topic not in [t.strip() for t in allowed_topics.split(",")]:
            raise self._forbidden(name, topic, publishing)

    def _forbidden(self, name: str, topic: str, publishing: bool) -> APIError:
        verb = "publish" if publishing else "subscribe"
        return APIError(
            403,
            "ERR_PUBSUB_FORBIDDEN",
            f"topic {topic} is not allowed for app id {self.app_id} to {verb} in pubsub {name}",
            grpc_code="PERMISSION_DENIED",
            reason="DAPR_PUBSUB_FORBIDDEN",
        )

    def envelope(
        self, pubsub: str, topic: str, data: bytes, content_type: str, metadata: dict[str, str]
    ) -> bytes:
        try:
            env = new_envelope(
                data=data,
                content_type=content_type,
                topic=topic,
                pubsub=pubsub,
                source=self.app_id,
                metadata=metadata,
            )
        except ValueError as exc:
            raise APIError(
                400,
                "ERR_PUBSUB_CLOUD_EVENTS_SER",
                f"error when unmarshalling the request: {exc}",
                grpc_code="INVALID_ARGUMENT",
            ) from None
        return orjson.dumps(env)

    async def publish(
        self, pubsub: str, topic: str, data: bytes, content_type: str, metadata: dict[str, str]
    ) -> None:
        comp = self.pubsub(pubsub)
        self._check_topic(pubsub, topic, True)
        raw = metadata.get("rawPayload", "").lower() == "true"
        if "ttlInSeconds" in metadata:
            try:
                int(metadata["ttlInSeconds"])
            except ValueError:
                raise APIError(
                    400,
                    "ERR_PUBSUB_REQUEST_METADATA",
                    f"failed parsing metadata ttlInSeconds: {metadata['ttlInSeconds']!r} is not an integer",
                    grpc_code="INVALID_ARGUMENT",
                ) from None
        body = data if raw else self.envelope(pubsub, topic, data, content_type, metadata)
        comp_meta = {k: v for k, v in metadata.items() if not k.startswith("cloudevent.")}
        res = self.resources[pubsub]
        policy = self.resiliency.component(pubsub, res.type, "outbound")
        try:
            await policy.run(lambda: comp.publish(topic, body, comp_meta))
        except Exception as exc:
            raise APIError(
                500,
                "ERR_PUBSUB_PUBLISH_MESSAGE",
                f"error when publish to topic {topic} in pubsub {pubsub}: {exc}",
                grpc_code="INTERNAL",
                reason="DAPR_PUBSUB_PUBLISH_MESSAGE",
            ) from None

    async def bulk_publish(
        self, pubsub: str, topic: str, entries: list[dict[str, Any]], metadata: dict[str, str]
    ) -> list[dict[str, str]]:
        """Publish entries ``{entryId, event: bytes, contentType, metadata}``; returns failures."""
        self.pubsub(pubsub)
        self._check_topic(pubsub, topic, True)
        seen: set[str] = set()
        for e in entries:
            eid = e.get("entryId") or ""
            if not eid:
                raise APIError(
                    400,
                    "ERR_PUBSUB_EVENTS_SER",
                    "entryId is duplicated or not present for entry",
                    grpc_code="INVALID_ARGUMENT",
                )
            if eid in seen:
                raise APIError(
                    400,
                    "ERR_PUBSUB_EVENTS_SER",
                    f"entryId {eid} is duplicated",
                    grpc_code="INVALID_ARGUMENT",
                )
            seen.add(eid)
        failed: list[dict[str, str]] = []
        for e in entries:
            meta = {**metadata, **(e.get("metadata") or {})}
            try:
                await self.publish(pubsub, topic, e["event"], e.get("contentType") or "", meta)
            except APIError as exc:
                failed.append({"entryId": e["entryId"], "error": exc.message})
        return failed

    # -- secrets ---------------------------------------------------------------------------

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
        try:
            return await self.resiliency.component(store, res.type, "outbound").run(
                lambda: comp.get(key, metadata)
            )
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

    async def bulk_secret(self, store: str, metadata: dict[str, str]) -> dict[str, dict[str, str]]:
        comp = self._secret_store(store)
        try:
            got = await comp.bulk_get(metadata)
        except Exception as exc:
            raise APIError(
                500,
                "ERR_SECRET_GET",
                f"failed getting secrets from secret store {store}: {exc}",
                grpc_code="INTERNAL",
            ) from None
        return {k: v for k, v in got.items() if self._secret_allowed(store, k)}

    # -- configuration ---------------------------------------------------------------------

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
        try:
            return await comp.get(keys, metadata)
        except Exception as exc:
            raise APIError(
                500,
                "ERR_CONFIGURATION_GET",
                f"failed to get {keys} from Configuration store {store}: {exc}",
                grpc_code="INTERNAL",
            ) from None

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
        self._config_subs[sub_id] = _ConfigSub(store, keys, closer)
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
