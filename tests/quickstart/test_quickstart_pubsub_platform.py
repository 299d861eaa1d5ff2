"""The platform's in-memory broker: messages cross from one sidecar's component to another's."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import orjson
import pytest
from _support.daemon import wait_until

from wonderland.dapr.broker import BACKLOG, BROKER_FILE, PlatformBroker
from wonderland.dapr.broker.wire import frame, read_frame
from wonderland.dapr.components.base import ComponentContext, Message
from wonderland.dapr.components.pubsub_platform import BrokerUnavailableError, PlatformPubSub

WAIT = 10.0


async def _client(state_dir: Path, app_id: str, **meta: str) -> PlatformPubSub:
    comp = PlatformPubSub("pubsub", meta, ComponentContext(app_id, "default", str(state_dir)))
    await comp.init()
    return comp


def members(broker: PlatformBroker, topic: str, group: str) -> int:
    found = broker.topics.get(topic, {}).get(group)
    return len(found.members) if found is not None else 0


class Inbox:
    def __init__(self) -> None:
        self.items: list[Message] = []
        self.changed = asyncio.Event()

    async def handler(self, msg: Message) -> None:
        self.items.append(msg)
        self.changed.set()

    async def arrived(self, count: int) -> list[Message]:
        async with asyncio.timeout(WAIT):
            while len(self.items) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.items


async def test_publish_in_one_client_reaches_every_group_of_another(tmp_path: Path) -> None:
    broker = PlatformBroker(tmp_path)
    await broker.start()
    try:
        info = orjson.loads((tmp_path / BROKER_FILE).read_bytes())
        assert info["address"] == f"127.0.0.1:{broker.port}"
        assert stat.S_IMODE(os.stat(tmp_path / BROKER_FILE).st_mode) == 0o600
        publisher = await _client(tmp_path, "agenda-service")
        frontend = await _client(tmp_path, "frontend")
        notifications = await _client(tmp_path, "notifications-service")
        inbox_a, inbox_b = Inbox(), Inbox()
        await frontend.subscribe("events-topic", "frontend", inbox_a.handler)
        await notifications.subscribe("events-topic", "notifications-service", inbox_b.handler)
        # Subscriptions travel on the same ordered connection as a later publish would;
        # wait until the broker knows both groups before publishing.
        await wait_until(lambda: len(broker.topics.get("events-topic", {})) >= 2, WAIT)
        for i in range(3):
            await publisher.publish("events-topic", f"event-{i}".encode(), {"traceid": str(i)})
        for inbox in (inbox_a, inbox_b):
            got = await inbox.arrived(3)
            assert [m.data for m in got] == [b"event-0", b"event-1", b"event-2"]
            assert got[2].metadata == {"traceid": "2"} and got[0].topic == "events-topic"
        for comp in (publisher, frontend, notifications):
            await comp.close()
    finally:
        await broker.stop()
    assert not (tmp_path / BROKER_FILE).exists()


async def test_one_group_shares_messages_and_keeps_them_while_away(tmp_path: Path) -> None:
    broker = PlatformBroker(tmp_path)
    await broker.start()
    try:
        publisher = await _client(tmp_path, "c4p-service")
        one, two = await _client(tmp_path, "notifications-service"), None
        inbox_one, inbox_two = Inbox(), Inbox()
        close_one = await one.subscribe("events-topic", "notifications", inbox_one.handler)
        two = await _client(tmp_path, "notifications-service")
        await two.subscribe("events-topic", "notifications", inbox_two.handler)
        await wait_until(lambda: members(broker, "events-topic", "notifications") >= 2, WAIT)
        for i in range(4):
            await publisher.publish("events-topic", str(i).encode(), {})
        await inbox_one.arrived(2)
        await inbox_two.arrived(2)
        # Two replicas of one app take turns: each message is handled once in the group.
        assert sorted(m.data for m in inbox_one.items + inbox_two.items) == [
            b"0",
            b"1",
            b"2",
            b"3",
        ]
        await close_one()
        await two.close()
        await wait_until(lambda: not (members(broker, "events-topic", "notifications")), WAIT)
        # Nobody in the group now: the broker keeps the messages for the next subscriber.
        await publisher.publish("events-topic", b"while-away", {})
        later = Inbox()
        third = await _client(tmp_path, "notifications-service")
        await third.subscribe("events-topic", "notifications", later.handler)
        assert [m.data for m in await later.arrived(1)] == [b"while-away"]
        for comp in (publisher, one, third):
            await comp.close()
    finally:
        await broker.stop()
    assert BACKLOG >= 100


async def test_a_client_reconnects_to_a_restarted_broker(tmp_path: Path) -> None:
    broker = PlatformBroker(tmp_path)
    await broker.start()
    sub = await _client(tmp_path, "frontend")
    inbox = Inbox()
    await sub.subscribe("t", "frontend", inbox.handler)
    await broker.stop()
    broker = PlatformBroker(tmp_path)
    await broker.start()
    try:
        await wait_until(lambda: bool(members(broker, "t", "frontend")), WAIT)
        pub = await _client(tmp_path, "agenda-service")
        await pub.publish("t", b"after-restart", {})
        assert [m.data for m in await inbox.arrived(1)] == [b"after-restart"]
        await pub.close()
        await sub.close()
    finally:
        await broker.stop()


async def test_publish_without_a_broker_says_where_it_looked(tmp_path: Path) -> None:
    comp = await _client(tmp_path, "frontend", connectTimeout="300ms")
    try:
        with pytest.raises(BrokerUnavailableError) as err:
            await comp.publish("t", b"x", {})
        assert str(tmp_path / BROKER_FILE) in str(err.value)
        assert "wonderland up" in str(err.value)
    finally:
        await comp.close()


async def test_a_wrong_token_is_refused(tmp_path: Path) -> None:
    broker = PlatformBroker(tmp_path)
    await broker.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        writer.write(frame({"op": "hello", "token": "guess"}))
        answer, _ = await asyncio.wait_for(read_frame(reader), WAIT)
        assert answer["op"] == "error" and "token" in answer["error"]
        assert await reader.read() == b""
        writer.close()
    finally:
        await broker.stop()


def test_only_the_platforms_sidecar_entry_swaps_pubsub_in_memory() -> None:
    """A standalone `wonderland sidecar` keeps its process-local broker."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from wonderland.dapr.components import component_class\n"
        "before = component_class('pubsub.in-memory').__name__\n"
        "if sys.argv[1] == 'platform':\n"
        "    from wonderland.dapr.platform_sidecar import use_platform_broker\n"
        "    use_platform_broker()\n"
        "print(before, component_class('pubsub.in-memory').__name__)\n"
    )
    for mode, expected in (
        ("standalone", "InMemoryPubSub InMemoryPubSub"),
        ("platform", "InMemoryPubSub PlatformPubSub"),
    ):
        done = subprocess.run(
            [sys.executable, "-c", probe, mode], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == expected


def test_the_platforms_sidecar_entry_runs_the_wonderland_cli() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "wonderland.dapr.platform_sidecar", "sidecar", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "--app-id" in done.stdout
