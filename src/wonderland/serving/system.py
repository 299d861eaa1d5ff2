"""The serving system: gateway, supervisor, image builds and the autoscaler, wired together.

One object per daemon. The reconcilers (``reconcilers.py``) read and write the store and
call into this object; the gateway calls back when a request needs a revision at zero
(the activator's poke) and the supervisor when a replica's readiness changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wonderland.autoscaler import Decision, RevisionScaler
from wonderland.autoscaler.exporter import AutoscalerMetrics, ScalerSnapshot
from wonderland.gateway import GatewayServer, RevisionTarget, RoutingTable
from wonderland.gateway.limits import GatewayLimits
from wonderland.gateway.tracing import GatewayTracing
from wonderland.runtime.env import proxy_env
from wonderland.runtime.images import BuiltImage
from wonderland.runtime.kubelet import Kubelet
from wonderland.runtime.supervisor import ReplicaTemplate, Supervisor
from wonderland.serving.config import ServingConfig
from wonderland.tracing.store import TraceStore

if TYPE_CHECKING:
    from wonderland.platform import Platform

__all__ = ["CONFIGURATIONS", "REVISIONS", "ROUTES", "SERVICES", "BuildState", "ServingSystem"]

log = logging.getLogger("wonderland.serving")

SERVICES = "services.serving.knative.dev"
CONFIGURATIONS = "configurations.serving.knative.dev"
REVISIONS = "revisions.serving.knative.dev"
ROUTES = "routes.serving.knative.dev"


@dataclass
class BuildState:
    """An image build for one revision: the task, its result or error, the last progress."""

    task: asyncio.Task[None] | None = None
    image: BuiltImage | None = None
    error: tuple[str, str] | None = None
    progress: str = ""


@dataclass
class Rollout:
    """A gradual move of a configuration target from one revision to the next."""

    old: str
    new: str
    started: float
    duration: float


@dataclass
class RevisionRuntime:
    """A revision's process-side state: its autoscaler, replica template and failure."""

    scaler: RevisionScaler
    template: ReplicaTemplate | None = None
    failed: tuple[str, str] | None = None
    scaled_to: int = -1
    decision: Decision | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ServingSystem:
    """Holds the data plane and process state the serving reconcilers drive."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        settings = platform.settings
        self.store = platform.store
        self.controllers = platform.controllers
        self.config = ServingConfig(domain=settings.domain)
        self.table = RoutingTable()
        self.table.on_new_revision = self._new_target
        store = platform.get(TraceStore)
        sink = store.record if store is not None and settings.tracing == "on" else None
        self.gateway = GatewayServer(
            self.table,
            settings.bind,
            settings.gateway_port,
            GatewayTracing(settings.tracing, sink),
            legacy_metrics=settings.metrics_legacy == "on",
            limits=GatewayLimits(
                max_body_bytes=settings.gateway_max_body_bytes,
                header_timeout=settings.gateway_header_timeout,
                idle_timeout=settings.gateway_idle_timeout,
                queue_max_bytes=settings.gateway_queue_max_bytes,
            ),
        )
        # the autoscaler's metrics are served with the gateway's (one scrape target)
        self.autoscaler_metrics = AutoscalerMetrics(self)
        self.gateway.metrics.registry.register(self.autoscaler_metrics)  # type: ignore[arg-type]
        self.gateway.metrics.add_legacy(self.autoscaler_metrics.legacy)
        # the port is claimed now, before any replica asks the kernel for a free one
        self.gateway.bind()
        port = self.gateway.port
        gateway_host = "127.0.0.1" if settings.bind in ("0.0.0.0", "::") else settings.bind
        self.gateway_url = f"http://{gateway_host}:{port}"
        kubelet = platform.require(Kubelet)
        # every pod reaches cluster-local URLs through the gateway, as through a cluster's DNS
        kubelet.env.update(proxy_env(self.gateway_url))
        self.supervisor = Supervisor(kubelet, platform.store, on_change=self._runtime_changed)
        self.supervisor.drainer = self._drain
        self.resolver = kubelet.resolver
        self.builds: dict[str, BuildState] = {}
        self.runtimes: dict[str, RevisionRuntime] = {}
        self.reachable: dict[str, set[str]] = {}
        self.rollouts: dict[tuple[str, str], Rollout] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self.clock = time.monotonic

    # -- platform service --
    async def start(self) -> None:
        await self.gateway.start()
        self._loop_task = asyncio.get_running_loop().create_task(self._autoscale_loop())

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for state in self.builds.values():
            if state.task is not None:
                state.task.cancel()
        await self.gateway.stop()
        await self.supervisor.stop()

    # -- helpers for reconcilers --
    def is_reachable(self, key: str) -> bool:
        return any(key in keys for keys in self.reachable.values())

    def enqueue_revision(self, key: str) -> None:
        ns, _, name = key.partition("/")
        self.controllers.enqueue(REVISIONS, ns, name)

    def scale(self, key: str, desired: int) -> None:
        rt = self.runtimes.get(key)
        if rt is None or rt.template is None:
            return
        if rt.failed is not None:
            desired = 0
        target = self.table.revisions.get(key)
        if target is not None:
            target.scaled_to_zero = desired == 0
        if desired != rt.scaled_to or len(self.supervisor.replicas(key)) != desired:
            rt.scaled_to = desired
            self.supervisor.scale(rt.template, desired)
            self.enqueue_revision(key)

    def forget_revision(self, key: str) -> None:
        self.runtimes.pop(key, None)
        state = self.builds.pop(key, None)
        if state is not None and state.task is not None:
            state.task.cancel()
        ns, _, name = key.partition("/")
        self.table.remove_revision(ns, name)
        self.autoscaler_metrics.forget(ns, name)
        task = asyncio.get_running_loop().create_task(self.supervisor.stop_revision(key))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    def scaler_snapshots(self) -> list[ScalerSnapshot]:
        """The autoscaler's view of every revision (``ScalerSource``, for its metrics)."""
        out: list[ScalerSnapshot] = []
        for key, rt in list(self.runtimes.items()):
            target = self.table.revisions.get(key)
            if target is None:
                continue
            replicas = self.supervisor.replicas(key)
            ready = sum(1 for r in replicas if r.ready)
            observed = rt.scaler.decider.observed
            decision = rt.decision
            spec = rt.scaler.spec
            out.append(
                ScalerSnapshot(
                    namespace=target.namespace,
                    service=target.service,
                    configuration=target.configuration,
                    revision=target.name,
                    metric=spec.metric,
                    desired=rt.scaler.desired,
                    requested=max(0, rt.scaled_to),
                    ready=ready,
                    not_ready=len(replicas) - ready,
                    pending=sum(1 for r in replicas if not r.ready and not r.ever_ready),
                    terminating=sum(1 for e in target.draining if e.in_flight > 0),
                    stable=observed[0] if observed else None,
                    panic=observed[1] if observed else None,
                    target=spec.target_value,
                    excess_burst_capacity=decision.excess_burst_capacity if decision else 0,
                    panicking=decision.panicking if decision else False,
                )
            )
        return out

    # -- callbacks --
    def _new_target(self, target: RevisionTarget) -> None:
        target.on_demand = self._on_demand

    def _on_demand(self, target: RevisionTarget) -> None:
        """The activator's poke: a request is held for a revision with no ready replica."""
        rt = self.runtimes.get(target.key)
        if rt is None or rt.failed is not None:
            return
        desired = rt.scaler.poke(self.clock())
        if rt.template is not None:
            self.scale(target.key, max(desired, len(self.supervisor.replicas(target.key))))

    def _runtime_changed(self, key: str) -> None:
        ns, _, name = key.partition("/")
        target = self.table.revisions.get(key)
        if target is not None:
            ready = self.supervisor.ready_endpoints(key)
            target.set_endpoints(ready)
            failure = self.supervisor.failure(key)
            if not ready and failure is not None and target.waiters:
                # Held requests would only time out: say why now.
                target.fail_waiters(
                    503, f"revision {name} could not start a replica: {failure[1] or failure[0]}"
                )
        self.controllers.enqueue(REVISIONS, ns, name)

    async def _drain(self, key: str, replica: str) -> None:
        target = self.table.revisions.get(key)
        while target is not None and target.in_flight_on(replica) > 0:
            await asyncio.sleep(0.02)

    # -- the autoscaler: scrape every second, decide every tick --
    async def _autoscale_loop(self) -> None:
        last_tick = 0.0
        while True:
            await asyncio.sleep(1.0)
            try:
                now = self.clock()
                for key, rt in list(self.runtimes.items()):
                    target = self.table.revisions.get(key)
                    if target is None:
                        continue
                    began = time.perf_counter()
                    concurrency, rps = target.take_stats()
                    self.autoscaler_metrics.observe_scrape(
                        target.namespace, target.name, time.perf_counter() - began
                    )
                    rt.scaler.record(now, concurrency if rt.scaler.spec.metric != "rps" else rps)
                if now - last_tick >= self.config.autoscaler.tick_interval - 0.01:
                    last_tick = now
                    for key, rt in list(self.runtimes.items()):
                        if rt.template is None or rt.failed is not None:
                            continue
                        ready = len(self.supervisor.ready_endpoints(key))
                        decision = rt.scaler.decide(now, ready, self.is_reachable(key))
                        rt.decision = decision
                        self.scale(key, decision.desired)
            except Exception:
                log.exception("autoscaler tick failed")
