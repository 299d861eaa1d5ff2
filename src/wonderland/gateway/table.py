"""The in-memory routing table the serving controllers fill and the proxy reads.

A ``HostRoute`` maps one Host name to a weighted split of ``RevisionTarget`` objects
(plus tag targets for the ``Knative-Serving-Tag`` header). A ``RevisionTarget`` is the
per-revision queue-proxy and activator: ready endpoints, the ``containerConcurrency``
limit with a queue, the response-start timeout, request statistics for the autoscaler
and the hook that wakes a revision at zero.
"""

from __future__ import annotations

import bisect
import collections
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ACTIVATOR_QUEUE_BYTES",
    "ACTIVATOR_QUEUE_DEPTH",
    "COLD_START_LOG",
    "ColdStart",
    "Endpoint",
    "HostRoute",
    "PathRoute",
    "RequestRecorder",
    "RevisionStats",
    "RevisionTarget",
    "RoutingTable",
    "Waiter",
]

# The activator's per-revision breaker holds at most this many requests
# (Knative pkg/activator/net/throttler.go).
ACTIVATOR_QUEUE_DEPTH = 10000
# ... and at most this many request bytes (GatewayLimits.queue_max_bytes sets it).
ACTIVATOR_QUEUE_BYTES = 256 * 1024 * 1024
# The routing table remembers this many recent cold starts (the console lists them).
COLD_START_LOG = 200


@dataclass(frozen=True)
class ColdStart:
    """One scale-from-zero caused by a request: when it ended (unix seconds) and how long
    the first held request waited for a ready replica."""

    namespace: str
    revision: str
    at: float
    seconds: float


class Waiter(Protocol):
    """Something waiting for an endpoint of a revision (a held request) and the request
    bytes it holds (``size``: what the queue's byte budget counts; it may grow while the
    request is queued, the revision's ``queued_bytes`` with it)."""

    @property
    def size(self) -> int: ...

    def grant(self, endpoint: Endpoint) -> None: ...

    def fail(self, status: int, message: str) -> None: ...


class RequestRecorder(Protocol):
    """Where a revision's request metrics go (``wonderland.gateway.metrics``): one object
    per revision, bound once, so the hot path builds no labels."""

    def request(
        self, endpoint: Endpoint | None, status: int, seconds: float, app_seconds: float
    ) -> None:
        """A request finished: ``status`` answered after ``seconds`` at the gateway, of
        which ``app_seconds`` at ``endpoint`` (-1 and None when no replica answered)."""

    def held(self, seconds: float) -> None:
        """A request waited ``seconds`` in the activator or containerConcurrency queue."""

    def cold_start(self, seconds: float) -> None:
        """A held request woke the revision from zero; a replica was ready after ``seconds``."""


