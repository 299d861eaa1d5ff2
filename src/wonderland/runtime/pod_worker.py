"""One pod on the node, from scheduling to its last process: the kubelet's pod worker.

A :class:`PodWorker` takes a Pod through what a kubelet does with it:

1. **schedule**: admitted by the :class:`~wonderland.runtime.scheduler.Scheduler` (or
   ``Pending``/``Unschedulable`` until it fits; ``SchedulingGated`` while it has gates);
2. **volumes**: set up by the :class:`~wonderland.runtime.volumes.VolumeManager`
   (``ContainerCreating`` and a ``FailedMount`` event while a source is missing);
3. **init containers** one after the other; sidecars (``restartPolicy: Always`` init
   containers) are started and kept running;
4. **containers**, each restarted according to the pod's ``restartPolicy`` with the
   kubelet's back-off (``CrashLoopBackOff``), probed (startup, readiness, liveness), its
   memory limit enforced (``OOMKilled``);
5. **termination** when the pod is deleted, its ``activeDeadlineSeconds`` passes or it is
   evicted: ``preStop``, the stop signal, ``SIGKILL`` after the grace period, sidecars last.

The worker writes the pod's ``status`` as the kubelet does (phase, conditions, container
statuses with ``state``/``lastState``/``restartCount``, ``podIP``, ``qosClass``) and records
the kubelet's events. The :class:`PodHost` protocol is everything it needs from the kubelet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Protocol

from wonderland.api.schemas.core import PodObject
from wonderland.errors import WonderlandError
from wonderland.runtime import cgroups, pod_status, sandbox
from wonderland.runtime.container_runner import ContainerRunner, now
from wonderland.runtime.images import ImageResolver
from wonderland.runtime.launch import Waiting, plan_launch
from wonderland.runtime.scheduler import Admission, Scheduler
from wonderland.runtime.spawner import Spawner
from wonderland.runtime.volumes import (
    PreparedVolume,
    VolumeError,
    VolumeManager,
    pod_dir_name,
)

__all__ = ["PodHost", "PodWorker", "now"]

log = logging.getLogger("wonderland.runtime.kubelet")

Obj = dict[str, Any]

# the kubelet's crash-loop back-off: doubled up to 5 minutes, forgotten after 10 minutes up
MAX_CRASHLOOP_BACKOFF = 300.0
BACKOFF_RESET = 600.0


class PodHost(Protocol):
    """What a pod worker needs from its kubelet."""

    state_dir: Path
    scheduler: Scheduler
    volumes: VolumeManager
    resolver: ImageResolver
    cgroups: cgroups.CgroupDriver
    sandbox: sandbox.SandboxSupport
    backoff: float
    spawner: Spawner | None

    def base_env(self) -> dict[str, str]: ...

    def pod_env(self, annotations: Mapping[str, str]) -> dict[str, str]: ...

    def lookup(self, resource: str, namespace: str, name: str) -> Obj | None: ...

    def publish(self, worker: PodWorker) -> None: ...

    def event(self, pod: Obj, type: str, reason: str, message: str, component: str) -> None: ...

    def released(self, worker: PodWorker) -> None: ...

    async def pre_stop(self, pod: Obj) -> None: ...


class PodWorker:
    """Runs one pod (see the module docstring)."""

    def __init__(self, host: PodHost, raw: Obj) -> None:
        self.host = host
        self.raw = raw
        self.pod = PodObject.model_validate(raw)
        meta = raw["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        spec = self.pod.spec
        self.restart_policy = spec.restartPolicy or "Always"
        self.init: list[ContainerRunner] = [
            ContainerRunner(c, "sidecar" if c.restartPolicy == "Always" else "init")
            for c in spec.initContainers or []
        ]
        self.apps: list[ContainerRunner] = [ContainerRunner(c, "app") for c in spec.containers]
        for runner in self.init:
            runner.state = {"waiting": {"reason": "PodInitializing"}}
        if self.init:
            for runner in self.apps:
                runner.state = {"waiting": {"reason": "PodInitializing"}}
        self.phase = "Pending"
        self.reason = ""
        self.message = ""
        self.conditions = pod_status.Conditions()
        self.admission: Admission | None = None
        self.mounted: dict[str, PreparedVolume] = {}
        self.start_time: str | None = None
        self.sandbox_ready = False
        self.initialized = not self.init
        self.terminating = asyncio.Event()
        # 0 stops at once (SIGKILL with no grace), as the field's documentation says;
        # unset is Kubernetes' default of 30 s
        grace = spec.terminationGracePeriodSeconds
        self.grace = 30.0 if grace is None else float(grace)
        self.delete_after = False
        self.disruption: tuple[str, str] | None = None
        self.finished = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._set_condition("PodScheduled", "False", "", "")

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        """Something the pod may wait for changed (a ConfigMap, free resources)."""
        self._wake.set()

    def update(self, raw: Obj) -> None:
        """The stored pod changed (labels, annotations, gates, deletion)."""
        self.raw = raw
        with contextlib.suppress(Exception):
            self.pod = PodObject.model_validate(raw)
        if self.sandbox_ready:
            self.refresh_volumes()
        meta = raw["metadata"]
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            self.terminate(float(grace) if grace is not None else self.grace, delete=True)
        self.wake()

    def refresh_volumes(self) -> None:
        """Rewrite the volumes whose sources may have changed (ConfigMaps, Secrets, the
        downward API, tokens due for renewal)."""
        with contextlib.suppress(Exception):
            self.host.volumes.refresh(self.pod, self._fields())

    def terminate(
        self, grace: float, delete: bool = False, reason: str = "", message: str = ""
    ) -> None:
        """Stop the pod (the deletion, a deadline or an eviction asks for it)."""
        if delete:
            self.delete_after = True
        if reason and not self.reason:
            self.reason = reason
            self.message = message
        if self.terminating.is_set():
            self.grace = min(self.grace, grace)
            return
        self.grace = grace
        self.terminating.set()
        self._wake.set()

    async def wait(self) -> None:
        await self.finished.wait()

    async def _sleep(self, seconds: float | None) -> None:
        """Wait ``seconds`` (None: until woken), cut short by a wake-up or termination."""
        self._wake.clear()
        waiters = [asyncio.ensure_future(self._wake.wait())]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiters[0]), seconds)
        for w in waiters:
            w.cancel()

    async def _run(self) -> None:
        lifecycle = asyncio.ensure_future(self._lifecycle())
        stop = asyncio.ensure_future(self.terminating.wait())
        try:
            await asyncio.wait({lifecycle, stop}, return_when=asyncio.FIRST_COMPLETED)
            if self.terminating.is_set():
                await self._stop_all(self.grace)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(lifecycle), 5.0)
                if not lifecycle.done():
                    lifecycle.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await lifecycle
            else:
                with contextlib.suppress(Exception):
                    lifecycle.result()
                await self._stop_all(self.grace, sidecars_only=True)
        except asyncio.CancelledError:
            await self._stop_all(0)
            raise
        except Exception:
            log.exception("pod %s/%s failed in the kubelet", self.namespace, self.name)
        finally:
            stop.cancel()
            for task in list(self._tasks):
                task.cancel()
            self._finish()

    def _finish(self) -> None:
        if self.phase not in ("Succeeded", "Failed"):
            self.phase = self._terminal_phase()
        for runner in [*self.init, *self.apps]:
            runner.ready = False
            if "running" in runner.state:
                runner.state = {"terminated": {"exitCode": 137, "reason": "Error"}}
        self._update_conditions()
        if self.admission is not None:
            self.host.scheduler.release(self.uid)
            self.admission = None
        self.host.publish(self)
        self.finished.set()
        self.host.released(self)

    def _terminal_phase(self) -> str:
        if self.reason in ("DeadlineExceeded", "Evicted"):
            return "Failed"
        codes = [
            (r.state.get("terminated") or {}).get("exitCode")
            for r in self.apps
            if r.state.get("terminated") is not None
        ]
        started = [r for r in self.apps if r.restart_count or r.state.get("terminated")]
        if started and len(codes) == len(self.apps) and all(c == 0 for c in codes):
            return "Succeeded"
        return "Failed"

    async def _lifecycle(self) -> None:
        if not await self._schedule():
            return
        self.start_time = self.start_time or now()
        self._update_conditions()
        self.host.publish(self)
        deadline = self.pod.spec.activeDeadlineSeconds
        if deadline is not None:
            self._spawn(self._deadline(float(deadline)))
        if not await self._setup_volumes():
            return
        if not await self._run_init():
            return
        await self._run_apps()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deadline(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        message = "Pod was active on the node longer than the specified deadline"
        self.host.event(self.raw, "Normal", "DeadlineExceeded", message, "kubelet")
        self.terminate(self.grace, reason="DeadlineExceeded", message=message)

    # -- scheduling ------------------------------------------------------------------

    async def _schedule(self) -> bool:
        scheduler = self.host.scheduler
        reported = ""
        while not self.terminating.is_set():
            if self.pod.spec.schedulingGates:
                if reported != "gated":
                    reported = "gated"
                    self._set_condition(
                        "PodScheduled",
                        "False",
                        "SchedulingGated",
                        "Scheduling is blocked due to non-empty scheduling gates",
                    )
                    self.host.publish(self)
                await self._sleep(None)
                continue
            claim_problem = self._claims_problem()
            if claim_problem is not None:
                result: Admission | list[str] = [claim_problem]
            else:
                try:
                    result = scheduler.admit(self.uid, self.pod.spec)
                except WonderlandError as exc:
                    result = [str(exc)]
            if isinstance(result, Admission):
                self.admission = result
                self._set_condition("PodScheduled", "True", "", "")
                if not self.raw.get("spec", {}).get("nodeName"):
                    self.host.event(
                        self.raw,
                        "Normal",
                        "Scheduled",
                        f"Successfully assigned {self.namespace}/{self.name} to "
                        f"{scheduler.node.name}",
                        "default-scheduler",
                    )
                return True
            message = (
                scheduler.message(result)
                if claim_problem is None
                else f"0/1 nodes are available: {claim_problem}."
            )
            if message != reported:
                reported = message
                self._set_condition("PodScheduled", "False", "Unschedulable", message)
                self.host.event(
                    self.raw, "Warning", "FailedScheduling", message, "default-scheduler"
                )
                self.host.publish(self)
            await self._sleep(None)
        return False

    def _claims_problem(self) -> str | None:
        for volume in self.pod.spec.volumes or []:
            claim = volume.persistentVolumeClaim
            if claim is None:
                continue
            pvc = self.host.lookup("persistentvolumeclaims", self.namespace, claim.claimName)
            if pvc is None:
                return f'persistentvolumeclaim "{claim.claimName}" not found'
            if pvc["metadata"].get("deletionTimestamp"):
                return f'persistentvolumeclaim "{claim.claimName}" is being deleted'
            if (pvc.get("status") or {}).get("phase") != "Bound":
                return "pod has unbound immediate PersistentVolumeClaims"
        return None

    # -- volumes ---------------------------------------------------------------------

    def _fields(self) -> dict[str, str]:
        meta = self.raw["metadata"]
        return {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            **{f"metadata.labels['{k}']": v for k, v in (meta.get("labels") or {}).items()},
            **{
                f"metadata.annotations['{k}']": v
                for k, v in (meta.get("annotations") or {}).items()
            },
        }

    async def _setup_volumes(self) -> bool:
        reported = ""
        needs_mounts = any(
            c.volumeMounts
            for c in [*self.pod.spec.containers, *(self.pod.spec.initContainers or [])]
        )
        while not self.terminating.is_set():
            try:
                if needs_mounts and not self.host.sandbox.available:
                    raise VolumeError(
                        "cannot mount volumes: a container with volumeMounts needs a private "
                        f"mount namespace, and {self.host.sandbox.reason}",
                        reason="FailedMount",
                    )
                self.mounted = self.host.volumes.prepare(self.pod, self._fields())
            except (VolumeError, OSError) as exc:
                message = str(exc)
                if message != reported:
                    reported = message
                    reason = getattr(exc, "reason", "FailedMount")
                    self.host.event(self.raw, "Warning", reason, message, "kubelet")
                    self.host.publish(self)
                await self._sleep(2.0)
                continue
            self.sandbox_ready = True
            self._update_conditions()
            self.host.publish(self)
            return True
        return False

    # -- containers --------------------------------------------------------------------

    async def _run_init(self) -> bool:
        for runner in self.init:
            if self.terminating.is_set():
                return False
            if runner.kind == "sidecar":
                self._spawn(self._supervise(runner, "Always"))
                while not runner.started and not self.terminating.is_set():
                    await self._sleep(None)
                continue
            policy = "Never" if self.restart_policy == "Never" else "OnFailure"
            await self._supervise(runner, policy)
            terminated = runner.state.get("terminated") or {}
            if terminated.get("exitCode") != 0:
                if not self.terminating.is_set():
                    self.phase = "Failed"
                    self._update_conditions()
                    self.host.publish(self)
                return False
        self.initialized = True
        self._update_conditions()
        self.host.publish(self)
        return True

    async def _run_apps(self) -> None:
        for runner in self.apps:
            runner.state = {"waiting": {"reason": "ContainerCreating"}}
        tasks = [self._spawn(self._supervise(r, self.restart_policy)) for r in self.apps]
        await asyncio.gather(*tasks, return_exceptions=True)
        sidecars_up = any("running" in r.state for r in self.init)
        if not self.terminating.is_set() and not sidecars_up:
            # As the kubelet: no terminal phase while a container (a sidecar) still runs;
            # with sidecars, _finish sets it once they have stopped.
            self.phase = self._terminal_phase()
            self._update_conditions()
            self.host.publish(self)

    async def _supervise(self, runner: ContainerRunner, policy: str) -> None:
        """Run the container and restart it as ``policy`` says, with back-off."""
        while not self.terminating.is_set():
            code = await self._run_instance(runner)
            if self.terminating.is_set():
                break
            if code is None:
                # could not start (config error): back off, then try again
                pass
            elif policy == "Never" or (policy == "OnFailure" and code == 0):
                runner.done = True
                break
            delay = self._backoff(runner)
            if delay > 0:
                message = (
                    f"back-off {_duration(delay)} restarting failed container={runner.name} "
                    f"pod={self.name}_{self.namespace}({self.uid})"
                )
                if code is not None:
                    runner.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
                    self.host.event(
                        self.raw,
                        "Warning",
                        "BackOff",
                        f"Back-off restarting failed container {runner.name} in pod "
                        f"{self.name}_{self.namespace}({self.uid})",
                        "kubelet",
                    )
                    self.host.publish(self)
                deadline = time.monotonic() + delay
                while not self.terminating.is_set() and time.monotonic() < deadline:
                    await self._sleep(deadline - time.monotonic())
                    if code is None:
                        break  # a ConfigMap may have appeared: retry now
            if code is not None:
                runner.restart_count += 1
        runner.ready = False

    def _backoff(self, runner: ContainerRunner) -> float:
        base = self.host.backoff
        if runner.started_mono and time.monotonic() - runner.started_mono > BACKOFF_RESET:
            runner.backoff = 0.0
        if runner.backoff == 0.0:
            runner.backoff = base
            return 0.0
        delay = runner.backoff
        runner.backoff = min(runner.backoff * 2, MAX_CRASHLOOP_BACKOFF)
        return delay

    @property
    def node_name(self) -> str:
        return self.host.scheduler.node.name

    def pod_dir(self) -> Path:
        return self.host.state_dir / "pods" / pod_dir_name(self.namespace, self.name, self.uid)

    def log_path(self, container: str, instance: int) -> Path:
        return self.pod_dir() / container / f"{instance}.log"

    async def _run_instance(self, runner: ContainerRunner) -> int | None:
        """Start one instance and wait for it to end; its exit code, or None when it could
        not be started (the waiting reason says why)."""
        group = "containers" if runner.kind == "app" else "initContainers"
        where = f"spec.{group}[{self._index(runner)}]"
        try:
            launch = await plan_launch(self, self.host, runner, where)
        except Waiting as exc:
            runner.waiting(exc.reason, str(exc))
            self.event("Warning", exc.event, f"Error: {exc}")
            self.publish()
            return None
        except Exception as exc:  # an unexpected problem with this container only
            log.exception("preparing container %s of %s/%s", runner.name, self.namespace, self.name)
            runner.waiting("CreateContainerError", str(exc))
            self.publish()
            return None
        return await runner.run_instance(self, launch)

    # -- what container runners need (ContainerHost) --------------------------------

    def event(self, type: str, reason: str, message: str) -> None:
        self.host.event(self.raw, type, reason, message, "kubelet")

    def publish(self) -> None:
        self.host.publish(self)

    @property
    def spawner(self) -> Spawner | None:
        return self.host.spawner

    def readiness_changed(self) -> None:
        self._update_conditions()
        self.host.publish(self)
        self.wake()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        return self._spawn(coro)

    def _index(self, runner: ContainerRunner) -> int:
        group = self.apps if runner.kind == "app" else self.init
        return group.index(runner)

    async def _stop_all(self, grace: float, sidecars_only: bool = False) -> None:
        """preStop, then the stop signal, SIGKILL after ``grace``; app containers first,
        then sidecars in reverse order."""
        deadline = time.monotonic() + grace
        if not sidecars_only:
            self._update_conditions()
            self.host.publish(self)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.host.pre_stop(self.raw), max(grace, 0.0) or None)
            await asyncio.gather(
                *(r.stop(self, deadline) for r in self.apps), return_exceptions=True
            )
        for runner in reversed(self.init):
            await runner.stop(self, max(deadline, time.monotonic() + 2.0))

    # -- status ----------------------------------------------------------------------

    def _set_condition(self, ctype: str, status: str, reason: str, message: str) -> None:
        self.conditions.set(ctype, status, reason, message)

    def _update_conditions(self) -> None:
        pod_status.refresh_conditions(self)

    def ready(self) -> bool:
        return self.conditions.true("Ready")

    def status(self) -> Obj:
        """The pod's ``status`` as the kubelet writes it."""
        if self.phase not in ("Succeeded", "Failed"):
            self.phase = self._live_phase()
        return pod_status.build(self)

    def _live_phase(self) -> str:
        """Running once a container has started (and while it restarts), else Pending."""
        if not self.initialized:
            return "Pending"
        for runner in self.apps:
            if "running" in runner.state or runner.restart_count > 0:
                return "Running"
            if "terminated" in runner.state:
                return "Running"
        return "Pending"

    def runner(self, container: str) -> ContainerRunner | None:
        for r in [*self.apps, *self.init]:
            if r.name == container:
                return r
        return None

    def container_names(self) -> list[str]:
        return [r.name for r in [*self.apps, *self.init]]


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m0s"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:g}s"
