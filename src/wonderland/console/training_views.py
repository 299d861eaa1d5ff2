"""What the Training pages show: TrainJobs as typed data built from the store.

:func:`training` lists every TrainJob (runtime, phase, nodes, the progress and remaining
time its training code last reported to the trainer status endpoint, the key metric's last
value); :func:`trainjob` is one job's page: conditions, progress with an ETA, the charts of
every reported metric, its pods (one per node, each with a log panel), parameters and
environment, events. The charts come from :class:`MetricHistory`, which keeps each
``status.trainerStatus`` report it sees on the store's watch (a TrainJob holds only the
last one), bounded in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field

from wonderland.console.views import Condition
from wonderland.errors import NotFoundError
from wonderland.store import ExpiredError, Store
from wonderland.tracking.runs import RUN_ID_ANNOTATION
from wonderland.workloads.views import ObjectMetaView, View, parse_time

__all__ = [
    "JOBSET_LABEL",
    "PODS",
    "TRAINJOBS",
    "EnvRow",
    "EventLine",
    "MetricHistory",
    "MetricSeries",
    "NodePod",
    "TrainJobPage",
    "TrainJobRow",
    "TrainingPage",
    "duration_text",
    "events_of",
    "training",
    "trainjob",
]

log = logging.getLogger("wonderland.console")

TRAINJOBS = "trainjobs.trainer.kubeflow.org"
PODS = "pods"
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
# bounds of the metric history: points per series, series per job, jobs
MAX_POINTS = 1000
MAX_SERIES = 16
MAX_JOBS = 500
MAX_EVENTS = 50
_SECRET_NAME = re.compile(r"token|secret|passw|key|credential", re.IGNORECASE)
HIDDEN = "(hidden)"


# -- typed views of what is read -----------------------------------------------------------


class _Metric(View):
    name: str = ""
    value: str = ""


class _Reported(View):
    progressPercentage: int | None = None
    estimatedRemainingSeconds: int | None = None
    metrics: list[_Metric] = Field(default_factory=list)
    lastUpdatedTime: str | None = None


class _Cond(View):
    type: str = ""
    status: str = ""
    reason: str = ""
    message: str = ""
    lastTransitionTime: str | None = None


class _JobStatus(View):
    name: str = ""
    active: int | None = None
    succeeded: int | None = None
    failed: int | None = None


class _Status(View):
    conditions: list[_Cond] = Field(default_factory=list)
    jobsStatus: list[_JobStatus] = Field(default_factory=list)
    trainerStatus: _Reported | None = None


class _Env(View):
    name: str = ""
    value: str | None = None
    valueFrom: dict[str, Any] | None = None


class _Trainer(View):
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[_Env] | None = None
    numNodes: int | None = None
    numProcPerNode: int | str | None = None
    resourcesPerNode: dict[str, Any] | None = None


class _RuntimeRef(View):
    name: str = ""
    kind: str | None = None


class _Spec(View):
    runtimeRef: _RuntimeRef = Field(default_factory=_RuntimeRef)
    trainer: _Trainer | None = None
    suspend: bool | None = None


class _TrainJob(View):
    metadata: ObjectMetaView = Field(default_factory=ObjectMetaView)
    spec: _Spec = Field(default_factory=_Spec)
    status: _Status = Field(default_factory=_Status)


class _PodStatus(View):
    phase: str = ""
    startTime: str | None = None


class _Container(View):
    name: str = ""


class _PodSpec(View):
    containers: list[_Container] = Field(default_factory=list)


class _Pod(View):
    metadata: ObjectMetaView = Field(default_factory=ObjectMetaView)
    spec: _PodSpec = Field(default_factory=_PodSpec)
    status: _PodStatus = Field(default_factory=_PodStatus)


class _Involved(View):
    kind: str = ""
    name: str = ""


class _Event(View):
    metadata: ObjectMetaView = Field(default_factory=ObjectMetaView)
    involvedObject: _Involved = Field(default_factory=_Involved)
    type: str = "Normal"
    reason: str = ""
    message: str = ""
    count: int | None = None
    lastTimestamp: str | None = None
    eventTime: str | None = None


# -- the metric history --------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSeries:
    """One reported metric over time: ``t`` in seconds since the epoch, ``v`` the values."""

    name: str
    t: list[float]
    v: list[float]

    @property
    def last(self) -> float | None:
        return self.v[-1] if self.v else None

    @property
    def low(self) -> float | None:
        return min(self.v) if self.v else None

    @property
    def high(self) -> float | None:
        return max(self.v) if self.v else None


class _JobHistory:
    def __init__(self) -> None:
        self.last_update = ""
        self.series: dict[str, deque[tuple[float, float]]] = {}


class MetricHistory:
    """Every ``trainerStatus`` report of every TrainJob seen on the store's watch: a
    TrainJob keeps only its last report, the charts need them all. Bounded: at most
    ``MAX_POINTS`` points per metric, ``MAX_SERIES`` metrics per job and ``MAX_JOBS`` jobs
    (the least recently reporting go first); a deleted job's history goes with it. A
    report whose ``lastUpdatedTime`` was seen already adds nothing."""

    def __init__(self, store: Store, *, max_points: int = MAX_POINTS) -> None:
        self.store = store
        self.max_points = max_points
        self._jobs: OrderedDict[tuple[str, str], _JobHistory] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        # reports are kept in memory: the history of a job that ran before this moment
        # (a daemon restart) starts here, and its page says so
        self.since = datetime.now(UTC)

    def observe(self, obj: Mapping[str, Any]) -> None:
        """Record the report ``obj`` (a TrainJob) carries, if it is new."""
        job = _TrainJob.model_validate(obj)
        reported = job.status.trainerStatus
        if reported is None or not reported.lastUpdatedTime:
            return
        key = (job.metadata.namespace, job.metadata.name)
        history = self._jobs.get(key)
        if history is None:
            history = self._jobs[key] = _JobHistory()
            while len(self._jobs) > MAX_JOBS:
                self._jobs.popitem(last=False)
        if history.last_update == reported.lastUpdatedTime:
            return
        history.last_update = reported.lastUpdatedTime
        self._jobs.move_to_end(key)
        when = parse_time(reported.lastUpdatedTime)
        stamp = when.timestamp() if when is not None else datetime.now(UTC).timestamp()
        for metric in reported.metrics:
            value = _number(metric.value)
            if value is None:
                continue
            points = history.series.get(metric.name)
            if points is None:
                if len(history.series) >= MAX_SERIES:
                    continue
                points = history.series[metric.name] = deque(maxlen=self.max_points)
            points.append((stamp, value))

    def forget(self, namespace: str, name: str) -> None:
        self._jobs.pop((namespace, name), None)

    def series(self, namespace: str, name: str) -> list[MetricSeries]:
        history = self._jobs.get((namespace, name))
        if history is None:
            return []
        return [
            MetricSeries(metric, [p[0] for p in points], [p[1] for p in points])
            for metric, points in history.series.items()
        ]

    # -- the watch ---------------------------------------------------------------------

    async def start(self) -> None:
        """Seed from the TrainJobs there are and follow the store's watch."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="console-metric-history")
            await asyncio.sleep(0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._task = None

    async def _follow(self) -> None:
        since: str | None = None  # None: the current objects first, as ADDED
        while True:
            watch = self.store.watch(TRAINJOBS, since)
            try:
                async for event in watch:
                    since = str(event.rv)
                    if event.type == "DELETED":
                        self.forget(event.namespace, event.name)
                    else:
                        self.observe(event.object)
                return
            except ExpiredError:
                since = None  # fell behind the kept history: list again
            except NotFoundError:  # no training plugin: nothing to follow
                return
            except Exception:  # never let a bad object stop the charts for good
                log.exception("console: the TrainJob metric history stopped; restarting")
                await asyncio.sleep(1.0)
                since = None
            finally:
                await watch.aclose()


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None


# -- the pages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainJobRow:
    namespace: str
    name: str
    runtime: str
    phase: str  # Created | Running | Suspended | Complete | Failed
    reason: str  # the deciding condition's reason, "" when none
    nodes: int | None
    progress: int | None  # percent
    eta: str  # "about 2m 10s left", "" when unknown or finished
    created: str
    duration: str
    key_metric: str  # "loss=0.25", "" before any report


@dataclass(frozen=True)
class TrainingPage:
    jobs: list[TrainJobRow]
    resource_version: str


@dataclass(frozen=True)
class EnvRow:
    name: str
    value: str


@dataclass(frozen=True)
class NodePod:
    name: str
    node: str  # the replicated job and index: node-0, dataset-initializer-0, ...
    phase: str
    container: str


@dataclass(frozen=True)
class EventLine:
    type: str
    reason: str
    message: str
    object: str
    count: int
    last: str


@dataclass(frozen=True)
class TrainJobPage:
    row: TrainJobRow
    conditions: list[tuple[str, Condition]]
    reported_at: str  # lastUpdatedTime of the last report, "" before one
    remaining_seconds: int | None
    metrics: list[MetricSeries]
    last_metrics: list[tuple[str, str]]  # what the job holds now: (name, value)
    pods: list[NodePod]
    image: str
    command: str
    env: list[EnvRow]
    resources: str
    run_id: str  # the MLflow run the job logs to, "" when none
    events: list[EventLine]
    resource_version: str
    chart_data: dict[str, Any] = field(default_factory=dict)
    job_version: str = ""  # the TrainJob's own resourceVersion
    history_since: str = ""  # when the charts' history starts, "" when at the job's start


def _phase(status: _Status) -> tuple[str, str]:
    for kind in ("Failed", "Complete", "Suspended"):
        for cond in status.conditions:
            if cond.type == kind and cond.status == "True":
                return kind, cond.reason
    if any((job.active or 0) > 0 for job in status.jobsStatus):
        return "Running", ""
    return "Created", ""


def duration_text(seconds: float) -> str:
    """``1h 2m``, ``3m 4s``, ``5s``."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _finished_at(status: _Status) -> datetime | None:
    for cond in status.conditions:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return parse_time(cond.lastTransitionTime)
    return None


def _row(job: _TrainJob, now: datetime) -> TrainJobRow:
    meta, status = job.metadata, job.status
    phase, reason = _phase(status)
    created = parse_time(meta.creationTimestamp)
    end = _finished_at(status) or now
    reported = status.trainerStatus
    eta = ""
    if reported is not None and phase not in ("Complete", "Failed"):
        remaining = reported.estimatedRemainingSeconds
        stamp = parse_time(reported.lastUpdatedTime)
        if remaining is not None and stamp is not None:
            left = remaining - (now - stamp).total_seconds()
            eta = f"about {duration_text(left)} left" if left > 0 else "any moment"
    key = ""
    if reported is not None and reported.metrics:
        first = reported.metrics[0]
        key = f"{first.name}={first.value}"
    trainer = job.spec.trainer
    nodes = trainer.numNodes if trainer is not None else None
    if nodes is None and status.jobsStatus:
        nodes = (
            sum(
                (j.active or 0) + (j.succeeded or 0) + (j.failed or 0)
                for j in status.jobsStatus
                if j.name == "node"
            )
            or None
        )
    return TrainJobRow(
        meta.namespace,
        meta.name,
        job.spec.runtimeRef.name,
        phase,
        reason,
        nodes,
        reported.progressPercentage if reported is not None else None,
        eta,
        meta.creationTimestamp or "",
        duration_text((end - created).total_seconds()) if created is not None else "",
        key,
    )


def _items(store: Store, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
    try:
        items, _ = store.list(resource, namespace)
    except NotFoundError:  # the kind's plugin is not installed
        return []
    return items


def training(
    store: Store, namespace: str | None = None, now: datetime | None = None
) -> TrainingPage:
    """Every TrainJob (of ``namespace``, or all), newest first."""
    rv = store.resource_version
    moment = now or datetime.now(UTC)
    rows = [_row(_TrainJob.model_validate(raw), moment) for raw in _items(store, TRAINJOBS)]
    if namespace is not None:
        rows = [r for r in rows if r.namespace == namespace]
    rows.sort(key=lambda r: (r.created, r.namespace, r.name), reverse=True)
    return TrainingPage(rows, str(rv))


def events_of(store: Store, namespace: str, objects: Mapping[str, str]) -> list[EventLine]:
    """The events about ``objects`` (name → kind) in ``namespace``, newest first."""
    out: list[EventLine] = []
    for raw in _items(store, "events", namespace):
        ev = _Event.model_validate(raw)
        kind = objects.get(ev.involvedObject.name)
        if kind is None or kind != ev.involvedObject.kind:
            continue
        out.append(
            EventLine(
                ev.type,
                ev.reason,
                ev.message,
                f"{ev.involvedObject.kind}/{ev.involvedObject.name}",
                ev.count or 1,
                ev.lastTimestamp or ev.eventTime or ev.metadata.creationTimestamp or "",
            )
        )
    out.sort(key=lambda e: e.last, reverse=True)
    return out[:MAX_EVENTS]


def _env(trainer: _Trainer | None) -> list[EnvRow]:
    rows: list[EnvRow] = []
    for env in (trainer.env if trainer is not None else None) or []:
        if env.valueFrom:
            source = next(iter(env.valueFrom), "reference")
            rows.append(EnvRow(env.name, f"(from {source})"))
        elif _SECRET_NAME.search(env.name):
            rows.append(EnvRow(env.name, HIDDEN))
        else:
            rows.append(EnvRow(env.name, env.value or ""))
    return rows


def trainjob(
    store: Store,
    history: MetricHistory,
    namespace: str,
    name: str,
    now: datetime | None = None,
) -> TrainJobPage:
    """One TrainJob's page; ``NotFoundError`` when there is no such job."""
    rv = store.resource_version
    raw = store.get(TRAINJOBS, namespace, name)
    job = _TrainJob.model_validate(raw)
    history.observe(raw)  # the report it holds now, even before the watch delivers it
    moment = now or datetime.now(UTC)
    row = _row(job, moment)
    conditions = [(c.type, Condition(c.status, c.reason, c.message)) for c in job.status.conditions]
    pods: list[NodePod] = []
    for pod_raw in _items(store, PODS, namespace):
        pod = _Pod.model_validate(pod_raw)
        if pod.metadata.labels.get(JOBSET_LABEL) != name:
            continue
        labels = pod.metadata.labels
        replicated = labels.get("jobset.sigs.k8s.io/replicatedjob-name", "")
        index = labels.get("jobset.sigs.k8s.io/job-index", "")
        node = f"{replicated}-{index}" if replicated and index else pod.metadata.name
        container = pod.spec.containers[0].name if pod.spec.containers else ""
        pods.append(NodePod(pod.metadata.name, node, pod.status.phase or "Pending", container))
    pods.sort(key=lambda p: (p.node, p.name))
    trainer = job.spec.trainer
    reported = job.status.trainerStatus
    objects = {name: "TrainJob", **{p.name: "Pod" for p in pods}}
    metrics = history.series(namespace, name)
    chart = {
        "metrics": [{"name": s.name, "t": s.t, "v": s.v} for s in metrics],
    }
    resources = ""
    if trainer is not None and trainer.resourcesPerNode:
        requests = trainer.resourcesPerNode.get("requests") or trainer.resourcesPerNode
        if isinstance(requests, dict):
            resources = ", ".join(f"{k}={v}" for k, v in requests.items() if k != "limits")
    history_since = ""
    created = parse_time(job.metadata.creationTimestamp)
    # creationTimestamp has whole seconds: a job made in the second before is not older
    if created is not None and created < history.since - timedelta(seconds=1):
        history_since = history.since.strftime("%Y-%m-%dT%H:%M:%SZ")
    return TrainJobPage(
        row,
        conditions,
        (reported.lastUpdatedTime or "") if reported is not None else "",
        reported.estimatedRemainingSeconds if reported is not None else None,
        metrics,
        [(m.name, m.value) for m in reported.metrics] if reported is not None else [],
        pods,
        (trainer.image or "") if trainer is not None else "",
        " ".join([*(trainer.command or []), *(trainer.args or [])]) if trainer else "",
        _env(trainer),
        resources,
        job.metadata.annotations.get(RUN_ID_ANNOTATION, ""),
        events_of(store, namespace, objects),
        str(rv),
        chart,
        job.metadata.resourceVersion,
        history_since,
    )