class Endpoint:
    """One ready replica: address, in-flight count and a pool of idle upstream connections."""

    __slots__ = ("alive", "h2", "host", "idle", "in_flight", "name", "port", "series")

    def __init__(self, host: str, port: int, name: str = "") -> None:
        self.host = host
        self.port = port
        self.name = name or f"{host}:{port}"
        self.in_flight = 0
        self.idle: list[Any] = []
        self.h2: Any = None  # the shared HTTP/2 connection to an h2c replica
        self.alive = True
        self.series: dict[int, Any] = {}  # status code -> the recorder's series for this replica

    def close_idle(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()
        if self.h2 is not None:
            self.h2.close()
            self.h2 = None

    def __repr__(self) -> str:
        return f"Endpoint({self.name}, in_flight={self.in_flight})"


@dataclass
class RevisionStats:
    """Counters since the last ``take()``: time-weighted concurrency and requests."""

    requests: int = 0
    area: float = 0.0
    since: float = field(default_factory=time.monotonic)


class RevisionTarget:
    """Queue-proxy and activator state for one revision."""

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        container_concurrency: int = 0,
        timeout: float = 300.0,
        h2c: bool = False,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.key = f"{namespace}/{name}"
        # the Knative Service and Configuration the revision belongs to (metric labels)
        self.service = ""
        self.configuration = ""
        self.container_concurrency = container_concurrency
        self.timeout = timeout
        self.idle_timeout = 0.0  # idleTimeoutSeconds; 0 = none
        self.h2c = h2c
        self.endpoints: list[Endpoint] = []
        self.draining: list[Endpoint] = []  # removed, with requests still in flight
        self.removed = False  # the revision was deleted
        self.waiters: collections.deque[Waiter] = collections.deque()
        self.max_queue = ACTIVATOR_QUEUE_DEPTH
        self.max_queue_bytes = ACTIVATOR_QUEUE_BYTES
        self.queued_bytes = 0
        self.in_flight = 0
        self._rr = 0
        self._stats = RevisionStats()
        self._last_change = time.monotonic()
        # Activator hook: called when a request arrives and there is no endpoint.
        self.on_demand: Callable[[RevisionTarget], None] | None = None
        self.cold_since: float | None = None
        # whether no replica is asked for (the autoscaler keeps it): a request held then is
        # a cold start; one held while the first replicas start anyway is not
        self.scaled_to_zero = True
        self.on_cold_start: Callable[[RevisionTarget, float], None] | None = None
        self.recorder: RequestRecorder | None = None
        self.cold_log: collections.deque[ColdStart] | None = None  # the table's, when bound

    # -- statistics (Knative's queue-proxy reports average concurrency and RPS) --
    def begin(self) -> None:
        now = time.monotonic()
        stats = self._stats
        stats.area += self.in_flight * (now - self._last_change)
        self._last_change = now
        self.in_flight += 1
        stats.requests += 1

    def end(self) -> None:
        now = time.monotonic()
        self._stats.area += self.in_flight * (now - self._last_change)
        self._last_change = now
        self.in_flight -= 1

    def take_stats(self) -> tuple[float, float]:
        """(average concurrency, requests per second) since the previous call."""
        now = time.monotonic()
        stats = self._stats
        stats.area += self.in_flight * (now - self._last_change)
        self._last_change = now
        elapsed = max(1e-6, now - stats.since)
        result = (stats.area / elapsed, stats.requests / elapsed)
        self._stats = RevisionStats(since=now)
        return result

    # -- endpoints and the concurrency breaker --
    def acquire(self) -> Endpoint | None:
        """An endpoint with free capacity, or None (then the caller waits)."""
        endpoints = self.endpoints
        n = len(endpoints)
        if n == 0:
            return None
        cc = self.container_concurrency
        if n == 1:
            ep = endpoints[0]
            if cc and ep.in_flight >= cc:
                return None
            ep.in_flight += 1
            return ep
        if cc == 0:
            # Unlimited concurrency: the better of two choices by in-flight count.
            a = endpoints[self._rr % n]
            self._rr += 1
            b = endpoints[self._rr % n]
            ep = a if a.in_flight <= b.in_flight else b
            ep.in_flight += 1
            return ep
        start = 0 if cc <= 3 else self._rr
        for i in range(n):
            ep = endpoints[(start + i) % n]
            if ep.in_flight < cc:
                self._rr = start + i + 1
                ep.in_flight += 1
                return ep
        return None

    def wait(self, waiter: Waiter) -> bool:
        """Queue a request until an endpoint frees up; False when the queue is full (in
        requests or in bytes) or the revision is gone (``removed``)."""
        if (
            len(self.waiters) >= self.max_queue
            or self.queued_bytes + waiter.size > self.max_queue_bytes
            or self.removed
        ):
            return False
        self.waiters.append(waiter)
        self.queued_bytes += waiter.size
        if not self.endpoints:
            if self.cold_since is None and self.scaled_to_zero:
                self.cold_since = time.monotonic()
            if self.on_demand is not None:
                self.on_demand(self)
        return True

    def queue_full_message(self) -> str:
        """What a request that finds the queue full is told (a 503, as Knative's
        activator answers ``pending request queue full``)."""
        return (
            f"pending request queue full: revision {self.key} holds {len(self.waiters)} "
            f"requests ({self.queued_bytes} bytes) already; retry later, or raise "
            "containerConcurrency or max-scale"
        )

    def cancel(self, waiter: Waiter) -> None:
        try:
            self.waiters.remove(waiter)
        except ValueError:
            return
        self.queued_bytes -= waiter.size

    def cancel_where(self, match: Callable[[Waiter], bool]) -> None:
        """Take the held requests ``match`` picks out of the queue (their client left)."""
        for waiter in [w for w in self.waiters if match(w)]:
            self.cancel(waiter)

    def release(self, ep: Endpoint) -> None:
        """A request on ``ep`` is done: hand the slot to the next waiter if any."""
        ep.in_flight -= 1
        if self.waiters:
            self._drain()

    def _drain(self) -> None:
        while self.waiters:
            ep = self.acquire()
            if ep is None:
                return
            waiter = self.waiters.popleft()
            self.queued_bytes -= waiter.size
            waiter.grant(ep)

    def set_endpoints(self, addresses: Iterable[tuple[str, int, str]]) -> None:
        """Replace the ready endpoints (host, port, replica name); keeps existing ones."""
        current = {(e.host, e.port): e for e in self.endpoints}
        new: list[Endpoint] = []
        for host, port, name in addresses:
            ep = current.pop((host, port), None) or Endpoint(host, port, name)
            new.append(ep)
        self.draining = [e for e in self.draining if e.in_flight > 0]
        for gone in current.values():
            gone.alive = False
            gone.close_idle()
            if gone.in_flight > 0:
                self.draining.append(gone)
        self.endpoints = new
        if new and self.cold_since is not None:
            took = time.monotonic() - self.cold_since
            self.cold_since = None
            if self.recorder is not None:
                self.recorder.cold_start(took)
            if self.cold_log is not None:
                self.cold_log.append(ColdStart(self.namespace, self.name, time.time(), took))
            if self.on_cold_start is not None:
                self.on_cold_start(self, took)
        if new and self.waiters:
            self._drain()

    def in_flight_on(self, replica: str) -> int:
        """Requests still being answered by the replica named ``replica``."""
        return sum(e.in_flight for e in [*self.endpoints, *self.draining] if e.name == replica)

    def fail_waiters(self, status: int, message: str) -> None:
        """Answer every held request with ``status`` (e.g. the revision cannot start)."""
        waiters, self.waiters = self.waiters, collections.deque()
        self.queued_bytes = 0
        for waiter in waiters:
            waiter.fail(status, message)

    def __repr__(self) -> str:
        return f"RevisionTarget({self.key}, endpoints={len(self.endpoints)})"


class HostRoute:
    """A weighted split of revisions behind one Host, plus tag targets."""

    __slots__ = ("_cum", "_targets", "route_key", "tags", "total")

    def __init__(
        self,
        route_key: str,
        split: list[tuple[RevisionTarget, int]],
        tags: dict[str, RevisionTarget] | None = None,
    ) -> None:
        self.route_key = route_key
        weighted = [(t, w) for t, w in split if w > 0]
        self._targets = [t for t, _ in weighted]
        self._cum: list[int] = []
        total = 0
        for _, w in weighted:
            total += w
            self._cum.append(total)
        self.total = total
        self.tags = tags or {}

    def pick(self) -> RevisionTarget | None:
        targets = self._targets
        if len(targets) == 1:
            return targets[0]
        if not targets:
            return None
        return targets[bisect.bisect_right(self._cum, random.randrange(self.total))]

    @property
    def targets(self) -> list[RevisionTarget]:
        return list(self._targets)


class PathRoute:
    """A path prefix under one host that goes to its own target, for signed-in clients only
    (a notebook at ``/notebook/<ns>/<name>/`` on the console's host).

    ``allow(cookie_header)`` says whether the client's session may pass; a refused ``GET``
    is redirected to ``signin`` (with ``?next=``), anything else answers 401. ``headers``
    replace the client's ``Authorization`` on the way in (the notebook server's token).
    """

    __slots__ = ("allow", "headers", "prefix", "signin", "target")

    def __init__(
        self,
        prefix: str,
        target: RevisionTarget,
        allow: Callable[[str], bool],
        headers: Iterable[tuple[bytes, bytes]] = (),
        signin: str = "/signin",
    ) -> None:
        self.prefix = prefix.encode("latin-1")
        self.target = target
        self.allow = allow
        self.headers = list(headers)
        self.signin = signin


class RoutingTable:
    """Host -> HostRoute, and the RevisionTarget of every known revision.

    Controllers call ``set_route``/``remove_route`` and ``revision(...)``; the proxy calls
    ``lookup(host)``. ``tag_header_routing`` mirrors ``config-features``'
    ``tag-header-based-routing``.
    """

    def __init__(self) -> None:
        self.hosts: dict[str, HostRoute] = {}
        self._hosts_b: dict[bytes, HostRoute] = {}  # the hot path looks up raw Host bytes
        self.revisions: dict[str, RevisionTarget] = {}
        self._route_hosts: dict[str, list[str]] = {}
        self.tag_header_routing = True
        self.on_new_revision: Callable[[RevisionTarget], None] | None = None
        # the newest cold starts of every revision, oldest first (bounded)
        self.cold_starts: collections.deque[ColdStart] = collections.deque(maxlen=COLD_START_LOG)
        # host (lower case, no port) -> path routes; empty unless something uses them
        self.paths: dict[bytes, list[PathRoute]] = {}

    def revision(self, namespace: str, name: str) -> RevisionTarget:
        key = f"{namespace}/{name}"
        target = self.revisions.get(key)
        if target is None:
            target = RevisionTarget(namespace, name)
            target.cold_log = self.cold_starts
            self.revisions[key] = target
            if self.on_new_revision is not None:
                self.on_new_revision(target)
        return target

    def remove_revision(self, namespace: str, name: str) -> None:
        target = self.revisions.pop(f"{namespace}/{name}", None)
        if target is not None:
            target.removed = True
            target.set_endpoints([])
            target.fail_waiters(503, f"revision {namespace}/{name} was deleted")

    def set_route(self, route_key: str, hosts: dict[str, HostRoute]) -> None:
        """Atomically replace every host of one Route (``namespace/name``)."""
        for host in self._route_hosts.get(route_key, []):
            existing = self.hosts.get(host)
            if host not in hosts and existing is not None and existing.route_key == route_key:
                del self.hosts[host]
        for host, route in hosts.items():
            self.hosts[host.lower()] = route
        self._route_hosts[route_key] = [h.lower() for h in hosts]
        self._hosts_b = {h.encode("latin-1"): r for h, r in self.hosts.items()}

    def remove_route(self, route_key: str) -> None:
        for host in self._route_hosts.pop(route_key, []):
            route = self.hosts.get(host)
            if route is not None and route.route_key == route_key:
                del self.hosts[host]
        self._hosts_b = {h.encode("latin-1"): r for h, r in self.hosts.items()}

    def set_path_route(self, host: str, route: PathRoute) -> None:
        """Add or replace the route of ``route.prefix`` under ``host``."""
        key = host.lower().encode("latin-1")
        kept = [r for r in self.paths.get(key, []) if r.prefix != route.prefix]
        # longest prefix first, so /notebook/ns/ab/ never catches /notebook/ns/abc/
        self.paths[key] = sorted([*kept, route], key=lambda r: -len(r.prefix))

    def remove_path_route(self, host: str, prefix: str) -> None:
        key = host.lower().encode("latin-1")
        wanted = prefix.encode("latin-1")
        kept = [r for r in self.paths.get(key, []) if r.prefix != wanted]
        if kept:
            self.paths[key] = kept
        else:
            self.paths.pop(key, None)

    def path_route(self, host: bytes, url: bytes) -> PathRoute | None:
        """The path route ``url`` falls under at ``host``, or None."""
        name = host.lower()
        colon = name.rfind(b":")
        if colon > 0 and b"]" not in name[colon:]:
            name = name[:colon]
        for route in self.paths.get(name, ()):
            if url.startswith(route.prefix):
                return route
        return None

    def lookup_bytes(self, host: bytes) -> HostRoute | None:
        """``lookup`` for the raw Host header (exact match first, no decoding)."""
        route = self._hosts_b.get(host)
        if route is None:
            route = self.lookup(host.decode("latin-1"))
        return route

    def lookup(self, host: str) -> HostRoute | None:
        route = self.hosts.get(host)
        if route is None:
            host = host.lower()
            colon = host.rfind(":")
            if colon > 0 and "]" not in host[colon:]:
                host = host[:colon]
            route = self.hosts.get(host)
            if route is None and host.endswith("."):
                route = self.hosts.get(host[:-1])
        return route
