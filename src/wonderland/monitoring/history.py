"""The metrics history: fixed-step float32 ring buffers, one row per derived series.

A :class:`HistoryStore` keeps ``slots`` values (8640: 24 h at 10 s) per series in one
numpy array whose rows are allocated in blocks as series appear, up to ``max_series``.
The slot of a time is implied (``int(t // step) % slots``); a slot nobody wrote is NaN.
When the store is full, a new series takes the row of the one idle longest (not written
this step); when none is idle the new series is dropped and counted. The store saves to
an ``.npz`` file (atomically) and loads from one; a file that cannot be read is moved
aside with a warning.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson

__all__ = ["DEFAULT_SLOTS", "HistoryStore", "SeriesKey"]

log = logging.getLogger("wonderland.monitoring")

DEFAULT_SLOTS = 8640
BLOCK = 32
FORMAT = 1


@dataclass(frozen=True, order=True)
class SeriesKey:
    """One derived series: ``kind`` (revisions, models, sidecars, jobs), the object's
    namespace and name, and the series (``request_rate``, ``latency_p95``, ...)."""

    kind: str
    namespace: str
    name: str
    series: str

    def as_list(self) -> list[str]:
        return [self.kind, self.namespace, self.name, self.series]


def _points(times: list[float], values: list[float]) -> list[tuple[float, float | None]]:
    # on Python floats (tolist), not numpy scalars: several times faster per point
    return [(t, None if v != v else v) for t, v in zip(times, values, strict=True)]


class HistoryStore:
    def __init__(
        self, step: float = 10.0, slots: int = DEFAULT_SLOTS, max_series: int = 1000
    ) -> None:
        if step <= 0 or slots < 2 or max_series < 1:
            raise ValueError("a history needs step > 0, slots >= 2 and max_series >= 1")
        self.step = float(step)
        self.slots = int(slots)
        self.max_series = int(max_series)
        self.dropped = 0  # series refused because the store was full of live ones
        self.evicted = 0
        self._values: npt.NDArray[np.float32] = np.empty((0, self.slots), np.float32)
        self._last: npt.NDArray[np.int64] = np.empty(0, np.int64)  # last written tick per row
        self._rows: dict[SeriesKey, int] = {}
        self._keys: list[SeriesKey | None] = []
        self._free: list[int] = []
        self._head: int | None = None  # the newest tick written (absolute slot)

    # -- writing ---------------------------------------------------------------------------

    def tick(self, t: float) -> int:
        """The absolute slot of time ``t`` (unix seconds)."""
        return int(t // self.step)

    def _advance(self, tick: int) -> None:
        """Blank the slots between the head and ``tick`` (nobody wrote them)."""
        if self._head is None:
            self._head = tick
            return
        if tick <= self._head:
            return
        gap = tick - self._head
        if gap >= self.slots:
            self._values[:] = np.nan
        else:
            cols = np.arange(self._head + 1, tick + 1) % self.slots
            self._values[:, cols] = np.nan
        self._head = tick

    def write(self, t: float, values: Iterable[tuple[SeriesKey, float]]) -> int:
        """Record ``values`` at time ``t``; how many were stored."""
        tick = self.tick(t)
        if self._head is not None and tick < self._head - self.slots + 1:
            return 0  # older than the ring holds
        self._advance(tick)
        col = tick % self.slots
        stored = 0
        for key, value in values:
            row = self._row(key, tick)
            if row is None:
                continue
            self._values[row, col] = value
            self._last[row] = max(int(self._last[row]), tick)
            stored += 1
        return stored

    def _row(self, key: SeriesKey, tick: int) -> int | None:
        row = self._rows.get(key)
        if row is not None:
            return row
        if self._free:
            row = self._free.pop()
        elif len(self._keys) < self.max_series:
            row = len(self._keys)
            if row >= self._values.shape[0]:
                self._grow()
            self._keys.append(None)
        else:
            row = self._idlest(tick)
            if row is None:
                self.dropped += 1
                return None
            old = self._keys[row]
            assert old is not None
            del self._rows[old]
            self.evicted += 1
        self._keys[row] = key
        self._rows[key] = row
        self._values[row] = np.nan
        self._last[row] = -1
        return row

    def _grow(self) -> None:
        rows = min(self.max_series, max(BLOCK, self._values.shape[0] * 2))
        values = np.full((rows, self.slots), np.nan, np.float32)
        values[: self._values.shape[0]] = self._values
        last = np.full(rows, -1, np.int64)
        last[: self._last.shape[0]] = self._last
        self._values, self._last = values, last

    def _idlest(self, tick: int) -> int | None:
        used = len(self._keys)
        if used == 0:
            return None
        row = int(np.argmin(self._last[:used]))
        return row if int(self._last[row]) < tick else None

    def evict_idle(self, now: float, idle_seconds: float) -> int:
        """Drop the series nobody wrote for ``idle_seconds``; how many went."""
        limit = self.tick(now) - int(idle_seconds // self.step)
        gone = [k for k, row in self._rows.items() if int(self._last[row]) < limit]
        for key in gone:
            row = self._rows.pop(key)
            self._keys[row] = None
            self._values[row] = np.nan
            self._last[row] = -1
            self._free.append(row)
        self.evicted += len(gone)
        return len(gone)

    # -- reading ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    def series_keys(self) -> Iterator[SeriesKey]:
        return iter(list(self._rows))

    def nbytes(self) -> int:
        """The memory the store's arrays hold."""
        return int(self._values.nbytes + self._last.nbytes)

    def latest(self, key: SeriesKey) -> tuple[float, float] | None:
        """The newest value of ``key`` and its time, or None."""
        row = self._rows.get(key)
        if row is None or self._head is None:
            return None
        tick = int(self._last[row])
        if tick < 0 or tick <= self._head - self.slots:
            return None
        value = float(self._values[row, tick % self.slots])
        return (tick * self.step, value) if not math.isnan(value) else None

    def last_written(self, key: SeriesKey) -> float | None:
        row = self._rows.get(key)
        if row is None or int(self._last[row]) < 0:
            return None
        return int(self._last[row]) * self.step

    def read(
        self, key: SeriesKey, since: float, until: float | None = None, step: float | None = None
    ) -> list[tuple[float, float | None]]:
        """``(time, value)`` from ``since`` to ``until`` (now), every ``step`` seconds (a
        multiple of the store's; each point the mean of the slots it covers); None where
        nothing was recorded."""
        times, values = self.read_arrays(key, since, until, step)
        return _points(times.tolist(), values.tolist())

    def read_arrays(
        self, key: SeriesKey, since: float, until: float | None = None, step: float | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """What :meth:`read` returns as two arrays, times and values (NaN where nothing
        was recorded), for readers that compute on them (the console's charts); both
        empty when the series is not kept."""
        row = self._rows.get(key)
        if row is None or self._head is None:
            return np.empty(0), np.empty(0)
        until_tick = min(self.tick(until if until is not None else time.time()), self._head)
        first = max(self.tick(since), self._head - self.slots + 1)
        if first > until_tick:
            return np.empty(0), np.empty(0)
        n = until_tick - first + 1
        lo = first % self.slots
        ring = self._values[row]
        if lo + n <= self.slots:  # slices, not an index array: a 24 h read is 8640 slots
            values = ring[lo : lo + n].astype(np.float64)
        else:
            values = np.concatenate((ring[lo:], ring[: lo + n - self.slots])).astype(np.float64)
        factor = max(1, round((step or self.step) / self.step))
        if factor > 1:
            start = (first // factor) * factor
            pad = first - start
            padded = np.full(-(-(pad + n) // factor) * factor, np.nan)
            padded[pad : pad + n] = values
            groups = padded.reshape(-1, factor)
            known = ~np.isnan(groups)
            counts = known.sum(axis=1)
            sums = np.where(known, groups, 0.0).sum(axis=1)
            means = np.divide(sums, counts, out=np.full(len(sums), np.nan), where=counts > 0)
            times = (start + np.arange(len(means)) * factor) * self.step
            return times.astype(np.float64), means
        return ((first + np.arange(n)) * self.step).astype(np.float64), values

    # -- persistence -----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the store to ``path`` (``.npz``), replacing it atomically."""
        rows = sorted(self._rows.items(), key=lambda item: item[1])
        index = [row for _, row in rows]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        meta = {
            "format": FORMAT,
            "step": self.step,
            "slots": self.slots,
            "head": self._head,
            "keys": [k.as_list() for k, _ in rows],
        }
        with tmp.open("wb") as out:
            np.savez(
                out,
                meta=np.frombuffer(orjson.dumps(meta), np.uint8),
                values=self._values[index] if index else np.empty((0, self.slots), np.float32),
                last=self._last[index] if index else np.empty(0, np.int64),
            )
        os.replace(tmp, path)

    def load(self, path: Path) -> bool:
        """Replace the store's content with ``path``'s; False when there is no file. A
        file that cannot be read (or was written with another step or size) is moved
        aside to ``<path>.corrupt-<time>`` with a warning, and the store starts empty."""
        if not path.exists():
            return False
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = orjson.loads(data["meta"].tobytes())
                values = np.asarray(data["values"], np.float32)
                last = np.asarray(data["last"], np.int64)
            keys = [SeriesKey(*map(str, k)) for k in meta["keys"]]
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, not {FORMAT}")
            if float(meta["step"]) != self.step or int(meta["slots"]) != self.slots:
                raise ValueError(
                    f"written with a {meta['step']}s step and {meta['slots']} slots, "
                    f"not {self.step:g}s and {self.slots}"
                )
            if values.shape != (len(keys), self.slots) or last.shape != (len(keys),):
                raise ValueError("its arrays do not match its keys")
        except Exception as exc:  # numpy, zipfile and orjson each raise their own
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            try:
                os.replace(path, aside)
            except OSError:
                aside = path
            log.warning(
                "the metrics history %s cannot be read (%s); moved it to %s and started "
                "an empty history",
                path,
                exc,
                aside,
            )
            return False
        keep = min(len(keys), self.max_series)
        order = np.argsort(-last, kind="stable")[:keep]  # the most recent first
        self._values = np.empty((0, self.slots), np.float32)
        self._last = np.empty(0, np.int64)
        self._rows, self._keys, self._free = {}, [], []
        rows = max(keep, 0)
        if rows:
            self._values = np.full(
                (max(rows, min(BLOCK, self.max_series)), self.slots), np.nan, np.float32
            )
            self._last = np.full(self._values.shape[0], -1, np.int64)
            self._values[:rows] = values[order]
            self._last[:rows] = last[order]
        for row, i in enumerate(order):
            self._keys.append(keys[int(i)])
            self._rows[keys[int(i)]] = row
        head = meta.get("head")
        self._head = int(head) if head is not None else None
        return True
