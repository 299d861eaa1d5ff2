"""MLflow runs made for workloads: a TrainJob, a Job or a Katib Trial gets a run before its
pods start, so ``mlflow.start_run()`` in its code continues that run (``MLFLOW_RUN_ID``) and
the run exists, tagged, even when the code logs nothing.

The core is three calls on a :class:`~wonderland.tracking.access.TrackingAccess`:
:func:`ensure_run` (the run of a :class:`RunRequest`, made once: a run tagged with the
object's uid is found again), :func:`finish_run` (FINISHED/FAILED/KILLED, only while the
run is still RUNNING: the user's code may have ended it) and :func:`log_metrics`. Each wakes
the server, then calls MLflow's REST API in a worker thread.

:class:`WorkloadRuns` is what a controller holds: it records the run on the object
(annotation :data:`RUN_ID_ANNOTATION`, with :data:`RUN_OWNER_ANNOTATION` naming the object
whose controller made the run and ends it, :data:`RUN_ENDED_ANNOTATION` once ended), and
turns every failure to reach MLflow into a Warning event ``MLflowRunFailed`` on the object:
a workload never waits for, nor fails because of, tracking. Children inherit the run
through :data:`RUN_ID_ANNOTATION` alone (a Trial's Job or TrainJob, a TrainJob's JobSet
and Jobs); the Job controller puts ``MLFLOW_RUN_ID`` into the pods of a Job that carries
it (:func:`add_run_env`). The annotation ``tracking.wonderland.dev/mlflow: "off"`` on an
object turns all of it off for that object (:func:`opted_out`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wonderland.controllers.events import EventRecorder
from wonderland.errors import ConflictError, NotFoundError, WonderlandError
from wonderland.store import Store
from wonderland.timefmt import parse_time
from wonderland.tracking.access import OPT_OUT_ANNOTATION, TrackingAccess, opted_out
from wonderland.tracking.client import MlflowApiError, RestClient, TrackingError
from wonderland.tracking.code import code_digest, git_commit

__all__ = [
    "OPT_OUT_ANNOTATION",
    "RUN_ENDED_ANNOTATION",
    "RUN_ID_ANNOTATION",
    "RUN_ID_ENV",
    "RUN_OWNER_ANNOTATION",
    "RUN_PENDING_ANNOTATION",
    "MetricPoint",
    "RunRequest",
    "WorkloadRuns",
    "add_run_env",
    "annotate",
    "ensure_run",
    "experiment_name",
    "finish_run",
    "log_inputs",
    "log_metrics",
    "opted_out",
    "run_pending",
]

log = logging.getLogger("wonderland.tracking.runs")

Obj = dict[str, Any]
RUN_ID_ANNOTATION = "tracking.wonderland.dev/run-id"
RUN_OWNER_ANNOTATION = "tracking.wonderland.dev/run-owner"
RUN_ENDED_ANNOTATION = "tracking.wonderland.dev/run-ended"
# On a child made before its parent's run (a trial's Job or TrainJob): its pods (or JobSet)
# wait until the parent sets the run id and removes this, so the child exists at once (the
# Kubeflow SDK reads a trial's TrainJob as soon as it lists the trial) while the tracking
# server may still be starting.
RUN_PENDING_ANNOTATION = "tracking.wonderland.dev/run-pending"
RUN_ID_ENV = "MLFLOW_RUN_ID"
FAILED_REASON = "MLflowRunFailed"
CALL_TIMEOUT = 15.0

# (metric name, value, step, timestamp in ms)
MetricPoint = tuple[str, float, int, int]


@dataclass(frozen=True)
class RunRequest:
    """The run one object asks for: who it is, the experiment and run names, extra tags,
    params, and the folder of its code (None: no code digest)."""

    kind: str
    namespace: str
    name: str
    uid: str
    experiment: str
    run_name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    code: Path | None = None
    # made while this daemon runs, so no earlier daemon made a run for it: the search for
    # a run lost in a crash (between making it and writing the annotation) is skipped
    fresh: bool = False

    def run_tags(self) -> dict[str, str]:
        """The run's tags; reads the code folder (call it in a worker thread)."""
        tags = {
            "wonderland.kind": self.kind,
            "wonderland.namespace": self.namespace,
            "wonderland.name": self.name,
            "wonderland.uid": self.uid,
            "mlflow.runName": self.run_name,
            "mlflow.source.type": "JOB",
            "mlflow.source.name": f"{self.kind}/{self.namespace}/{self.name}",
        }
        if self.code is not None:
            digest = code_digest(self.code)
            if digest is not None:
                tags["wonderland.code.digest"] = digest
                tags["wonderland.code.path"] = str(self.code)
            commit = git_commit(self.code)
            if commit is not None:
                tags["mlflow.source.git.commit"] = commit
        tags.update(self.tags)
        return tags


def experiment_name(namespace: str, name: str) -> str:
    """The MLflow experiment of an object named ``name``: the name itself in namespace
    ``default``, ``<namespace>/<name>`` elsewhere."""
    return name if namespace in ("", "default") else f"{namespace}/{name}"


