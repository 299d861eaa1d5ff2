"""The resiliency engine: timeouts, retries and circuit breakers from ``kind: Resiliency``.

Policies are resolved as daprd resolves them: the policy named in the target, then
the typed default (``DefaultStatestoreComponentOutboundRetryPolicy`` ...), then the
global default (``DefaultRetryPolicy``).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from wonderland.dapr.errors import ResourceError

__all__ = [
    "CircuitBreaker",
    "CircuitOpenError",
    "Policy",
    "PolicyTarget",
    "ResiliencyEngine",
    "ResiliencyObserver",
    "RetryPolicy",
    "parse_duration",
    "validate_spec",
]

T = TypeVar("T")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string (``1m30s``, ``500ms``); a bare number means seconds."""
    text = text.strip()
    if not text:
        raise ValueError("empty duration; write it like 5s or 500ms")
    try:
        return float(text)
    except ValueError:
        pass
    pos = 0
    total = 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"{text!r} is not a duration; write it like 5s, 500ms or 1m30s")
    return total


def _parse_codes(spec: str) -> set[int]:
    codes: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            codes.update(range(int(lo), int(hi) + 1))
        else:
            codes.add(int(part))
    return codes


class CircuitOpenError(Exception):
    """The circuit breaker is open; the call was not attempted."""

    status = 503
    permanent = True  # retrying against an open breaker is pointless; Dapr stops too

    def __init__(self, name: str) -> None:
        super().__init__(f"circuit breaker {name!r} is open")


@dataclass(slots=True)
class RetryPolicy:
    """Constant or exponential retries (Dapr's defaults)."""

    policy: str = "constant"
    duration: float = 5.0
    max_interval: float = 60.0
    max_retries: int = -1
    http_codes: set[int] | None = None
    grpc_codes: set[int] | None = None

    def delays(self) -> Iterable[float]:
        attempt = 0
        prev = 0.5
        while self.max_retries < 0 or attempt < self.max_retries:
            attempt += 1
            if self.policy == "exponential":
                yield min(prev, self.max_interval)
                prev = prev * random.uniform(0.5, 1.5) * 1.5
            else:
                yield self.duration

    def retriable(self, exc: BaseException) -> bool:
        if getattr(exc, "permanent", False):
            return False
        if self.http_codes is None and self.grpc_codes is None:
            return True
        status = getattr(exc, "status", None)
        if isinstance(status, int) and self.http_codes is not None and status in self.http_codes:
            return True
        gcode = getattr(exc, "grpc_status", None)
        return isinstance(gcode, int) and self.grpc_codes is not None and gcode in self.grpc_codes


@dataclass(slots=True)
class CircuitBreaker:
    """A circuit breaker that trips on a CEL expression over its counters."""

    name: str
    trip: str = "consecutiveFailures > 5"
    max_requests: int = 1
    interval: float = 0.0
    timeout: float = 60.0
    state: str = "closed"
    requests: int = 0
    total_successes: int = 0
    total_failures: int = 0
    consecutive_successes: int = 0
    consecutive_failures: int = 0
    opened_at: float = 0.0
    half_open_inflight: int = 0
    window_start: float = field(default_factory=time.monotonic)

    def _reset(self) -> None:
        self.requests = self.total_successes = self.total_failures = 0
        self.consecutive_successes = self.consecutive_failures = 0
        self.window_start = time.monotonic()

    def before(self) -> None:
        now = time.monotonic()
        if self.state == "open":
            if now - self.opened_at < self.timeout:
                raise CircuitOpenError(self.name)
            self.state = "half-open"
            self.half_open_inflight = 0
            self._reset()
        if self.state == "half-open":
            if self.half_open_inflight >= self.max_requests:
                raise CircuitOpenError(self.name)
            self.half_open_inflight += 1
        elif self.interval > 0 and now - self.window_start >= self.interval:
            self._reset()
        self.requests += 1

    def after(self, ok: bool) -> None:
        if ok:
            self.total_successes += 1
            self.consecutive_successes += 1
            self.consecutive_failures = 0
            if self.state == "half-open" and self.consecutive_successes >= self.max_requests:
                self.state = "closed"
                self._reset()
            return
        self.total_failures += 1
        self.consecutive_failures += 1
        self.consecutive_successes = 0
        if self.state == "half-open":
            self._open()
            return
        from wonderland.dapr.cel import compile_expression

        env = {
            "requests": self.requests,
            "totalSuccesses": self.total_successes,
            "totalFailures": self.total_failures,
            "consecutiveSuccesses": self.consecutive_successes,
            "consecutiveFailures": self.consecutive_failures,
        }
        if compile_expression(self.trip).matches(env):
            self._open()

    def _open(self) -> None:
        self.state = "open"
        self.opened_at = time.monotonic()


