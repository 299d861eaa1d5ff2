"""The kubelet of the one node: runs every Pod in the store as local processes.

Pods are ordinary objects: whoever needs processes (a Job, a revision's replicas, a user
with ``kubectl run``) creates Pods, and this reconciler runs them through one
:class:`~wonderland.runtime.pod_worker.PodWorker` each, writing their status back. It also
registers the Node, answers ``pods/log`` and ``metrics.k8s.io`` for the control API, and
finishes graceful deletions (a deleted running pod is stopped first, then removed).

When the daemon starts again after a stop or a crash (a node reboot, to a pod), a pod that
had started is started again if its ``restartPolicy`` allows it (its restart counts carried
on) and marked ``Failed`` with ``ContainerStatusUnknown`` if it is ``Never``, as the kubelet
does; a Job then counts the failure and decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from wonderland.controllers.events import EventRecorder
from wonderland.errors import ConflictError, InvalidError, NotFoundError, WonderlandError
from wonderland.runtime import cgroups
from wonderland.runtime.containers import kill_leftover_groups
from wonderland.runtime.images import ImageResolver
from wonderland.runtime.logs import ContainerLog, LogOptions, read_lines
from wonderland.runtime.node import NodeInfo, discover
from wonderland.runtime.pod_worker import PodWorker, now
from wonderland.runtime.sandbox import SandboxSupport, support
from wonderland.runtime.scheduler import Scheduler
from wonderland.runtime.spawner import Spawner
from wonderland.runtime.volumes import VolumeError, VolumeManager, pod_dir_name
from wonderland.settings import Settings
from wonderland.store import Store
from wonderland.timefmt import format_time
from wonderland.tokens import TokenIssuer

__all__ = [
    "ContainerLogAlias",
    "Kubelet",
    "LogRequestError",
    "NodeReconciler",
    "PodEnvSource",
    "PodListener",
]

log = logging.getLogger("wonderland.runtime.kubelet")

Obj = dict[str, Any]
PODS = "pods"
HOUSEKEEPING_PERIOD = 2.0
HEARTBEAT_PERIOD = 60.0
# The node's Lease in kube-node-lease, as kubectl describe node shows it.
LEASE_NAMESPACE = "kube-node-lease"
LEASE_RENEW = 30.0
LEASE_DURATION = 60


class PodListener(Protocol):
    """Told about every status the kubelet writes for a pod (in-process, at once)."""

    def __call__(self, pod: Obj, worker: PodWorker) -> None: ...


class ContainerLogAlias(Protocol):
    """Names the container whose log answers for a container the pod does not have.

    On a cluster some controllers add sidecars whose log clients read (Katib's StdOut
    collector, ``metrics-logger-and-collector``, holds the training output). Here there are
    no such sidecars; a plugin that knows which pods would have one says which container's
    log stands in for it. Return None for pods and names it does not cover.
    """

    def __call__(self, pod: Obj, container: str) -> str | None: ...


class PodEnvSource(Protocol):
    """Variables a plugin gives every container of a pod (``MLFLOW_TRACKING_URI``), from the
    pod's annotations (an opt-out). The node's base environment, before the image's and
    the container's own ``env``, which win."""

    def __call__(self, annotations: Mapping[str, str]) -> Mapping[str, str]: ...


class LogRequestError(WonderlandError):
    """A log request the API server answers 400 (container not found, still waiting)."""