def add_run_env(pod_spec: Obj, run_id: str) -> None:
    """``MLFLOW_RUN_ID`` into every container of ``pod_spec`` that does not set it."""
    for group in ("initContainers", "containers"):
        for container in pod_spec.get(group) or []:
            env = list(container.get("env") or [])
            if any(e.get("name") == RUN_ID_ENV for e in env):
                continue
            container["env"] = [*env, {"name": RUN_ID_ENV, "value": run_id}]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


# (server, experiment name) -> id: one lookup per experiment while the daemon runs
_EXPERIMENTS: dict[tuple[str, str], str] = {}


def _experiment(client: RestClient, name: str, *, cached: bool = True) -> str:
    key = (client.base_url, name)
    if not cached or key not in _EXPERIMENTS:
        _EXPERIMENTS[key] = client.ensure_experiment(name)
    return _EXPERIMENTS[key]


def _ensure_run(base: str, request: RunRequest) -> str:
    with RestClient(base, timeout=CALL_TIMEOUT) as client:
        experiment = _experiment(client, request.experiment)
        if not request.fresh:
            # the run made for this object before (the annotation was lost in a crash)
            found = client.search_runs(
                [experiment], f"tags.`wonderland.uid` = '{_quote(request.uid)}'", max_results=1
            )
            if found:
                return str(found[0]["info"]["run_id"])
        try:
            run = client.create_run(experiment, request.run_name, request.run_tags())
        except MlflowApiError:
            # the experiment was deleted (or the store replaced) since it was looked up
            experiment = _experiment(client, request.experiment, cached=False)
            run = client.create_run(experiment, request.run_name, request.run_tags())
        run_id = str(run["info"]["run_id"])
        if request.params:
            client.log_batch(run_id, params={k: str(v) for k, v in request.params.items()})
        return run_id


async def ensure_run(access: TrackingAccess, request: RunRequest) -> str:
    """The id of the run of ``request``'s object, made (with its tags and params) unless a
    run tagged with its uid exists in the experiment. Raises :class:`TrackingError`."""
    base = await access.wake()
    return await asyncio.to_thread(_ensure_run, base, request)


def _finish_run(base: str, run_id: str, status: str) -> bool:
    with RestClient(base, timeout=CALL_TIMEOUT) as client:
        run = client.get_run(run_id)
        if run.get("info", {}).get("status") != "RUNNING":
            return False
        client.update_run(run_id, status, end_time=int(time.time() * 1000))
        return True


async def finish_run(
    access: TrackingAccess, run_id: str, succeeded: bool, *, killed: bool = False
) -> bool:
    """End the run FINISHED (``succeeded``), FAILED, or KILLED (``killed``: stopped by the
    platform, e.g. an early-stopped trial) when it is still RUNNING; whether it was."""
    status = "KILLED" if killed else "FINISHED" if succeeded else "FAILED"
    base = await access.wake()
    return await asyncio.to_thread(_finish_run, base, run_id, status)


def _log_metrics(base: str, run_id: str, metrics: Sequence[MetricPoint]) -> None:
    with RestClient(base, timeout=CALL_TIMEOUT) as client:
        client.log_batch(run_id, metrics=[(k, v, ts, step) for k, v, step, ts in metrics])


async def log_metrics(access: TrackingAccess, run_id: str, metrics: Sequence[MetricPoint]) -> None:
    """Log ``metrics`` (name, value, step, timestamp ms) to the run."""
    if not metrics:
        return
    base = await access.wake()
    await asyncio.to_thread(_log_metrics, base, run_id, list(metrics))


def _log_inputs(base: str, run_id: str, datasets: list[Obj]) -> None:
    with RestClient(base, timeout=CALL_TIMEOUT) as client:
        client.log_inputs(run_id, datasets)


async def log_inputs(access: TrackingAccess, run_id: str, datasets: Sequence[Obj]) -> None:
    """Log ``datasets`` (MLflow ``DatasetInput`` bodies) as inputs of the run."""
    if not datasets:
        return
    base = await access.wake()
    await asyncio.to_thread(_log_inputs, base, run_id, list(datasets))


def run_pending(raw: Obj) -> bool:
    """Whether ``raw`` waits for its parent's run (:data:`RUN_PENDING_ANNOTATION`)."""
    annotations = (raw.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(RUN_PENDING_ANNOTATION, "")).lower() == "true"


def annotate(
    store: Store, resource: str, namespace: str, name: str, values: Mapping[str, str | None]
) -> Obj | None:
    """Set ``values`` among the object's annotations (None removes one); the object as
    stored then, or None when it is gone or could not be updated."""
    for _ in range(5):
        try:
            current = store.get(resource, namespace, name)
        except NotFoundError:
            return None
        meta = current["metadata"]
        annotations = dict(meta.get("annotations") or {})
        if all(annotations.get(k) == v for k, v in values.items()):
            return current
        for key, value in values.items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        meta["annotations"] = annotations
        try:
            return store.update(current)
        except ConflictError:
            continue
        except NotFoundError:
            return None
        except WonderlandError as exc:
            log.warning("annotating %s %s/%s failed: %s", resource, namespace, name, exc)
            return None
    return None


