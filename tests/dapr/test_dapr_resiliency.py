"""The resiliency engine: policy resolution, retries, timeouts and circuit breakers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from wonderland.dapr.errors import ResourceError
from wonderland.dapr.resiliency import (
    CircuitOpenError,
    ResiliencyEngine,
    RetryPolicy,
    parse_duration,
)
from wonderland.dapr.resources import parse_documents
from wonderland.dapr.sidecar import SidecarProcess


class Flaky(Exception):
    def __init__(self, status: int = 500) -> None:
        super().__init__(f"status {status}")
        self.status = status


SPEC = {
    "policies": {
        "timeouts": {"fast": "100ms"},
        "retries": {
            "three": {"policy": "constant", "duration": "10ms", "maxRetries": 3},
            "only5xx": {
                "policy": "constant",
                "duration": "1ms",
                "maxRetries": 5,
                "matching": {"httpStatusCodes": "500-599"},
            },
            "DefaultRetryPolicy": {"policy": "constant", "duration": "1ms", "maxRetries": 1},
        },
        "circuitBreakers": {
            "cb": {"trip": "consecutiveFailures > 2", "timeout": "200ms", "maxRequests": 1}
        },
    },
    "targets": {
        "apps": {"backend": {"timeout": "fast", "retry": "three", "circuitBreaker": "cb"}},
        "components": {"statestore": {"outbound": {"retry": "only5xx"}}},
    },
}


def test_durations() -> None:
    assert (
        parse_duration("1m30s") == 90
        and parse_duration("500ms") == 0.5
        and parse_duration("2") == 2
    )
    with pytest.raises(ValueError):
        parse_duration("soon")


async def test_retries_stop_after_max_retries() -> None:
    policy = ResiliencyEngine([SPEC]).component("statestore", "state.redis", "outbound")
    calls = 0

    async def fail() -> None:
        nonlocal calls
        calls += 1
        raise Flaky(503)

    with pytest.raises(Flaky):
        await policy.run(fail)
    assert calls == 6


async def test_matching_codes_limit_what_is_retried() -> None:
    policy = ResiliencyEngine([SPEC]).component("statestore", "state.redis", "outbound")
    calls = 0

    async def fail() -> None:
        nonlocal calls
        calls += 1
        raise Flaky(404)

    with pytest.raises(Flaky):
        await policy.run(fail)
    assert calls == 1


async def test_default_policy_applies_to_unnamed_targets() -> None:
    policy = ResiliencyEngine([SPEC]).component("pubsub", "pubsub.redis", "inbound")
    calls = 0

    async def fail() -> None:
        nonlocal calls
        calls += 1
        raise Flaky()

    with pytest.raises(Flaky):
        await policy.run(fail)
    assert calls == 2  # DefaultRetryPolicy: one retry


async def test_timeout_then_circuit_breaker_opens_and_recovers() -> None:
    policy = ResiliencyEngine([SPEC]).app("backend")
    assert policy.timeout == 0.1

    async def slow() -> None:
        await asyncio.sleep(1)

    calls = 0

    async def slow_counted() -> None:
        nonlocal calls
        calls += 1
        await slow()

    # Three timed-out tries trip the breaker (consecutiveFailures > 2); the retry that
    # follows meets the open breaker and stops.
    with pytest.raises(CircuitOpenError):
        await policy.run(slow_counted)
    assert calls == 3
    assert policy.breaker is not None and policy.breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        await policy.run(slow)
    await asyncio.sleep(0.25)  # past the breaker's 200ms timeout: it half-opens

    async def ok() -> str:
        return "fine"

    assert await policy.run(ok) == "fine"
    assert policy.breaker.state == "closed"


def test_exponential_backoff_is_capped() -> None:
    delays = list(RetryPolicy(policy="exponential", max_interval=1.0, max_retries=12).delays())
    assert len(delays) == 12 and delays[0] == 0.5 and max(delays) <= 1.0


def test_bad_resiliency_resources_are_rejected() -> None:
    base = {"apiVersion": "dapr.io/v1alpha1", "kind": "Resiliency", "metadata": {"name": "r"}}
    with pytest.raises(ResourceError, match="nope"):
        parse_documents([{**base, "spec": {"targets": {"apps": {"a": {"retry": "nope"}}}}}])
    with pytest.raises(ResourceError, match="trip"):
        parse_documents(
            [
                {
                    **base,
                    "spec": {
                        "policies": {"circuitBreakers": {"c": {"trip": "consecutiveFailures >"}}}
                    },
                }
            ]
        )
    with pytest.raises(ResourceError, match="constant or exponential"):
        parse_documents([{**base, "spec": {"policies": {"retries": {"r": {"policy": "linear"}}}}}])


def test_component_scopes_and_namespaces() -> None:
    docs = [
        {
            "apiVersion": "dapr.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "a"},
            "spec": {"type": "state.in-memory", "version": "v1"},
            "scopes": ["app1"],
        },
        {
            "apiVersion": "dapr.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "b", "namespace": "prod"},
            "spec": {"type": "state.in-memory", "version": "v1"},
        },
        {
            "apiVersion": "dapr.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "c"},
            "spec": {"type": "state.in-memory", "version": "v1"},
        },
    ]
    res = parse_documents(docs)
    assert [c.name for c in res.for_app("app1").components] == ["a", "b", "c"]
    assert [c.name for c in res.for_app("app2", "dev").components] == ["c"]
    assert [c.name for c in res.for_app("app1", "prod").components] == ["a", "b", "c"]


@pytest.mark.e2e
def test_app_timeout_policy_on_service_invocation(
    sidecar_factory: Callable[..., SidecarProcess],
    resources: Callable[[str], Path],
    basic_resources: Path,
    app_factory: Callable[..., int],
) -> None:
    resources("""
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: r}
spec:
  policies:
    timeouts: {short: 300ms}
  targets:
    apps: {slowapp: {timeout: short}}
""")
    app = app_factory()
    sc = sidecar_factory("slowapp", resources_path=[basic_resources], app_port=app)
    assert httpx.get(sc.http_url + "/v1.0/invoke/slowapp/method/slow/0").status_code == 200
    r = httpx.get(sc.http_url + "/v1.0/invoke/slowapp/method/slow/2", timeout=10)
    assert r.status_code == 500 and r.json()["errorCode"] == "ERR_DIRECT_INVOKE"
