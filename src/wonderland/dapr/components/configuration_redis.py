"""``configuration.redis``: values stored as ``value||version`` strings, as in Dapr.

Subscriptions use keyspace notifications, so the Redis server needs
``notify-keyspace-events`` to include ``K`` and ``A`` (``CONFIG SET notify-keyspace-events KA``),
exactly as with Dapr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from wonderland.dapr.components._redis import REDIS_FIELDS, connect
from wonderland.dapr.components.base import (
    Closer,
    ConfigHandler,
    ConfigItem,
    ConfigurationStoreComponent,
)

__all__ = ["RedisConfigurationStore"]

log = logging.getLogger(__name__)


def _parse(raw: bytes | None) -> ConfigItem:
    if raw is None:
        return ConfigItem("", "")
    text = raw.decode("utf-8", "replace")
    value, sep, version = text.rpartition("||")
    return ConfigItem(value, version) if sep else ConfigItem(text, "")


class RedisConfigurationStore(ConfigurationStoreComponent):
    """See the module docstring."""

    FIELDS = {**REDIS_FIELDS, "redisMinRetryInterval": "8ms", "redisMaxRetryInterval": "2s"}

    client: Any

    async def init(self) -> None:
        self.client = connect(self)
        await self.client.ping()
        self.db = int(self.meta["redisDB"] or 0)

    async def close(self) -> None:
        if hasattr(self, "client"):
            await self.client.aclose()

    async def get(self, keys: list[str], metadata: dict[str, str]) -> dict[str, ConfigItem]:
        if not keys:
            keys = [
                k.decode()
                async for k in self.client.scan_iter(count=500)
                if await self.client.type(k) == b"string"
            ]
        if not keys:
            return {}
        values = await self.client.mget(keys)
        return {k: _parse(v) for k, v in zip(keys, values, strict=True) if v is not None}

    async def subscribe(
        self, keys: list[str], metadata: dict[str, str], handler: ConfigHandler
    ) -> Closer:
        pubsub = self.client.pubsub()
        prefix = f"__keyspace@{self.db}__:"
        if keys:
            await pubsub.subscribe(*[prefix + k for k in keys])
        else:
            await pubsub.psubscribe(prefix + "*")
        # Return only once Redis confirmed every channel, so no change is missed after this.
        expected = len(keys) or 1
        confirmed = 0
        deadline = asyncio.get_running_loop().time() + 10
        while confirmed < expected and asyncio.get_running_loop().time() < deadline:
            msg = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
            if msg is not None and msg.get("type") in {"subscribe", "psubscribe"}:
                confirmed += 1

        async def loop() -> None:
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is None:
                    continue
                channel = msg["channel"].decode()
                key = channel[len(prefix) :]
                event = msg["data"].decode() if isinstance(msg["data"], bytes) else str(msg["data"])
                if event in {"del", "expired", "evicted"}:
                    item = ConfigItem("", "")
                elif event == "set":
                    item = _parse(await self.client.get(key))
                else:
                    continue
                try:
                    await handler({key: item})
                except Exception as exc:
                    log.warning("configuration update for %s not delivered: %s", key, exc)

        task = asyncio.get_running_loop().create_task(loop())

        async def close() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await pubsub.aclose()

        return close