class WorkloadRuns:
    """The runs of one controller's objects of ``resource`` (see the module docstring).

    Failures are reported once per object and process: an object whose run could not be
    made runs without one (its pods have started by the time MLflow is back)."""

    def __init__(
        self,
        access: TrackingAccess,
        store: Store,
        record: EventRecorder,
        resource: str,
        component: str,
    ) -> None:
        self.access = access
        self.store = store
        self.record = record
        self.resource = resource
        self.component = component
        self._failed: set[str] = set()  # uids whose run could not be made
        # objects made in a later second than this are fresh (RunRequest.fresh)
        self._started = datetime.now(UTC).replace(microsecond=0)
        self._end_failed: set[str] = set()  # uids whose run could not be ended

    @property
    def enabled(self) -> bool:
        return self.access.enabled

    @staticmethod
    def run_id(raw: Obj) -> str | None:
        """The run ``raw`` carries (made for it or inherited), unless it opted out."""
        annotations = raw.get("metadata", {}).get("annotations") or {}
        if opted_out(annotations):
            return None
        value = annotations.get(RUN_ID_ANNOTATION)
        return str(value) if value else None

    @staticmethod
    def owns_open_run(raw: Obj) -> bool:
        """Whether ``raw``'s controller made its run and has not ended it yet."""
        meta = raw.get("metadata", {})
        annotations = meta.get("annotations") or {}
        return (
            WorkloadRuns.run_id(raw) is not None
            and annotations.get(RUN_OWNER_ANNOTATION) == meta.get("uid")
            and RUN_ENDED_ANNOTATION not in annotations
        )

    def _warn(self, raw: Obj, message: str) -> None:
        self.record(self.store, raw, "Warning", FAILED_REASON, message, self.component)

    async def ensure(self, raw: Obj, request: RunRequest) -> tuple[Obj, str | None]:
        """``raw`` (as stored after it is annotated) and its run: the one it carries, else a
        new one; None when it opted out or MLflow failed (a Warning event says why)."""
        meta = raw["metadata"]
        if opted_out(meta.get("annotations")):
            return raw, None
        existing = self.run_id(raw)
        if existing is not None:
            return raw, existing
        uid = str(meta.get("uid", ""))
        if uid in self._failed:
            return raw, None
        created = parse_time(str(meta.get("creationTimestamp") or ""))
        if created is not None and created.replace(microsecond=0) > self._started:
            request = dataclasses.replace(request, fresh=True)
        try:
            run_id = await ensure_run(self.access, request)
        except Exception as exc:
            self._failed.add(uid)
            if not isinstance(exc, TrackingError):
                log.exception("making the MLflow run of %s %s failed", request.kind, request.name)
            self._warn(raw, f"no MLflow run for this {request.kind}: {exc}")
            return raw, None
        updated = annotate(
            self.store,
            self.resource,
            str(meta.get("namespace", "")),
            str(meta["name"]),
            {RUN_ID_ANNOTATION: run_id, RUN_OWNER_ANNOTATION: uid},
        )
        if updated is None or updated["metadata"].get("uid") != uid:
            return raw, None
        log.info(
            "MLflow run %s for %s %s/%s", run_id, request.kind, meta.get("namespace"), meta["name"]
        )
        return updated, run_id

    async def log_inputs(self, raw: Obj, run_id: str, datasets: Sequence[Obj]) -> bool:
        """Log ``datasets`` as inputs of ``raw``'s run; whether they were (a failure is a
        Warning event on ``raw``, the workload goes on)."""
        try:
            await log_inputs(self.access, run_id, datasets)
        except Exception as exc:
            if not isinstance(exc, TrackingError):
                log.exception("logging the dataset inputs of the MLflow run %s failed", run_id)
            self._warn(raw, f"the datasets could not be logged to the MLflow run {run_id}: {exc}")
            return False
        return True

    async def end(
        self,
        raw: Obj,
        succeeded: bool,
        *,
        killed: bool = False,
        metrics: Sequence[MetricPoint] = (),
    ) -> Obj:
        """Log ``metrics`` and end the run ``raw``'s controller made (once); ``raw`` as
        stored after."""
        if not self.owns_open_run(raw):
            return raw
        meta = raw["metadata"]
        uid = str(meta.get("uid", ""))
        if uid in self._end_failed:
            return raw
        run_id = self.run_id(raw)
        assert run_id is not None
        status = "KILLED" if killed else "FINISHED" if succeeded else "FAILED"
        try:
            await log_metrics(self.access, run_id, metrics)
            await finish_run(self.access, run_id, succeeded, killed=killed)
        except Exception as exc:
            self._end_failed.add(uid)
            if not isinstance(exc, TrackingError):
                log.exception("ending the MLflow run %s failed", run_id)
            self._warn(raw, f"the MLflow run {run_id} could not be ended {status}: {exc}")
            return raw
        updated = annotate(
            self.store,
            self.resource,
            str(meta.get("namespace", "")),
            str(meta["name"]),
            {RUN_ENDED_ANNOTATION: status},
        )
        return updated if updated is not None else raw
