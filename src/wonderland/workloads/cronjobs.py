"""The batch/v1 CronJob controller: ``pkg/controller/cronjob/cronjob_controllerv2.go`` and
``utils.go`` of Kubernetes 1.32 on one machine.

Each reconcile cleans up finished Jobs beyond ``successfulJobsHistoryLimit`` and
``failedJobsHistoryLimit`` (oldest first), reconciles ``status.active`` with the Jobs that
exist, and, at a schedule time (in ``timeZone``, else the daemon's local zone, as
kube-controller-manager uses its own), creates the Job ``<cronjob>-<minutes since the
epoch>`` from ``jobTemplate`` unless the time is past ``startingDeadlineSeconds``, already
done, or ``concurrencyPolicy`` says otherwise (Forbid: skip while one runs; Replace: delete
the running ones first). It then asks to run again just after the next schedule time.

As upstream, a Job name has minute resolution: a schedule firing more than once a minute
(``@every 10s``) starts at most one Job a minute.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from wonderland.api.owners import controller_ref
from wonderland.api.schemas.batch import CronJobObject
from wonderland.controllers import Result
from wonderland.controllers.events import EventRecorder
from wonderland.errors import AlreadyExistsError, NotFoundError, WonderlandError
from wonderland.store import Store
from wonderland.workloads.cron import Schedule
from wonderland.workloads.job_status import COMPLETE, FAILED, JobStatus
from wonderland.workloads.views import ObjectMetaView, View, format_time, parse_time

__all__ = ["CronJobReconciler", "job_name", "local_zone", "next_schedule", "rfc3339"]

Obj = dict[str, Any]
CRONJOBS = "cronjobs.batch"
JOBS = "jobs.batch"
COMPONENT = "cronjob-controller"
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# nextScheduleDelta: run a little after the schedule time, so clock skew cannot make the
# controller wake up just before it.
NEXT_SCHEDULE_DELTA = 0.1
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def local_zone() -> tzinfo:
    """The daemon's time zone: ``TZ``, else what ``/etc/localtime`` links to, else the
    current UTC offset."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    link = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in link:
        candidates.append(link.split("zoneinfo/", 1)[1])
    for key in candidates:
        if key:
            try:
                return ZoneInfo(key)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return datetime.now().astimezone().tzinfo or UTC


def rfc3339(moment: datetime) -> str:
    """Go's ``time.RFC3339``: ``2024-05-01T10:00:00+02:00``, ``Z`` for a zero offset."""
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _rfc1123z(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return (
        f"{_DAYS[utc.weekday()]}, {utc.day:02d} {_MONTHS[utc.month - 1]} {utc.year} "
        f"{utc:%H:%M:%S} +0000"
    )


def job_name(cronjob: str, scheduled: datetime) -> str:
    """``<cronjob>-<scheduled time in minutes since the epoch>`` (getJobName)."""
    return f"{cronjob}-{int(scheduled.timestamp()) // 60}"


class ObjectReference(View):
    """An entry of ``status.active``."""

    kind: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    apiVersion: str = ""
    resourceVersion: str = ""

    def to_dict(self) -> Obj:
        return {k: v for k, v in self.model_dump().items() if v}


class CronJobStatus(View):
    """``status`` of a CronJob."""

    active: list[ObjectReference] = Field(default_factory=list)
    lastScheduleTime: str | None = None
    lastSuccessfulTime: str | None = None

    def to_dict(self) -> Obj:
        out: Obj = {}
        if self.active:
            out["active"] = [ref.to_dict() for ref in self.active]
        if self.lastScheduleTime:
            out["lastScheduleTime"] = self.lastScheduleTime
        if self.lastSuccessfulTime:
            out["lastSuccessfulTime"] = self.lastSuccessfulTime
        return out

    def has(self, uid: str) -> bool:
        return any(ref.uid == uid for ref in self.active)

    def drop(self, uid: str) -> None:
        self.active = [ref for ref in self.active if ref.uid != uid]


@dataclass
class _ChildJob:
    raw: Obj
    meta: ObjectMetaView
    status: JobStatus

    def finished(self) -> str | None:
        condition = self.status.finished()
        return condition.type if condition is not None else None


class _Times:
    """A schedule in a zone: ``next(t)`` is the first time strictly after ``t``."""

    def __init__(self, schedule: Schedule, zone: tzinfo) -> None:
        self.schedule = schedule
        self.zone = zone

    def after(self, start: datetime) -> Iterator[datetime]:
        return self.schedule.after(start, self.zone)

    def next(self, start: datetime) -> datetime:
        return next(self.after(start))


@dataclass(frozen=True)
class _Recent:
    earliest: datetime
    most_recent: datetime | None
    missed: int  # 0: none, 1: a few, 2: more than 100


def _most_recent(
    created: datetime,
    last: datetime | None,
    deadline: int | None,
    now: datetime,
    times: _Times,
    with_deadline: bool,
) -> _Recent:
    """mostRecentScheduleTime of utils.go: the last schedule time not after ``now`` that
    has not been started yet, and how many were missed. ValueError for a schedule whose
    times are less than a second apart."""
    earliest = last if last is not None else created
    if with_deadline and deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=deadline))
    t1 = times.next(earliest)
    t2 = times.next(t1)
    if now < t1:
        return _Recent(earliest, None, 0)
    if now < t2:
        return _Recent(earliest, t1, 0)
    between = round((t2 - t1).total_seconds())
    if between < 1:
        raise ValueError("time difference between two schedules is less than 1 second")
    missed_count = int((now - t1).total_seconds()) // between + 1
    # Start one interval early and let the schedule find its exact times from there.
    start = t1 + timedelta(seconds=(missed_count - 2) * between)
    most_recent: datetime | None = None
    for moment in times.after(start):
        if moment > now:
            break
        most_recent = moment
    missed = 2 if missed_count > 100 else 1 if missed_count > 0 else 0
    return _Recent(earliest, most_recent, missed)


