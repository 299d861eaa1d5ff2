"""A revision's replicas as Pods: what a Deployment and its ReplicaSet do for Knative.

:meth:`Supervisor.scale` creates or deletes Pods (owned by the Revision, labelled as
Knative labels them: ``serving.knative.dev/service``, ``/configuration``, ``/revision``,
``/revisionUID``, ``app``) and the kubelet runs them. Each replica gets its own port
(``PORT``) on 127.0.0.1, since every pod shares the host's network. The user container is
``user-container`` with Knative's readiness default (a TCP probe on the port) and
``terminationMessagePolicy: FallbackToLogsOnError``; companions (the Dapr sidecar) become
native sidecars (``initContainers`` with ``restartPolicy: Always`` and a startup probe on
their port), so the app starts once its sidecar answers, as ``daprd`` does next to an app.

The kubelet tells the supervisor each status it writes, so the gateway learns at once
when a replica becomes ready or goes away; before a replica's pod is stopped, the
``drainer`` waits for the requests in flight on it. A pod deleted by someone else
(``kubectl delete pod``) is replaced, as a ReplicaSet replaces it. After a daemon restart
the kubelet restarts the revision's pods and the supervisor adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wonderland.errors import ConflictError, NotFoundError, WonderlandError
from wonderland.ports import free_port
from wonderland.runtime import companions
from wonderland.runtime.kubelet import Kubelet
from wonderland.runtime.pod_worker import PodWorker
from wonderland.store import Store

__all__ = ["Replica", "ReplicaTemplate", "Supervisor", "free_port"]

log = logging.getLogger("wonderland.runtime")

L_REVISION = "serving.knative.dev/revision"
USER_CONTAINER = "user-container"
_ALNUM = string.ascii_lowercase + string.digits


@dataclass
class ReplicaTemplate:
    """Everything needed to make the Pod of one replica of a revision.

    ``container`` is the serving container as the revision declares it (env with
    ``valueFrom`` kept: the kubelet resolves it per pod); ``sidecars`` the revision's other
    containers; ``volumes`` its volumes.
    """

    namespace: str
    revision: str
    service: str
    configuration: str
    container: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    owner: dict[str, Any] = field(default_factory=dict)
    sidecars: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    service_account: str | None = None
    automount_token: bool | None = None
    port_name: str = ""
    grace_period: float = 30.0
    progress_deadline: float = 600.0
    revision_object: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.revision}"


@dataclass
class Replica:
    """One replica: its pod and what the kubelet last said about it."""

    name: str
    port: int
    template: ReplicaTemplate
    uid: str = ""
    ready: bool = False
    ever_ready: bool = False
    gone: bool = False
    started_at: float = field(default_factory=time.monotonic)
    failure: tuple[str, str] | None = None


class Supervisor:
    """Scales revisions' pods; ``on_change(key)`` fires when readiness or failure changes
    for revision ``namespace/name``."""

    def __init__(
        self,
        kubelet: Kubelet,
        store: Store,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.kubelet = kubelet
        self.store = store
        self.on_change = on_change
        self.revisions: dict[str, list[Replica]] = {}
        self.templates: dict[str, ReplicaTemplate] = {}
        self._by_pod: dict[tuple[str, str], tuple[str, Replica]] = {}
        # drainer(revision_key, replica_name): returns once no request is in flight on it
        self.drainer: Callable[[str, str], Awaitable[None]] | None = None
        kubelet.listeners.append(self._pod_status)
        kubelet.pre_stop_hooks.append(self._pre_stop)

    @property
    def state_dir(self) -> Path:
        return self.kubelet.state_dir

    # -- what serving asks -------------------------------------------------------------

    def replicas(self, key: str) -> list[Replica]:
        return list(self.revisions.get(key, []))

    def ready_endpoints(self, key: str) -> list[tuple[str, int, str]]:
        return [("127.0.0.1", r.port, r.name) for r in self.revisions.get(key, []) if r.ready]

    def failure(self, key: str) -> tuple[str, str] | None:
        """(reason, message) when no replica is ready and one has failed."""
        reps = self.revisions.get(key, [])
        if any(r.ready for r in reps):
            return None
        for r in reps:
            if r.failure is not None:
                return r.failure
            template = r.template
            if not r.ever_ready and time.monotonic() - r.started_at > template.progress_deadline:
                return (
                    "ProgressDeadlineExceeded",
                    f"Initial scale was never achieved: the replica did not become ready within "
                    f"{template.progress_deadline:g}s",
                )
        return None

    def scale(self, template: ReplicaTemplate, count: int) -> None:
        """Create or delete pods so that ``count`` replicas run; returns at once."""
        key = template.key
        first = key not in self.templates
        self.templates[key] = template
        reps = self.revisions.setdefault(key, [])
        if first:
            self._adopt(template, reps)
        reps[:] = [r for r in reps if not r.gone]
        while len(reps) < count:
            replica = self._create(template)
            if replica is None:
                break
            reps.append(replica)
        if len(reps) > count:
            order = sorted(reps, key=lambda r: (r.ready, -r.started_at))
            for victim in order[: len(reps) - count]:
                reps.remove(victim)
                self._delete(key, victim)
            self._changed(key)

    async def stop_revision(self, key: str) -> None:
        reps = self.revisions.pop(key, [])
        self.templates.pop(key, None)
        for replica in reps:
            self._delete(key, replica)
        workers = [self.kubelet.workers.get(r.uid) for r in reps]
        waits = [w.wait() for w in workers if w is not None]
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        """The daemon stops: the kubelet stops every pod; nothing to delete here."""
        self.revisions.clear()
        self._by_pod.clear()

    # -- pods --------------------------------------------------------------------------

    def _pod_name(self, template: ReplicaTemplate) -> str:
        digest = (template.owner.get("uid") or template.revision).replace("-", "")[:10]
        suffix = "".join(secrets.choice(_ALNUM) for _ in range(5))
        return f"{template.revision}-deployment-{digest}-{suffix}"

    def _create(self, template: ReplicaTemplate) -> Replica | None:
        name = self._pod_name(template)
        port = free_port()
        replica = Replica(name, port, template)
        pod = self._pod(template, name, port)
        try:
            created = self.store.create(pod)
        except WonderlandError as exc:
            log.warning("revision %s: cannot create its pod: %s", template.key, exc)
            replica.failure = ("CreateFailed", str(exc))
            self._changed(template.key)
            return replica
        replica.uid = created["metadata"]["uid"]
        self._by_pod[(template.namespace, name)] = (template.key, replica)
        # a replica that never becomes ready fails the revision after the progress deadline
        asyncio.get_running_loop().call_later(
            template.progress_deadline + 0.05, self._changed, template.key
        )
        return replica

    def _pod(self, template: ReplicaTemplate, name: str, port: int) -> dict[str, Any]:
        info = companions.ReplicaInfo(
            namespace=template.namespace,
            revision=template.revision,
            service=template.service,
            replica=name,
            app_port=port,
            app_env={},
            log_dir=self.state_dir / "logs" / template.namespace / template.revision,
            gateway_url=self.kubelet.env.get("HTTP_PROXY", ""),
        )
        init: list[dict[str, Any]] = []
        app_env: dict[str, str] = {}
        for factory_name, factory in companions.factories():
            try:
                result = factory(template.revision_object, info)
            except Exception:
                log.exception("replica companion %s failed for %s", factory_name, name)
                continue
            if result is None:
                continue
            app_env.update(result.app_env)
            for proc in result.processes:
                sidecar: dict[str, Any] = {
                    "name": proc.name,
                    "image": proc.image or f"wonderland.local/{proc.name}",
                    "command": list(proc.argv),
                    "env": [{"name": k, "value": v} for k, v in proc.env.items()],
                    "restartPolicy": "Always",
                }
                if proc.cwd:
                    sidecar["workingDir"] = proc.cwd
                ports: list[dict[str, Any]] = []
                if proc.ready_port:
                    ports.append({"containerPort": proc.ready_port})
                    sidecar["startupProbe"] = {
                        "tcpSocket": {"port": proc.ready_port},
                        "failureThreshold": 600,
                    }
                ports += [
                    {"name": n, "containerPort": p, "protocol": "TCP"}
                    for n, p in proc.ports.items()
                ]
                if ports:
                    sidecar["ports"] = ports
                init.append(sidecar)
        container = dict(template.container)
        container["name"] = container.get("name") or USER_CONTAINER
        declared = [e for e in container.get("env") or [] if e.get("name") not in app_env]
        runtime_env = {
            **app_env,
            "PORT": str(port),
            "K_REVISION": template.revision,
            "K_CONFIGURATION": template.configuration,
            "K_SERVICE": template.service,
        }
        container["env"] = [*declared, *({"name": k, "value": v} for k, v in runtime_env.items())]
        port_entry: dict[str, Any] = {
            "containerPort": port,
            "name": template.port_name or "user-port",
        }
        container["ports"] = [port_entry]
        readiness = container.get("readinessProbe")
        container["readinessProbe"] = _probe_on(readiness, port) or {"tcpSocket": {"port": port}}
        for probe in ("livenessProbe", "startupProbe"):
            if container.get(probe):
                container[probe] = _probe_on(container[probe], port)
        container.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
        labels = {
            **template.labels,
            L_REVISION: template.revision,
            "serving.knative.dev/revisionUID": str(template.owner.get("uid", "")),
            "app": template.revision,
        }
        spec: dict[str, Any] = {
            "containers": [container, *template.sidecars],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": math.ceil(template.grace_period),
        }
        if init:
            spec["initContainers"] = init
        if template.volumes:
            spec["volumes"] = template.volumes
        if template.service_account:
            spec["serviceAccountName"] = template.service_account
        if template.automount_token is not None:
            spec["automountServiceAccountToken"] = template.automount_token
        meta: dict[str, Any] = {
            "name": name,
            "namespace": template.namespace,
            "labels": labels,
            "annotations": dict(template.annotations),
        }
        if template.owner:
            meta["ownerReferences"] = [template.owner]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}

    def _delete(self, key: str, replica: Replica) -> None:
        replica.ready = False
        replica.gone = True
        target = self.templates.get(key)
        namespace = target.namespace if target else key.partition("/")[0]
        with contextlib.suppress(NotFoundError, ConflictError):
            self.store.delete("pods", namespace, replica.name)

    def _adopt(self, template: ReplicaTemplate, reps: list[Replica]) -> None:
        """Pods of this revision from before a daemon restart: take them over."""
        try:
            pods, _ = self.store.list("pods", template.namespace, {L_REVISION: template.revision})
        except WonderlandError:
            return
        known = {r.name for r in reps}
        for pod in pods:
            meta = pod["metadata"]
            phase = (pod.get("status") or {}).get("phase")
            if (
                meta["name"] in known
                or meta.get("deletionTimestamp")
                or phase in ("Succeeded", "Failed")
            ):
                continue
            port = 0
            for c in (pod.get("spec") or {}).get("containers") or []:
                if c.get("ports"):
                    port = int(c["ports"][0].get("containerPort") or 0)
                    break
            replica = Replica(meta["name"], port, template, uid=meta["uid"])
            reps.append(replica)
            self._by_pod[(template.namespace, meta["name"])] = (template.key, replica)

    # -- what the kubelet tells us -----------------------------------------------------

    def _pod_status(self, pod: dict[str, Any], worker: PodWorker) -> None:
        entry = self._by_pod.get((worker.namespace, worker.name))
        if entry is None:
            return
        key, replica = entry
        if replica.uid and replica.uid != worker.uid:
            return
        changed = False
        ready = worker.ready() and not worker.terminating.is_set()
        if ready != replica.ready:
            replica.ready = ready
            changed = True
            if ready:
                replica.ever_ready = True
        failure = _failure(pod, worker)
        if failure != replica.failure:
            replica.failure = failure
            changed = True
        if worker.finished.is_set() or worker.terminating.is_set():
            if not replica.gone:
                # deleted by someone else (kubectl delete pod) or ended: replace it
                replica.gone = True
                replica.ready = False
                reps = self.revisions.get(key, [])
                if replica in reps:
                    reps.remove(replica)
                changed = True
            if worker.finished.is_set():
                self._by_pod.pop((worker.namespace, worker.name), None)
        if changed:
            self._changed(key)

    async def _pre_stop(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        entry = self._by_pod.get((meta["namespace"], meta["name"]))
        if entry is None or self.drainer is None:
            return
        key, replica = entry
        if replica.ever_ready:
            await self.drainer(key, replica.name)

    def _changed(self, key: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(key)
            except Exception:
                log.exception("runtime change handler failed for %s", key)


def _probe_on(probe: dict[str, Any] | None, port: int) -> dict[str, Any] | None:
    """The revision's probe pointed at this replica's port (Knative's probes name the
    container port, or 0 for it)."""
    if not probe:
        return None
    out = dict(probe)
    for handler in ("httpGet", "tcpSocket", "grpc"):
        if isinstance(out.get(handler), dict):
            out[handler] = {**out[handler], "port": port}
    return out


_FAILED_WAITING = (
    "CreateContainerConfigError",
    "CreateContainerError",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "RunContainerError",
)


def _failure(pod: dict[str, Any], worker: PodWorker) -> tuple[str, str] | None:
    """Why a replica cannot serve, in Knative's terms; None when nothing failed."""
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
            return "Unschedulable", str(cond.get("message", ""))
    for cs in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if waiting.get("reason") in _FAILED_WAITING:
            return str(waiting["reason"]), str(waiting.get("message", ""))
        if terminated and (waiting.get("reason") == "CrashLoopBackOff" or state.get("terminated")):
            code = int(terminated.get("exitCode") or 0)
            if code == 0 and terminated.get("reason") != "OOMKilled":
                continue
            message = str(terminated.get("message") or "").strip()
            reason = "OOMKilled" if terminated.get("reason") == "OOMKilled" else f"ExitCode{code}"
            return reason, f"Container failed with: {message}".rstrip()
    return None