class ResiliencyObserver(Protocol):
    """Told when a policy is applied and when it acts (a retry, a timeout, a breaker change).

    ``policy`` is ``timeout``, ``retry`` or ``circuitbreaker``; ``status`` carries the
    breaker's new state. The sidecar's metrics implement it (daprd's ``dapr_resiliency_*``).
    """

    def resiliency_event(
        self,
        activated: bool,
        name: str,
        policy: str,
        direction: str,
        target: str,
        status: str = "",
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class PolicyTarget:
    """What a policy applies to, as daprd's resiliency metrics name it."""

    resiliency: str  # the Resiliency resource's name
    direction: str  # outbound or inbound
    target: str  # app_<id> or <componentType>_<name>


@dataclass(slots=True)
class Policy:
    """The timeout, retry and circuit breaker applying to one target."""

    timeout: float | None = None
    retry: RetryPolicy | None = None
    breaker: CircuitBreaker | None = None
    observer: ResiliencyObserver | None = None
    where: PolicyTarget | None = None

    def _event(self, activated: bool, policy: str, status: str = "") -> None:
        if self.observer is not None and self.where is not None:
            w = self.where
            self.observer.resiliency_event(
                activated, w.resiliency, policy, w.direction, w.target, status
            )

    def _applied(self) -> None:
        if self.timeout is not None:
            self._event(False, "timeout")
        if self.retry is not None:
            self._event(False, "retry")
        if self.breaker is not None:
            self._event(False, "circuitbreaker", self.breaker.state)

    @property
    def empty(self) -> bool:
        return self.timeout is None and self.retry is None and self.breaker is None

    async def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` under the policy; the last error is raised when retries run out."""
        if self.empty:
            return await fn()
        if self.observer is not None:
            self._applied()
        delays = iter(self.retry.delays()) if self.retry is not None else iter(())
        breaker = self.breaker
        while True:
            before = breaker.state if breaker is not None else ""
            try:
                if breaker is not None:
                    breaker.before()
                try:
                    if self.timeout is not None:
                        try:
                            result = await asyncio.wait_for(fn(), self.timeout)
                        except TimeoutError:
                            self._event(True, "timeout")
                            raise
                    else:
                        result = await fn()
                except BaseException as exc:
                    if breaker is not None and not isinstance(exc, asyncio.CancelledError):
                        breaker.after(False)
                    raise
                if breaker is not None:
                    breaker.after(True)
                return result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.retry is None or not self.retry.retriable(exc):
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise
                self._event(True, "retry")
                await asyncio.sleep(delay)
            finally:
                if breaker is not None and breaker.state != before:
                    self._event(True, "circuitbreaker", breaker.state)


def _retry_from(spec: dict[str, Any]) -> RetryPolicy:
    matching = spec.get("matching") or {}
    return RetryPolicy(
        policy=str(spec.get("policy", "constant")),
        duration=parse_duration(str(spec.get("duration", "5s"))),
        max_interval=parse_duration(str(spec.get("maxInterval", "60s"))),
        max_retries=int(spec.get("maxRetries", -1)),
        http_codes=_parse_codes(str(matching["httpStatusCodes"]))
        if "httpStatusCodes" in matching
        else None,
        grpc_codes=_parse_codes(str(matching["gRPCStatusCodes"]))
        if "gRPCStatusCodes" in matching
        else None,
    )


def validate_spec(spec: dict[str, Any], source: str) -> None:
    """Fail on unknown fields, bad durations and bad trip expressions in a Resiliency spec."""

    def bad(path: str, msg: str) -> ResourceError:
        return ResourceError(f"{source}: spec.{path}: {msg}")

    policies = spec.get("policies") or {}
    unknown = set(policies) - {"timeouts", "retries", "circuitBreakers"}
    if unknown:
        raise bad(
            "policies",
            f"unknown section(s) {sorted(unknown)}; use timeouts, retries, circuitBreakers",
        )
    for name, value in (policies.get("timeouts") or {}).items():
        try:
            parse_duration(str(value))
        except ValueError as exc:
            raise bad(f"policies.timeouts.{name}", str(exc)) from None
    retry_fields = {"policy", "duration", "maxInterval", "maxRetries", "matching"}
    for name, value in (policies.get("retries") or {}).items():
        extra = set(value or {}) - retry_fields
        if extra:
            raise bad(f"policies.retries.{name}", f"unknown field(s) {sorted(extra)}")
        if str((value or {}).get("policy", "constant")) not in {"constant", "exponential"}:
            raise bad(f"policies.retries.{name}.policy", "must be constant or exponential")
        try:
            _retry_from(value or {})
        except ValueError as exc:
            raise bad(f"policies.retries.{name}", str(exc)) from None
    cb_fields = {"maxRequests", "interval", "timeout", "trip"}
    for name, value in (policies.get("circuitBreakers") or {}).items():
        extra = set(value or {}) - cb_fields
        if extra:
            raise bad(f"policies.circuitBreakers.{name}", f"unknown field(s) {sorted(extra)}")
        from wonderland.dapr.cel import compile_expression

        try:
            compile_expression(str((value or {}).get("trip", "consecutiveFailures > 5")))
        except ValueError as exc:
            raise bad(f"policies.circuitBreakers.{name}.trip", str(exc)) from None
        for key in ("interval", "timeout"):
            if key in (value or {}):
                try:
                    parse_duration(str(value[key]))
                except ValueError as exc:
                    raise bad(f"policies.circuitBreakers.{name}.{key}", str(exc)) from None
    targets = spec.get("targets") or {}
    unknown = set(targets) - {"apps", "actors", "components"}
    if unknown:
        raise bad("targets", f"unknown section(s) {sorted(unknown)}; use apps, actors, components")
    known = {
        k: set(policies.get(s) or {})
        for k, s in (
            ("timeout", "timeouts"),
            ("retry", "retries"),
            ("circuitBreaker", "circuitBreakers"),
        )
    }

    def check_target(path: str, target: dict[str, Any]) -> None:
        for key, ref in (target or {}).items():
            if key in {"inbound", "outbound"}:
                check_target(f"{path}.{key}", ref)
            elif key in known:
                if str(ref) not in known[key]:
                    raise bad(f"{path}.{key}", f"policy {ref!r} is not defined under spec.policies")
            elif key not in {"circuitBreakerCacheSize", "circuitBreakerScope"}:
                raise bad(f"{path}.{key}", "unknown field; use timeout, retry, circuitBreaker")

    for section in ("apps", "actors", "components"):
        for name, target in (targets.get(section) or {}).items():
            check_target(f"targets.{section}.{name}", target)


_BLOCK_NAMES = {
    "state": "Statestore",
    "pubsub": "Pubsub",
    "secretstores": "Secretstore",
    "configuration": "Configuration",
    "bindings": "Binding",
    "lock": "Lock",
}
# daprd's resiliency.ComponentType values, used in the metrics' ``target`` tag.
_METRIC_KINDS = {
    "state": "statestore",
    "pubsub": "pubsub",
    "secretstores": "secretstore",
    "configuration": "configuration",
    "bindings": "binding",
    "lock": "lock",
}


class ResiliencyEngine:
    """Resolves and caches the :class:`Policy` for apps and components."""

    def __init__(
        self,
        specs: Iterable[dict[str, Any]] = (),
        names: Sequence[str] = (),
        observer: ResiliencyObserver | None = None,
    ) -> None:
        """``names`` are the Resiliency resources' names, in the order of ``specs``."""
        self.observer = observer
        self.origin: dict[tuple[str, str], str] = {}
        self.timeouts: dict[str, float] = {}
        self.retries: dict[str, RetryPolicy] = {}
        self.breakers: dict[str, dict[str, Any]] = {}
        self.apps: dict[str, dict[str, Any]] = {}
        self.components: dict[str, dict[str, Any]] = {}
        for i, spec in enumerate(specs):
            origin = names[i] if i < len(names) else "resiliency"
            pol = spec.get("policies") or {}
            for name, value in (pol.get("timeouts") or {}).items():
                self.timeouts[name] = parse_duration(str(value))
            for name, value in (pol.get("retries") or {}).items():
                self.retries[name] = _retry_from(value or {})
            for name, value in (pol.get("circuitBreakers") or {}).items():
                self.breakers[name] = dict(value or {})
            targets = spec.get("targets") or {}
            self.apps.update(targets.get("apps") or {})
            self.components.update(targets.get("components") or {})
            for app in targets.get("apps") or {}:
                self.origin[("app", str(app))] = origin
            for comp in targets.get("components") or {}:
                self.origin[("component", str(comp))] = origin
            self.origin.setdefault(("default", ""), origin)
        self._cache: dict[tuple[str, str, str], Policy] = {}

    def _build(self, key: str, target: dict[str, Any], defaults: list[str]) -> Policy:
        def pick(kind: str, table: dict[str, Any]) -> str | None:
            named = target.get(kind)
            if named and named in table:
                return str(named)
            for prefix in defaults:
                cand = f"Default{prefix}{kind[0].upper()}{kind[1:]}Policy"
                if cand in table:
                    return cand
            return None

        policy = Policy()
        t = pick("timeout", self.timeouts)
        if t is not None:
            policy.timeout = self.timeouts[t]
        r = pick("retry", self.retries)
        if r is not None:
            policy.retry = self.retries[r]
        c = pick("circuitBreaker", self.breakers)
        if c is not None:
            cb = self.breakers[c]
            policy.breaker = CircuitBreaker(
                name=f"{key}/{c}",
                trip=str(cb.get("trip", "consecutiveFailures > 5")),
                max_requests=int(cb.get("maxRequests", 1)),
                interval=parse_duration(str(cb.get("interval", "0s"))),
                timeout=parse_duration(str(cb.get("timeout", "60s"))),
            )
        return policy

    def app(self, app_id: str) -> Policy:
        """The policy for calls to the app ``app_id`` (service invocation, delivery)."""
        key = ("app", app_id, "")
        if key not in self._cache:
            policy = self._build(app_id, self.apps.get(app_id) or {}, ["App", ""])
            self._watch(policy, ("app", app_id), "outbound", f"app_{app_id}")
            self._cache[key] = policy
        return self._cache[key]

    def _watch(self, policy: Policy, origin: tuple[str, str], direction: str, target: str) -> None:
        if self.observer is None or policy.empty:
            return
        name = self.origin.get(origin) or self.origin.get(("default", ""), "")
        policy.observer = self.observer
        policy.where = PolicyTarget(name, direction, target)

    def component(self, name: str, component_type: str, direction: str) -> Policy:
        """The policy for a component; ``direction`` is ``outbound`` or ``inbound``."""
        key = ("component", name, direction)
        if key not in self._cache:
            target = (self.components.get(name) or {}).get(direction) or {}
            block = _BLOCK_NAMES.get(component_type.split(".", 1)[0], "")
            d = direction.capitalize()
            policy = self._build(
                name, target, [f"{block}Component{d}", f"Component{d}", "Component", ""]
            )
            kind = _METRIC_KINDS.get(component_type.split(".", 1)[0], "component")
            self._watch(policy, ("component", name), direction, f"{kind}_{name}")
            self._cache[key] = policy
        return self._cache[key]

    def names(self) -> list[str]:
        return sorted(set(self.timeouts) | set(self.retries) | set(self.breakers))
