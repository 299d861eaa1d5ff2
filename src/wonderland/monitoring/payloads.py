"""The payload store: logged requests and responses joined on ``ce-id``, with bounded retention.

One SQLite file (``<state_dir>/monitoring/payloads.db``, WAL) holds one row per logged call
of an InferenceService's component: the request and the response events share the row
their ``ce-id`` names, whichever arrives first. Retention is bounded three ways
(:class:`PayloadLimits`, from the ``WONDERLAND_PAYLOAD_*`` settings): at most ``records``
rows per InferenceService, payloads larger than ``max_bytes`` are kept as their size only,
and at most ``max_total_bytes`` of payloads in all; the oldest rows go first.
"""

from __future__ import annotations

import base64
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wonderland.monitoring.cloudevents import REQUEST_TYPE, RESPONSE_TYPE, LoggedEvent

__all__ = ["PayloadLimits", "PayloadRecord", "PayloadStore", "StoreOutcome"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS payloads (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    inferenceservice TEXT NOT NULL,
    component TEXT NOT NULL,
    id TEXT NOT NULL,
    endpoint TEXT NOT NULL DEFAULT '',
    received REAL NOT NULL,
    request_time TEXT, request_type TEXT, request BLOB, request_size INTEGER,
    response_time TEXT, response_type TEXT, response BLOB, response_size INTEGER,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    UNIQUE (namespace, inferenceservice, component, id)
);
CREATE INDEX IF NOT EXISTS payloads_by_service ON payloads (namespace, inferenceservice, seq);
"""


@dataclass(frozen=True)
class PayloadLimits:
    """Retention: rows per InferenceService, bytes per payload, bytes in all."""

    records: int = 1000
    max_bytes: int = 256 * 1024
    max_total_bytes: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class StoreOutcome:
    """What storing one event did: ``oversized`` when its payload was kept as its size
    only, ``evicted`` the rows retention removed (oldest first)."""

    oversized: bool
    evicted: int


@dataclass(frozen=True)
class PayloadRecord:
    """One logged call: request and response (None until logged; ``omitted`` bodies were
    larger than the limit and are kept as their size)."""

    namespace: str
    inference_service: str
    component: str
    id: str
    endpoint: str
    received: float
    request: bytes | None
    request_type: str | None
    request_size: int | None
    response: bytes | None
    response_type: str | None
    response_size: int | None

    def as_json(self) -> dict[str, Any]:
        def part(body: bytes | None, ctype: str | None, size: int | None) -> Any:
            if size is None:
                return None
            out: dict[str, Any] = {"contentType": ctype, "size": size}
            if body is None:
                out["omitted"] = True
            elif (ctype or "").startswith(("application/json", "text/")):
                out["body"] = body.decode("utf-8", "replace")
            else:
                out["bodyBase64"] = base64.b64encode(body).decode()
            return out

        return {
            "id": self.id,
            "namespace": self.namespace,
            "inferenceService": self.inference_service,
            "component": self.component,
            "endpoint": self.endpoint,
            "received": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.received)),
            "request": part(self.request, self.request_type, self.request_size),
            "response": part(self.response, self.response_type, self.response_size),
        }


class PayloadStore:
    """The SQLite store of logged payloads (one writer: the daemon's event loop)."""

    def __init__(self, path: Path, limits: PayloadLimits | None = None) -> None:
        self.path = path
        self.limits = limits or PayloadLimits()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT COALESCE(SUM(stored_bytes), 0) FROM payloads").fetchone()
        self.total_bytes = int(row[0])

    def close(self) -> None:
        self._db.close()

    def add(self, event: LoggedEvent) -> StoreOutcome:
        """Store a request or response event; other types are a ValueError."""
        if event.type == REQUEST_TYPE:
            part = "request"
        elif event.type == RESPONSE_TYPE:
            part = "response"
        else:
            raise ValueError(
                f"ce-type {event.type!r} is not logged here; send {REQUEST_TYPE} or {RESPONSE_TYPE}"
            )
        if not event.inference_service:
            raise ValueError(
                "ce-inferenceservicename is missing: which InferenceService logged it?"
            )
        size = len(event.data)
        oversized = size > self.limits.max_bytes
        body = None if oversized else event.data
        stored = 0 if body is None else size
        key = (
            event.namespace or "default",
            event.inference_service,
            event.component or "predictor",
            event.id,
        )
        db = self._db
        db.execute("BEGIN")
        try:
            old = db.execute(
                f"SELECT {part}_size, {part} IS NOT NULL FROM payloads "
                "WHERE namespace=? AND inferenceservice=? AND component=? AND id=?",
                key,
            ).fetchone()
            if old is not None and old[1]:
                self.total_bytes -= int(old[0] or 0)
            db.execute(
                "INSERT INTO payloads (namespace, inferenceservice, component, id, endpoint, "
                f"received, {part}_time, {part}_type, {part}, {part}_size, stored_bytes) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (namespace, inferenceservice, component, id) DO UPDATE SET "
                f"{part}_time=excluded.{part}_time, {part}_type=excluded.{part}_type, "
                f"{part}=excluded.{part}, {part}_size=excluded.{part}_size",
                (
                    *key,
                    event.endpoint,
                    time.time(),
                    event.time,
                    event.content_type,
                    body,
                    size,
                    stored,
                ),
            )
            db.execute(
                "UPDATE payloads SET stored_bytes = COALESCE(LENGTH(request), 0) "
                "+ COALESCE(LENGTH(response), 0) "
                "WHERE namespace=? AND inferenceservice=? AND component=? AND id=?",
                key,
            )
            self.total_bytes += stored
            evicted = self._retain(key[0], key[1])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            row = db.execute("SELECT COALESCE(SUM(stored_bytes), 0) FROM payloads").fetchone()
            self.total_bytes = int(row[0])
            raise
        return StoreOutcome(oversized, evicted)

    def _retain(self, namespace: str, service: str) -> int:
        db = self._db
        evicted = 0
        count = db.execute(
            "SELECT COUNT(*) FROM payloads WHERE namespace=? AND inferenceservice=?",
            (namespace, service),
        ).fetchone()[0]
        excess = int(count) - self.limits.records
        if excess > 0:
            rows = db.execute(
                "DELETE FROM payloads WHERE seq IN (SELECT seq FROM payloads "
                "WHERE namespace=? AND inferenceservice=? ORDER BY seq LIMIT ?) "
                "RETURNING stored_bytes",
                (namespace, service, excess),
            ).fetchall()
            self.total_bytes -= sum(int(r[0]) for r in rows)
            evicted += len(rows)
        while self.total_bytes > self.limits.max_total_bytes:
            rows = db.execute(
                "DELETE FROM payloads WHERE seq IN (SELECT seq FROM payloads ORDER BY seq "
                "LIMIT 64) RETURNING stored_bytes"
            ).fetchall()
            if not rows:
                self.total_bytes = 0
                break
            self.total_bytes -= sum(int(r[0]) for r in rows)
            evicted += len(rows)
        return evicted

    def list(
        self, namespace: str = "", inference_service: str = "", limit: int = 20
    ) -> list[PayloadRecord]:
        """The newest logged calls first, of one namespace and/or InferenceService."""
        where: list[str] = []
        params: list[Any] = []
        if namespace:
            where.append("namespace=?")
            params.append(namespace)
        if inference_service:
            where.append("inferenceservice=?")
            params.append(inference_service)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.execute(
            "SELECT namespace, inferenceservice, component, id, endpoint, received, "
            "request, request_type, request_size, response, response_type, response_size "
            f"FROM payloads {clause} ORDER BY seq DESC LIMIT ?",
            (*params, max(0, limit)),
        ).fetchall()
        return [PayloadRecord(*row) for row in rows]

    def count(self, namespace: str, inference_service: str) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM payloads WHERE namespace=? AND inferenceservice=?",
            (namespace, inference_service),
        ).fetchone()
        return int(row[0])
