"""Components, found by the ``spec.type`` users write (``state.redis``) through one registry.

Entries are import paths, so a component's client library (redis, asyncpg, aio-pika,
nats-py, aiomqtt) is imported only when a component of that type is configured. The client
libraries are extras of the package (``pip install 'wonderland[redis]'``, ``[postgres]``,
``[rabbitmq]``, ``[nats]``, ``[mqtt]``, or ``[all]``): a component whose library is missing
is refused with the command that installs it.
"""

from __future__ import annotations

import importlib
import importlib.util

from wonderland.dapr.components.base import Component, ComponentContext
from wonderland.dapr.errors import ComponentConfigError

__all__ = ["EXTRAS", "REGISTRY", "component_class", "create_component", "register"]

REGISTRY: dict[str, str] = {
    "state.in-memory": "wonderland.dapr.components.state_memory:InMemoryStateStore",
    "state.sqlite": "wonderland.dapr.components.state_sqlite:SQLiteStateStore",
    "state.redis": "wonderland.dapr.components.state_redis:RedisStateStore",
    "state.postgresql": "wonderland.dapr.components.state_postgresql:PostgreSQLStateStore",
    "pubsub.in-memory": "wonderland.dapr.components.pubsub_memory:InMemoryPubSub",
    "pubsub.redis": "wonderland.dapr.components.pubsub_redis:RedisStreamsPubSub",
    "pubsub.rabbitmq": "wonderland.dapr.components.pubsub_rabbitmq:RabbitMQPubSub",
    "pubsub.jetstream": "wonderland.dapr.components.pubsub_jetstream:JetStreamPubSub",
    "pubsub.mqtt3": "wonderland.dapr.components.pubsub_mqtt:MQTTPubSub",
    "secretstores.local.file": "wonderland.dapr.components.secrets_local:LocalFileSecretStore",
    "secretstores.local.env": "wonderland.dapr.components.secrets_local:LocalEnvSecretStore",
    "secretstores.kubernetes": (
        "wonderland.dapr.components.secrets_kubernetes:KubernetesSecretStore"
    ),
    "configuration.redis": "wonderland.dapr.components.configuration_redis:RedisConfigurationStore",
    "configuration.postgresql": (
        "wonderland.dapr.components.configuration_postgresql:PostgreSQLConfigurationStore"
    ),
    "configuration.wonderland.file": (
        "wonderland.dapr.components.configuration_file:FileConfigurationStore"
    ),
    "configuration.wonderland.configmap": (
        "wonderland.dapr.components.configuration_configmap:ConfigMapConfigurationStore"
    ),
}


#: The package extra each type's client library comes with.
EXTRAS: dict[str, str] = {
    "state.redis": "redis",
    "pubsub.redis": "redis",
    "configuration.redis": "redis",
    "state.postgresql": "postgres",
    "configuration.postgresql": "postgres",
    "pubsub.rabbitmq": "rabbitmq",
    "pubsub.jetstream": "nats",
    "pubsub.mqtt3": "mqtt",
}
#: The client modules each extra installs.
_EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "redis": ("redis", "hiredis"),
    "postgres": ("asyncpg",),
    "rabbitmq": ("aio_pika",),
    "nats": ("nats",),
    "mqtt": ("aiomqtt",),
}


def register(component_type: str, target: str) -> None:
    """Add (or replace) a component type; ``target`` is ``module:Class``."""
    REGISTRY[component_type] = target


def component_class(component_type: str) -> type[Component]:
    target = REGISTRY.get(component_type)
    if target is None:
        known = ", ".join(sorted(REGISTRY))
        raise ComponentConfigError(
            f"component type {component_type!r} is not supported; supported types: {known}"
        )
    extra = EXTRAS.get(component_type)
    if extra is not None:
        # checked before the import: some clients are imported only on connect
        for library in _EXTRA_MODULES[extra]:
            if importlib.util.find_spec(library) is None:
                raise ComponentConfigError(
                    f"component type {component_type!r} needs the {library!r} client library, "
                    f"which is not installed; install it with: pip install 'wonderland[{extra}]' "
                    "(or 'wonderland[all]' for every component's client)"
                )
    module_name, _, cls_name = target.partition(":")
    cls: type[Component] = getattr(importlib.import_module(module_name), cls_name)
    return cls


def create_component(
    name: str, component_type: str, version: str, metadata: dict[str, str], ctx: ComponentContext
) -> Component:
    """Build (not yet initialise) the component registered for ``component_type``."""
    cls = component_class(component_type)
    if version not in cls.VERSIONS:
        raise ComponentConfigError(
            f"component {name!r}: {component_type} has no version {version!r}; "
            f"use one of {', '.join(cls.VERSIONS)}"
        )
    return cls(name, metadata, ctx)
