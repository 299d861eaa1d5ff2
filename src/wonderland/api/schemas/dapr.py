"""Dapr resources: Component, Resiliency, Configuration and Subscription."""

from __future__ import annotations

from typing import Any, Literal

from wonderland.api.schemas._base import AnyMap, Schema, StringMap

__all__ = [
    "ComponentObject",
    "DaprConfigurationObject",
    "ResiliencyObject",
    "SubscriptionV1Object",
    "SubscriptionV2Object",
]


class SecretKeyRef(Schema):
    name: str
    key: str | None = None


class MetadataItem(Schema):
    name: str
    value: str | int | float | bool | None = None
    secretKeyRef: SecretKeyRef | None = None
    envRef: str | None = None


class ComponentSpec(Schema):
    type: str
    version: str
    metadata: list[MetadataItem] | None = None
    initTimeout: str | None = None
    ignoreErrors: bool | None = None


class Auth(Schema):
    secretStore: str


class _TopLevel(Schema):
    apiVersion: str
    kind: str
    metadata: AnyMap
    status: Any = None


class ComponentObject(_TopLevel):
    spec: ComponentSpec
    auth: Auth | None = None
    scopes: list[str] | None = None


class Retry(Schema):
    policy: Literal["constant", "exponential"] | None = None
    duration: str | None = None
    maxInterval: str | None = None
    maxRetries: int | None = None
    matching: StringMap | None = None


class CircuitBreaker(Schema):
    maxRequests: int | None = None
    interval: str | None = None
    timeout: str | None = None
    trip: str | None = None


class Policies(Schema):
    timeouts: dict[str, str] | None = None
    retries: dict[str, Retry] | None = None
    circuitBreakers: dict[str, CircuitBreaker] | None = None


class PolicyRef(Schema):
    timeout: str | None = None
    retry: str | None = None
    circuitBreaker: str | None = None
    circuitBreakerScope: Literal["type", "id", "both"] | None = None
    circuitBreakerCacheSize: int | None = None


class ComponentPolicies(Schema):
    inbound: PolicyRef | None = None
    outbound: PolicyRef | None = None


class Targets(Schema):
    apps: dict[str, PolicyRef] | None = None
    actors: dict[str, PolicyRef] | None = None
    components: dict[str, ComponentPolicies] | None = None


class ResiliencySpec(Schema):
    policies: Policies | None = None
    targets: Targets | None = None


class ResiliencyObject(_TopLevel):
    spec: ResiliencySpec
    scopes: list[str] | None = None


class DaprConfigurationObject(_TopLevel):
    # The Configuration spec is wide (tracing, metrics, access control, ...); the
    # sidecar validates the parts it implements.
    spec: AnyMap | None = None


class Rule(Schema):
    match: str
    path: str


class Routes(Schema):
    rules: list[Rule] | None = None
    default: str | None = None


class BulkSubscribe(Schema):
    enabled: bool | None = None
    maxMessagesCount: int | None = None
    maxAwaitDurationMs: int | None = None


class SubscriptionV1Spec(Schema):
    pubsubname: str
    topic: str
    route: str
    deadLetterTopic: str | None = None
    metadata: StringMap | None = None
    bulkSubscribe: BulkSubscribe | None = None


class SubscriptionV2Spec(Schema):
    pubsubname: str
    topic: str
    routes: Routes
    deadLetterTopic: str | None = None
    metadata: StringMap | None = None
    bulkSubscribe: BulkSubscribe | None = None


class SubscriptionV1Object(_TopLevel):
    spec: SubscriptionV1Spec
    scopes: list[str] | None = None


class SubscriptionV2Object(_TopLevel):
    spec: SubscriptionV2Spec
    scopes: list[str] | None = None
