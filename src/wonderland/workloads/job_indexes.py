"""Completion indexes of Indexed Jobs: the interval lists of ``status.completedIndexes`` and
``status.failedIndexes`` (``"0-2,4,6,7"``), the next indexes to run and ``successPolicy``.

The same algorithms as kube-controller-manager's ``indexed_job_utils.go`` and
``success_policy.go``, so the strings and the order of created indexes are the cluster's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from wonderland.api.schemas.batch import SuccessPolicy

__all__ = ["Indexes", "first_pending", "match_success_policy"]


@dataclass(frozen=True)
class Indexes:
    """Ordered, disjoint intervals of indexes (first, last), both included."""

    intervals: tuple[tuple[int, int], ...] = ()

    @classmethod
    def parse(cls, text: str | None, completions: int) -> Indexes:
        """Read ``"1,3-5"``; indexes from ``completions`` on are dropped, bad parts skipped."""
        if not text:
            return cls()
        result: list[list[int]] = []
        for part in text.split(","):
            limits = part.split("-")
            try:
                first = int(limits[0])
            except ValueError:
                continue
            if first >= completions:
                break
            last = first
            if len(limits) > 1:
                try:
                    last = min(int(limits[1]), completions - 1)
                except ValueError:
                    continue
            if result and result[-1][1] == first - 1:
                result[-1][1] = last
            else:
                result.append([first, last])
        return cls(tuple((a, b) for a, b in result))

    @classmethod
    def of(cls, indexes: Iterable[int]) -> Indexes:
        return cls().with_indexes(indexes)

    def with_indexes(self, indexes: Iterable[int]) -> Indexes:
        """These intervals and ``indexes`` together."""
        return self.merge(Indexes(tuple((i, i) for i in sorted(set(indexes)))))

    def merge(self, other: Indexes) -> Indexes:
        """The union, adjacent intervals joined."""
        result: list[list[int]] = []
        for first, last in sorted([*self.intervals, *other.intervals]):
            if not result or first > result[-1][1] + 1:
                result.append([first, last])
            elif result[-1][1] < last:
                result[-1][1] = last
        return Indexes(tuple((a, b) for a, b in result))

    def total(self) -> int:
        return sum(last - first + 1 for first, last in self.intervals)

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and any(a <= index <= b for a, b in self.intervals)

    def __bool__(self) -> bool:
        return bool(self.intervals)

    def __str__(self) -> str:
        parts = []
        for first, last in self.intervals:
            if last == first:
                parts.append(str(first))
            elif last == first + 1:
                parts.append(f"{first},{last}")
            else:
                parts.append(f"{first}-{last}")
        return ",".join(parts)


def first_pending(not_pending: Indexes, count: int, completions: int) -> list[int]:
    """The ``count`` lowest indexes below ``completions`` that are not in ``not_pending``
    (succeeded, active, failed and, with podReplacementPolicy Failed, terminating)."""
    result: list[int] = []
    candidate = 0
    for first, last in not_pending.intervals:
        while candidate < completions and len(result) < count and candidate < first:
            result.append(candidate)
            candidate += 1
        candidate = max(candidate, last + 1)
    while candidate < completions and len(result) < count:
        result.append(candidate)
        candidate += 1
    return result


def _matches_indexes_rule(rule: Indexes, succeeded: Indexes, count: int | None) -> bool:
    contains = 0
    for first, last in rule.intervals:
        for s_first, s_last in succeeded.intervals:
            contains += max(0, min(last, s_last) - max(first, s_first) + 1)
    return contains == rule.total() or (count is not None and contains >= count)


def match_success_policy(
    policy: SuccessPolicy | None, completions: int, succeeded: Indexes
) -> str | None:
    """The SuccessCriteriaMet message when a rule of ``policy`` is met, else None."""
    if policy is None or not succeeded:
        return None
    for position, rule in enumerate(policy.rules):
        if rule.succeededIndexes is not None:
            required = Indexes.parse(rule.succeededIndexes, completions)
            if not required:
                continue
            if _matches_indexes_rule(required, succeeded, rule.succeededCount):
                return f"Matched rules at index {position}"
        elif rule.succeededCount is not None and succeeded.total() >= rule.succeededCount:
            return f"Matched rules at index {position}"
    return None