def next_schedule(created: datetime, last: datetime | None, now: datetime, times: _Times) -> float:
    """Seconds until just after the next schedule time (nextScheduleTimeDuration)."""
    try:
        recent = _most_recent(created, last, None, now, times, False)
        base = recent.most_recent or (recent.earliest if recent.missed == 0 else now)
    except ValueError:
        base = now
    return (times.next(base) - now).total_seconds() + NEXT_SCHEDULE_DELTA


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CronJobReconciler:
    """Creates the Jobs of every batch/v1 CronJob on schedule (see the module docstring).
    ``clock`` and ``zone`` (the local zone) replace the real ones in tests."""

    resource: str = CRONJOBS
    owns: tuple[str, ...] = (JOBS,)
    watches: tuple[str, ...] = ()

    def __init__(
        self,
        store: Store,
        record: EventRecorder,
        clock: Callable[[], datetime] = _utcnow,
        zone: tzinfo | None = None,
    ) -> None:
        self.store = store
        self.record = record
        self.clock = clock
        self.zone = zone if zone is not None else local_zone()

    async def reconcile(self, namespace: str, name: str) -> Result | None:
        try:
            raw = self.store.get(CRONJOBS, namespace, name)
        except NotFoundError:
            return None  # its Jobs went with it (they are owned by it)
        cronjob = CronJobObject.model_validate(raw)
        status = CronJobStatus.model_validate(raw.get("status") or {})
        jobs = self._jobs(namespace, name)
        cleaned = self._cleanup(raw, cronjob, status, jobs)
        requeue, changed, error = self._sync(raw, cronjob, status, jobs)
        if cleaned or changed:
            body = dict(raw)
            body["status"] = status.to_dict()
            self.store.update_status(body)
        if requeue is not None:
            return Result(requeue_after=max(requeue, 0.0))
        if error is not None:
            raise error
        return None

    def _event(self, raw: Obj, type: str, reason: str, message: str) -> None:
        self.record(self.store, raw, type, reason, message, COMPONENT)

    def _jobs(self, namespace: str, name: str) -> list[_ChildJob]:
        """The Jobs this CronJob controls (getJobsToBeReconciled)."""
        items, _ = self.store.list(JOBS, namespace)
        out = []
        for raw in items:
            meta = ObjectMetaView.model_validate(raw.get("metadata") or {})
            ref = meta.controller()
            if ref is not None and ref.kind == "CronJob" and ref.name == name:
                out.append(_ChildJob(raw, meta, JobStatus.parse(raw.get("status"))))
        return out

    def _delete_job(self, raw: Obj, status: CronJobStatus, job: _ChildJob) -> bool:
        try:
            # Background propagation: the store deletes the Job's pods with it.
            self.store.delete(JOBS, job.meta.namespace, job.meta.name)
        except WonderlandError as exc:
            self._event(raw, "Warning", "FailedDelete", f"Deleted job: {exc}")
            return False
        status.drop(job.meta.uid)
        self._event(raw, "Normal", "SuccessfulDelete", f"Deleted job {job.meta.name}")
        return True

    def _cleanup(
        self, raw: Obj, cronjob: CronJobObject, status: CronJobStatus, jobs: list[_ChildJob]
    ) -> bool:
        """Delete the oldest finished Jobs beyond the history limits (cleanupFinishedJobs)."""
        spec = cronjob.spec
        changed = False
        for kind, limit in (
            (COMPLETE, spec.successfulJobsHistoryLimit),
            (FAILED, spec.failedJobsHistoryLimit),
        ):
            if limit is None:
                continue
            finished = [job for job in jobs if job.finished() == kind]
            excess = len(finished) - limit
            if excess <= 0:
                continue
            finished.sort(key=_by_start_time)
            for job in finished[:excess]:
                changed = self._delete_job(raw, status, job) or changed
        return changed

    def _sync(
        self, raw: Obj, cronjob: CronJobObject, status: CronJobStatus, jobs: list[_ChildJob]
    ) -> tuple[float | None, bool, WonderlandError | None]:
        """syncCronJob: (seconds until the next run, status changed, error to retry on)."""
        now = self.clock()
        meta = ObjectMetaView.model_validate(raw["metadata"])
        spec = cronjob.spec
        changed = False
        children = {job.meta.uid for job in jobs}
        for job in jobs:
            found = status.has(job.meta.uid)
            finished = job.finished()
            if not found and finished is None:
                self._event(
                    raw,
                    "Warning",
                    "UnexpectedJob",
                    f"Saw a job that the controller did not create or forgot: {job.meta.name}",
                )
            elif found and finished is not None:
                status.drop(job.meta.uid)
                self._event(
                    raw,
                    "Normal",
                    "SawCompletedJob",
                    f"Saw completed job: {job.meta.name}, status: {finished}",
                )
                changed = True
            elif finished == COMPLETE:
                completed = parse_time(job.status.completionTime)
                last = parse_time(status.lastSuccessfulTime)
                if completed is not None and (last is None or completed > last):
                    status.lastSuccessfulTime = format_time(completed)
                    changed = True
        for ref in list(status.active):
            if ref.uid in children:
                continue
            try:
                self.store.get(JOBS, ref.namespace or meta.namespace, ref.name)
            except NotFoundError:
                self._event(raw, "Normal", "MissingJob", f"Active job went missing: {ref.name}")
                status.drop(ref.uid)
                changed = True
        if meta.deletionTimestamp is not None:
            return None, changed, None
        zone = self.zone
        if spec.timeZone is not None:
            try:
                zone = ZoneInfo(spec.timeZone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                self._event(
                    raw, "Warning", "UnknownTimeZone", f'invalid timeZone: "{spec.timeZone}": {exc}'
                )
                return None, changed, None
        if spec.suspend:
            return None, changed, None
        try:
            times = _Times(Schedule.parse(spec.schedule), zone)
        except ValueError as exc:
            self._event(
                raw,
                "Warning",
                "UnparseableSchedule",
                f'unparseable schedule: "{spec.schedule}" : {exc}',
            )
            return None, changed, None
        created = parse_time(meta.creationTimestamp) or now
        try:
            recent = _most_recent(
                created,
                parse_time(status.lastScheduleTime),
                spec.startingDeadlineSeconds,
                now,
                times,
                True,
            )
        except Exception as exc:  # a schedule with no usable times: wait for a fix
            self._event(
                raw, "Warning", "InvalidSchedule", f"invalid schedule: {spec.schedule} : {exc}"
            )
            return None, changed, None
        if recent.missed == 2 and recent.most_recent is not None:
            self._event(
                raw,
                "Warning",
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or "
                "check clock skew",
            )

        def requeue() -> float:
            return next_schedule(created, parse_time(status.lastScheduleTime), now, times)

        scheduled = recent.most_recent
        if scheduled is None:
            return requeue(), changed, None
        deadline = spec.startingDeadlineSeconds
        if deadline is not None and scheduled + timedelta(seconds=deadline) < now:
            self._event(
                raw,
                "Warning",
                "MissSchedule",
                f"Missed scheduled time to start a job: {_rfc1123z(scheduled)}",
            )
            return requeue(), changed, None
        name = job_name(meta.name, scheduled)
        if (
            any(ref.name == name for ref in status.active)
            or parse_time(status.lastScheduleTime) == scheduled
        ):
            return requeue(), changed, None  # this time was handled already
        if spec.concurrencyPolicy == "Forbid" and status.active:
            self._event(
                raw,
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            )
            return requeue(), changed, None
        if spec.concurrencyPolicy == "Replace":
            for ref in list(status.active):
                try:
                    current = self.store.get(JOBS, ref.namespace or meta.namespace, ref.name)
                except NotFoundError as exc:
                    self._event(raw, "Warning", "FailedGet", f"Get job: {exc}")
                    return None, changed, exc
                child = _ChildJob(
                    current, ObjectMetaView.model_validate(current["metadata"]), JobStatus()
                )
                if not self._delete_job(raw, status, child):
                    return (
                        None,
                        changed,
                        WonderlandError(f"could not replace job {meta.namespace}/{ref.name}"),
                    )
                changed = True
        body = self._job_from_template(raw, cronjob, meta, scheduled)
        try:
            made = self.store.create(body)
        except AlreadyExistsError:
            # Made in an earlier pass whose status write was lost, or by someone else.
            made = self.store.get(JOBS, meta.namespace, name)
            owner = ObjectMetaView.model_validate(made["metadata"]).controller()
            if owner is None or owner.uid != meta.uid or status.has(made["metadata"]["uid"]):
                return None, changed, None
        except WonderlandError as exc:
            self._event(raw, "Warning", "FailedCreate", f"Error creating job: {exc}")
            return None, changed, exc
        else:
            self._event(raw, "Normal", "SuccessfulCreate", f"Created job {name}")
        made_meta = made["metadata"]
        status.active.append(
            ObjectReference(
                kind="Job",
                namespace=made_meta["namespace"],
                name=made_meta["name"],
                uid=made_meta["uid"],
                apiVersion="batch/v1",
                resourceVersion=made_meta.get("resourceVersion", ""),
            )
        )
        status.lastScheduleTime = format_time(scheduled)
        return requeue(), True, None

    @staticmethod
    def _job_from_template(
        raw: Obj, cronjob: CronJobObject, meta: ObjectMetaView, scheduled: datetime
    ) -> Obj:
        """The Job of one schedule time (getJobFromTemplate2)."""
        template = cronjob.spec.jobTemplate
        labels = dict(template.metadata.labels or {}) if template.metadata else {}
        annotations = dict(template.metadata.annotations or {}) if template.metadata else {}
        # As upstream: the annotation is in timeZone, in UTC when timeZone is unset.
        zone = ZoneInfo(cronjob.spec.timeZone) if cronjob.spec.timeZone else UTC
        annotations[SCHEDULED_TIMESTAMP] = rfc3339(scheduled.astimezone(zone))
        job_meta: Obj = {
            "name": job_name(meta.name, scheduled),
            "namespace": meta.namespace,
            "annotations": annotations,
            "ownerReferences": [
                controller_ref(
                    {"metadata": {"name": meta.name, "uid": meta.uid}},
                    raw.get("apiVersion", "batch/v1"),
                    "CronJob",
                )
            ],
        }
        if labels:
            job_meta["labels"] = labels
        spec = template.spec.model_dump(exclude_none=True)
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": spec}


def _by_start_time(job: _ChildJob) -> tuple[bool, datetime, str]:
    """byJobStartTime: started ones by start time, then those never started; name breaks ties."""
    started = parse_time(job.status.startTime)
    return (started is None, started or datetime.max.replace(tzinfo=UTC), job.meta.name)
