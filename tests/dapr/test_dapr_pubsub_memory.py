"""``pubsub.in-memory`` delivers a message once, as Dapr 1.17 and later do.

components-contrib removed the component's built-in retries (10 attempts, 100 ms apart, in
Dapr 1.16 and earlier) in PR #4191 ("Remove in-memory pubsub retires"): a failed delivery is
retried only by a resiliency policy on the component's inbound target (see
test_dapr_pubsub.py::test_retries_stop_after_max_retries, which counts 1 + maxRetries).
"""

from __future__ import annotations

import asyncio

from wonderland.dapr.components.base import ComponentContext, Message
from wonderland.dapr.components.pubsub_memory import InMemoryPubSub


async def test_a_failed_delivery_is_not_retried_by_the_broker() -> None:
    bus = InMemoryPubSub("pubsub", {}, ComponentContext("app"))
    await bus.init()
    calls: list[bytes] = []
    done = asyncio.Event()

    async def handler(msg: Message) -> None:
        calls.append(msg.data)
        if msg.data == b"last":
            done.set()
        if msg.data == b"fails":
            raise RuntimeError("app answered 500")

    close = await bus.subscribe("orders", "", handler)
    try:
        await bus.publish("orders", b"fails", {})
        await asyncio.sleep(0)  # the failing delivery starts first
        await bus.publish("orders", b"last", {})
        await asyncio.wait_for(done.wait(), 5)
        # Dapr 1.16 would try again 100 ms later: wait past that and count once more
        await asyncio.sleep(0.3)
        assert calls.count(b"fails") == 1 and calls.count(b"last") == 1
    finally:
        await close()
        await bus.close()
