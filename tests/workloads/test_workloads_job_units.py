"""The Job controller's pure parts: index intervals, success policy and pod back-off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from wonderland.api.schemas.batch import SuccessPolicy
from wonderland.workloads.job_indexes import Indexes, first_pending, match_success_policy
from wonderland.workloads.job_pods import BackoffStore, JobPod, remaining_backoff
from wonderland.workloads.jobs import MAX_POD_BACKOFF

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_index_intervals_read_and_write_like_upstream() -> None:
    indexes = Indexes.parse("0-2,4,6,7", 10)
    assert indexes.total() == 6 and 5 not in indexes and 6 in indexes
    assert str(indexes) == "0-2,4,6,7"
    assert str(indexes.with_indexes([3, 5])) == "0-7"
    assert str(Indexes.of([1, 2])) == "1,2"  # two in a row are written as a list
    assert str(Indexes.parse("1-9,x,12", 5)) == "1-4"  # past completions: dropped
    assert str(Indexes.parse("0,1,2", 10)) == "0-2"
    assert first_pending(Indexes.parse("0,2-3", 10), 3, 10) == [1, 4, 5]
    assert first_pending(Indexes.parse("0-1", 3), 5, 3) == [2]


def test_success_policy_rules() -> None:
    def policy(*rules: dict[str, Any]) -> SuccessPolicy:
        return SuccessPolicy.model_validate({"rules": list(rules)})

    succeeded = Indexes.parse("0-2,5", 10)
    assert match_success_policy(policy({"succeededIndexes": "0-1"}), 10, succeeded) == (
        "Matched rules at index 0"
    )
    assert match_success_policy(policy({"succeededIndexes": "3-4"}), 10, succeeded) is None
    both = {"succeededIndexes": "0-4", "succeededCount": 3}
    assert match_success_policy(policy({"succeededCount": 9}, both), 10, succeeded) == (
        "Matched rules at index 1"
    )
    assert match_success_policy(None, 10, succeeded) is None


def test_back_off_doubles_from_the_base_up_to_the_cap() -> None:
    assert remaining_backoff(T0, 10, MAX_POD_BACKOFF, 0, None) == 0
    assert remaining_backoff(T0, 10, MAX_POD_BACKOFF, 1, T0) == 10
    assert remaining_backoff(T0 + timedelta(seconds=15), 10, MAX_POD_BACKOFF, 3, T0) == 25
    assert remaining_backoff(T0, 10, MAX_POD_BACKOFF, 12, T0) == MAX_POD_BACKOFF == 600
    assert remaining_backoff(T0 + timedelta(seconds=11), 10, MAX_POD_BACKOFF, 1, T0) == 0


def _pod(phase: str, finished: datetime) -> JobPod:
    raw = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p-{finished:%H%M%S}", "uid": str(finished.timestamp())},
        "spec": {"containers": [{"name": "main", "image": "x"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": "main",
                    "state": {
                        "terminated": {
                            "exitCode": 0 if phase == "Succeeded" else 1,
                            "finishedAt": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        }
                    },
                }
            ],
        },
    }
    return JobPod.parse(raw)


def test_failures_after_the_last_success_drive_the_back_off() -> None:
    store = BackoffStore()
    failed = [_pod("Failed", T0 + timedelta(seconds=s)) for s in (1, 5)]
    record = store.new_record("ns/job", [], failed)
    assert (record.failures, record.last_failure) == (2, T0 + timedelta(seconds=5))
    store.update(record)
    # A success resets the count; only failures after it count again.
    later = [_pod("Failed", T0 + timedelta(seconds=9))]
    success = [_pod("Succeeded", T0 + timedelta(seconds=7))]
    record = store.new_record("ns/job", success, later)
    assert (record.failures, record.last_failure) == (1, T0 + timedelta(seconds=9))
    assert record.remaining(T0 + timedelta(seconds=10), 10, MAX_POD_BACKOFF) == 9
