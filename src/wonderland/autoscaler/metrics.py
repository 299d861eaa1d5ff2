"""Time-bucketed metric windows, as Knative's ``TimedFloat64Buckets`` (1 s buckets)."""

from __future__ import annotations

import math

__all__ = ["MetricWindow"]


class MetricWindow:
    """Per-second buckets of an observed value (concurrency or requests per second).

    ``average(now, window)`` is the mean over the buckets inside ``(now - window, now]``;
    while less than one window of data exists, it divides by the seconds observed so
    far, so a fresh revision is not under-estimated. With no data at all it is None.
    """

    __slots__ = ("_buckets", "_first", "_last", "_span")

    def __init__(self, span: float) -> None:
        self._span = max(1, math.ceil(span))
        self._buckets: dict[int, float] = {}
        self._first: int | None = None
        self._last: int | None = None

    def record(self, now: float, value: float) -> None:
        second = int(now)
        self._buckets[second] = self._buckets.get(second, 0.0) + value
        if self._first is None:
            self._first = second
        self._last = second if self._last is None else max(self._last, second)
        floor = second - self._span
        if len(self._buckets) > self._span + 2:
            for key in [k for k in self._buckets if k <= floor]:
                del self._buckets[key]

    @property
    def empty(self) -> bool:
        return self._first is None

    def average(self, now: float, window: float) -> float | None:
        if self._first is None or self._last is None:
            return None
        end = int(now)
        size = max(1, math.ceil(window))
        start = end - size  # exclusive
        if self._last <= start:
            return 0.0
        total = sum(v for k, v in self._buckets.items() if start < k <= end)
        observed = end - max(self._first - 1, start)
        return total / max(1, min(size, observed))
