"""The TrainJob controller: Kubeflow Trainer v2.3's ``trainjob_controller.go``.

Each reconcile of an unfinished TrainJob resolves its runtime (from the runtime snapshot
ConfigMap ``<trainjob>-runtime-snapshot`` once taken, so later edits of the runtime do not
change a running job), applies the ML policy and the status endpoint's variables, and
creates the JobSet (named as the TrainJob) and what the policy needs beside it (the MPI
hostfile and SSH key, the status endpoint's CA ConfigMap). A JobSet that exists is only
updated while the TrainJob or the JobSet is suspended, as upstream does. The status then
follows the JobSet: ``Complete``/``Failed`` copied from its ``Completed``/``Failed``
conditions, ``jobsStatus`` from its ``replicatedJobsStatus``, ``Suspended`` with reason
``Suspended``/``Resumed``; ``activeDeadlineSeconds`` (counted from creation, or from the
last resume) fails the job with ``DeadlineExceeded`` and deletes the JobSet.

With MLflow tracking, a TrainJob that no Trial owns gets a run before its JobSet is made
(experiment named after the TrainJob, :mod:`wonderland.tracking.runs`), ended with the
TrainJob; its run (made or inherited from a Trial) is put on the JobSet and its job
templates (``tracking.wonderland.dev/run-id``), so every Job of it continues that one run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from wonderland.api.owners import controller_ref
from wonderland.api.schemas.trainer import TrainingRuntimeObject, TrainJobObject
from wonderland.controllers import Result
from wonderland.controllers.events import EventRecorder
from wonderland.datasets.lineage import mlflow_input, mounted_datasets
from wonderland.errors import AlreadyExistsError, ConflictError, NotFoundError, WonderlandError
from wonderland.ports import free_port
from wonderland.store import Store
from wonderland.tracking.access import TrackingAccess
from wonderland.tracking.runs import (
    RUN_ID_ANNOTATION,
    RunRequest,
    WorkloadRuns,
    experiment_name,
    opted_out,
    run_pending,
)
from wonderland.training import frameworks
from wonderland.training.jobset_builder import build_jobset
from wonderland.training.runtime_info import NODE, RuntimeInfo, new_runtime_info
from wonderland.training.status_env import StatusEnvironment
from wonderland.workloads.views import (
    ConditionsView,
    ConditionView,
    ObjectMetaView,
    format_time,
    parse_time,
)

__all__ = [
    "CLUSTER_RUNTIMES",
    "JOBSETS",
    "RUNTIMES",
    "TRAINJOBS",
    "TrainJobReconciler",
    "runtime_group_kind",
]

log = logging.getLogger("wonderland.training")

TRAINJOBS = "trainjobs.trainer.kubeflow.org"
RUNTIMES = "trainingruntimes.trainer.kubeflow.org"
CLUSTER_RUNTIMES = "clustertrainingruntimes.trainer.kubeflow.org"
JOBSETS = "jobsets.jobset.x-k8s.io"
GROUP = "trainer.kubeflow.org"
CONTROLLER = "trainer.kubeflow.org/trainjob-controller"
SNAPSHOT_SUFFIX = "-runtime-snapshot"
HOSTFILE_SUFFIX = "-mpi-hostfile"
SSH_SUFFIX = "-mpi-ssh-auth"
COMPONENT = "trainjob-controller"

SUSPENDED_MESSAGE = "TrainJob is suspended"
RESUMED_MESSAGE = "TrainJob is resumed"
DEADLINE_MESSAGE = "TrainJob exceeded its active deadline"

Obj = dict[str, Any]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def runtime_group_kind(job: TrainJobObject) -> str:
    """``ClusterTrainingRuntime.trainer.kubeflow.org`` (schema.GroupKind's string)."""
    ref = job.spec.runtimeRef
    group = ref.apiGroup if ref.apiGroup is not None else GROUP
    kind = ref.kind if ref.kind is not None else "ClusterTrainingRuntime"
    return f"{kind}.{group}" if group else kind


class TrainJobStatusView(ConditionsView):
    jobsStatus: list[Obj] | None = None
    trainerStatus: Obj | None = None
    # the dataset claims its pods mount (wonderland.datasets.lineage), recorded once
    datasets: list[Obj] | None = None

    def to_dict(self) -> Obj:
        out: Obj = self.conditions_dict()
        if self.jobsStatus is not None:
            out["jobsStatus"] = self.jobsStatus
        if self.datasets is not None:
            out["datasets"] = self.datasets
        if self.trainerStatus is not None:
            out["trainerStatus"] = self.trainerStatus
        return out


class TrainJobReconciler:
    """Runs every TrainJob whose ``managedBy`` is unset or the trainjob controller's."""

    resource: str = TRAINJOBS
    owns: tuple[str, ...] = (JOBSETS,)
    watches: tuple[str, ...] = ()

    def __init__(
        self,
        store: Store,
        record: EventRecorder,
        status_env: StatusEnvironment | None = None,
        clock: Callable[[], datetime] = _utcnow,
        tracking: TrackingAccess | None = None,
    ) -> None:
        self.store = store
        self.record = record
        self.status_env = status_env
        self.clock = clock
        self.runs = (
            WorkloadRuns(tracking, store, record, TRAINJOBS, COMPONENT)
            if tracking is not None
            else None
        )

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        try:
            raw = self.store.get(TRAINJOBS, namespace, name)
        except NotFoundError:
            return None
        job = TrainJobObject.model_validate(raw)
        if job.spec.managedBy not in (None, CONTROLLER):
            return None
        status = TrainJobStatusView.model_validate(raw.get("status") or {})
        before = status.to_dict()
        now = self.clock()
        error: WonderlandError | None = None
        group_kind = runtime_group_kind(job)
        if group_kind not in (f"ClusterTrainingRuntime.{GROUP}", f"TrainingRuntime.{GROUP}"):
            status.set(
                "Failed",
                "True",
                "TrainingRuntimeNotSupported",
                f"unsupported runtime: {group_kind}",
                now,
            )
        elif not status.finished():
            try:
                await self._reconcile_objects(raw, job)
                if status.datasets is None:
                    await self._record_datasets(raw, status)
            except WonderlandError as exc:
                error = exc
                text = f"{exc}"
                message = f"TrainJob resources reconciliation failed: {text[:950]}"
                if len(text) > 950:
                    message += " ..."
                self.record(
                    self.store,
                    raw,
                    "Warning",
                    "TrainJobResourcesCreationFailed",
                    message,
                    COMPONENT,
                )
        self._suspended_condition(job, status, now)
        self._follow_jobset(job, status, now)
        requeue = self._deadline(job, status, now)
        if status.to_dict() != before:
            self._write_status(namespace, name, status)
        runs = self._runs()
        if runs is not None and status.finished() and runs.owns_open_run(raw):
            await runs.end(raw, succeeded=status.is_true("Complete"))
        if error is not None:
            raise error
        return Result(requeue_after=requeue) if requeue is not None else None

    # -- objects -----------------------------------------------------------------------

    def _runtime(self, raw: Obj, job: TrainJobObject) -> TrainingRuntimeObject:
        """The runtime of ``job``: its snapshot, else the live one (then snapshotted)."""
        meta = raw["metadata"]
        snapshot_name = f"{meta['name']}{SNAPSHOT_SUFFIX}"
        try:
            snapshot = self.store.get("configmaps", meta["namespace"], snapshot_name)
        except NotFoundError:
            snapshot = None
        if snapshot is not None:
            owner = ObjectMetaView.model_validate(snapshot["metadata"]).controller()
            if owner is None or owner.uid != meta["uid"]:
                raise WonderlandError(
                    "unable to get runtime snapshot: invalid runtime snapshot: a snapshot "
                    "configmap exists but is owned by another object"
                )
            data = (snapshot.get("data") or {}).get("runtime")
            if data is None:
                raise WonderlandError(
                    "unable to get runtime snapshot: invalid runtime snapshot: snapshot "
                    'ConfigMap missing "runtime" data key'
                )
            return TrainingRuntimeObject.model_validate(yaml.safe_load(data))
        ref = job.spec.runtimeRef
        cluster = (ref.kind or "ClusterTrainingRuntime") == "ClusterTrainingRuntime"
        resource, ns = (CLUSTER_RUNTIMES, None) if cluster else (RUNTIMES, meta["namespace"])
        try:
            runtime = self.store.get(resource, ns, ref.name)
        except NotFoundError:
            what = "clusterTrainingRuntime" if cluster else "trainingRuntime"
            kind = "clustertrainingruntimes" if cluster else "trainingruntimes"
            raise WonderlandError(
                f'{what} not found: {kind}.trainer.kubeflow.org "{ref.name}" not found'
            ) from None
        kept = {k: runtime[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in runtime}
        kept["metadata"] = {
            k: v
            for k, v in runtime["metadata"].items()
            if k in ("name", "namespace", "labels", "annotations")
        }
        snapshot_obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": snapshot_name,
                "namespace": meta["namespace"],
                "ownerReferences": [controller_ref(raw)],
            },
            "data": {"runtime": yaml.safe_dump(kept, sort_keys=False)},
        }
        try:
            self.store.create(snapshot_obj)
        except AlreadyExistsError:
            pass
        return TrainingRuntimeObject.model_validate(runtime)

    def runtime_info(self, raw: Obj, job: TrainJobObject, port: int | None = None) -> RuntimeInfo:
        """The resolved runtime with the ML policy and the status endpoint applied;
        ``port`` is the rendezvous port (a free one is picked when None)."""
        runtime = self._runtime(raw, job)
        info = new_runtime_info(job, runtime)
        frameworks.enforce_ml_policy(info, job, port or free_port())
        if self.status_env is not None:
            self.status_env.inject(info, job)
        return info

    def _runs(self) -> WorkloadRuns | None:
        return self.runs if self.runs is not None and self.runs.enabled else None

    async def _run(self, raw: Obj, jobset: Obj) -> str | None:
        """The run of a TrainJob whose JobSet is being made: the one it carries, else a new
        one unless a Trial owns it (the trial's run is the run) or it opted out."""
        runs = self._runs()
        if runs is None:
            return None
        meta = raw["metadata"]
        carried = runs.run_id(raw)
        if carried is not None or opted_out(meta.get("annotations")):
            return carried
        owner = ObjectMetaView.model_validate(meta).controller()
        if owner is not None and owner.kind == "Trial":
            return None
        runtime = (raw.get("spec") or {}).get("runtimeRef") or {}
        request = RunRequest(
            kind="TrainJob",
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            experiment=experiment_name(meta["namespace"], meta["name"]),
            run_name=meta["name"],
            tags={"wonderland.runtime": str(runtime.get("name", ""))},
            code=_trainer_workdir(jobset),
        )
        _, run_id = await runs.ensure(raw, request)
        return run_id

    async def _reconcile_objects(self, raw: Obj, job: TrainJobObject) -> None:
        meta = raw["metadata"]
        try:
            existing = self.store.get(JOBSETS, meta["namespace"], meta["name"])
        except NotFoundError:
            existing = None
        suspended = bool(job.spec.suspend)
        if existing is not None and not suspended and not existing["spec"].get("suspend"):
            return  # a running JobSet is never rebuilt
        if existing is None and self._runs() is not None and run_pending(raw):
            return  # its Trial is making the run; the annotation change wakes it
        # A JobSet rebuilt while suspended keeps its rendezvous port.
        info = self.runtime_info(raw, job, _rendezvous_port(existing))
        for extra in self._companions(raw, info):
            self._ensure(extra)
        jobset = build_jobset(info, job)
        carried = self._runs() is not None and WorkloadRuns.run_id(raw) is not None
        if existing is None or carried:
            run_id = await self._run(raw, jobset)
            if run_id is not None:
                _annotate_run(jobset, run_id)
        if existing is None:
            try:
                self.store.create(jobset)
            except AlreadyExistsError:
                pass
            return
        owner = ObjectMetaView.model_validate(existing["metadata"]).controller()
        if owner is None or owner.uid != meta["uid"]:
            raise WonderlandError(
                f'JobSet "{meta["name"]}" exists and is not controlled by this TrainJob'
            )
        if existing["spec"] != jobset["spec"]:
            updated = dict(existing)
            updated["spec"] = jobset["spec"]
            try:
                self.store.update(updated)
            except ConflictError as exc:
                raise WonderlandError(f"updating JobSet: {exc}") from None

    async def _record_datasets(self, raw: Obj, status: TrainJobStatusView) -> None:
        """The datasets the JobSet's pods mount into ``status`` and, with tracking on, as
        inputs of the run the JobSet carries. Level-triggered: a status without them (the
        JobSet just made, or a restart in between) gets them; MLflow keeps an input once."""
        meta = raw["metadata"]
        try:
            jobset = self.store.get(JOBSETS, meta["namespace"], meta["name"])
        except NotFoundError:
            return
        read = mounted_datasets(self.store, meta["namespace"], _pod_specs(jobset))
        if not read:
            return
        runs = self._runs()
        run_id = (jobset["metadata"].get("annotations") or {}).get(RUN_ID_ANNOTATION)
        if runs is not None and run_id:
            await runs.log_inputs(raw, str(run_id), [mlflow_input(d) for d in read])
        status.datasets = [d.to_dict() for d in read]

    def _companions(self, raw: Obj, info: RuntimeInfo) -> list[Obj]:
        meta = raw["metadata"]
        owner = [controller_ref(raw)]
        out: list[Obj] = []
        if info.ml_policy is not None and info.ml_policy.mpi is not None:
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": f"{meta['name']}{HOSTFILE_SUFFIX}",
                        "namespace": meta["namespace"],
                        "ownerReferences": owner,
                    },
                    "data": {frameworks.MPI_HOSTFILE: frameworks.hostfile(info)},
                }
            )
            out.append(frameworks.ssh_auth_secret(meta["name"], meta["namespace"], owner))
        if self.status_env is not None:
            out.append(self.status_env.ca_config_map(meta["name"], meta["namespace"], owner))
        return out

    def _ensure(self, obj: Obj) -> None:
        """Create ``obj``; an existing ConfigMap gets its data back, a Secret is kept."""
        meta = obj["metadata"]
        resource = "secrets" if obj["kind"] == "Secret" else "configmaps"
        try:
            self.store.create(obj)
            return
        except AlreadyExistsError:
            pass
        if resource == "secrets":
            return
        current = self.store.get(resource, meta["namespace"], meta["name"])
        if current.get("data") != obj.get("data"):
            updated = dict(current)
            updated["data"] = obj["data"]
            try:
                self.store.update(updated)
            except ConflictError as exc:
                raise WonderlandError(f"updating ConfigMap {meta['name']}: {exc}") from None

    # -- status ------------------------------------------------------------------------

    def _suspended_condition(
        self, job: TrainJobObject, status: TrainJobStatusView, now: datetime
    ) -> None:
        if job.spec.suspend:
            status.set("Suspended", "True", "Suspended", SUSPENDED_MESSAGE, now)
        elif status.is_true("Suspended"):
            status.set("Suspended", "False", "Resumed", RESUMED_MESSAGE, now)

    def _follow_jobset(
        self, job: TrainJobObject, status: TrainJobStatusView, now: datetime
    ) -> None:
        meta = job.metadata
        try:
            jobset = self.store.get(JOBSETS, meta["namespace"], meta["name"])
        except NotFoundError:
            return  # not made yet, or deleted after the deadline or by its TTL
        deadline = status.find("Failed")
        keep_deadline = deadline if deadline and deadline.reason == "DeadlineExceeded" else None
        js_status = jobset.get("status") or {}
        for cond in js_status.get("conditions") or []:
            view = ConditionView.model_validate(cond)
            if view.status != "True":
                continue
            mapped = {"Completed": "Complete", "Failed": "Failed"}.get(view.type)
            if mapped is None:
                continue
            if keep_deadline is not None and mapped == "Failed":
                continue
            found = status.find(mapped)
            if found is None:
                status.conditions.append(
                    ConditionView(
                        type=mapped,
                        status="True",
                        reason=view.reason,
                        message=view.message,
                        lastTransitionTime=view.lastTransitionTime or format_time(now),
                    )
                )
            else:
                status.set(mapped, "True", view.reason, view.message, now)
        status.jobsStatus = [
            {
                "name": r.get("name", ""),
                "ready": int(r.get("ready", 0)),
                "succeeded": int(r.get("succeeded", 0)),
                "failed": int(r.get("failed", 0)),
                "active": int(r.get("active", 0)),
                "suspended": int(r.get("suspended", 0)),
            }
            for r in js_status.get("replicatedJobsStatus") or []
        ] or None

    def _deadline(
        self, job: TrainJobObject, status: TrainJobStatusView, now: datetime
    ) -> float | None:
        seconds = job.spec.activeDeadlineSeconds
        if not seconds or status.finished() or job.spec.suspend:
            return None
        start = parse_time(job.metadata.get("creationTimestamp"))
        resumed = status.find("Suspended")
        if resumed is not None and resumed.status == "False":
            start = parse_time(resumed.lastTransitionTime) or start
        if start is None:
            return None
        left = (start.timestamp() + seconds) - now.timestamp()
        if left > 0:
            return max(left, 1.0) if left < 1 else left
        status.set("Failed", "True", "DeadlineExceeded", DEADLINE_MESSAGE, now)
        meta = job.metadata
        try:
            self.store.delete(JOBSETS, meta["namespace"], meta["name"])
        except NotFoundError:
            pass
        return None

    def _write_status(self, namespace: str, name: str, status: TrainJobStatusView) -> None:
        """Write conditions and jobsStatus; ``trainerStatus`` as stored (the status
        endpoint owns it)."""
        for _ in range(5):
            try:
                current = self.store.get(TRAINJOBS, namespace, name)
            except NotFoundError:
                return
            body = dict(current)
            new = status.to_dict()
            trainer = (current.get("status") or {}).get("trainerStatus")
            new.pop("trainerStatus", None)
            if trainer is not None:
                new["trainerStatus"] = trainer
            body["status"] = new
            try:
                self.store.update_status(body)
                return
            except ConflictError:
                continue


