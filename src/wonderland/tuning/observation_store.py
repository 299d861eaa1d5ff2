"""The observation log kept in SQLite next to the platform's store, so that what trials
reported survives a restart of the daemon (Katib keeps it in MySQL behind its DB manager).

One table of ``(trial, seq, timestamp, metric, value)`` rows; ``seq`` keeps the order of
arrival, which is the order Katib's ``GetObservationLog`` returns (its timestamps may all
be the zero time when a collector found none in the log lines).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from wonderland.tuning.observations import MetricLog, UnknownTrialError

__all__ = ["SqliteObservationLogStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS observation_logs (
    trial TEXT NOT NULL,
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    metric TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS observation_logs_trial ON observation_logs (trial, metric);
"""


def _iso(moment: datetime) -> str:
    value = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


class SqliteObservationLogStore:
    """:class:`~wonderland.tuning.observations.ObservationLogStore` in a SQLite file.

    ``trial_exists(name)`` tells whether a Trial of that name exists (in any namespace);
    reports for other names raise :class:`UnknownTrialError`, as Katib's DB manager has
    no trial to attach them to. Safe to call from any thread.
    """

    def __init__(self, path: Path, trial_exists: Callable[[str], bool]) -> None:
        self.path = path
        self._trial_exists = trial_exists
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def report(self, trial_name: str, logs: Sequence[MetricLog]) -> None:
        if not self._trial_exists(trial_name):
            raise UnknownTrialError(
                f'trial "{trial_name}" not found: metrics are reported for a Trial that '
                "exists (KATIB_TRIAL_NAME in the trial's environment names it)"
            )
        rows = [(trial_name, _iso(log.timestamp), log.name, log.value) for log in logs]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO observation_logs (trial, time, metric, value) VALUES (?, ?, ?, ?)",
                rows,
            )
            self._db.execute("COMMIT")

    def get(
        self,
        trial_name: str,
        metric_name: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[MetricLog]:
        query = "SELECT time, metric, value FROM observation_logs WHERE trial=?"
        params: list[str] = [trial_name]
        if metric_name:
            query += " AND metric=?"
            params.append(metric_name)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq", params).fetchall()
        out: list[MetricLog] = []
        for time, metric, value in rows:
            moment = datetime.fromisoformat(time)
            if start is not None and moment < start.astimezone(UTC):
                continue
            if end is not None and moment > end.astimezone(UTC):
                continue
            out.append(MetricLog(moment, metric, value))
        return out

    def count(self, trial_name: str) -> int:
        """How many values the trial has reported (collectors append only what is new)."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM observation_logs WHERE trial=?", (trial_name,)
            ).fetchone()
        return int(row[0])

    def delete(self, trial_name: str) -> None:
        """Forget a trial's log (Katib's ``DeleteObservationLog`` when a Trial is deleted)."""
        with self._lock:
            self._db.execute("DELETE FROM observation_logs WHERE trial=?", (trial_name,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