class Kubelet:
    """The pod reconciler and node agent (see the module docstring)."""

    resource: str = PODS
    owns: tuple[str, ...] = ()
    watches: tuple[str, ...] = ("configmaps", "secrets", "persistentvolumeclaims")

    def __init__(
        self,
        store: Store,
        state_dir: Path,
        settings: Settings,
        record_event: EventRecorder,
        resolver: ImageResolver | None = None,
        node: NodeInfo | None = None,
        tokens: TokenIssuer | None = None,
    ) -> None:
        self.store = store
        self.state_dir = state_dir
        self.settings = settings
        self.record_event = record_event
        self.node = node or discover(state_dir, settings.gpus, settings.max_pods)
        self.scheduler = Scheduler(self.node)
        self.cgroups: cgroups.CgroupDriver = cgroups.detect(disabled=settings.cgroups == "off")
        self.sandbox = SandboxSupport(False, False, "the kubelet has not started yet")
        self.volumes = VolumeManager(state_dir, self.lookup, self.pv_path, tokens=tokens)
        self.resolver = resolver or ImageResolver(state_dir / "builds", [Path.cwd()])
        self.backoff = settings.backoff_seconds
        # forks the containers that need a mount namespace (a fork of the daemon is slow)
        self.spawner: Spawner | None = Spawner()
        self.workers: dict[str, PodWorker] = {}
        self.keys: dict[tuple[str, str], str] = {}
        self.env: dict[str, str] = {}
        self.listeners: list[PodListener] = []
        self.log_aliases: list[ContainerLogAlias] = []
        self.env_sources: list[PodEnvSource] = []
        self.pre_stop_hooks: list[Callable[[Obj], Awaitable[None]]] = []
        self._dirty: dict[str, PodWorker] = {}
        self._flush_scheduled = False
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._bound: set[str] = set()
        self._stopping = False

    # -- platform service ------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # What a daemon killed with SIGKILL left running (a container's children) goes
        # before any pod starts again and wants its port.
        leftover = kill_leftover_groups(self.state_dir / "pods")
        if leftover:
            log.info("killed %d process groups left by the previous daemon", len(leftover))
        self.sandbox = await loop.run_in_executor(None, support)
        if not self.sandbox.available:
            log.warning("containers with volumes cannot start here: %s", self.sandbox.reason)
        self._register_node()
        self._tasks.append(loop.create_task(self._housekeeping()))
        self._ready.set()

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        workers = list(self.workers.values())
        for worker in workers:
            worker.terminate(min(worker.grace, 10.0))
        if workers:
            await asyncio.wait([asyncio.ensure_future(w.wait()) for w in workers], timeout=15.0)
        self._dirty.clear()
        if self.spawner is not None:
            self.spawner.close()
        with contextlib.suppress(Exception):
            self._write_node_status(ready=False)

    # -- node ------------------------------------------------------------------------

    def _register_node(self) -> None:
        node = self.node.node_object()
        try:
            current = self.store.get("nodes", None, self.node.name)
        except NotFoundError:
            current = self.store.create(node)
        else:
            labels = {**(current["metadata"].get("labels") or {}), **node["metadata"]["labels"]}
            if labels != current["metadata"].get("labels"):
                current["metadata"]["labels"] = labels
                current = self.store.update(current)
        self._node_changed(current)
        self._write_node_status(ready=True)
        self._renew_lease()

    def _renew_lease(self) -> None:
        stamp = format_time()[:26] + "Z"
        spec = {
            "holderIdentity": self.node.name,
            "leaseDurationSeconds": LEASE_DURATION,
            "renewTime": stamp,
        }
        try:
            lease = self.store.get("leases.coordination.k8s.io", LEASE_NAMESPACE, self.node.name)
        except NotFoundError:
            with contextlib.suppress(WonderlandError):
                try:
                    self.store.get("namespaces", None, LEASE_NAMESPACE)
                except NotFoundError:
                    self.store.create(
                        {
                            "apiVersion": "v1",
                            "kind": "Namespace",
                            "metadata": {"name": LEASE_NAMESPACE},
                        }
                    )
                self.store.create(
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": self.node.name, "namespace": LEASE_NAMESPACE},
                        "spec": {**spec, "acquireTime": stamp},
                    }
                )
            return
        lease["spec"] = {**(lease.get("spec") or {}), **spec}
        with contextlib.suppress(WonderlandError):
            self.store.update(lease)

    def _write_node_status(self, ready: bool) -> None:
        try:
            current = self.store.get("nodes", None, self.node.name)
        except NotFoundError:
            return
        previous = {c.get("type"): c for c in (current.get("status") or {}).get("conditions") or []}
        ready_before = (previous.get("Ready") or {}).get("status") == ("True" if ready else "False")
        since = (previous.get("Ready") or {}).get("lastTransitionTime") if ready_before else None
        stamp = now()
        current["status"] = self.node.status(ready, stamp, since or stamp)
        with contextlib.suppress(ConflictError, NotFoundError):
            self.store.update_status(current)

    def _node_changed(self, node: Obj) -> None:
        spec = node.get("spec") or {}
        self.scheduler.unschedulable = bool(spec.get("unschedulable"))
        self.scheduler.taints = list(spec.get("taints") or [])
        self.scheduler.labels = dict(node["metadata"].get("labels") or {})
        self._wake_pending()

    def node_changed(self) -> None:
        """The Node object changed (``kubectl cordon``, labels, taints, or it was deleted)."""
        try:
            node = self.store.get("nodes", None, self.node.name)
        except NotFoundError:
            if not self._stopping:
                self._register_node()  # a kubelet registers its node again
            return
        self._node_changed(node)

    # -- reconcile -------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str) -> None:
        await self._ready.wait()
        if self._stopping:
            return
        try:
            raw = self.store.get(PODS, namespace, name)
        except NotFoundError:
            uid = self.keys.pop((namespace, name), None)
            if uid is not None:
                self._gone(uid)
            return
        meta = raw["metadata"]
        uid = meta["uid"]
        previous = self.keys.get((namespace, name))
        if previous is not None and previous != uid:
            self._gone(previous)
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(raw)
            return
        spec = raw.get("spec") or {}
        phase = (raw.get("status") or {}).get("phase")
        if meta.get("deletionTimestamp") and phase in ("Succeeded", "Failed", None):
            self._delete_now(namespace, name, uid)
            return
        if phase in ("Succeeded", "Failed"):
            return
        if spec.get("nodeName") and spec["nodeName"] != self.node.name:
            return  # bound to a node that is not this one: it stays Pending, as on a cluster
        if (spec.get("schedulerName") or "default-scheduler") != "default-scheduler":
            return  # another scheduler's pod; none runs here
        status = raw.get("status") or {}
        ran_before = status.get("startTime") and (
            status.get("containerStatuses") or status.get("initContainerStatuses")
        )
        if ran_before and self._rebooted(raw):
            return
        worker = PodWorker(self, raw)
        self._carry_restarts(worker, status)
        self.workers[uid] = worker
        self.keys[(namespace, name)] = uid
        if meta.get("deletionTimestamp"):
            worker.terminate(0.0, delete=True)
        worker.start()

    def _rebooted(self, raw: Obj) -> bool:
        """A pod that ran under the previous daemon; True when it ends here (Never)."""
        if (raw.get("spec") or {}).get("restartPolicy") != "Never":
            return False
        status = dict(raw.get("status") or {})
        stamp = now()
        lost = {
            "terminated": {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was terminated",
                "startedAt": status.get("startTime", stamp),
                "finishedAt": stamp,
            }
        }
        for key in ("containerStatuses", "initContainerStatuses"):
            statuses = []
            for cs in status.get(key) or []:
                cs = dict(cs)
                state = cs.get("state") or {}
                if "terminated" not in state:
                    cs["state"] = lost
                    cs["ready"] = False
                statuses.append(cs)
            if statuses:
                status[key] = statuses
        status["phase"] = "Failed"
        conditions = [
            {**c, "status": "False", "reason": "PodFailed"}
            if c.get("type") in ("Ready", "ContainersReady")
            else c
            for c in status.get("conditions") or []
        ]
        status["conditions"] = conditions
        raw = dict(raw)
        raw["status"] = status
        with contextlib.suppress(ConflictError, NotFoundError):
            self.store.update_status(raw)
        return True

    @staticmethod
    def _carry_restarts(worker: PodWorker, status: Obj) -> None:
        for key, runners in (
            ("containerStatuses", worker.apps),
            ("initContainerStatuses", worker.init),
        ):
            by_name = {cs.get("name"): cs for cs in status.get(key) or []}
            for runner in runners:
                cs = by_name.get(runner.name)
                if cs is None:
                    continue
                count = int(cs.get("restartCount") or 0)
                state = cs.get("state") or {}
                if "running" in state or "terminated" in state:
                    count += 1
                runner.restart_count = count
                last = cs.get("lastState") or {}
                if last:
                    runner.last_state = last

    def _gone(self, uid: str) -> None:
        """The pod object is gone from the store: stop what still runs, clean up."""
        worker = self.workers.pop(uid, None)
        self._bound.discard(uid)
        if worker is None:
            return
        self.keys.pop((worker.namespace, worker.name), None)
        worker.delete_after = False
        if not worker.finished.is_set():
            worker.terminate(min(worker.grace, 30.0))

        async def cleanup() -> None:
            await worker.wait()
            self._cleanup(worker.namespace, worker.name, worker.uid)

        asyncio.get_running_loop().create_task(cleanup())

    def _cleanup(self, namespace: str, name: str, uid: str) -> None:
        self.volumes.remove(namespace, name, uid)
        shutil.rmtree(
            self.state_dir / "pods" / pod_dir_name(namespace, name, uid), ignore_errors=True
        )

    def _delete_now(self, namespace: str, name: str, uid: str) -> None:
        with contextlib.suppress(NotFoundError, ConflictError):
            self.store.delete(PODS, namespace, name, grace_period=0)

    # -- what workers call -----------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        env = {
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
            "PYTHONUNBUFFERED": "1",
        }
        env.update(self.env)
        return env

    def pod_env(self, annotations: Mapping[str, str]) -> dict[str, str]:
        """What the plugins' :class:`PodEnvSource` give a pod with ``annotations``."""
        env: dict[str, str] = {}
        for source in self.env_sources:
            env.update(source(annotations))
        return env

    def add_env_source(self, source: PodEnvSource) -> None:
        self.env_sources.append(source)

    def lookup(self, resource: str, namespace: str, name: str) -> Obj | None:
        try:
            return self.store.get(resource, namespace, name)
        except NotFoundError:
            return None

    def pv_path(self, namespace: str, claim: str) -> Path:
        pvc = self.lookup("persistentvolumeclaims", namespace, claim)
        if pvc is None:
            raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
        volume = (pvc.get("spec") or {}).get("volumeName")
        pv = self.lookup("persistentvolumes", "", volume) if volume else None
        if pv is None:
            raise VolumeError(
                f'MountVolume.SetUp failed for volume "{volume or claim}" : '
                f'persistentvolumeclaim "{claim}" is not bound'
            )
        spec = pv.get("spec") or {}
        source = spec.get("local") or spec.get("hostPath") or {}
        path = source.get("path")
        if not path:
            raise VolumeError(
                f'MountVolume.SetUp failed for volume "{volume}" : the PersistentVolume has '
                "no local or hostPath source"
            )
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def event(self, pod: Obj, type: str, reason: str, message: str, component: str) -> None:
        self.record_event(self.store, pod, type, reason, message, component)

    async def pre_stop(self, pod: Obj) -> None:
        for hook in list(self.pre_stop_hooks):
            await hook(pod)

    def publish(self, worker: PodWorker) -> None:
        self._dirty[worker.uid] = worker
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def released(self, worker: PodWorker) -> None:
        self._flush()
        self._wake_pending()
        if worker.delete_after and self.workers.get(worker.uid) is worker:
            self._delete_now(worker.namespace, worker.name, worker.uid)

    def _wake_pending(self) -> None:
        for worker in sorted(self.workers.values(), key=_queue_order):
            if worker.admission is None:
                worker.wake()

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, {}
        for worker in dirty.values():
            self._write(worker)

    def _write(self, worker: PodWorker) -> None:
        if self._stopping:
            # The node goes down: what the pods' processes do now is not recorded, as a
            # node that powers off records nothing; the next start treats them as a reboot.
            return
        for _ in range(5):
            try:
                current = self.store.get(PODS, worker.namespace, worker.name)
            except NotFoundError:
                return
            if current["metadata"]["uid"] != worker.uid:
                return
            try:
                if worker.admission is not None and not (current.get("spec") or {}).get("nodeName"):
                    bound = dict(current)
                    bound["spec"] = {**current["spec"], "nodeName": self.node.name}
                    current = self.store.update(bound)
                status = worker.status()
                if current.get("status") != status:
                    current = dict(current)
                    current["status"] = status
                    current = self.store.update_status(current)
            except ConflictError:
                continue
            except (InvalidError, NotFoundError) as exc:
                log.warning(
                    "pod %s/%s: cannot write its status: %s", worker.namespace, worker.name, exc
                )
                return
            worker.raw = current
            for listener in list(self.listeners):
                try:
                    listener(current, worker)
                except Exception:
                    log.exception("a pod listener failed")
            return

    # -- housekeeping: emptyDir limits, heartbeat -----------------------------------

    async def _housekeeping(self) -> None:
        last_beat = last_lease = time.monotonic()
        while True:
            await asyncio.sleep(HOUSEKEEPING_PERIOD)
            try:
                for worker in list(self.workers.values()):
                    if worker.finished.is_set() or worker.terminating.is_set():
                        continue
                    if worker.sandbox_ready and self.volumes.tokens_due(worker.pod):
                        worker.refresh_volumes()
                    message = self.volumes.empty_dir_over_limit(worker.pod)
                    if message is not None:
                        worker.disruption = ("TerminationByKubelet", message)
                        self.event(worker.raw, "Warning", "Evicted", message, "kubelet")
                        worker.terminate(0.0, reason="Evicted", message=message)
                if time.monotonic() - last_beat > HEARTBEAT_PERIOD:
                    last_beat = time.monotonic()
                    self._write_node_status(ready=True)
                if time.monotonic() - last_lease > LEASE_RENEW:
                    last_lease = time.monotonic()
                    self._renew_lease()
            except Exception:
                log.exception("kubelet housekeeping failed")

    # -- logs (pods/log) -------------------------------------------------------------

    def _pod(self, namespace: str, name: str) -> Obj:
        return self.store.get(PODS, namespace, name)

    def container_log(
        self, namespace: str, name: str, container: str | None, previous: bool
    ) -> tuple[ContainerLog | None, list[Path]]:
        """The live log (when the container runs now) and the files to read."""
        pod = self._pod(namespace, name)
        spec = pod.get("spec") or {}
        names = [c.get("name") for c in spec.get("containers") or []]
        init_names = [c.get("name") for c in spec.get("initContainers") or []]
        if not container:
            if len(names) + len(init_names) != 1:
                raise LogRequestError(
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(str(n) for n in names)}] or one of the init containers: "
                    f"[{' '.join(str(n) for n in init_names)}]"
                    if init_names
                    else f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(str(n) for n in names)}]"
                )
            container = str((names or init_names)[0])
        if container not in names and container not in init_names:
            container = self._log_alias(pod, container, names)
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        runner = worker.runner(container) if worker is not None else None
        folder = self.state_dir / "pods" / pod_dir_name(namespace, name, uid) / container
        pod_status = pod.get("status") or {}
        statuses = [
            *(pod_status.get("containerStatuses") or []),
            *(pod_status.get("initContainerStatuses") or []),
        ]
        cstatus: Obj = next((s for s in statuses if s.get("name") == container), {})
        if previous:
            if runner is not None and runner.previous_log is not None:
                return None, runner.previous_log.files()
            count = int(cstatus.get("restartCount") or 0)
            files = _instance_files(folder, count - 1) if count else []
            if not files:
                raise LogRequestError(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
            return None, files
        if runner is not None and runner.log is not None:
            return (None if runner.log.closed else runner.log), runner.log.files()
        files = _instance_files(folder, _newest(folder))
        if not files:
            waiting = (cstatus.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason") or "ContainerCreating"
            raise LogRequestError(
                f'container "{container}" in pod "{name}" is waiting to start: {reason}'
            )
        return None, files

    def add_log_alias(self, alias: ContainerLogAlias) -> None:
        """Let ``alias`` answer log requests for containers pods do not have."""
        self.log_aliases.append(alias)

    def _log_alias(self, pod: Obj, container: str, names: list[Any]) -> str:
        for alias in self.log_aliases:
            target = alias(pod, container)
            if target is not None and target in names:
                return target
        raise LogRequestError(
            f"container {container} is not valid for pod {pod['metadata']['name']}"
        )

    def read_log(
        self, namespace: str, name: str, container: str | None, previous: bool, options: LogOptions
    ) -> bytes:
        _, files = self.container_log(namespace, name, container, previous)
        return read_lines(files, options)

    async def follow_log(
        self, namespace: str, name: str, container: str | None, options: LogOptions
    ) -> AsyncIterator[bytes]:
        """The log, then its new lines while the container instance runs."""
        live, files = self.container_log(namespace, name, container, False)
        if live is None:
            data = read_lines(files, options)
            if data:
                yield data
            return
        async for chunk in live.follow(options):
            yield chunk

    # -- metrics.k8s.io --------------------------------------------------------------

    def usage(self) -> dict[str, dict[str, tuple[int, int, float]]]:
        """Per running pod uid, per container: (CPU nanoseconds, working-set bytes, when
        the container instance started, on the monotonic clock)."""
        out: dict[str, dict[str, tuple[int, int, float]]] = {}
        for uid, worker in self.workers.items():
            if worker.finished.is_set():
                continue
            per: dict[str, tuple[int, int, float]] = {}
            for runner in [*worker.init, *worker.apps]:
                proc = runner.proc
                if proc is None or proc.returncode is not None:
                    continue
                if runner.cgroup is not None and runner.cgroup.enforced:
                    cpu, memory = runner.cgroup.usage(proc.pid)
                else:
                    cpu, memory = cgroups.tree_usage(proc.pid)
                per[runner.name] = (cpu, memory, runner.started_mono)
            if per:
                out[uid] = per
        return out


def _queue_order(worker: PodWorker) -> tuple[int, str]:
    priority = worker.pod.spec.priority or 0
    return (-priority, str(worker.raw["metadata"].get("creationTimestamp", "")))


def _newest(folder: Path) -> int:
    try:
        numbers = [
            int(p.name.split(".", 1)[0])
            for p in folder.iterdir()
            if p.name.split(".", 1)[0].isdigit()
        ]
    except OSError:
        return -1
    return max(numbers, default=-1)


def _instance_files(folder: Path, instance: int) -> list[Path]:
    if instance < 0:
        return []
    current = folder / f"{instance}.log"
    rotated = folder / f"{instance}.log.1"
    return [p for p in (rotated, current) if p.exists()]


class NodeReconciler:
    """Tells the kubelet when its Node changes (``kubectl cordon``, labels, deletion)."""

    resource: str = "nodes"
    owns: tuple[str, ...] = ()
    watches: tuple[str, ...] = ()

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet

    async def reconcile(self, namespace: str, name: str) -> None:
        await self.kubelet._ready.wait()
        if name == self.kubelet.node.name:
            self.kubelet.node_changed()
