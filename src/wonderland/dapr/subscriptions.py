"""Subscriptions (declarative, programmatic, streaming) and delivery as daprd does it.

A message is routed with the subscription's CEL rules over ``event``, delivered under the
component's inbound resiliency policy, and on final failure republished to the
dead-letter topic (then acknowledged) or handed back to the broker for redelivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from wonderland.dapr.app_channel import AppChannel, AppDeliveryError
from wonderland.dapr.cel import Expression, compile_expression
from wonderland.dapr.cloudevents import from_raw_payload
from wonderland.dapr.components.base import Closer, Message
from wonderland.dapr.errors import APIError
from wonderland.dapr.resources import SubscriptionResource
from wonderland.dapr.runtime import DaprRuntime

__all__ = ["StreamSink", "Subscription", "SubscriptionManager"]

log = logging.getLogger("wonderland.dapr.pubsub")

#: Delivers one event to a streaming subscriber; returns SUCCESS, RETRY or DROP.
StreamSink = Callable[[dict[str, Any], Message], Awaitable[str]]


@dataclass(slots=True)
class Subscription:
    pubsubname: str
    topic: str
    rules: list[tuple[Expression, str]] = field(default_factory=list)
    default_path: str = ""
    dead_letter_topic: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    kind: str = "DECLARATIVE"
    sink: StreamSink | None = None
    closer: Closer | None = None

    @property
    def raw_payload(self) -> bool:
        return self.metadata.get("rawPayload", "").lower() == "true"

    def route(self, event: dict[str, Any]) -> str | None:
        env = {"event": event}
        for expr, path in self.rules:
            if expr.matches(env):
                return path
        return self.default_path or None

    def describe(self) -> dict[str, Any]:
        return {
            "pubsubname": self.pubsubname,
            "topic": self.topic,
            "metadata": self.metadata,
            "rules": [{"match": e.source, "path": p} for e, p in self.rules]
            + ([{"match": "", "path": self.default_path}] if self.default_path else []),
            "deadLetterTopic": self.dead_letter_topic,
            "type": self.kind,
        }


class _Drop(Exception):
    permanent = True


def _expired(event: dict[str, Any]) -> bool:
    exp = event.get("expiration")
    if not isinstance(exp, str) or not exp:
        return False
    try:
        return datetime.fromisoformat(exp.replace("Z", "+00:00")).timestamp() < time.time()
    except ValueError:
        return False


class SubscriptionManager:
    """Owns every subscription of one sidecar and delivers their messages."""

    def __init__(self, runtime: DaprRuntime, channel: AppChannel | None) -> None:
        self.rt = runtime
        self.channel = channel
        self.subs: list[Subscription] = []
        runtime.subscriptions = self

    def describe(self) -> list[dict[str, Any]]:
        return [s.describe() for s in self.subs]

    @staticmethod
    def from_resource(res: SubscriptionResource, kind: str = "DECLARATIVE") -> Subscription:
        return Subscription(
            pubsubname=res.pubsubname,
            topic=res.topic,
            rules=[(compile_expression(m), p) for m, p in res.rules],
            default_path=res.default_path,
            dead_letter_topic=res.dead_letter_topic,
            metadata=dict(res.metadata),
            kind=kind,
        )

    @staticmethod
    def from_json(item: dict[str, Any]) -> Subscription | None:
        """One entry of the app's ``GET /dapr/subscribe`` answer."""
        routes = item.get("routes") or {}
        rules: list[tuple[Expression, str]] = []
        for rule in routes.get("rules") or []:
            try:
                rules.append(
                    (compile_expression(str(rule.get("match") or "")), str(rule.get("path") or ""))
                )
            except ValueError as exc:
                log.error(
                    "subscription %s/%s: rule skipped: %s",
                    item.get("pubsubname"),
                    item.get("topic"),
                    exc,
                )
        default = str(routes.get("default") or item.get("route") or "")
        if not rules and not default:
            return None
        if str((item.get("bulkSubscribe") or {}).get("enabled", "")).lower() == "true":
            log.warning(
                "subscription %s/%s: bulkSubscribe is not supported; messages are delivered one by one",
                item.get("pubsubname"),
                item.get("topic"),
            )
        return Subscription(
            pubsubname=str(item.get("pubsubname") or ""),
            topic=str(item.get("topic") or ""),
            rules=rules,
            default_path=default,
            dead_letter_topic=str(item.get("deadLetterTopic") or ""),
            metadata={str(k): str(v) for k, v in (item.get("metadata") or {}).items()},
            kind="PROGRAMMATIC",
        )

    async def fetch_programmatic(self) -> list[Subscription]:
        if self.channel is None:
            return []
        delay = 0.5
        for attempt in range(3):
            try:
                status, _h, body = await self.channel.request("GET", "/dapr/subscribe", timeout=10)
            except OSError as exc:
                if attempt == 2:
                    log.error("GET /dapr/subscribe on the app failed: %s", exc)
                    return []
                await asyncio.sleep(delay)
                delay *= 1.5
                continue
            if status == 404:
                return []
            if status // 100 != 2:
                log.error(
                    "GET /dapr/subscribe on the app answered %d; no programmatic subscriptions",
                    status,
                )
                return []
            try:
                items = orjson.loads(body) if body else []
            except orjson.JSONDecodeError:
                log.error("GET /dapr/subscribe on the app did not answer JSON")
                return []
            out = []
            for item in items if isinstance(items, list) else []:
                sub = self.from_json(item) if isinstance(item, dict) else None
                if sub is not None:
                    out.append(sub)
            return out
        return []

    async def start(self, declarative: list[SubscriptionResource]) -> None:
        subs = [self.from_resource(r) for r in declarative]
        subs += await self.fetch_programmatic()
        for sub in subs:
            try:
                await self.activate(sub)
            except APIError as exc:
                log.error(
                    "subscription to %s/%s not started: %s", sub.pubsubname, sub.topic, exc.message
                )

    async def activate(self, sub: Subscription) -> None:
        comp = self.rt.pubsub(sub.pubsubname)
        self.rt._check_topic(sub.pubsubname, sub.topic, False)
        group = comp.meta.get("consumerID") or self.rt.app_id

        sub.closer = await comp.subscribe(sub.topic, group, self._handler_for(sub))
        self.subs.append(sub)
        log.info("subscribed to %s/%s (%s)", sub.pubsubname, sub.topic, sub.kind)

    async def deactivate(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self.subs.remove(sub)
        if sub.closer is not None:
            await sub.closer()
            sub.closer = None

    async def close(self) -> None:
        for sub in list(self.subs):
            with contextlib.suppress(Exception):
                await self.deactivate(sub)

    async def pause(self) -> None:
        """Stop taking messages for the app (it failed its health checks); brokers keep them."""
        for sub in self.subs:
            if sub.sink is None and sub.closer is not None:
                with contextlib.suppress(Exception):
                    await sub.closer()
                sub.closer = None

    async def resume(self) -> None:
        """Take messages for the app again after :meth:`pause`."""
        for sub in self.subs:
            if sub.sink is None and sub.closer is None:
                comp = self.rt.pubsubs[sub.pubsubname]
                group = comp.meta.get("consumerID") or self.rt.app_id
                sub.closer = await comp.subscribe(sub.topic, group, self._handler_for(sub))

    def _handler_for(self, sub: Subscription) -> Callable[[Message], Awaitable[None]]:
        async def handler(msg: Message) -> None:
            await self.handle(sub, msg)

        return handler

    def _event(self, sub: Subscription, msg: Message) -> dict[str, Any]:
        if sub.raw_payload:
            return from_raw_payload(msg.data, sub.topic, sub.pubsubname)
        try:
            event = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or "specversion" not in event:
            return from_raw_payload(msg.data, sub.topic, sub.pubsubname)
        return event

    async def handle(self, sub: Subscription, msg: Message) -> None:
        """Deliver one message; raising asks the broker to redeliver."""
        event = self._event(sub, msg)
        if _expired(event):
            log.warning("dropping expired message %s on %s", event.get("id"), sub.topic)
            await self._dead_letter(sub, msg)
            return
        path = sub.route(event)
        if path is None:
            log.warning("no route for message %s on %s; dropped", event.get("id"), sub.topic)
            await self._dead_letter(sub, msg)
            return
        res = self.rt.resources[sub.pubsubname]
        policy = self.rt.resiliency.component(sub.pubsubname, res.type, "inbound")
        try:
            await policy.run(lambda: self._deliver_once(sub, path, event, msg))
        except _Drop:
            log.warning("app dropped message %s on %s", event.get("id"), sub.topic)
            await self._dead_letter(sub, msg)
        except Exception as exc:
            if sub.dead_letter_topic:
                log.warning(
                    "delivery of %s on %s failed (%s); sent to %s",
                    event.get("id"),
                    sub.topic,
                    exc,
                    sub.dead_letter_topic,
                )
                await self._dead_letter(sub, msg)
                return
            raise

    async def _dead_letter(self, sub: Subscription, msg: Message) -> None:
        if not sub.dead_letter_topic:
            return
        comp = self.rt.pubsubs[sub.pubsubname]
        await asyncio.wait_for(comp.publish(sub.dead_letter_topic, msg.data, {}), 30)

    async def _deliver_once(
        self, sub: Subscription, path: str, event: dict[str, Any], msg: Message
    ) -> None:
        """One delivery attempt, recorded as daprd does: success, retry or drop."""
        start = time.perf_counter()
        outcome = "retry"
        try:
            await self._attempt(sub, path, event, msg)
            outcome = "success"
        except _Drop:
            outcome = "drop"
            raise
        finally:
            self.rt.metrics.pubsub_ingress(
                sub.pubsubname, sub.topic, outcome, time.perf_counter() - start
            )

    async def _attempt(
        self, sub: Subscription, path: str, event: dict[str, Any], msg: Message
    ) -> None:
        if sub.sink is not None:
            status = await sub.sink(event, msg)
        else:
            status = await self._deliver_http(path, event, msg)
        if status in {"SUCCESS", ""}:
            return
        if status == "DROP":
            raise _Drop("DROP")
        raise AppDeliveryError(f"app asked to retry (status {status})")

    async def _deliver_http(self, path: str, event: dict[str, Any], msg: Message) -> str:
        if self.channel is None:
            raise AppDeliveryError(
                "no app channel: start the sidecar with --app-port to receive messages"
            )
        headers = [("Content-Type", "application/cloudevents+json")]
        headers += [
            (k, v) for k, v in msg.metadata.items() if k.isascii() and v.isascii() and "\n" not in v
        ]
        if event.get("traceparent"):
            headers.append(("traceparent", str(event["traceparent"])))
        try:
            status, _h, body = await self.channel.request(
                "POST", path, headers=headers, body=orjson.dumps(event)
            )
        except OSError as exc:
            raise AppDeliveryError(f"error from app channel: {exc}") from None
        if status == 404:
            raise _Drop(f"app answered 404 for {path}")
        if status // 100 != 2:
            raise AppDeliveryError(f"app answered {status} for {path}", status)
        if not body:
            return "SUCCESS"
        try:
            reply = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "SUCCESS"
        if isinstance(reply, dict) and "status" in reply:
            value = str(reply.get("status") or "").upper()
            return value if value in {"SUCCESS", "RETRY", "DROP", ""} else "RETRY"
        return "SUCCESS"
