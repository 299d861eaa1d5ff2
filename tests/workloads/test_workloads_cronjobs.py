"""The CronJob controller: schedule times, concurrency policies and history on a store with a
clock the tests move, then one real schedule firing on the platform."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from _support.daemon import wait_until
from workloads_support import events_of, template

from wonderland.controllers import events
from wonderland.errors import NotFoundError
from wonderland.platform import Platform
from wonderland.store import Store
from wonderland.workloads import admission
from wonderland.workloads.cron import Schedule
from wonderland.workloads.cronjobs import CronJobReconciler, job_name, rfc3339
from wonderland.workloads.views import format_time, parse_time

Obj = dict[str, Any]


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "state")
    admission.install(opened.admission)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def controller(store: Store, clock: Clock) -> CronJobReconciler:
    return CronJobReconciler(store, events.record, clock=clock, zone=UTC)


def cronjob(name: str, schedule: str, **spec: Any) -> Obj:
    job_template = {
        "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
        "spec": {"template": template("true")},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {"schedule": schedule, "jobTemplate": job_template, **spec},
    }


def created_at(store: Store, name: str) -> datetime:
    stamp = parse_time(
        store.get("cronjobs.batch", "default", name)["metadata"]["creationTimestamp"]
    )
    assert stamp is not None
    return stamp


def first_time(store: Store, name: str, schedule: str, zone: Any = UTC) -> datetime:
    return next(Schedule.parse(schedule).after(created_at(store, name), zone))


def cj_status(store: Store, name: str) -> Obj:
    return dict(store.get("cronjobs.batch", "default", name).get("status") or {})


def jobs(store: Store) -> list[Obj]:
    items, _ = store.list("jobs.batch", "default")
    return items


def finish(store: Store, name: str, kind: str, started: datetime, ended: datetime) -> None:
    """Write the status a finished Job has (no Job controller runs here)."""
    job = store.get("jobs.batch", "default", name)
    condition = {"type": kind, "status": "True", "lastTransitionTime": format_time(ended)}
    job["status"] = {"startTime": format_time(started), "conditions": [condition]}
    if kind == "Complete":
        job["status"]["completionTime"] = format_time(ended)
    store.update_status(job)


async def test_next_run_follows_the_schedule_in_its_time_zone(store: Store, clock: Clock) -> None:
    store.create(cronjob("tokyo", "0 9 * * *", timeZone="Asia/Tokyo"))
    store.create(cronjob("local", "0 9 * * *"))
    clock.now = created_at(store, "tokyo")
    berlin = CronJobReconciler(store, events.record, clock=clock, zone=ZoneInfo("Europe/Berlin"))
    tokyo_next = first_time(store, "tokyo", "0 9 * * *", ZoneInfo("Asia/Tokyo"))
    utc = tokyo_next.astimezone(UTC)
    assert (utc.hour, utc.minute) == (0, 0)  # 09:00 in Tokyo is 00:00 UTC
    result = await berlin.reconcile("default", "tokyo")
    assert result is not None and result.requeue_after is not None
    assert result.requeue_after == pytest.approx((tokyo_next - clock.now).total_seconds() + 0.1)
    # Without timeZone the daemon's zone decides.
    local_next = first_time(store, "local", "0 9 * * *", ZoneInfo("Europe/Berlin"))
    result = await berlin.reconcile("default", "local")
    assert result is not None and result.requeue_after == pytest.approx(
        (local_next - clock.now).total_seconds() + 0.1
    )
    assert local_next.astimezone(ZoneInfo("Europe/Berlin")).hour == 9
    assert jobs(store) == []


def test_minute_schedules_and_daylight_saving() -> None:
    new_york = ZoneInfo("America/New_York")
    start = datetime(2024, 3, 9, 12, 0, tzinfo=UTC)
    times = Schedule.parse("30 7 * * *").after(start, new_york)
    first, second = next(times), next(times)
    # The same wall-clock time; an hour less in UTC once daylight saving starts.
    assert (first.hour, second.hour) == (7, 7)
    assert (first.astimezone(UTC).hour, second.astimezone(UTC).hour) == (12, 11)
    every = Schedule.parse("@every 90s").after(start, UTC)
    assert next(every) == start + timedelta(seconds=90)
    assert job_name("nightly", datetime(2024, 1, 1, tzinfo=UTC)) == "nightly-28401120"
    assert (
        rfc3339(datetime(2024, 1, 1, 9, tzinfo=ZoneInfo("Asia/Tokyo")))
        == "2024-01-01T09:00:00+09:00"
    )
    assert rfc3339(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00Z"


async def test_job_created_at_the_schedule_time_then_seen_completed(
    store: Store, clock: Clock, controller: CronJobReconciler
) -> None:
    store.create(cronjob("report", "*/5 * * * *"))
    scheduled = first_time(store, "report", "*/5 * * * *")
    clock.now = scheduled - timedelta(seconds=1)
    early = await controller.reconcile("default", "report")
    assert jobs(store) == [] and early is not None
    assert early.requeue_after == pytest.approx(1.1)
    clock.now = scheduled + timedelta(seconds=3)
    result = await controller.reconcile("default", "report")
    (job,) = jobs(store)
    name = job_name("report", scheduled)
    meta = job["metadata"]
    assert meta["name"] == name == f"report-{int(scheduled.timestamp()) // 60}"
    assert meta["labels"] == {"team": "a"}
    assert meta["annotations"] == {
        "note": "x",
        "batch.kubernetes.io/cronjob-scheduled-timestamp": rfc3339(scheduled),
    }
    (owner,) = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("CronJob", "report", True)
    status = cj_status(store, "report")
    assert status["lastScheduleTime"] == format_time(scheduled)
    (active,) = status["active"]
    assert (active["kind"], active["name"], active["uid"]) == ("Job", name, meta["uid"])
    assert result is not None and result.requeue_after == pytest.approx(300 - 3 + 0.1)
    assert ("Normal", "SuccessfulCreate", f"Created job {name}") in events_of(
        store, "report", "CronJob"
    )
    await controller.reconcile("default", "report")
    assert len(jobs(store)) == 1  # that schedule time is done
    finish(store, name, "Complete", scheduled, scheduled + timedelta(seconds=2))
    await controller.reconcile("default", "report")
    assert "active" not in cj_status(store, "report")
    assert ("Normal", "SawCompletedJob", f"Saw completed job: {name}, status: Complete") in (
        events_of(store, "report", "CronJob")
    )
    await controller.reconcile("default", "report")
    assert cj_status(store, "report")["lastSuccessfulTime"] == format_time(
        scheduled + timedelta(seconds=2)
    )


async def test_scheduled_timestamp_is_in_the_time_zone(
    store: Store, clock: Clock, controller: CronJobReconciler
) -> None:
    store.create(cronjob("zoned", "* * * * *", timeZone="Asia/Tokyo"))
    clock.now = first_time(store, "zoned", "* * * * *") + timedelta(seconds=1)
    await controller.reconcile("default", "zoned")
    (job,) = jobs(store)
    stamp = job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    assert stamp.endswith("+09:00")


async def _two_runs(
    store: Store, clock: Clock, controller: CronJobReconciler, name: str
) -> datetime:
    first = first_time(store, name, "* * * * *")
    clock.now = first + timedelta(seconds=1)
    await controller.reconcile("default", name)
    assert len(jobs(store)) == 1
    clock.now = first + timedelta(seconds=61)
    await controller.reconcile("default", name)
    return first


async def test_concurrency_allow_forbid_replace(
    store: Store, clock: Clock, controller: CronJobReconciler
) -> None:
    store.create(cronjob("allow", "* * * * *"))
    await _two_runs(store, clock, controller, "allow")
    assert len(cj_status(store, "allow")["active"]) == 2
    for job in jobs(store):
        store.delete("jobs.batch", "default", job["metadata"]["name"])

    store.create(cronjob("forbid", "* * * * *", concurrencyPolicy="Forbid"))
    await _two_runs(store, clock, controller, "forbid")
    assert len(jobs(store)) == 1
    assert (
        "Normal",
        "JobAlreadyActive",
        "Not starting job because prior execution is running and concurrency policy is Forbid",
    ) in events_of(store, "forbid", "CronJob")
    for job in jobs(store):
        store.delete("jobs.batch", "default", job["metadata"]["name"])

    store.create(cronjob("replace", "* * * * *", concurrencyPolicy="Replace"))
    first = await _two_runs(store, clock, controller, "replace")
    (job,) = jobs(store)
    assert job["metadata"]["name"] == job_name("replace", first + timedelta(seconds=60))
    (active,) = cj_status(store, "replace")["active"]
    assert active["uid"] == job["metadata"]["uid"]
    old = job_name("replace", first)
    assert ("Normal", "SuccessfulDelete", f"Deleted job {old}") in events_of(
        store, "replace", "CronJob"
    )


async def test_history_limits_delete_the_oldest_finished_jobs(
    store: Store, clock: Clock, controller: CronJobReconciler
) -> None:
    store.create(
        cronjob("hist", "* * * * *", successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1)
    )
    first = first_time(store, "hist", "* * * * *")
    outcomes = ["Complete", "Failed", "Complete", "Failed", "Complete"]
    names = []
    for minute, outcome in enumerate(outcomes):
        scheduled = first + timedelta(minutes=minute)
        clock.now = scheduled + timedelta(seconds=1)
        await controller.reconcile("default", "hist")
        names.append(job_name("hist", scheduled))
        finish(store, names[-1], outcome, scheduled, scheduled + timedelta(seconds=1))
    await controller.reconcile("default", "hist")
    left = {job["metadata"]["name"] for job in jobs(store)}
    assert left == {names[3], names[4]}  # the newest failed and the newest succeeded
    deleted = [e[2] for e in events_of(store, "hist", "CronJob") if e[1] == "SuccessfulDelete"]
    assert sorted(deleted) == sorted(f"Deleted job {n}" for n in names[:3])


async def test_suspend_and_starting_deadline(
    store: Store, clock: Clock, controller: CronJobReconciler
) -> None:
    store.create(cronjob("held", "*/5 * * * *", suspend=True, startingDeadlineSeconds=10))
    scheduled = first_time(store, "held", "*/5 * * * *")
    clock.now = scheduled + timedelta(seconds=1)
    assert await controller.reconcile("default", "held") is None
    assert jobs(store) == []
    current = store.get("cronjobs.batch", "default", "held")
    current["spec"]["suspend"] = False
    store.update(current)
    clock.now = scheduled + timedelta(seconds=30)  # resumed too late for that time
    result = await controller.reconcile("default", "held")
    # As upstream, a time older than startingDeadlineSeconds is not even considered: no Job,
    # and the next run is asked for at the next schedule time.
    assert jobs(store) == [] and result is not None and result.requeue_after is not None
    assert result.requeue_after == pytest.approx(270 + 0.1)
    clock.now = scheduled + timedelta(minutes=5, seconds=5)
    await controller.reconcile("default", "held")
    (job,) = jobs(store)
    assert job["metadata"]["name"] == job_name("held", scheduled + timedelta(minutes=5))


async def test_too_many_missed_start_times(
    store: Store, clock: Clock, controller: CronJobReconciler
) -> None:
    store.create(cronjob("late", "* * * * *"))
    clock.now = created_at(store, "late") + timedelta(minutes=200, seconds=30)
    await controller.reconcile("default", "late")
    (job,) = jobs(store)  # only the most recent missed time runs
    most_recent = clock.now.replace(second=0, microsecond=0)
    assert job["metadata"]["name"] == job_name("late", most_recent)
    assert (
        "Warning",
        "TooManyMissedTimes",
        "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
    ) in events_of(store, "late", "CronJob")


async def test_missing_and_unexpected_jobs(
    store: Store, clock: Clock, controller: CronJobReconciler
) -> None:
    store.create(cronjob("watch", "0 0 1 1 *"))
    cj = store.get("cronjobs.batch", "default", "watch")
    manual = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "by-hand",
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": "watch",
                    "uid": cj["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {"template": template("true")},
    }
    store.create(manual)
    ghost = {
        "kind": "Job",
        "namespace": "default",
        "name": "ghost",
        "uid": "0000",
        "apiVersion": "batch/v1",
    }
    cj["status"] = {"active": [ghost]}
    store.update_status(cj)
    await controller.reconcile("default", "watch")
    seen = events_of(store, "watch", "CronJob")
    assert (
        "Warning",
        "UnexpectedJob",
        "Saw a job that the controller did not create or forgot: by-hand",
    ) in seen
    assert ("Normal", "MissingJob", "Active job went missing: ghost") in seen
    assert "active" not in cj_status(store, "watch")


async def test_every_few_seconds_on_the_platform(platform: Platform) -> None:
    """A real schedule: the Job is made on time, runs its pod and is seen completed."""
    store = platform.store
    store.create(cronjob("tick", "@every 2s"))

    def succeeded() -> str | None:
        return cj_status(store, "tick").get("lastSuccessfulTime")

    await wait_until(succeeded, 30, "a successful run")
    status = cj_status(store, "tick")
    assert status["lastScheduleTime"]
    done = [
        job
        for job in jobs(store)
        if any(c["type"] == "Complete" for c in (job.get("status") or {}).get("conditions", []))
    ]
    assert done and all(job["metadata"]["name"].startswith("tick-") for job in done)
    try:
        store.delete("cronjobs.batch", "default", "tick")
    except NotFoundError:
        pass
    assert jobs(store) == []  # the CronJob's Jobs go with it
