"""``pubsub.mqtt3``: MQTT 3.1.1 topics over one connection per component.

MQTT has no negative acknowledgement; a failed delivery is retried by the sidecar's
inbound resiliency policy. With ``cleanSession: "false"`` and a fixed ``consumerID`` the
broker keeps QoS 1 messages for a subscriber that is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlparse

from wonderland.dapr.components.base import Closer, Message, MessageHandler, PubSubComponent
from wonderland.dapr.errors import ComponentConfigError

__all__ = ["MQTTPubSub"]

log = logging.getLogger(__name__)


class MQTTPubSub(PubSubComponent):
    """See the module docstring."""

    FIELDS = {
        "url": None,
        "consumerID": "",
        "qos": "1",
        "retain": "false",
        "cleanSession": "false",
        "caCert": "",
        "clientCert": "",
        "clientKey": "",
        "backOffMaxRetries": "",
    }

    client: Any

    async def init(self) -> None:
        import aiomqtt

        url = urlparse(self.meta["url"])
        if url.scheme not in {"tcp", "mqtt", "ssl", "mqtts", "tls"} or not url.hostname:
            raise ComponentConfigError(
                f"component {self.name!r}: url {self.meta['url']!r} must look like tcp://host:1883"
            )
        self.qos = int(self.meta["qos"])
        identifier = self.meta["consumerID"] or f"{self.ctx.app_id}-{self.name}"
        self.client = aiomqtt.Client(
            url.hostname,
            url.port or 1883,
            identifier=identifier,
            username=url.username,
            password=url.password,
            clean_session=self.flag("cleanSession"),
        )
        await self.client.__aenter__()
        self._handlers: dict[str, list[MessageHandler]] = {}
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.client.messages:
            topic = str(msg.topic)
            for handler in list(self._handlers.get(topic, ())):
                try:
                    await handler(Message(topic, bytes(msg.payload), {}))
                except Exception as exc:
                    log.warning("mqtt %s: message on %s not processed: %s", self.name, topic, exc)

    async def close(self) -> None:
        if hasattr(self, "_task"):
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if hasattr(self, "client"):
            with contextlib.suppress(Exception):
                await self.client.__aexit__(None, None, None)

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str]) -> None:
        await self.client.publish(topic, data, qos=self.qos, retain=self.flag("retain"))

    async def subscribe(self, topic: str, group: str, handler: MessageHandler) -> Closer:
        handlers = self._handlers.setdefault(topic, [])
        handlers.append(handler)
        if len(handlers) == 1:
            await self.client.subscribe(topic, qos=self.qos)

        async def close() -> None:
            with contextlib.suppress(ValueError):
                handlers.remove(handler)
            if not handlers:
                with contextlib.suppress(Exception):
                    await self.client.unsubscribe(topic)

        return close
