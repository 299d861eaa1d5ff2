"""``pubsub.jetstream``: NATS JetStream with durable consumers.

Each topic is a subject. When ``streamName`` is not given, a stream named after the
topic is created on first use. A failed delivery is ``nak``'d and JetStream redelivers
it (bounded by ``maxDeliver``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from wonderland.dapr.components.base import Closer, Message, MessageHandler, PubSubComponent

__all__ = ["JetStreamPubSub"]

log = logging.getLogger(__name__)


class JetStreamPubSub(PubSubComponent):
    """See the module docstring."""

    FIELDS = {
        "natsURL": None,
        "jwt": "",
        "seedKey": "",
        "token": "",
        "tls_client_cert": "",
        "tls_client_key": "",
        "name": "wonderland",
        "streamName": "",
        "durableName": "",
        "queueGroupName": "",
        "startSequence": "",
        "startTime": "",
        "flowControl": "false",
        "ackWait": "",
        "maxDeliver": "",
        "backOff": "",
        "maxAckPending": "",
        "replicas": "",
        "memoryStorage": "false",
        "rateLimit": "",
        "heartbeat": "",
        "deliverPolicy": "all",
        "ackPolicy": "explicit",
        "domain": "",
        "apiPrefix": "",
        "concurrency": "single",
        "consumerID": "",
    }

    nc: Any
    js: Any

    async def init(self) -> None:
        import nats

        self.nc = await nats.connect(
            self.meta["natsURL"],
            name=self.meta["name"],
            token=self.meta["token"] or None,
            connect_timeout=5,
            max_reconnect_attempts=-1,
        )
        self.js = self.nc.jetstream(
            domain=self.meta["domain"] or None, prefix=self.meta["apiPrefix"] or "$JS.API"
        )
        self._streams: set[str] = set()

    async def close(self) -> None:
        if hasattr(self, "nc"):
            await self.nc.drain()

    async def _ensure_stream(self, topic: str) -> None:
        if topic in self._streams:
            return
        import nats.js.errors
        from nats.js.api import StorageType, StreamConfig

        storage = StorageType.MEMORY if self.flag("memoryStorage") else StorageType.FILE
        name = self.meta["streamName"]
        if name:
            try:
                info = await self.js.stream_info(name)
                if topic not in (info.config.subjects or []):
                    info.config.subjects = [*(info.config.subjects or []), topic]
                    await self.js.update_stream(info.config)
            except nats.js.errors.NotFoundError:
                await self.js.add_stream(StreamConfig(name=name, subjects=[topic], storage=storage))
        else:
            try:
                await self.js.find_stream_name_by_subject(topic)
            except nats.js.errors.NotFoundError:
                stream = re.sub(r"[^A-Za-z0-9_-]", "_", topic)
                await self.js.add_stream(
                    StreamConfig(name=stream, subjects=[topic], storage=storage)
                )
        self._streams.add(topic)

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str]) -> None:
        await self._ensure_stream(topic)
        await self.js.publish(topic, data)

    async def subscribe(self, topic: str, group: str, handler: MessageHandler) -> Closer:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        await self._ensure_stream(topic)
        durable = self.meta["durableName"] or re.sub(r"[^A-Za-z0-9_-]", "_", f"{group}-{topic}")
        policy = {
            "all": DeliverPolicy.ALL,
            "last": DeliverPolicy.LAST,
            "new": DeliverPolicy.NEW,
        }.get(self.meta["deliverPolicy"], DeliverPolicy.ALL)
        cfg = ConsumerConfig(
            durable_name=durable,
            deliver_policy=policy,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.number("ackWait") or None,
            max_deliver=int(self.meta["maxDeliver"]) if self.meta["maxDeliver"] else None,
            max_ack_pending=int(self.meta["maxAckPending"]) if self.meta["maxAckPending"] else None,
        )

        async def on_message(msg: Any) -> None:
            try:
                await handler(Message(topic, msg.data, {}))
            except Exception as exc:
                log.debug("jetstream %s: delivery failed: %s", self.name, exc)
                await msg.nak()
                return
            await msg.ack()

        queue = self.meta["queueGroupName"] or durable
        sub = await self.js.subscribe(
            topic, queue=queue, durable=durable, cb=on_message, manual_ack=True, config=cfg
        )

        async def close() -> None:
            await sub.unsubscribe()

        return close
