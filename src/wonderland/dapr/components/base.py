"""The component interfaces: state stores, pub/sub brokers, secret stores, configuration stores.

A component is built from a :class:`~wonderland.dapr.resources.ComponentResource` whose
metadata has been resolved (secret references, env references, template tags) into a
plain ``dict[str, str]``. Each class lists the metadata field names it accepts (Dapr's
names); anything else is refused with the list of accepted names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar

from wonderland.dapr.errors import ComponentConfigError

__all__ = [
    "PUBSUB_COMMON_FIELDS",
    "Closer",
    "Component",
    "ComponentContext",
    "ConfigItem",
    "ConfigurationStoreComponent",
    "DeleteRequest",
    "GetResponse",
    "Message",
    "MessageHandler",
    "PubSubComponent",
    "SecretNotFoundError",
    "SecretStoreComponent",
    "SetRequest",
    "StateStoreComponent",
]

Closer = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class ComponentContext:
    """What a component may know about the sidecar that hosts it."""

    app_id: str
    namespace: str = ""
    state_dir: str = ""


class Component:
    """Base of every component: metadata checking, ``init`` and ``close``."""

    #: Metadata fields accepted, with their default (``None`` means required).
    FIELDS: ClassVar[dict[str, str | None]] = {}
    #: Versions accepted in ``spec.version``.
    VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    #: Capabilities shown in the metadata API (``ETAG``, ``TRANSACTIONAL``, ``TTL`` ...).
    CAPABILITIES: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, metadata: dict[str, str], ctx: ComponentContext) -> None:
        self.name = name
        self.ctx = ctx
        self.meta = self._checked(name, metadata)

    @classmethod
    def _checked(cls, name: str, metadata: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(metadata) - set(cls.FIELDS))
        if unknown:
            raise ComponentConfigError(
                f"component {name!r}: unknown metadata field(s) {', '.join(unknown)}; "
                f"this component type accepts: {', '.join(sorted(cls.FIELDS))}"
            )
        out: dict[str, str] = {}
        for key, default in cls.FIELDS.items():
            if key in metadata:
                out[key] = metadata[key]
            elif default is None:
                raise ComponentConfigError(
                    f"component {name!r}: metadata field {key!r} is required; add "
                    f"`- name: {key}` with a value under spec.metadata"
                )
            else:
                out[key] = default
        return out

    def flag(self, key: str) -> bool:
        return self.meta.get(key, "").strip().lower() in {"true", "1", "yes"}

    def number(self, key: str) -> float:
        from wonderland.dapr.resiliency import parse_duration

        raw = self.meta.get(key, "")
        try:
            return float(parse_duration(raw)) if raw else 0.0
        except ValueError:
            raise ComponentConfigError(
                f"component {self.name!r}: metadata field {key!r} = {raw!r} is not a number or duration"
            ) from None

    async def init(self) -> None:
        """Connect to the backend; called once before any other method."""

    async def close(self) -> None:
        """Release connections; called once when the sidecar stops."""


# -- state -------------------------------------------------------------------------------------


@dataclass(slots=True)
class SetRequest:
    """One write. ``ttl`` is seconds or None (no expiry); ``etag`` None means none given."""

    key: str
    value: bytes
    etag: str | None = None
    first_write: bool = False
    ttl: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class DeleteRequest:
    key: str
    etag: str | None = None
    first_write: bool = False
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class GetResponse:
    data: bytes
    etag: str
    expire_at: float | None = None


class StateStoreComponent(Component):
    """A key/value store with ETags. Keys arrive already prefixed (``appid||key``).

    ``set`` and ``delete`` raise :class:`~wonderland.dapr.errors.ETagMismatchError` when the
    ETag does not match (or, with ``first_write`` and no ETag, when the key exists) and
    :class:`~wonderland.dapr.errors.ETagInvalidError` for a malformed ETag.
    """

    CAPABILITIES: ClassVar[tuple[str, ...]] = ("ETAG", "TRANSACTIONAL", "TTL")

    async def get(self, key: str) -> GetResponse | None:
        raise NotImplementedError

    async def set(self, req: SetRequest) -> None:
        raise NotImplementedError

    async def delete(self, req: DeleteRequest) -> None:
        raise NotImplementedError

    async def bulk_get(self, keys: list[str]) -> list[GetResponse | None]:
        return [await self.get(k) for k in keys]

    async def transact(self, ops: list[SetRequest | DeleteRequest]) -> None:
        """Apply all operations atomically, in order."""
        raise NotImplementedError

    async def scan(self, prefix: str) -> list[tuple[str, GetResponse]]:
        """Every live key starting with ``prefix`` (used by the query API)."""
        raise NotImplementedError


# -- pub/sub -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Message:
    topic: str
    data: bytes
    metadata: dict[str, str] = field(default_factory=dict)


#: Handles one message; returning acknowledges it, raising asks the broker to redeliver.
MessageHandler = Callable[[Message], Awaitable[None]]


#: Metadata every pub/sub accepts (read by the sidecar core: topic scoping).
PUBSUB_COMMON_FIELDS: dict[str, str | None] = {
    "publishingScopes": "",
    "subscriptionScopes": "",
    "allowedTopics": "",
    "protectedTopics": "",
}


class PubSubComponent(Component):
    """A message broker. Messages a handler fails on are redelivered by the broker.

    Subclasses' ``FIELDS`` are merged with :data:`PUBSUB_COMMON_FIELDS`.
    """

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.FIELDS = {**PUBSUB_COMMON_FIELDS, **cls.FIELDS}

    CAPABILITIES: ClassVar[tuple[str, ...]] = ()

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str]) -> None:
        raise NotImplementedError

    async def subscribe(self, topic: str, group: str, handler: MessageHandler) -> Closer:
        """Start delivering ``topic`` to ``handler`` as consumer group ``group``."""
        raise NotImplementedError


# -- secrets -----------------------------------------------------------------------------------


class SecretNotFoundError(LookupError):
    """The secret does not exist in the store."""


class SecretStoreComponent(Component):
    """A read-only secret store."""

    async def get(self, name: str, metadata: dict[str, str]) -> dict[str, str]:
        raise NotImplementedError

    async def bulk_get(self, metadata: dict[str, str]) -> dict[str, dict[str, str]]:
        raise NotImplementedError


# -- configuration -----------------------------------------------------------------------------


@dataclass(slots=True)
class ConfigItem:
    value: str
    version: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"value": self.value, "version": self.version, "metadata": self.metadata}


#: Receives the changed items of a configuration subscription.
ConfigHandler = Callable[[dict[str, ConfigItem]], Awaitable[None]]


class ConfigurationStoreComponent(Component):
    """A configuration store with change subscriptions. A deleted key arrives with value ``""``."""

    async def get(self, keys: list[str], metadata: dict[str, str]) -> dict[str, ConfigItem]:
        raise NotImplementedError

    async def subscribe(
        self, keys: list[str], metadata: dict[str, str], handler: ConfigHandler
    ) -> Closer:
        raise NotImplementedError
