"""``pubsub.rabbitmq``: one exchange per topic (``exchangeKind``), one queue per consumer group.

With Dapr's defaults (``durable: false``, ``deletedWhenUnused: true``) queues vanish with
the subscriber; set ``durable: "true"`` and ``deletedWhenUnused: "false"`` for messages
that outlive a sidecar restart. A failed delivery is rejected and requeued only with
``requeueInFailure: "true"``, as in Dapr.
"""

from __future__ import annotations

import logging
from typing import Any

from wonderland.dapr.components.base import Closer, Message, MessageHandler, PubSubComponent
from wonderland.dapr.errors import ComponentConfigError

__all__ = ["RabbitMQPubSub"]

log = logging.getLogger(__name__)


class RabbitMQPubSub(PubSubComponent):
    """See the module docstring."""

    FIELDS = {
        "connectionString": "",
        "hostname": "",
        "protocol": "amqp",
        "username": "",
        "password": "",
        "caCert": "",
        "clientCert": "",
        "clientKey": "",
        "saslExternal": "false",
        "consumerID": "",
        "durable": "false",
        "publisherConfirm": "false",
        "maxLen": "",
        "maxLenBytes": "",
        "concurrency": "parallel",
        "concurrencyMode": "",
        "enableDeadLetter": "false",
        "prefetchCount": "0",
        "exchangeKind": "fanout",
        "deliveryMode": "0",
        "autoAck": "false",
        "deletedWhenUnused": "true",
        "requeueInFailure": "false",
        "reconnectWait": "3s",
        "reconnectWaitSeconds": "3",
        "ttlInSeconds": "",
        "clientName": "",
        "heartBeat": "10s",
        "publishMessagePropertiesToMetadata": "false",
        "defaultQueueTTL": "",
    }
    CAPABILITIES = ("TTL",)

    connection: Any

    def _url(self) -> str:
        if self.meta["connectionString"]:
            return self.meta["connectionString"]
        host = self.meta["hostname"]
        if not host:
            raise ComponentConfigError(
                f"component {self.name!r}: set connectionString (amqp://user:pass@host:5672) or hostname"
            )
        auth = f"{self.meta['username']}:{self.meta['password']}@" if self.meta["username"] else ""
        return f"{self.meta['protocol']}://{auth}{host}"

    async def init(self) -> None:
        import aio_pika

        self.connection = await aio_pika.connect_robust(
            self._url(),
            client_properties={"connection_name": self.meta["clientName"] or self.ctx.app_id},
        )
        self.channel = await self.connection.channel(publisher_confirms=True)
        self._exchanges: dict[str, Any] = {}

    async def close(self) -> None:
        if hasattr(self, "connection"):
            await self.connection.close()

    async def _exchange(self, channel: Any, topic: str) -> Any:
        key = (id(channel), topic)
        ex = self._exchanges.get(str(key))
        if ex is None:
            ex = await channel.declare_exchange(
                topic,
                self.meta["exchangeKind"],
                durable=self.flag("durable"),
                auto_delete=self.flag("deletedWhenUnused"),
            )
            self._exchanges[str(key)] = ex
        return ex

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str]) -> None:
        import aio_pika

        ex = await self._exchange(self.channel, topic)
        mode = int(self.meta["deliveryMode"] or 0)
        persistent = mode == 2 or (mode == 0 and self.flag("durable"))
        ttl = metadata.get("ttlInSeconds") or self.meta["ttlInSeconds"]
        msg = aio_pika.Message(
            data,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            if persistent
            else aio_pika.DeliveryMode.NOT_PERSISTENT,
            expiration=int(ttl) if ttl else None,
            priority=int(metadata["priority"]) if metadata.get("priority") else None,
            content_type=metadata.get("contentType"),
        )
        await ex.publish(msg, routing_key=metadata.get("routingKey", ""))

    async def subscribe(self, topic: str, group: str, handler: MessageHandler) -> Closer:
        channel = await self.connection.channel()
        prefetch = int(self.meta["prefetchCount"] or 0)
        if prefetch:
            await channel.set_qos(prefetch_count=prefetch)
        ex = await self._exchange(channel, topic)
        args: dict[str, Any] = {}
        if self.meta["maxLen"]:
            args["x-max-length"] = int(self.meta["maxLen"])
        if self.meta["maxLenBytes"]:
            args["x-max-length-bytes"] = int(self.meta["maxLenBytes"])
        if self.flag("enableDeadLetter"):
            dlx = f"dlx-{group}-{topic}"
            await channel.declare_exchange(dlx, "fanout", durable=self.flag("durable"))
            args["x-dead-letter-exchange"] = dlx
        queue = await channel.declare_queue(
            f"{group}-{topic}",
            durable=self.flag("durable"),
            auto_delete=self.flag("deletedWhenUnused"),
            arguments=args or None,
        )
        await queue.bind(ex, routing_key=self.meta.get("routingKey", "") or "")
        auto_ack = self.flag("autoAck")
        requeue = self.flag("requeueInFailure")

        async def on_message(message: Any) -> None:
            try:
                await handler(Message(topic, message.body, {}))
            except Exception as exc:
                log.debug("rabbitmq %s: delivery failed: %s", self.name, exc)
                if not auto_ack:
                    await message.reject(requeue=requeue)
                return
            if not auto_ack:
                await message.ack()

        tag = await queue.consume(on_message, no_ack=auto_ack)

        async def close() -> None:
            try:
                await queue.cancel(tag)
            finally:
                await channel.close()

        return close
