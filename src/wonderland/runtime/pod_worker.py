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
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from wonderland.api import quantity
from wonderland.api.schemas.core import Container, PodObject
from wonderland.errors import NotFoundError, WonderlandError
from wonderland.runtime import cgroups, containers, sandbox
from wonderland.runtime.env import PodInfo, container_env, expand
from wonderland.runtime.images import BuiltImage, ImageResolver
from wonderland.runtime.logs import ContainerLog, LogOptions, format_time, read_lines
from wonderland.runtime.probes import ProbeSpec, run_probe
from wonderland.runtime.scheduler import Admission, Scheduler, container_limits
from wonderland.runtime.volumes import (
    PreparedVolume,
    VolumeError,
    VolumeManager,
    pod_dir_name,
    resource_field,
)

__all__ = ["PodHost", "PodWorker", "now"]

log = logging.getLogger("wonderland.runtime.kubelet")

Obj = dict[str, Any]

AGGRESSIVE_PROBE_PERIOD = 0.01
DEFAULT_PROBE_PERIOD = 10.0
MAX_CRASHLOOP_BACKOFF = 300.0
BACKOFF_RESET = 600.0
TERMINATION_LOG_LINES = 80
TERMINATION_LOG_BYTES = 2048
_SIGNALS = {s.name: s for s in signal.Signals}


def now() -> str:
    """A status timestamp (seconds, as the API server stores them)."""
    return format_time()[:19] + "Z"


class PodHost(Protocol):
    """What a pod worker needs from its kubelet."""

    state_dir: Path
    scheduler: Scheduler
    volumes: VolumeManager
    resolver: ImageResolver
    cgroups: cgroups.CgroupDriver
    sandbox: sandbox.SandboxSupport
    backoff: float

    def base_env(self) -> dict[str, str]: ...

    def lookup(self, resource: str, namespace: str, name: str) -> Obj | None: ...

    def publish(self, worker: PodWorker) -> None: ...

    def event(self, pod: Obj, type: str, reason: str, message: str, component: str) -> None: ...

    def released(self, worker: PodWorker) -> None: ...

    async def pre_stop(self, pod: Obj) -> None: ...


class _Waiting(WonderlandError):
    """A container cannot start yet: ``reason`` is its waiting reason."""

    def __init__(self, reason: str, message: str, event: str = "Failed") -> None:
        super().__init__(message)
        self.reason = reason
        self.event = event


@dataclass
class ContainerRunner:
    """One container of the pod: its current instance and its history."""

    spec: Container
    kind: str  # "init" | "sidecar" | "app"
    restart_count: int = 0
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    proc: asyncio.subprocess.Process | None = None
    log: ContainerLog | None = None
    previous_log: ContainerLog | None = None
    cgroup: cgroups.ContainerCgroup | None = None
    started_mono: float = 0.0
    backoff: float = 0.0
    done: bool = False  # will not run again (finished under its restart policy)
    liveness_failed: str = ""
    killed_for_memory: bool = False
    stopping: bool = False

    @property
    def name(self) -> str:
        return self.spec.name or ""

    def status(self) -> Obj:
        out: Obj = {
            "name": self.name,
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.spec.image or "",
            "imageID": "",
            "started": self.started,
        }
        if self.proc is not None:
            out["containerID"] = f"wonderland://{self.proc.pid}"
        return out


