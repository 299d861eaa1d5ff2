"""The object store: SQLite in WAL mode, optimistic concurrency, a change feed.

One process writes (the daemon). Every write is one SQLite transaction that stores the
objects and appends to the event log; the global ``resourceVersion`` is a counter kept
in the same transaction, so an answered write survives ``kill -9``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import secrets
import sqlite3
import string
import threading
import uuid
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from wonderland.api import registry
from wonderland.api.admission import Admission
from wonderland.api.core_checks import core_admission, normalize_secret
from wonderland.api.kinds import ResourceKind
from wonderland.api.merge import LAST_APPLIED, last_applied_value, three_way_apply
from wonderland.api.selectors import matches, parse_label_selector
from wonderland.errors import (
    AlreadyExistsError,
    ConfigError,
    ConflictError,
    InvalidError,
    NotFoundError,
    WonderlandError,
)

__all__ = ["ExpiredError", "Obj", "Store", "WatchEvent"]

Obj = dict[str, Any]

# Events older than this many writes are compacted; a watch from before them gets 410.
EVENT_HISTORY = 20_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    uid TEXT NOT NULL, rv INTEGER NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (resource, namespace, name)
);
CREATE TABLE IF NOT EXISTS owners (
    owner_uid TEXT NOT NULL, resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS owners_by_uid ON owners (owner_uid);
CREATE TABLE IF NOT EXISTS events (
    rv INTEGER PRIMARY KEY, type TEXT NOT NULL, resource TEXT NOT NULL,
    namespace TEXT NOT NULL, body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ExpiredError(WonderlandError):
    """A watch asked for changes older than the event history keeps (HTTP 410)."""


@dataclass(frozen=True)
class WatchEvent:
    """One change: ``type`` is ADDED, MODIFIED or DELETED; ``object`` is the object after it."""

    type: str
    object: Obj
    resource: str
    rv: int = 0

    @property
    def namespace(self) -> str:
        return str(self.object.get("metadata", {}).get("namespace", ""))

    @property
    def name(self) -> str:
        return str(self.object.get("metadata", {}).get("name", ""))


@dataclass(eq=False)
class _Watcher:
    queue: asyncio.Queue[WatchEvent]
    loop: asyncio.AbstractEventLoop
    resource: str | None
    namespace: str | None

    def wants(self, event: WatchEvent) -> bool:
        if self.resource is not None and event.resource != self.resource:
            return False
        return self.namespace is None or event.namespace == self.namespace


@dataclass
class _Txn:
    events: list[WatchEvent] = field(default_factory=list)
    start_rv: int = 0


def now_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp_in(seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _runs(obj: Obj) -> bool:
    """A pod that a node runs and that has not finished: its deletion is graceful."""
    phase = (obj.get("status") or {}).get("phase")
    return bool((obj.get("spec") or {}).get("nodeName")) and phase not in ("Succeeded", "Failed")


def _dumps(obj: Obj) -> bytes:
    return orjson.dumps(obj)


def _kind_of_resource(resource: str) -> ResourceKind:
    try:
        kind = registry.lookup(resource)
    except NotFoundError:
        raise NotFoundError(f'unknown resource "{resource}"') from None
    return kind


def _kind_of_object(obj: Any) -> ResourceKind:
    if not isinstance(obj, dict):
        raise InvalidError("expected a Kubernetes object (a mapping with apiVersion and kind)")
    try:
        return registry.for_object(str(obj.get("apiVersion")), str(obj.get("kind")))
    except NotFoundError as exc:
        raise InvalidError("kind", str(exc)) from None


def _without(obj: Obj, *keys: str) -> Obj:
    return {k: v for k, v in obj.items() if k not in keys}


class Store:
    """The single source of truth for every object (see the module docstring).

    Methods are synchronous and fast (sub-millisecond), safe to call from the event
    loop and from other threads. :meth:`watch` is an async iterator of changes.
    """

    def __init__(self, path: str | Path, admission: Admission | None = None) -> None:
        self.path = str(path)
        # This store's checks: the core ones, plus what a platform's plugins register.
        self.admission = core_admission() if admission is None else admission
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a crash of this process; only power loss can lose
            # the last transactions.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            self._rv = int(self._meta("rv", "0"))
            self._compacted = int(self._meta("compacted", "0"))
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ConfigError(
                f"{self.path} cannot be used as the object store ({exc}); move it away or "
                "set WONDERLAND_HOME to another directory"
            ) from None
        self._watchers: set[_Watcher] = set()
        self._txn: _Txn | None = None
        self._depth = 0
        self._closed = False

    @classmethod
    def open(cls, state_dir: str | Path) -> Store:
        """The store of a state directory (``<state_dir>/store.db``)."""
        directory = Path(state_dir)
        if not directory.exists():
            directory.mkdir(parents=True, mode=0o700)
        path = directory / "store.db"
        # Secrets live here: only the owner may read it (SQLite gives the WAL the same mode).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        return cls(path)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    # -- helpers ---------------------------------------------------------------

    def _meta(self, key: str, default: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else default

    @property
    def resource_version(self) -> str:
        """The newest resourceVersion written."""
        return str(self._rv)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them are stored, or none (watchers see them after commit)."""
        with self._lock:
            if self._closed:
                raise WonderlandError("the store is closed")
            self._depth += 1
            if self._depth == 1:
                self._txn = _Txn(start_rv=self._rv)
                self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._db.execute("ROLLBACK")
                    assert self._txn is not None
                    self._rv = self._txn.start_rv
                    self._txn = None
                raise
            self._depth -= 1
            if self._depth == 0:
                txn = self._txn
                assert txn is not None
                self._txn = None
                if self._rv != txn.start_rv:
                    self._db.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('rv', ?)",
                        (str(self._rv),),
                    )
                self._db.execute("COMMIT")
                if self._rv // 1000 != txn.start_rv // 1000:
                    self._compact()
                self._notify(txn.events)

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _record(self, kind: str, resource: str, obj: Obj, rv: int) -> None:
        event = WatchEvent(kind, obj, resource, rv)
        self._db.execute(
            "INSERT INTO events (rv, type, resource, namespace, body) VALUES (?, ?, ?, ?, ?)",
            (rv, kind, resource, event.namespace, _dumps(obj)),
        )
        assert self._txn is not None
        self._txn.events.append(event)

    def _compact(self) -> None:
        horizon = self._rv - EVENT_HISTORY
        if horizon > self._compacted:
            with self._lock:
                self._db.execute("DELETE FROM events WHERE rv <= ?", (horizon,))
                self._db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('compacted', ?)",
                    (str(horizon),),
                )
                self._compacted = horizon

    def _notify(self, events: list[WatchEvent]) -> None:
        for watcher in list(self._watchers):
            for event in events:
                if watcher.wants(event):
                    try:
                        watcher.loop.call_soon_threadsafe(watcher.queue.put_nowait, event)
                    except RuntimeError:  # the watcher's loop is closed
                        self._watchers.discard(watcher)
                        break

    def _row(self, resource: str, namespace: str, name: str) -> Obj | None:
        row = self._db.execute(
            "SELECT body FROM objects WHERE resource=? AND namespace=? AND name=?",
            (resource, namespace, name),
        ).fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    @staticmethod
    def _namespace_for(kind: ResourceKind, namespace: str | None) -> str:
        if not kind.namespaced:
            return ""
        return namespace or "default"

    def _write(self, resource: str, obj: Obj, owners_changed: bool = True) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        self._db.execute(
            "INSERT OR REPLACE INTO objects (resource, namespace, name, uid, rv, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                resource,
                namespace,
                meta["name"],
                meta["uid"],
                int(meta["resourceVersion"]),
                _dumps(obj),
            ),
        )
        if owners_changed:
            self._db.execute(
                "DELETE FROM owners WHERE resource=? AND namespace=? AND name=?",
                (resource, namespace, meta["name"]),
            )
            for ref in meta.get("ownerReferences") or []:
                self._db.execute(
                    "INSERT INTO owners (owner_uid, resource, namespace, name) VALUES (?, ?, ?, ?)",
                    (ref.get("uid", ""), resource, namespace, meta["name"]),
                )

    # -- reads -----------------------------------------------------------------

    def namespaces(self) -> list[str]:
        """Every namespace an object lives in, sorted (whether or not a Namespace object
        exists for it)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT namespace FROM objects WHERE namespace != '' ORDER BY namespace"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def get(self, resource: str, namespace: str | None, name: str) -> Obj:
        """The stored object; raises NotFoundError."""
        kind = _kind_of_resource(resource)
        ns = self._namespace_for(kind, namespace)
        with self._lock:
            found = self._row(kind.resource, ns, name)
        if found is None:
            where = f' in namespace "{ns}"' if ns else ""
            raise NotFoundError(f'{kind.resource} "{name}" not found{where}')
        return found

    def list(
        self,
        resource: str | None,
        namespace: str | None = None,
        label_selector: str | Mapping[str, str] | None = None,
    ) -> tuple[list[Obj], str]:
        """Objects of ``resource`` (every resource if None) by namespace and name; and the list RV."""
        requirements = parse_label_selector(label_selector)
        query = "SELECT body FROM objects"
        params: list[Any] = []
        clauses = []
        if resource is not None:
            clauses.append("resource=?")
            params.append(_kind_of_resource(resource).resource)
        if namespace:
            clauses.append("namespace IN (?, '')")
            params.append(namespace)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY resource, namespace, name"
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
            rv = str(self._rv)
        items = [dict(orjson.loads(row[0])) for row in rows]
        if requirements:
            items = [o for o in items if matches(requirements, o["metadata"].get("labels"))]
        return items, rv

    # -- writes ----------------------------------------------------------------

    def create(self, obj: Obj) -> Obj:
        """Store a new object; fills uid, resourceVersion, generation, creationTimestamp."""
        self.admission.admit(obj, None, self)
        kind = registry.for_object(obj["apiVersion"], obj["kind"])
        new: Obj = orjson.loads(_dumps(obj))
        if kind.resource == "secrets":
            normalize_secret(new)
        elif kind.resource == "namespaces":
            new["status"] = {"phase": "Active"}
        meta = new.setdefault("metadata", {})
        namespace = self._namespace_for(kind, meta.get("namespace"))
        if kind.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if self.admission.has_mutations(kind.resource):
            # mutating admission (PodDefaults), then validation of what it made
            self.admission.mutate(kind.resource, new, self)
            self.admission.admit(new, None, self)
        for server_field in (
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            meta.pop(server_field, None)
        with self.transaction():
            if not meta.get("name"):
                meta["name"] = self._generate_name(kind.resource, namespace, meta["generateName"])
            if self._row(kind.resource, namespace, meta["name"]) is not None:
                raise AlreadyExistsError(f'{kind.resource} "{meta["name"]}" already exists')
            rv = self._next_rv()
            meta["uid"] = str(uuid.uuid4())
            meta["resourceVersion"] = str(rv)
            meta["generation"] = 1
            meta["creationTimestamp"] = now_timestamp()
            self.admission.apply_defaults(kind.resource, new)
            self._write(kind.resource, new)
            self._record("ADDED", kind.resource, new, rv)
        return new

    def _generate_name(self, resource: str, namespace: str, prefix: str) -> str:
        alphabet = string.ascii_lowercase + string.digits
        for _ in range(100):
            name = prefix + "".join(secrets.choice(alphabet) for _ in range(5))
            if self._row(resource, namespace, name) is None:
                return name
        raise ConflictError(f'could not generate a free name with prefix "{prefix}"')

    def _current_for(self, obj: Obj) -> tuple[ResourceKind, Obj]:
        kind = _kind_of_object(obj)
        meta = obj.get("metadata") or {}
        if not isinstance(meta, dict):
            raise InvalidError("metadata", "expected an object (mapping)")
        name = meta.get("name")
        if not name:
            raise InvalidError("metadata.name", "required field is missing")
        current = self.get(kind.resource, meta.get("namespace"), name)
        wanted = meta.get("resourceVersion")
        if wanted and str(wanted) != current["metadata"]["resourceVersion"]:
            raise ConflictError(
                f'Operation cannot be fulfilled on {kind.resource} "{name}": the object has '
                "been modified; please apply your changes to the latest version and try again"
            )
        return kind, current

    def update(self, obj: Obj) -> Obj:
        """Replace metadata and spec (status is kept); refuses a stale resourceVersion."""
        with self.transaction():
            kind, current = self._current_for(obj)
            obj = orjson.loads(_dumps(obj))
            obj.setdefault("metadata", {})["uid"] = current["metadata"]["uid"]
            self.admission.apply_defaults(kind.resource, obj)
            self.admission.admit(obj, current, self)
            new: Obj = orjson.loads(_dumps(obj))
            if kind.resource == "secrets":
                normalize_secret(new)
            meta = new.setdefault("metadata", {})
            cur_meta = current["metadata"]
            for kept in ("uid", "creationTimestamp", "name", "generation", "resourceVersion"):
                meta[kept] = cur_meta[kept]
            if kind.namespaced:
                meta["namespace"] = cur_meta["namespace"]
            if "deletionTimestamp" in cur_meta:
                meta["deletionTimestamp"] = cur_meta["deletionTimestamp"]
                if "deletionGracePeriodSeconds" in cur_meta:
                    meta["deletionGracePeriodSeconds"] = cur_meta["deletionGracePeriodSeconds"]
                added = set(meta.get("finalizers") or []) - set(cur_meta.get("finalizers") or [])
                if added:
                    raise InvalidError(
                        "metadata.finalizers",
                        f"no new finalizers ({', '.join(sorted(added))}) while the object "
                        "is being deleted",
                    )
            else:
                meta.pop("deletionTimestamp", None)
                meta.pop("deletionGracePeriodSeconds", None)
            if "status" in current:
                new["status"] = current["status"]
            else:
                new.pop("status", None)
            if new == current:
                return current
            if (
                "deletionTimestamp" in meta
                and cur_meta.get("finalizers")
                and not meta.get("finalizers")
                and not (kind.graceful_deletion and _runs(new))
            ):
                # The last finalizer is gone: the deletion asked for earlier happens now
                # (a pod still running is removed by its kubelet once it has stopped).
                self._delete_tree(kind.resource, new, set())
                return new
            body_keys = ("metadata", "status", "apiVersion", "kind")
            if _without(new, *body_keys) != _without(current, *body_keys):
                meta["generation"] = int(cur_meta.get("generation", 1)) + 1
            rv = self._next_rv()
            meta["resourceVersion"] = str(rv)
            owners_changed = meta.get("ownerReferences") != cur_meta.get("ownerReferences")
            self._write(kind.resource, new, owners_changed)
            self._record("MODIFIED", kind.resource, new, rv)
        return new

    def update_status(self, obj: Obj) -> Obj:
        """Replace the status only (controllers); refuses a stale resourceVersion."""
        with self.transaction():
            kind, current = self._current_for(obj)
            if obj.get("status") == current.get("status"):
                return current
            new: Obj = orjson.loads(_dumps(current))
            if obj.get("status") is None:
                new.pop("status", None)
            else:
                new["status"] = orjson.loads(_dumps(obj["status"]))
            rv = self._next_rv()
            new["metadata"]["resourceVersion"] = str(rv)
            self._write(kind.resource, new, owners_changed=False)
            self._record("MODIFIED", kind.resource, new, rv)
        return new

    def delete(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        orphan: bool = False,
        grace_period: int | None = None,
    ) -> Obj:
        """Remove an object and, in the same transaction, every object it owns.

        With ``orphan`` (``propagationPolicy: Orphan``) the owned objects stay and lose
        their ownerReference to it instead. An object with ``metadata.finalizers`` only
        gets a ``deletionTimestamp``; it goes when an update removes the last finalizer.
        A running pod (a kind with ``graceful_deletion``) is only marked too, with
        ``deletionGracePeriodSeconds`` (``grace_period``, else its spec's
        ``terminationGracePeriodSeconds``, else 30); the kubelet stops it and then deletes
        it with ``grace_period=0``.
        """
        kind = _kind_of_resource(resource)
        ns = self._namespace_for(kind, namespace)
        with self.transaction():
            current = self.get(kind.resource, ns, name)
            if kind.graceful_deletion and grace_period != 0 and _runs(current):
                meta = current["metadata"]
                if grace_period is None:
                    spec_grace = (current.get("spec") or {}).get("terminationGracePeriodSeconds")
                    grace_period = 30 if spec_grace is None else int(spec_grace)
                previous = meta.get("deletionGracePeriodSeconds")
                if grace_period > 0 and (previous is None or grace_period < int(previous)):
                    meta["deletionTimestamp"] = _timestamp_in(grace_period)
                    meta["deletionGracePeriodSeconds"] = grace_period
                    rv = self._next_rv()
                    meta["resourceVersion"] = str(rv)
                    self._write(kind.resource, current, owners_changed=False)
                    self._record("MODIFIED", kind.resource, current, rv)
                    return current
                if grace_period > 0:
                    return current
            if current["metadata"].get("finalizers"):
                # As on a cluster: mark it; it goes when its finalizers are removed.
                if "deletionTimestamp" not in current["metadata"]:
                    current["metadata"]["deletionTimestamp"] = now_timestamp()
                    rv = self._next_rv()
                    current["metadata"]["resourceVersion"] = str(rv)
                    self._write(kind.resource, current, owners_changed=False)
                    self._record("MODIFIED", kind.resource, current, rv)
                return current
            seen: set[str] = set()
            if orphan:
                self._orphan_children(current["metadata"]["uid"])
            self._delete_tree(kind.resource, current, seen)
            if kind.resource == "namespaces":
                # As on a cluster: deleting a namespace deletes everything in it.
                rows = self._db.execute(
                    "SELECT resource, body FROM objects WHERE namespace=?", (name,)
                ).fetchall()
                for resource_name, body in rows:
                    obj = dict(orjson.loads(body))
                    if obj["metadata"]["uid"] not in seen and self._row(
                        resource_name, name, obj["metadata"]["name"]
                    ):
                        self._delete_tree(resource_name, obj, seen)
        return current

    def _orphan_children(self, uid: str) -> None:
        children = self._db.execute(
            "SELECT resource, namespace, name FROM owners WHERE owner_uid=?", (uid,)
        ).fetchall()
        for child_resource, child_ns, child_name in children:
            child = self._row(child_resource, child_ns, child_name)
            if child is None:
                continue
            refs = child["metadata"].get("ownerReferences") or []
            kept = [r for r in refs if r.get("uid") != uid]
            if kept:
                child["metadata"]["ownerReferences"] = kept
            else:
                child["metadata"].pop("ownerReferences", None)
            rv = self._next_rv()
            child["metadata"]["resourceVersion"] = str(rv)
            self._write(child_resource, child)
            self._record("MODIFIED", child_resource, child, rv)

    def _delete_tree(self, resource: str, obj: Obj, seen: set[str]) -> None:
        meta = obj["metadata"]
        uid = meta["uid"]
        if uid in seen:
            return
        seen.add(uid)
        children = self._db.execute(
            "SELECT resource, namespace, name FROM owners WHERE owner_uid=?", (uid,)
        ).fetchall()
        ns = meta.get("namespace", "")
        self._db.execute(
            "DELETE FROM objects WHERE resource=? AND namespace=? AND name=?",
            (resource, ns, meta["name"]),
        )
        self._db.execute(
            "DELETE FROM owners WHERE resource=? AND namespace=? AND name=?",
            (resource, ns, meta["name"]),
        )
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        self._record("DELETED", resource, obj, rv)
        for child_resource, child_ns, child_name in children:
            child = self._row(child_resource, child_ns, child_name)
            if child is not None:
                self._delete_tree(child_resource, child, seen)

    def apply(self, obj: Obj) -> tuple[Obj, str]:
        """Create or update from a manifest, as ``kubectl apply`` does (three-way merge with
        the last-applied annotation); returns the object and created/configured/unchanged."""
        kind = _kind_of_object(obj)
        meta = obj.get("metadata") or {}
        if not isinstance(meta, dict):
            raise InvalidError("metadata", "expected an object (mapping)")
        namespace = self._namespace_for(kind, meta.get("namespace")) if kind.namespaced else None
        with self.transaction():
            name = meta.get("name")
            existing = self._row(kind.resource, namespace or "", name) if name else None
            if existing is None:
                body: Obj = orjson.loads(_dumps(obj))
                value = last_applied_value(body, namespace)
                body.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = value
                return self.create(body), "created"
            merged = three_way_apply(existing, obj, namespace)
            merged["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            updated = self.update(merged)
            same = updated["metadata"]["resourceVersion"] == existing["metadata"]["resourceVersion"]
            return updated, ("unchanged" if same else "configured")

    # -- change feed -----------------------------------------------------------

    def _events_after(
        self, rv: int, resource: str | None, namespace: str | None
    ) -> builtins.list[WatchEvent]:
        query = "SELECT rv, type, resource, body FROM events WHERE rv > ?"
        params: list[Any] = [rv]
        if resource is not None:
            query += " AND resource=?"
            params.append(resource)
        if namespace is not None:
            query += " AND namespace=?"
            params.append(namespace)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY rv", params).fetchall()
        return [WatchEvent(t, dict(orjson.loads(b)), r, int(v)) for v, t, r, b in rows]

    async def watch(
        self,
        resource: str | None = None,
        since_rv: str | int | None = None,
        namespace: str | None = None,
    ) -> AsyncGenerator[WatchEvent, None]:
        """Changes of ``resource`` (all if None) after ``since_rv``.

        With ``since_rv`` None, "" or "0", the current objects come first as ADDED events,
        as a Kubernetes watch without a resourceVersion does. Raises ExpiredError when
        ``since_rv`` is older than the kept history.
        """
        res = None if resource is None else _kind_of_resource(resource).resource
        watcher = _Watcher(asyncio.Queue(), asyncio.get_running_loop(), res, namespace)
        self._watchers.add(watcher)
        try:
            if since_rv in (None, "", "0", 0):
                items, list_rv = self.list(res, namespace)
                last = int(list_rv)
                for item in items:
                    kind = registry.for_object(item["apiVersion"], item["kind"])
                    yield WatchEvent(
                        "ADDED", item, kind.resource, int(item["metadata"]["resourceVersion"])
                    )
            else:
                try:
                    since = int(str(since_rv))
                except ValueError:
                    raise InvalidError(
                        "resourceVersion", f'"{since_rv}" is not a resourceVersion'
                    ) from None
                if since < self._compacted:
                    raise ExpiredError(
                        f"too old resource version: {since} (the oldest kept is {self._compacted})"
                    )
                last = since
                for event in self._events_after(since, res, namespace):
                    last = event.rv
                    yield event
            while True:
                event = await watcher.queue.get()
                if event.rv <= last:
                    continue
                last = event.rv
                yield event
        finally:
            self._watchers.discard(watcher)
