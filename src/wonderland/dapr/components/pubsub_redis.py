"""``pubsub.redis``: Redis Streams with consumer groups, in Dapr's wire format.

``XADD <topic> * data <envelope>``; each subscription reads with ``XREADGROUP`` as group
``consumerID`` (default: the app id) and acknowledges with ``XACK`` once the app has
processed the message. Unacknowledged entries (a failed delivery, or a sidecar killed
mid-delivery) are claimed again after ``processingTimeout`` every ``redeliverInterval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from wonderland.dapr.components._redis import REDIS_FIELDS, connect, pipelined
from wonderland.dapr.components.base import Closer, Message, MessageHandler, PubSubComponent

__all__ = ["RedisStreamsPubSub"]

log = logging.getLogger(__name__)


class RedisStreamsPubSub(PubSubComponent):
    """See the module docstring."""

    FIELDS = {
        **REDIS_FIELDS,
        "redisMaxRetryInterval": "512ms",
        "consumerID": "",
        "redeliverInterval": "60s",
        "processingTimeout": "15s",
        "queueDepth": "100",
        "concurrency": "10",
        "maxLenApprox": "",
        "streamTTL": "",
    }
    CAPABILITIES = ("TTL",)

    client: Any

    async def init(self) -> None:
        self.client = connect(self)
        await self.client.ping()
        self.fast = pipelined(self)
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if hasattr(self, "fast"):
            await self.fast.close()
        if hasattr(self, "client"):
            await self.client.aclose()

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str]) -> None:
        fields: dict[str, Any] = {"data": data}
        meta = {k: v for k, v in metadata.items() if k not in {"rawPayload", "ttlInSeconds"}}
        if meta:
            fields["metadata"] = orjson.dumps(meta)
        maxlen = int(self.meta["maxLenApprox"]) if self.meta["maxLenApprox"] else None
        trim = ("MAXLEN", "~", maxlen) if maxlen is not None else ()
        pairs = [x for kv in fields.items() for x in kv]
        await self.fast.execute("XADD", topic, *trim, "*", *pairs)

    async def subscribe(self, topic: str, group: str, handler: MessageHandler) -> Closer:
        import redis.exceptions

        try:
            await self.client.xgroup_create(topic, group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        consumer = group
        sem = asyncio.Semaphore(max(1, int(self.meta["concurrency"] or 10)))
        inflight: set[bytes] = set()

        async def process(entry_id: bytes, fields: dict[bytes, bytes]) -> None:
            try:
                meta = orjson.loads(fields[b"metadata"]) if b"metadata" in fields else {}
                await handler(Message(topic, fields.get(b"data", b""), meta))
            except Exception as exc:
                log.debug("redis pubsub %s: %s not acknowledged: %s", self.name, entry_id, exc)
                return
            finally:
                inflight.discard(entry_id)
                sem.release()
            await self.client.xack(topic, group, entry_id)

        async def dispatch(entries: list[Any]) -> None:
            for entry_id, fields in entries:
                if entry_id in inflight or not fields:
                    continue
                await sem.acquire()
                inflight.add(entry_id)
                task = asyncio.get_running_loop().create_task(process(entry_id, fields))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        async def reader() -> None:
            depth = int(self.meta["queueDepth"] or 100)
            # First this consumer's own pending entries (left by a previous run), then new ones.
            start = "0"
            while True:
                try:
                    res = await self.client.xreadgroup(
                        group, consumer, {topic: start}, count=depth, block=1000
                    )
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                    log.warning("redis pubsub %s: read failed (%s); retrying", self.name, exc)
                    await asyncio.sleep(1)
                    continue
                entries = res[0][1] if res else []
                if start == "0" and not entries:
                    start = ">"
                    continue
                await dispatch(entries)
                if start == "0":
                    start = ">"

        async def reclaimer() -> None:
            interval = self.number("redeliverInterval")
            if interval <= 0:
                return
            idle_ms = int(self.number("processingTimeout") * 1000)
            while True:
                await asyncio.sleep(interval)
                with contextlib.suppress(redis.exceptions.RedisError):
                    pending = await self.client.xpending_range(
                        topic, group, min="-", max="+", count=100, idle=idle_ms
                    )
                    ids = [p["message_id"] for p in pending if p["message_id"] not in inflight]
                    if ids:
                        claimed = await self.client.xclaim(topic, group, consumer, idle_ms, ids)
                        await dispatch(claimed)

        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(reader()), loop.create_task(reclaimer())]

        async def close() -> None:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

        return close