def _rendezvous_port(jobset: Obj | None) -> int | None:
    """The port an existing JobSet's trainer was given (``PET_MASTER_PORT`` and kin)."""
    if jobset is None:
        return None
    for rjob in jobset.get("spec", {}).get("replicatedJobs") or []:
        pod = (((rjob.get("template") or {}).get("spec") or {}).get("template") or {}).get("spec")
        for container in (pod or {}).get("containers") or []:
            for env in container.get("env") or []:
                value = str(env.get("value") or "")
                if env.get("name") in frameworks.PORT_VARIABLES and value.isdigit():
                    return int(value)
    return None


def _pod_specs(jobset: Obj) -> list[Obj]:
    """The pod specs of the JobSet's replicated jobs."""
    specs = []
    for rjob in jobset.get("spec", {}).get("replicatedJobs") or []:
        pod = (((rjob.get("template") or {}).get("spec") or {}).get("template") or {}).get("spec")
        if isinstance(pod, dict):
            specs.append(pod)
    return specs


def _trainer_workdir(jobset: Obj) -> Path | None:
    """The ``workingDir`` of the trainer's ``node`` container, when it is an absolute path."""
    for rjob in jobset.get("spec", {}).get("replicatedJobs") or []:
        pod = (((rjob.get("template") or {}).get("spec") or {}).get("template") or {}).get("spec")
        for container in (pod or {}).get("containers") or []:
            workdir = container.get("workingDir")
            if container.get("name") == NODE and workdir:
                return Path(workdir) if PurePosixPath(workdir).is_absolute() else None
    return None


def _annotate_run(jobset: Obj, run_id: str) -> None:
    """The run on the JobSet and on each job template, so its Jobs carry it."""
    jobset["metadata"].setdefault("annotations", {})[RUN_ID_ANNOTATION] = run_id
    for rjob in jobset.get("spec", {}).get("replicatedJobs") or []:
        meta = rjob.setdefault("template", {}).setdefault("metadata", {})
        meta.setdefault("annotations", {})[RUN_ID_ANNOTATION] = run_id
