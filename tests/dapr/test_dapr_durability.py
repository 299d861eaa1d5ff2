"""Durability across a `kill -9` of the sidecar with durable brokers (Redis Streams, RabbitMQ
with durable queues, NATS JetStream)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from _support.daemon import wait_for
from dapr_testing import received, require_backend

from wonderland.dapr.sidecar import SidecarProcess

pytestmark = pytest.mark.e2e


BROKERS = {
    "redis": (
        "pubsub.redis",
        {"redisHost": "localhost:6379", "redeliverInterval": "500ms", "processingTimeout": "500ms"},
    ),
    "rabbitmq": (
        "pubsub.rabbitmq",
        {
            "connectionString": "amqp://guest:guest@localhost:5672",
            "durable": "true",
            "deletedWhenUnused": "false",
            "requeueInFailure": "true",
        },
    ),
    "nats": ("pubsub.jetstream", {"natsURL": "nats://localhost:4222", "ackWait": "2s"}),
}


@pytest.mark.parametrize("backend", list(BROKERS))
def test_undelivered_messages_survive_kill_9(
    backend: str,
    sidecar_factory: Callable[..., SidecarProcess],
    resources: Callable[[str], Path],
    app_factory: Callable[..., int],
) -> None:
    require_backend(backend)
    topic = "durable-" + uuid.uuid4().hex[:8]
    app_id = "dur" + uuid.uuid4().hex[:6]
    ctype, meta = BROKERS[backend]
    items = "".join(f'\n  - {{name: {k}, value: "{v}"}}' for k, v in meta.items())
    folder = resources(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: pubsub}\n"
        f"spec:\n  type: {ctype}\n  version: v1\n  metadata:{items}\n"
    )
    # 1. The app fails every delivery: the messages stay pending in the consumer group.
    failing = app_factory([{"pubsubname": "pubsub", "topic": topic, "route": "/error/x"}])
    sc = sidecar_factory(app_id, resources_path=[folder], app_port=failing)
    wait_for(lambda: httpx.get(sc.http_url + "/v1.0/metadata").json()["subscriptions"])
    for i in range(3):
        assert (
            httpx.post(f"{sc.http_url}/v1.0/publish/pubsub/{topic}", json={"n": i}).status_code
            == 204
        )
    wait_for(lambda: len(received(failing)) >= 3)
    sc.kill()
    # 2. Published while no sidecar runs (through another app id's sidecar).
    other = sidecar_factory("publisher-" + app_id, resources_path=[folder])
    assert (
        httpx.post(f"{other.http_url}/v1.0/publish/pubsub/{topic}", json={"n": 3}).status_code
        == 204
    )
    # 3. The same app id comes back with a healthy app: everything arrives once acknowledged.
    healthy = app_factory([{"pubsubname": "pubsub", "topic": topic, "route": "/orders"}])
    sidecar_factory(app_id, resources_path=[folder], app_port=healthy)
    got = wait_for(
        lambda: (
            {r["body"]["data"]["n"] for r in received(healthy)} >= {0, 1, 2, 3}
            and received(healthy)
        )
    )
    assert {r["body"]["data"]["n"] for r in got} == {0, 1, 2, 3}