def _qos(pod: PodObject) -> str:
    everything = [*pod.spec.containers, *(pod.spec.initContainers or [])]
    requests_any = False
    guaranteed = True
    for c in everything:
        res = c.resources
        limits = (res.limits if res else None) or {}
        requests = (res.requests if res else None) or {}
        if limits or requests:
            requests_any = True
        for name in ("cpu", "memory"):
            if name not in limits:
                guaranteed = False
            elif name in requests and quantity.parse(requests[name]) != quantity.parse(
                limits[name]
            ):
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


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
        self.conditions: dict[str, Obj] = {}
        self.admission: Admission | None = None
        self.mounted: dict[str, PreparedVolume] = {}
        self.start_time: str | None = None
        self.sandbox_ready = False
        self.initialized = not self.init
        self.terminating = asyncio.Event()
        self.grace = float(spec.terminationGracePeriodSeconds or 30)
        self.delete_after = False
        self.disruption: tuple[str, str] | None = None
        self.finished = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._envs: dict[str, dict[str, str]] = {}
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
            with contextlib.suppress(Exception):
                self.host.volumes.refresh(self.pod, self._fields())
        meta = raw["metadata"]
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            self.terminate(float(grace) if grace is not None else self.grace, delete=True)
        self.wake()

    def terminate(self, grace: float, delete: bool = False, reason: str = "", message: str = "") -> None:
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
                        "PodScheduled", "False", "SchedulingGated", "Scheduling is blocked due to non-empty scheduling gates"
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
                self.host.event(self.raw, "Warning", "FailedScheduling", message, "default-scheduler")
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
        needs_mounts = any(c.volumeMounts for c in [*self.pod.spec.containers, *(self.pod.spec.initContainers or [])])
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
        if not self.terminating.is_set():
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

    async def _image(self, spec: Container, runner: ContainerRunner) -> BuiltImage | None:
        image = spec.image or ""
        if not image:
            if spec.command:
                return None
            raise _Waiting("InvalidImageName", "the container has neither an image nor a command")
        resolver = self.host.resolver
        try:
            resolver.resolve(image)
        except NotFoundError as exc:
            if spec.command:
                return None
            raise _Waiting("ErrImagePull", str(exc), event="Failed") from None
        except WonderlandError as exc:
            raise _Waiting("ErrImagePull", str(exc)) from None
        started = time.monotonic()

        def progress(line: str) -> None:
            runner.state = {"waiting": {"reason": "ContainerCreating", "message": line}}
            self.host.publish(self)

        self.host.event(self.raw, "Normal", "Pulling", f'Pulling image "{image}"', "kubelet")
        try:
            built = await resolver.build(image, progress)
        except WonderlandError as exc:
            raise _Waiting("ErrImagePull", str(exc)) from None
        self.host.event(
            self.raw,
            "Normal",
            "Pulled",
            f'Successfully pulled image "{image}" in {time.monotonic() - started:.3f}s '
            f"(built from {built.context})",
            "kubelet",
        )
        return built

    def _env(self, spec: Container, runner: ContainerRunner, built: BuiltImage | None, where: str) -> dict[str, str]:
        meta = self.raw["metadata"]
        info = PodInfo(
            name=self.name,
            namespace=self.namespace,
            uid=self.uid,
            node_name=self.host.scheduler.node.name,
            service_account=self.pod.spec.serviceAccountName or "default",
            labels=meta.get("labels") or {},
            annotations=meta.get("annotations") or {},
        )
        env = self.host.base_env()
        image_env = dict(built.env) if built is not None else {}
        if "VIRTUAL_ENV" in image_env:
            env["PATH"] = str(Path(image_env["VIRTUAL_ENV"]) / "bin") + os.pathsep + env["PATH"]
        env.update(image_env)
        env["HOSTNAME"] = self.pod.spec.hostname or self.name
        gpus = self.admission.container_gpus.get(runner.name, ()) if self.admission else ()
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(gpus) if gpus else "void"

        def lookup(resource: str, namespace: str, name: str) -> Mapping[str, Any] | None:
            return self.host.lookup(resource, namespace, name)

        try:
            declared = container_env(
                spec.model_dump(exclude_none=True),
                info,
                lookup,
                where,
                resource_field=lambda ref: self._resource_field(ref, spec),
            )
        except WonderlandError as exc:
            raise _Waiting("CreateContainerConfigError", str(exc)) from None
        env.update(declared)
        return env

    def _resource_field(self, ref: Mapping[str, Any], spec: Container) -> str:
        return resource_field(
            self.pod, ref.get("resource", ""), ref.get("containerName") or spec.name, ref.get("divisor")
        )

    def _mount_plan(self, spec: Container, cwd: str | None, runner: ContainerRunner) -> sandbox.MountPlan | None:
        mounts: list[sandbox.Mount] = []
        for m in spec.volumeMounts or []:
            prepared = self.mounted.get(m.name)
            if prepared is None:
                raise _Waiting(
                    "CreateContainerConfigError",
                    f'volumeMount "{m.name}" names no volume of the pod',
                )
            source = prepared.path
            sub = m.subPath
            if m.subPathExpr:
                sub = expand(m.subPathExpr, self._envs.get(runner.name, {}))
            if sub:
                source = (source / sub)
                if prepared.kind in ("configMap", "secret", "projected", "downwardAPI"):
                    source = source.resolve()
                elif not source.exists():
                    source.mkdir(parents=True, exist_ok=True)
            read_only = bool(m.readOnly) or prepared.read_only
            mounts.append(sandbox.Mount(str(source), m.mountPath, read_only))
        if cwd and not os.path.isdir(cwd) and not any(
            cwd == mount.target or cwd.startswith(mount.target.rstrip("/") + "/") for mount in mounts
        ):
            # as runc does, a missing working directory is created (in the container only)
            scratch_cwd = self._pod_dir() / "workdir" / runner.name
            scratch_cwd.mkdir(parents=True, exist_ok=True)
            mounts.append(sandbox.Mount(str(scratch_cwd), cwd))
        if not mounts:
            return None
        if not self.host.sandbox.available:
            raise _Waiting(
                "CreateContainerError",
                f"this container needs a private mount namespace, and {self.host.sandbox.reason}",
            )
        scratch = self._pod_dir() / "rootfs" / runner.name
        scratch.mkdir(parents=True, exist_ok=True)
        return sandbox.MountPlan(tuple(mounts), str(scratch), cwd)

    def _pod_dir(self) -> Path:
        return self.host.state_dir / "pods" / pod_dir_name(self.namespace, self.name, self.uid)

    def log_path(self, container: str, instance: int) -> Path:
        return self._pod_dir() / container / f"{instance}.log"

    async def _prepare(self, runner: ContainerRunner) -> containers.Launch:
        spec = runner.spec
        where = f"spec.{'initContainers' if runner.kind != 'app' else 'containers'}[{self._index(runner)}]"
        built = await self._image(spec, runner)
        env = self._env(spec, runner, built, where)
        self._envs[runner.name] = env
        if spec.command:
            argv = [*spec.command, *(spec.args or [])]
        elif built is not None:
            argv = [*built.argv, *(spec.args or [])]
        else:
            raise _Waiting("CreateContainerError", "the container has no command to run")
        argv = [expand(a, env) for a in argv]
        cwd = spec.workingDir or (str(built.context) if built is not None else None)
        mounts = self._mount_plan(spec, cwd, runner)
        uid = gid = None
        groups: tuple[int, ...] = ()
        pod_sc = self.pod.spec.securityContext
        c_sc = spec.securityContext
        if os.geteuid() == 0:
            uid = (c_sc.runAsUser if c_sc else None) or (pod_sc.runAsUser if pod_sc else None)
            gid = (c_sc.runAsGroup if c_sc else None) or (pod_sc.runAsGroup if pod_sc else None)
            if uid is not None and gid is None:
                gid = uid
            groups = tuple(pod_sc.supplementalGroups or []) if pod_sc else ()
        run_as_non_root = (c_sc.runAsNonRoot if c_sc else None) or (
            pod_sc.runAsNonRoot if pod_sc else None
        )
        if run_as_non_root and (uid if uid is not None else os.geteuid()) == 0:
            raise _Waiting(
                "CreateContainerConfigError",
                "container has runAsNonRoot and image will run as root (set runAsUser)",
            )
        limits = container_limits(spec)
        cgroup = self.host.cgroups.create(
            f"{self.uid}_{runner.name}",
            cgroups.Limits(
                memory=limits.get("memory"),
                cpu_limit=limits.get("cpu"),
                cpu_request=_request_millis(spec),
            ),
        )
        runner.cgroup = cgroup
        return containers.Launch(
            argv=tuple(argv),
            env=env,
            cwd=cwd,
            cgroup_procs=tuple(str(p) for p in cgroup.join_paths()),
            mounts=mounts,
            uid=uid,
            gid=gid,
            supplemental_groups=groups,
        )

    def _index(self, runner: ContainerRunner) -> int:
        group = self.apps if runner.kind == "app" else self.init
        return group.index(runner)

    async def _run_instance(self, runner: ContainerRunner) -> int | None:
        """Start one instance and wait for it to end; its exit code, or None when it could
        not be started (the waiting reason says why)."""
        try:
            launch = await self._prepare(runner)
        except _Waiting as exc:
            runner.state = {"waiting": {"reason": exc.reason, "message": str(exc)}}
            self.host.event(self.raw, "Warning", exc.event, f"Error: {exc}", "kubelet")
            self.host.publish(self)
            return None
        except Exception as exc:  # an unexpected problem with this container only
            log.exception("preparing container %s of %s/%s", runner.name, self.namespace, self.name)
            runner.state = {"waiting": {"reason": "CreateContainerError", "message": str(exc)}}
            self.host.publish(self)
            return None
        if runner.log is not None:
            runner.previous_log = runner.log
            self._prune_logs(runner)
        runner.log = ContainerLog(self.log_path(runner.name, runner.restart_count))
        runner.log.open()
        started_at = now()
        try:
            proc = await containers.launch(launch, runner.log)
        except containers.StartError as exc:
            runner.log.note(str(exc))
            await runner.log.close()
            runner.last_state = _last(runner.state)
            runner.state = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": str(exc),
                    "startedAt": "1970-01-01T00:00:00Z",
                    "finishedAt": now(),
                }
            }
            self.host.event(self.raw, "Warning", "Failed", f"Error: {exc}", "kubelet")
            self.host.publish(self)
            self._drop_cgroup(runner)
            return 128
        runner.proc = proc
        runner.started_mono = time.monotonic()
        runner.liveness_failed = ""
        runner.killed_for_memory = False
        runner.stopping = False
        previous = runner.state
        runner.last_state = _last(previous) or runner.last_state
        runner.state = {"running": {"startedAt": started_at}}
        self.host.event(self.raw, "Normal", "Created", f"Created container: {runner.name}", "kubelet")
        self.host.event(self.raw, "Normal", "Started", f"Started container {runner.name}", "kubelet")
        env = launch.env
        enter = proc.pid if launch.mounts is not None else None
        ports = {p.name: p.containerPort for p in runner.spec.ports or [] if p.name}
        first_port = (runner.spec.ports or [None])[0]
        default_port = first_port.containerPort if first_port else 0

        def port_of(value: Any) -> int:
            if isinstance(value, int):
                return value
            if isinstance(value, str) and value.isdigit():
                return int(value)
            if isinstance(value, str) and value in ports:
                return ports[value]
            return default_port

        def probe(p: Any, liveness: bool = False) -> ProbeSpec | None:
            if p is None:
                return None
            return ProbeSpec.from_spec(
                p.model_dump(exclude_none=True),
                default_port,
                liveness=liveness,
                env=env,
                cwd=launch.cwd,
                port_of=port_of,
                enter_pid=enter,
            )

        watchers: list[asyncio.Task[Any]] = []
        lifecycle = runner.spec.lifecycle
        if lifecycle is not None and lifecycle.postStart is not None:
            ok, msg = await self._handler(lifecycle.postStart.model_dump(exclude_none=True), env, launch.cwd, enter, port_of)
            if not ok:
                self.host.event(
                    self.raw, "Warning", "FailedPostStartHook", f"PostStartHook failed: {msg}", "kubelet"
                )
                await containers.terminate_group(proc, 2.0, cgroup=runner.cgroup)
        startup = probe(runner.spec.startupProbe)
        readiness = probe(runner.spec.readinessProbe)
        liveness = probe(runner.spec.livenessProbe, liveness=True)
        watchers.append(self._spawn(self._probe_loop(runner, startup, readiness)))
        if liveness is not None:
            watchers.append(self._spawn(self._liveness(runner, liveness)))
        memory_limit = container_limits(runner.spec).get("memory")
        if runner.cgroup is not None and not runner.cgroup.enforced and memory_limit:
            watchers.append(self._spawn(self._watchdog(runner, memory_limit)))
        self.host.publish(self)
        killer = self._spawn(self._kill_on_liveness(runner))
        try:
            code = await proc.wait()
        finally:
            for w in [*watchers, killer]:
                w.cancel()
        containers.signal_group(proc.pid, signal.SIGKILL)
        if runner.cgroup is not None:
            runner.cgroup.kill_all()
        await runner.log.close()
        oom = runner.killed_for_memory or bool(runner.cgroup and runner.cgroup.oom_killed())
        exit_code = 128 - code if code < 0 else code
        sig = -code if code < 0 else 0
        if oom:
            reason = "OOMKilled"
            exit_code = 137
        else:
            reason = "Completed" if exit_code == 0 else "Error"
        terminated: Obj = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": started_at,
            "finishedAt": now(),
            "containerID": f"wonderland://{proc.pid}",
        }
        if sig:
            terminated["signal"] = sig
        message = self._termination_message(runner, exit_code)
        if message:
            terminated["message"] = message
        runner.state = {"terminated": terminated}
        runner.ready = False
        self._drop_cgroup(runner)
        self.host.publish(self)
        return exit_code

    def _drop_cgroup(self, runner: ContainerRunner) -> None:
        if runner.cgroup is not None:
            cg = runner.cgroup
            runner.cgroup = None
            with contextlib.suppress(Exception):
                cg.remove()

    def _prune_logs(self, runner: ContainerRunner) -> None:
        """Keep the current and the previous instance's log, as the kubelet does."""
        folder = self._pod_dir() / runner.name
        keep = {runner.restart_count, runner.restart_count - 1}
        with contextlib.suppress(OSError):
            for entry in folder.iterdir():
                stem = entry.name.split(".", 1)[0]
                if stem.isdigit() and int(stem) not in keep:
                    entry.unlink()

    def _termination_message(self, runner: ContainerRunner, exit_code: int) -> str:
        if runner.liveness_failed:
            return runner.liveness_failed
        if runner.spec.terminationMessagePolicy != "FallbackToLogsOnError" or exit_code == 0:
            return ""
        if runner.log is None:
            return ""
        text = read_lines(runner.log.files(), LogOptions(tail_lines=TERMINATION_LOG_LINES))
        return text[-TERMINATION_LOG_BYTES:].decode("utf-8", "replace")

    async def _handler(
        self,
        handler: Obj,
        env: Mapping[str, str],
        cwd: str | None,
        enter: int | None,
        port_of: Callable[[Any], int],
    ) -> tuple[bool, str]:
        if "sleep" in handler:
            await asyncio.sleep(float(handler["sleep"].get("seconds") or 0))
            return True, ""
        spec = ProbeSpec.from_spec(
            {**handler, "timeoutSeconds": 30}, 0, env=env, cwd=cwd, port_of=port_of, enter_pid=enter
        )
        if spec is None:
            return True, ""
        return await run_probe(spec)

    async def _probe_loop(
        self, runner: ContainerRunner, startup: ProbeSpec | None, readiness: ProbeSpec | None
    ) -> None:
        if startup is not None:
            if startup.initial_delay:
                await asyncio.sleep(startup.initial_delay)
            failures = 0
            while True:
                ok, msg = await run_probe(startup)
                if ok:
                    break
                failures += 1
                if startup.period and failures >= startup.failure_threshold:
                    self.host.event(
                        self.raw, "Warning", "Unhealthy", f"Startup probe failed: {msg}", "kubelet"
                    )
                    runner.liveness_failed = f"Container {runner.name} failed startup probe, will be restarted"
                    return
                await asyncio.sleep(startup.period or AGGRESSIVE_PROBE_PERIOD)
        runner.started = True
        if readiness is None:
            runner.ready = runner.kind != "init"
            self._update_conditions()
            self.host.publish(self)
            self.wake()
            return
        self.host.publish(self)
        self.wake()
        if readiness.initial_delay:
            await asyncio.sleep(readiness.initial_delay)
        failures = successes = 0
        ever = False
        last_msg = ""
        while True:
            ok, msg = await run_probe(readiness)
            if ok:
                failures = 0
                successes += 1
                if not runner.ready and (successes >= readiness.success_threshold or not ever):
                    ever = True
                    runner.ready = True
                    self._update_conditions()
                    self.host.publish(self)
            else:
                successes = 0
                failures += 1
                if ever and msg != last_msg:
                    self.host.event(self.raw, "Warning", "Unhealthy", f"Readiness probe failed: {msg}", "kubelet")
                last_msg = msg
                if runner.ready and failures >= readiness.failure_threshold:
                    runner.ready = False
                    self._update_conditions()
                    self.host.publish(self)
            period = readiness.period or (DEFAULT_PROBE_PERIOD if ever else AGGRESSIVE_PROBE_PERIOD)
            if not readiness.period and ever:
                period = 1.0
            await asyncio.sleep(period)

    async def _liveness(self, runner: ContainerRunner, probe: ProbeSpec) -> None:
        if probe.initial_delay:
            await asyncio.sleep(probe.initial_delay)
        failures = 0
        while True:
            await asyncio.sleep(probe.period or DEFAULT_PROBE_PERIOD)
            if not runner.started:
                continue
            ok, msg = await run_probe(probe)
            failures = 0 if ok else failures + 1
            if not ok:
                self.host.event(self.raw, "Warning", "Unhealthy", f"Liveness probe failed: {msg}", "kubelet")
            if failures >= probe.failure_threshold:
                runner.liveness_failed = f"Container {runner.name} failed liveness probe, will be restarted"
                return

    async def _kill_on_liveness(self, runner: ContainerRunner) -> None:
        while not runner.liveness_failed:
            await asyncio.sleep(0.2)
        self.host.event(self.raw, "Normal", "Killing", runner.liveness_failed, "kubelet")
        if runner.proc is not None:
            await containers.terminate_group(
                runner.proc, self.grace, self._stop_signal(runner), runner.cgroup
            )

    async def _watchdog(self, runner: ContainerRunner, limit: int) -> None:
        proc = runner.proc
        while proc is not None and proc.returncode is None:
            await asyncio.sleep(cgroups.WATCHDOG_PERIOD)
            _, used = cgroups.tree_usage(proc.pid)
            if used > limit:
                runner.killed_for_memory = True
                self.host.event(
                    self.raw,
                    "Warning",
                    "OOMKilling",
                    f"Memory limit reached: container {runner.name} used {used} bytes of its "
                    f"{limit} byte limit; killed",
                    "kubelet",
                )
                containers.signal_group(proc.pid, signal.SIGKILL)
                return

    def _stop_signal(self, runner: ContainerRunner) -> int:
        lifecycle = runner.spec.lifecycle
        name = lifecycle.stopSignal if lifecycle and lifecycle.stopSignal else "SIGTERM"
        return int(_SIGNALS.get(name, signal.SIGTERM))

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
                *(self._stop(r, deadline) for r in self.apps), return_exceptions=True
            )
        for runner in reversed(self.init):
            await self._stop(runner, max(deadline, time.monotonic() + 2.0))

    async def _stop(self, runner: ContainerRunner, deadline: float) -> None:
        proc = runner.proc
        if proc is None or proc.returncode is not None or runner.stopping:
            return
        runner.stopping = True
        runner.ready = False
        self.host.event(self.raw, "Normal", "Killing", f"Stopping container {runner.name}", "kubelet")
        lifecycle = runner.spec.lifecycle
        if lifecycle is not None and lifecycle.preStop is not None:
            env = self._envs.get(runner.name, {})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._handler(
                        lifecycle.preStop.model_dump(exclude_none=True),
                        env,
                        runner.spec.workingDir,
                        proc.pid,
                        lambda v: int(v) if isinstance(v, int) else 0,
                    ),
                    max(deadline - time.monotonic(), 0.1),
                )
        await containers.terminate_group(
            proc, max(deadline - time.monotonic(), 0.0), self._stop_signal(runner), runner.cgroup
        )

    # -- status ----------------------------------------------------------------------

    def _set_condition(self, ctype: str, status: str, reason: str, message: str) -> None:
        current = self.conditions.get(ctype)
        if current is not None and (current["status"], current.get("reason", ""), current.get("message", "")) == (status, reason, message):
            return
        changed = current is None or current["status"] != status
        cond: Obj = {
            "type": ctype,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": now() if changed else current["lastTransitionTime"],
        }
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        self.conditions[ctype] = cond

    def _update_conditions(self) -> None:
        terminal = self.phase in ("Succeeded", "Failed")
        if self.admission is not None or "PodScheduled" in self.conditions and self.conditions["PodScheduled"]["status"] == "True":
            self._set_condition("PodReadyToStartContainers", "True" if self.sandbox_ready and not terminal else "False", "", "")
        if self.admission is not None or self.sandbox_ready:
            if self.initialized:
                self._set_condition("Initialized", "True", "PodCompleted" if terminal and self.init else "", "")
            else:
                pending = [r.name for r in self.init if r.kind == "init" and not r.state.get("terminated")]
                self._set_condition(
                    "Initialized",
                    "False",
                    "ContainersNotInitialized",
                    f"containers with incomplete status: [{' '.join(pending)}]",
                )
            unready = [r.name for r in [*[i for i in self.init if i.kind == "sidecar"], *self.apps] if not r.ready]
            if terminal:
                self._set_condition("ContainersReady", "False", "PodCompleted", "")
                self._set_condition("Ready", "False", "PodCompleted", "")
            elif unready:
                msg = f"containers with unready status: [{' '.join(unready)}]"
                self._set_condition("ContainersReady", "False", "ContainersNotReady", msg)
                self._set_condition("Ready", "False", "ContainersNotReady", msg)
            else:
                gates = [g.conditionType for g in self.pod.spec.readinessGates or []]
                stored = {c.get("type"): c.get("status") for c in (self.raw.get("status") or {}).get("conditions") or []}
                missing = [g for g in gates if stored.get(g) != "True"]
                self._set_condition("ContainersReady", "True", "", "")
                if missing:
                    self._set_condition(
                        "Ready", "False", "ReadinessGatesNotReady",
                        f"corresponding condition of pod readiness gate \"{missing[0]}\" does not exist.",
                    )
                else:
                    self._set_condition("Ready", "True", "", "")
        if self.disruption is not None:
            self._set_condition("DisruptionTarget", "True", *self.disruption)

    def ready(self) -> bool:
        cond = self.conditions.get("Ready")
        return bool(cond and cond["status"] == "True")

    def status(self) -> Obj:
        """The pod's ``status`` as the kubelet writes it."""
        self._update_conditions()
        order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled", "DisruptionTarget"]
        stored = (self.raw.get("status") or {}).get("conditions") or []
        conditions = [self.conditions[c] for c in order if c in self.conditions]
        # readiness-gate conditions belong to whoever set them: keep them
        conditions += [c for c in stored if c.get("type") not in self.conditions]
        out: Obj = {"phase": self.phase, "conditions": conditions, "qosClass": _qos(self.pod)}
        if self.admission is not None or self.start_time:
            out["hostIP"] = "127.0.0.1"
            out["hostIPs"] = [{"ip": "127.0.0.1"}]
        if self.sandbox_ready:
            out["podIP"] = "127.0.0.1"
            out["podIPs"] = [{"ip": "127.0.0.1"}]
        if self.start_time:
            out["startTime"] = self.start_time
        if self.init:
            out["initContainerStatuses"] = [r.status() for r in self.init]
        if self.start_time:
            out["containerStatuses"] = [r.status() for r in self.apps]
        if self.reason:
            out["reason"] = self.reason
            out["message"] = self.message
        return out

    def runner(self, container: str) -> ContainerRunner | None:
        for r in [*self.apps, *self.init]:
            if r.name == container:
                return r
        return None

    def container_names(self) -> list[str]:
        return [r.name for r in [*self.apps, *self.init]]


def _last(state: Obj) -> Obj:
    return dict(state) if "terminated" in state else {}


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m0s"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:g}s"


def _request_millis(spec: Container) -> int | None:
    res = spec.resources
    if res is None:
        return None
    value = (res.requests or {}).get("cpu", (res.limits or {}).get("cpu"))
    return quantity.millis(value) if value is not None else None

