"""The pub/sub conformance behaviours (components-contrib tests/conformance/pubsub) per broker.

Each broker is the real server on this machine: Redis Streams, RabbitMQ, NATS JetStream,
Mosquitto (skipped locally when absent, a failure under CI=true).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from _support.daemon import wait_until
from dapr_testing import require_backend

from wonderland.dapr.components import create_component
from wonderland.dapr.components.base import ComponentContext, Message, PubSubComponent

BROKERS: dict[str, tuple[str, str | None, dict[str, str]]] = {
    "in-memory": ("pubsub.in-memory", None, {}),
    "redis": (
        "pubsub.redis",
        "redis",
        {"redisHost": "localhost:6379", "redeliverInterval": "300ms", "processingTimeout": "300ms"},
    ),
    "rabbitmq": (
        "pubsub.rabbitmq",
        "rabbitmq",
        {
            "connectionString": "amqp://guest:guest@localhost:5672",
            "requeueInFailure": "true",
            "durable": "true",
            "deletedWhenUnused": "false",
        },
    ),
    "jetstream": (
        "pubsub.jetstream",
        "nats",
        {"natsURL": "nats://localhost:4222", "ackWait": "1s"},
    ),
    "mqtt3": ("pubsub.mqtt3", "mqtt", {"url": "tcp://localhost:1883", "qos": "1"}),
}
REDELIVERING = ["redis", "rabbitmq", "jetstream"]
DURABLE = ["redis", "rabbitmq", "jetstream"]


async def _make(kind: str, consumer: str = "") -> PubSubComponent:
    ctype, backend, meta = BROKERS[kind]
    if backend:
        require_backend(backend)
    meta = dict(meta)
    if kind == "mqtt3":
        meta["consumerID"] = consumer or "c" + uuid.uuid4().hex[:8]
    comp = create_component("pubsub", ctype, "v1", meta, ComponentContext("conf"))
    await comp.init()
    assert isinstance(comp, PubSubComponent)
    return comp


@pytest.fixture
def topic() -> str:
    return "conf-" + uuid.uuid4().hex[:10]


@pytest.fixture
async def cleanup() -> AsyncIterator[list[PubSubComponent]]:
    comps: list[PubSubComponent] = []
    try:
        yield comps
    finally:
        for c in comps:
            await c.close()


@pytest.mark.parametrize("kind", list(BROKERS))
async def test_every_published_message_is_delivered(
    kind: str, topic: str, cleanup: list[PubSubComponent]
) -> None:
    comp = await _make(kind)
    cleanup.append(comp)
    got: list[bytes] = []

    async def handler(msg: Message) -> None:
        assert msg.topic == topic
        got.append(msg.data)

    close = await comp.subscribe(topic, "g" + topic, handler)

    sent = [f"message-{i}".encode() for i in range(10)]
    for data in sent:
        await comp.publish(topic, data, {})
    await wait_until(lambda: len(got) >= len(sent))
    assert sorted(got) == sorted(sent)
    await close()
    await comp.publish(topic, b"after-close", {})
    await asyncio.sleep(0.3)  # nothing to wait on: give a wrong delivery its chance
    assert b"after-close" not in got


@pytest.mark.parametrize("kind", REDELIVERING)
async def test_failed_deliveries_are_redelivered(
    kind: str, topic: str, cleanup: list[PubSubComponent]
) -> None:
    comp = await _make(kind)
    cleanup.append(comp)
    attempts: dict[bytes, int] = {}
    done: set[bytes] = set()
    seen = 0

    async def handler(msg: Message) -> None:
        nonlocal seen
        seen += 1
        attempts[msg.data] = attempts.get(msg.data, 0) + 1
        # As the conformance suite does: fail the first two messages and every fifth.
        if attempts[msg.data] == 1 and (seen <= 2 or seen % 5 == 0):
            raise RuntimeError("simulated failure")
        done.add(msg.data)

    close = await comp.subscribe(topic, "g" + topic, handler)
    sent = [f"m{i}".encode() for i in range(10)]
    for data in sent:
        await comp.publish(topic, data, {})
    await wait_until(lambda: done == set(sent))
    assert any(n > 1 for n in attempts.values())
    await close()


@pytest.mark.parametrize("kind", DURABLE)
async def test_messages_wait_for_a_consumer_group_that_is_away(
    kind: str, topic: str, cleanup: list[PubSubComponent]
) -> None:
    group = "g" + topic
    first = await _make(kind)
    cleanup.append(first)

    async def ignore(msg: Message) -> None:
        return None

    close = await first.subscribe(topic, group, ignore)
    await close()
    for i in range(3):
        await first.publish(topic, f"while-away-{i}".encode(), {})
    second = await _make(kind)
    cleanup.append(second)
    got: list[bytes] = []

    async def handler(msg: Message) -> None:
        got.append(msg.data)

    close2 = await second.subscribe(topic, group, handler)
    await wait_until(lambda: len(got) >= 3)
    assert sorted(got) == [f"while-away-{i}".encode() for i in range(3)]
    await close2()


def test_unknown_metadata_field_is_rejected() -> None:
    from wonderland.dapr.errors import ComponentConfigError

    with pytest.raises(ComponentConfigError, match="redisHots"):
        create_component("p", "pubsub.redis", "v1", {"redisHots": "x"}, ComponentContext("a"))
    with pytest.raises(ComponentConfigError, match="natsURL"):
        create_component("p", "pubsub.jetstream", "v1", {}, ComponentContext("a"))


async def test_in_memory_does_not_let_one_slow_message_hold_up_the_rest(
    topic: str, cleanup: list[PubSubComponent]
) -> None:
    comp = await _make("in-memory")
    cleanup.append(comp)
    release = asyncio.Event()
    done: list[bytes] = []

    async def handler(msg: Message) -> None:
        if msg.data == b"slow":
            await release.wait()
        done.append(msg.data)

    close = await comp.subscribe(topic, "g", handler)
    await comp.publish(topic, b"slow", {})
    await comp.publish(topic, b"fast", {})
    await wait_until(lambda: done == [b"fast"])
    release.set()
    await wait_until(lambda: done == [b"fast", b"slow"])
    await close()
