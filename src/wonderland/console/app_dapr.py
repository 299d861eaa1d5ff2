"""The Dapr side of a Service (``dapr.io/enabled: "true"``) on its page: its app id, the
Components and Subscriptions of its namespace scoped to it, and what its sidecar does with
the Resiliency objects scoped to it: the timeout, retries and circuit breaker each target
gets (the apps it calls, its components), resolved by the sidecar's own
:class:`~wonderland.dapr.resiliency.ResiliencyEngine` (:func:`dapr_app`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wonderland.dapr.resiliency import Policy, ResiliencyEngine
from wonderland.errors import NotFoundError
from wonderland.store import Store

__all__ = [
    "ComponentRow",
    "DaprApp",
    "PolicyRow",
    "SubscriptionRow",
    "dapr_app",
    "resiliency_rows",
]


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _list(store: Store, resource: str, namespace: str) -> list[dict[str, Any]]:
    try:
        items, _ = store.list(resource, namespace)
    except NotFoundError:  # the kind's plugin is not installed
        return []
    return items


@dataclass(frozen=True)
class ComponentRow:
    name: str
    type: str
    version: str


@dataclass(frozen=True)
class SubscriptionRow:
    name: str
    pubsub: str
    topic: str
    routes: str  # "/orders" or "rules → /a, default → /b"
    dead_letter: str


@dataclass(frozen=True)
class PolicyRow:
    """The resiliency policy a target of the app's sidecar gets: which Resiliency gave it,
    and its timeout, retry and circuit breaker in words ("" for none)."""

    target: str  # "calls to app orders", "statestore (outbound)", ...
    resiliency: str
    timeout: str
    retry: str
    circuit_breaker: str


@dataclass(frozen=True)
class DaprApp:
    """What a Service with ``dapr.io/enabled: "true"`` gets from Dapr: its app id, the
    components and subscriptions of its namespace scoped to that id (or to every app),
    the Resiliency objects its sidecar loads and the policy each target gets from them."""

    app_id: str
    components: list[ComponentRow]
    subscriptions: list[SubscriptionRow]
    resiliencies: list[str] = field(default_factory=list)
    policies: list[PolicyRow] = field(default_factory=list)
    resiliency_error: str = ""


def _in_scope(obj: Mapping[str, Any], app_id: str) -> bool:
    scopes = obj.get("scopes") or []
    return not scopes or app_id in scopes


def _routes(spec: Mapping[str, Any]) -> str:
    if spec.get("route"):
        return str(spec["route"])
    routes = spec.get("routes") or {}
    parts = [
        f"{r.get('match', '')} → {r.get('path', '')}"
        for r in routes.get("rules") or []
        if isinstance(r, dict)
    ]
    if routes.get("default"):
        parts.append(f"default → {routes['default']}")
    return ", ".join(parts)


def dapr_app(store: Store, namespace: str, service: Mapping[str, Any]) -> DaprApp | None:
    """The Dapr side of a Service whose template asks for a sidecar, else None."""
    template = (service.get("spec") or {}).get("template") or {}
    annotations = _meta(template).get("annotations") or {}
    if str(annotations.get("dapr.io/enabled", "")).lower() != "true":
        return None
    app_id = str(annotations.get("dapr.io/app-id") or _meta(service).get("name", ""))
    components = [
        ComponentRow(
            str(_meta(c).get("name", "")),
            str((c.get("spec") or {}).get("type") or ""),
            str((c.get("spec") or {}).get("version") or ""),
        )
        for c in _list(store, "components.dapr.io", namespace)
        if _in_scope(c, app_id)
    ]
    subscriptions = [
        SubscriptionRow(
            str(_meta(s).get("name", "")),
            str((s.get("spec") or {}).get("pubsubname") or ""),
            str((s.get("spec") or {}).get("topic") or ""),
            _routes(s.get("spec") or {}),
            str((s.get("spec") or {}).get("deadLetterTopic") or ""),
        )
        for s in _list(store, "subscriptions.dapr.io", namespace)
        if _in_scope(s, app_id)
    ]
    loaded = sorted(
        (r for r in _list(store, "resiliencies.dapr.io", namespace) if _in_scope(r, app_id)),
        key=lambda r: str(_meta(r).get("name", "")),
    )
    policies, error = resiliency_rows(loaded, components)
    return DaprApp(
        app_id,
        sorted(components, key=lambda c: c.name),
        sorted(subscriptions, key=lambda s: s.name),
        [str(_meta(r).get("name", "")) for r in loaded],
        policies,
        error,
    )


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _policy_row(target: str, origin: str, policy: Policy) -> PolicyRow:
    retry = ""
    if policy.retry is not None:
        r = policy.retry
        times = "no limit" if r.max_retries < 0 else f"at most {r.max_retries}"
        if r.policy == "exponential":
            retry = f"exponential back-off up to {_seconds(r.max_interval)}, {times}"
        else:
            retry = f"every {_seconds(r.duration)}, {times}"
    breaker = ""
    if policy.breaker is not None:
        b = policy.breaker
        breaker = (
            f"opens when {b.trip}; half-open after {_seconds(b.timeout)} "
            f"({b.max_requests} trial request{'s' if b.max_requests != 1 else ''})"
        )
    timeout = _seconds(policy.timeout) if policy.timeout is not None else ""
    return PolicyRow(target, origin, timeout, retry, breaker)


def resiliency_rows(
    loaded: Sequence[Mapping[str, Any]], components: Sequence[ComponentRow]
) -> tuple[list[PolicyRow], str]:
    """What the app's sidecar does with the Resiliency objects ``loaded``: the policy of
    each app it names, of calls to any other app, and of each of the app's components
    (outbound; inbound too for pub/sub and bindings, which deliver to the app). An
    invalid Resiliency is the error instead (the sidecar refuses it the same way)."""
    if not loaded:
        return [], ""
    names = [str(_meta(r).get("name", "")) for r in loaded]
    try:
        engine = ResiliencyEngine([dict(r.get("spec") or {}) for r in loaded], names)
        rows: list[PolicyRow] = []
        default = engine.origin.get(("default", ""), "")
        for app in sorted(engine.apps):
            origin = engine.origin.get(("app", app), default)
            rows.append(_policy_row(f"calls to app {app}", origin, engine.app(app)))
        other = engine.app("\0")  # an app no target names: the Default*Policy ones
        if not other.empty:
            rows.append(_policy_row("calls to any other app", default, other))
        for c in components:
            origin = engine.origin.get(("component", c.name), default)
            block = c.type.split(".", 1)[0]
            for direction in (
                ("outbound", "inbound") if block in ("pubsub", "bindings") else ("outbound",)
            ):
                policy = engine.component(c.name, c.type, direction)
                if not policy.empty:
                    rows.append(_policy_row(f"{c.name} ({direction})", origin, policy))
    except (ValueError, TypeError, AttributeError) as exc:
        return [], f"a Resiliency of this app is not valid ({exc}); its sidecar refuses it too"
    return rows, ""
