"""The pub/sub building block of :class:`~wonderland.dapr.runtime.DaprRuntime`."""

from __future__ import annotations

import time
from typing import Any

import orjson

from wonderland.dapr.cloudevents import new_envelope
from wonderland.dapr.components.base import PubSubComponent
from wonderland.dapr.errors import APIError
from wonderland.dapr.metrics import SidecarMetrics
from wonderland.dapr.resiliency import ResiliencyEngine
from wonderland.dapr.resources import ComponentResource

__all__ = ["PubSubBlock"]


def _check_ttl(metadata: dict[str, str]) -> None:
    """``ttlInSeconds`` is a 64-bit integer, as daprd parses it (strconv.ParseInt)."""
    if "ttlInSeconds" in metadata:
        try:
            if not -(2**63) <= int(metadata["ttlInSeconds"]) < 2**63:
                raise ValueError("out of the 64-bit range")
        except ValueError:
            raise APIError(
                400,
                "ERR_PUBSUB_REQUEST_METADATA",
                f"failed parsing metadata ttlInSeconds: {metadata['ttlInSeconds']!r} is not an integer",
                grpc_code="INVALID_ARGUMENT",
            ) from None


class PubSubBlock:
    """Publishing (envelopes, topic scopes, bulk) through the configured brokers."""

    app_id: str
    pubsubs: dict[str, PubSubComponent]
    resources: dict[str, ComponentResource]
    resiliency: ResiliencyEngine
    metrics: SidecarMetrics

    def pubsub(self, name: str) -> PubSubComponent:
        if not name:
            raise APIError(
                404,
                "ERR_PUBSUB_EMPTY",
                "pubsub name is empty",
                grpc_code="INVALID_ARGUMENT",
                reason="DAPR_PUBSUB_NAME_EMPTY",
            )
        comp = self.pubsubs.get(name)
        if comp is None:
            if not self.pubsubs:
                raise APIError(
                    400,
                    "ERR_PUBSUB_NOT_CONFIGURED",
                    "no pubsub is configured",
                    grpc_code="FAILED_PRECONDITION",
                    reason="DAPR_PUBSUB_NOT_CONFIGURED",
                )
            raise APIError(
                404,
                "ERR_PUBSUB_NOT_FOUND",
                f"pubsub {name} is not found",
                grpc_code="INVALID_ARGUMENT",
                reason="DAPR_PUBSUB_NOT_FOUND",
                metadata={"pubsubName": name},
            )
        return comp

    def _check_topic(self, name: str, topic: str, publishing: bool) -> None:
        if not topic:
            raise APIError(
                404,
                "ERR_TOPIC_NAME_EMPTY",
                f"topic is empty in pubsub {name}",
                grpc_code="INVALID_ARGUMENT",
                reason="DAPR_PUBSUB_TOPIC_NAME_EMPTY",
            )
        comp = self.pubsubs[name]
        allowed = comp.meta.get("publishingScopes" if publishing else "subscriptionScopes", "")
        allowed_topics = comp.meta.get("allowedTopics", "")
        rules: list[str] = []
        for part in allowed.split(";"):
            app, _, topics = part.partition("=")
            if app.strip() == self.app_id:
                rules = [t.strip() for t in topics.split(",") if t.strip()]
                if topic not in rules:
                    raise self._forbidden(name, topic, publishing)
        if allowed_topics and topic not in [t.strip() for t in allowed_topics.split(",")]:
            raise self._forbidden(name, topic, publishing)

    def _forbidden(self, name: str, topic: str, publishing: bool) -> APIError:
        verb = "publish" if publishing else "subscribe"
        return APIError(
            403,
            "ERR_PUBSUB_FORBIDDEN",
            f"topic {topic} is not allowed for app id {self.app_id} to {verb} in pubsub {name}",
            grpc_code="PERMISSION_DENIED",
            reason="DAPR_PUBSUB_FORBIDDEN",
        )

    def envelope(
        self, pubsub: str, topic: str, data: bytes, content_type: str, metadata: dict[str, str]
    ) -> bytes:
        try:
            env = new_envelope(
                data=data,
                content_type=content_type,
                topic=topic,
                pubsub=pubsub,
                source=self.app_id,
                metadata=metadata,
            )
        except ValueError as exc:
            raise APIError(
                400,
                "ERR_PUBSUB_CLOUD_EVENTS_SER",
                f"error when unmarshalling the request: {exc}",
                grpc_code="INVALID_ARGUMENT",
            ) from None
        return orjson.dumps(env)

    async def publish(
        self, pubsub: str, topic: str, data: bytes, content_type: str, metadata: dict[str, str]
    ) -> None:
        comp = self.pubsub(pubsub)
        self._check_topic(pubsub, topic, True)
        raw = metadata.get("rawPayload", "").lower() == "true"
        _check_ttl(metadata)
        body = data if raw else self.envelope(pubsub, topic, data, content_type, metadata)
        comp_meta = {k: v for k, v in metadata.items() if not k.startswith("cloudevent.")}
        res = self.resources[pubsub]
        policy = self.resiliency.component(pubsub, res.type, "outbound")
        start = time.perf_counter()
        ok = False
        try:
            await policy.run(lambda: comp.publish(topic, body, comp_meta))
            ok = True
        except Exception as exc:
            raise APIError(
                500,
                "ERR_PUBSUB_PUBLISH_MESSAGE",
                f"error when publish to topic {topic} in pubsub {pubsub}: {exc}",
                grpc_code="INTERNAL",
                reason="DAPR_PUBSUB_PUBLISH_MESSAGE",
            ) from None
        finally:
            self.metrics.pubsub_egress(pubsub, topic, ok, time.perf_counter() - start)

    async def bulk_publish(
        self, pubsub: str, topic: str, entries: list[dict[str, Any]], metadata: dict[str, str]
    ) -> list[dict[str, str]]:
        """Publish entries ``{entryId, event: bytes, contentType, metadata}``; returns failures."""
        self.pubsub(pubsub)
        self._check_topic(pubsub, topic, True)
        _check_ttl(metadata)  # the request's own metadata: a client mistake for every entry
        seen: set[str] = set()
        for e in entries:
            eid = e.get("entryId") or ""
            if not eid:
                raise APIError(
                    400,
                    "ERR_PUBSUB_EVENTS_SER",
                    "entryId is duplicated or not present for entry",
                    grpc_code="INVALID_ARGUMENT",
                )
            if eid in seen:
                raise APIError(
                    400,
                    "ERR_PUBSUB_EVENTS_SER",
                    f"entryId {eid} is duplicated",
                    grpc_code="INVALID_ARGUMENT",
                )
            seen.add(eid)
        failed: list[dict[str, str]] = []
        for e in entries:
            meta = {**metadata, **(e.get("metadata") or {})}
            try:
                await self.publish(pubsub, topic, e["event"], e.get("contentType") or "", meta)
            except APIError as exc:
                failed.append({"entryId": e["entryId"], "error": exc.message})
        return failed
