"""``pubsub.in-memory``: a process-local broker; every subscription gets every message.

As in Dapr (an asynchronous event bus), messages of one subscription are handled
concurrently, up to ``concurrency`` at a time, so one message stuck in retries does not
hold up the others. A message whose handler fails is not redelivered by this broker, as in
Dapr 1.17 and later (components-contrib #4191 removed the built-in 10 attempts 100 ms apart
of 1.16 and earlier): retries come from a resiliency policy on the component's inbound
target.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from wonderland.dapr.components.base import Closer, Message, MessageHandler, PubSubComponent

__all__ = ["InMemoryPubSub"]

log = logging.getLogger(__name__)


class InMemoryPubSub(PubSubComponent):
    """Topics are queues in this process; order is kept per subscription."""

    FIELDS = {"consumerID": "", "concurrency": "100"}

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._subs: dict[str, list[asyncio.Queue[Message | None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str]) -> None:
        for queue in self._subs.get(topic, ()):
            queue.put_nowait(Message(topic, data, dict(metadata)))

    async def subscribe(self, topic: str, group: str, handler: MessageHandler) -> Closer:
        queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._subs.setdefault(topic, []).append(queue)

        limit = asyncio.Semaphore(max(1, int(self.meta["concurrency"] or 100)))
        running: set[asyncio.Task[None]] = set()

        async def deliver(msg: Message) -> None:
            try:
                await handler(msg)
            except Exception as exc:
                log.warning(
                    "in-memory pubsub %s: message on %s not processed: %s", self.name, topic, exc
                )
            finally:
                limit.release()

        async def worker() -> None:
            try:
                while True:
                    msg = await queue.get()
                    if msg is None:
                        return
                    await limit.acquire()
                    t = asyncio.get_running_loop().create_task(deliver(msg))
                    running.add(t)
                    t.add_done_callback(running.discard)
            finally:
                for t in list(running):
                    t.cancel()

        task = asyncio.get_running_loop().create_task(worker())
        self._tasks.add(task)

        async def close() -> None:
            with contextlib.suppress(ValueError):
                self._subs.get(topic, []).remove(queue)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._tasks.discard(task)

        return close

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
