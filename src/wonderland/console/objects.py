"""Any object: apply pasted YAML, edit one object, delete it, and its events, as typed data.

Writes go through the store's own ``apply``, ``update`` and ``delete``, the path
``wonderland apply`` and the control API take, so a console write passes exactly the same
schema validation and admission checks. :func:`apply_text` first runs every document in a
transaction that is rolled back (a server-side dry run: each document sees the state the
earlier ones leave), and only when all pass applies them in order, one transaction each,
as ``kubectl apply`` does; a failure then names the documents already applied (nothing is
rolled back). A refused field is reported with its path and its line and column in the
submitted text. Secret values are never put into a page: the diff of a Secret says which
keys changed, not how.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from wonderland.api import registry
from wonderland.api.kinds import ResourceKind
from wonderland.api.manifests import Manifest, ManifestError, load_text
from wonderland.errors import ConflictError, InvalidError, NotFoundError, WonderlandError
from wonderland.store import Store

__all__ = [
    "MASK",
    "MAX_DOCUMENTS",
    "SOURCE",
    "ApplyOutcome",
    "DeleteOutcome",
    "DocumentResult",
    "EventRow",
    "EventsPage",
    "Problem",
    "apply_text",
    "create_text",
    "delete_object",
    "edit_text",
    "editable_yaml",
    "events",
    "kind_of",
    "kubectl_events",
    "masked",
]

SOURCE = "<pasted>"
MAX_DOCUMENTS = 100
MASK = "(hidden)"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Server-written metadata an edit may not change and need not show.
_SERVER_META = ("uid", "generation", "creationTimestamp", "managedFields", "selfLink")
_PROBLEM_LINE = re.compile(r"^" + re.escape(SOURCE) + r":(\d+): ")


class _Rollback(Exception):
    """Raised inside the dry run's transaction so that the store keeps nothing."""


@dataclass(frozen=True)
class Problem:
    """What is wrong, where: the field path (empty for the document as a whole), its line
    and column in the submitted text (1-based), and the platform's message."""

    message: str
    line: int
    column: int = 1
    field: str = ""
    status: int = 422  # the HTTP status the page answers with
    api_version: str = ""  # the document's, for the field's docs
    kind: str = ""

    @property
    def where(self) -> str:
        return f"line {self.line}, column {self.column}"


@dataclass
class DocumentResult:
    """One document of a submission: which object, at which line, and what happened."""

    index: int
    line: int
    kind: str
    namespace: str
    name: str
    resource: str = ""
    action: str = ""  # created | configured | unchanged (with dry_run: what would happen)
    problem: Problem | None = None
    diff: str = ""  # unified diff of the stored object and the result (configured only)

    @property
    def display(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass
class ApplyOutcome:
    """What a submission did: its documents, the problems found, whether it was a dry run
    only, and on a failure after the dry run which documents had been applied already."""

    documents: list[DocumentResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    dry_run: bool = True
    applied: list[DocumentResult] = field(default_factory=list)
    failed: DocumentResult | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def status(self) -> int:
        return max((p.status for p in self.problems), default=200)


@dataclass(frozen=True)
class DeleteOutcome:
    kind: str
    namespace: str
    name: str
    pending: bool  # finalizers (or a running pod's grace period) keep it for now


def kind_of(resource: str) -> ResourceKind:
    """The kind stored under ``resource`` (``services.serving.knative.dev``); NotFoundError
    for a name the platform does not serve."""
    for kind in registry.all_kinds():
        if kind.resource == resource:
            return kind
    raise NotFoundError(f'the platform serves no resource "{resource}"')


def masked(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A Secret with every value replaced by ``(hidden)`` (other kinds unchanged)."""
    out = dict(obj)
    if obj.get("kind") != "Secret":
        return out
    for key in ("data", "stringData"):
        if isinstance(out.get(key), dict):
            out[key] = dict.fromkeys(out[key], MASK)
    meta = dict(out.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    if LAST_APPLIED in annotations:
        annotations[LAST_APPLIED] = MASK
        meta["annotations"] = annotations
        out["metadata"] = meta
    return out


def _dump(obj: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(obj), sort_keys=False, default_flow_style=False)


def editable_yaml(obj: Mapping[str, Any]) -> str:
    """The object as an edit starts from: no status, no server-written metadata, but its
    resourceVersion (so a change made meanwhile is refused, not overwritten)."""
    body = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_META}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    body["metadata"] = meta
    return _dump(body)


def _parse(text: str) -> tuple[list[Manifest], list[Problem]]:
    if not text.strip():
        return [], [Problem("the text is empty: paste one or more YAML documents", 1, status=400)]
    try:
        manifests = load_text(text, SOURCE)
    except ManifestError as exc:
        problems = []
        for raw in exc.problems:
            match = _PROBLEM_LINE.match(raw)
            line = int(match.group(1)) if match else 1
            problems.append(Problem(_PROBLEM_LINE.sub("", raw), line, status=400))
        return [], problems
    if not manifests:
        return [], [Problem("no object in the text (only comments or ---)", 1, status=400)]
    if len(manifests) > MAX_DOCUMENTS:
        message = f"{len(manifests)} documents; apply at most {MAX_DOCUMENTS} at a time"
        return [], [Problem(message, manifests[MAX_DOCUMENTS].line, status=413)]
    return manifests, []


def _problem(manifest: Manifest, exc: WonderlandError) -> Problem:
    if isinstance(exc, InvalidError):
        path = exc.field or ""
        # a path the text does not have (a defaulted field) points at its nearest parent
        return Problem(
            f"{path}: {exc.reason_text}" if path else exc.reason_text,
            manifest.line_of(path),
            manifest.column_of(path) if path else 1,
            path,
            api_version=str(manifest.obj.get("apiVersion") or ""),
            kind=str(manifest.obj.get("kind") or ""),
        )
    # a stale resourceVersion or a taken name is a conflict; the rest (a kind or an
    # object the document refers to that does not exist) is a refused document
    status = 409 if isinstance(exc, ConflictError) else 422
    return Problem(str(exc), manifest.line, 1, "", status)


def _document(index: int, manifest: Manifest) -> tuple[DocumentResult, ResourceKind | None]:
    obj = manifest.obj
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    result = DocumentResult(
        index,
        manifest.line,
        str(obj.get("kind") or "?"),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or meta.get("generateName") or "?"),
    )
    try:
        kind = registry.for_object(str(obj.get("apiVersion")), str(obj.get("kind")))
    except NotFoundError as exc:
        path = "kind" if "kind" in manifest.lines else "apiVersion"
        message = f"{exc}; `wonderland api-resources` lists what the platform serves"
        result.problem = Problem(
            message, manifest.line_of(path), manifest.column_of(path), path, 422
        )
        return result, None
    result.resource = kind.resource
    if kind.namespaced and not result.namespace:
        result.namespace = "default"
    if "create" not in kind.verbs:
        result.problem = Problem(
            f"{kind.kind} is read-only (served, not stored)", manifest.line, 1, "kind", 405
        )
        return result, None
    return result, kind


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    def view(obj: Mapping[str, Any]) -> list[str]:
        body = {k: v for k, v in obj.items() if k != "status"}
        meta = {
            k: v
            for k, v in (obj.get("metadata") or {}).items()
            if k not in (*_SERVER_META, "resourceVersion")
        }
        meta["annotations"] = {
            k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED
        } or None
        body["metadata"] = {k: v for k, v in meta.items() if v is not None}
        if obj.get("kind") == "Secret":  # which keys, never the values
            for key in ("data", "stringData"):
                if isinstance(body.get(key), dict):
                    body[key] = {k: f"(hidden, {len(str(v))} chars)" for k, v in body[key].items()}
        return _dump(body).splitlines()

    return "\n".join(
        difflib.unified_diff(view(before), view(after), "stored", "applied", n=2, lineterm="")
    )


def _apply_one(store: Store, manifest: Manifest, kind: ResourceKind) -> tuple[str, str]:
    """Apply one document (status dropped, as the API drops it); (action, diff)."""
    obj: dict[str, Any] = yaml.safe_load(yaml.safe_dump(manifest.obj))  # a private copy
    if "status" in kind.subresources:
        obj.pop("status", None)
    meta = obj.get("metadata") or {}
    before: dict[str, Any] | None = None
    if isinstance(meta, dict) and meta.get("name"):
        try:
            before = store.get(kind.resource, meta.get("namespace") or None, str(meta["name"]))
        except NotFoundError:
            before = None
    after, action = store.apply(obj)
    diff = _diff(before, after) if before is not None and action == "configured" else ""
    return action, diff


def apply_text(store: Store, text: str, *, dry_run: bool) -> ApplyOutcome:
    """Dry-run every document of ``text``; unless ``dry_run`` or a document is refused,
    then apply them in order (see the module docstring)."""
    outcome = ApplyOutcome(dry_run=dry_run)
    manifests, outcome.problems = _parse(text)
    if outcome.problems:
        return outcome
    plans: list[tuple[DocumentResult, Manifest, ResourceKind]] = []
    for index, manifest in enumerate(manifests):
        result, kind = _document(index, manifest)
        outcome.documents.append(result)
        if kind is None:
            assert result.problem is not None
            outcome.problems.append(result.problem)
        else:
            plans.append((result, manifest, kind))
    try:
        with store.transaction():
            for result, manifest, kind in plans:
                try:
                    result.action, result.diff = _apply_one(store, manifest, kind)
                except WonderlandError as exc:
                    result.problem = _problem(manifest, exc)
                    outcome.problems.append(result.problem)
            raise _Rollback
    except _Rollback:
        pass
    if dry_run or outcome.problems:
        return outcome
    for result, manifest, kind in plans:
        try:
            result.action, result.diff = _apply_one(store, manifest, kind)
        except WonderlandError as exc:  # changed between the dry run and now
            result.action = ""
            result.problem = _problem(manifest, exc)
            outcome.problems.append(result.problem)
            outcome.failed = result
            break
        outcome.applied.append(result)
    return outcome


def create_text(store: Store, text: str, *, dry_run: bool) -> ApplyOutcome:
    """Create the one object of ``text`` as ``kubectl create`` does (an object of that name
    already is a conflict, 409), or with ``dry_run`` only check that it would be created:
    the same store write in a transaction that is rolled back."""
    outcome = ApplyOutcome(dry_run=dry_run)
    manifests, outcome.problems = _parse(text)
    if outcome.problems:
        return outcome
    if len(manifests) != 1:
        message = "this form creates one object; use Apply for several"
        outcome.problems.append(Problem(message, manifests[-1].line, status=400))
        return outcome
    (manifest,) = manifests
    result, kind = _document(0, manifest)
    outcome.documents.append(result)
    if kind is None:
        assert result.problem is not None
        outcome.problems.append(result.problem)
        return outcome
    obj: dict[str, Any] = yaml.safe_load(yaml.safe_dump(manifest.obj))  # a private copy
    obj.pop("status", None)
    if kind.namespaced and isinstance(obj.get("metadata"), dict):
        obj["metadata"].setdefault("namespace", result.namespace)
    try:
        with store.transaction():
            store.create(obj)
            if dry_run:
                raise _Rollback
    except _Rollback:
        pass
    except WonderlandError as exc:
        result.problem = _problem(manifest, exc)
        outcome.problems.append(result.problem)
        return outcome
    result.action = "created"
    if not dry_run:
        outcome.applied.append(result)
    return outcome


def edit_text(
    store: Store, resource: str, namespace: str, name: str, text: str
) -> tuple[str, list[Problem]]:
    """Replace one object with the edited ``text`` (an update, as ``kubectl edit`` makes):
    ("configured" | "unchanged", []) or ("", problems). The text must describe the same
    object; a resourceVersion in it that is no longer current is refused (409)."""
    manifests, problems = _parse(text)
    if problems:
        return "", problems
    if len(manifests) != 1:
        line = manifests[1].line
        return "", [Problem("an edit holds this one object; use Apply for several", line)]
    manifest = manifests[0]
    obj = manifest.obj
    kind = kind_of(resource)
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return "", [Problem("metadata: expected a mapping", manifest.line_of("metadata"))]
    same = (
        obj.get("kind") == kind.kind
        and meta.get("name") == name
        and (meta.get("namespace") or namespace) == namespace
    )
    if not same:
        where = "metadata.name" if obj.get("kind") == kind.kind else "kind"
        message = (
            f"the text names another object; this page edits {kind.kind} "
            f"{namespace + '/' if namespace else ''}{name} (use Apply to create others)"
        )
        return "", [
            Problem(message, manifest.line_of(where), manifest.column_of(where), where, 400)
        ]
    if kind.namespaced:
        meta["namespace"] = namespace
    current = store.get(resource, namespace or None, name)
    if obj.get("kind") == "Secret" and _has_mask(obj):
        message = "a Secret's values are hidden here; change them with kubectl, not the console"
        return "", [Problem(message, manifest.line_of("data"), 1, "data", 400)]
    if "status" in kind.subresources:
        obj.pop("status", None)
    if "status" in current:
        obj["status"] = current["status"]  # kept by the update; shown unchanged
    try:
        updated = store.update(obj)
    except WonderlandError as exc:
        return "", [_problem(manifest, exc)]
    same_rv = updated["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]
    return ("unchanged" if same_rv else "configured"), []


def _has_mask(obj: Mapping[str, Any]) -> bool:
    return any(
        isinstance(obj.get(key), dict) and MASK in obj[key].values()
        for key in ("data", "stringData")
    )


def delete_object(store: Store, resource: str, namespace: str, name: str) -> DeleteOutcome:
    """Delete one object (and what it owns, in the background), as ``kubectl delete``."""
    kind = kind_of(resource)
    gone = store.delete(resource, namespace or None, name)
    pending = "deletionTimestamp" in (gone.get("metadata") or {})
    if pending:
        try:
            store.get(resource, namespace or None, name)
        except NotFoundError:
            pending = False
    return DeleteOutcome(kind.kind, namespace, name, pending)


# -- events ---------------------------------------------------------------------------

MAX_EVENTS = 500


@dataclass(frozen=True)
class EventRow:
    type: str
    reason: str
    message: str
    kind: str
    name: str
    namespace: str
    count: int
    last: str
    resource: str  # of the involved object, for a link ("" when the kind is unknown)


@dataclass(frozen=True)
class EventsPage:
    events: list[EventRow]
    total: int  # matching, before the display limit
    kinds: list[str]
    namespaces: list[str]
    types: list[str]
    reasons: list[str]
    filters: Mapping[str, str]
    resource_version: str


def _resource_for_kind(api_version: str, kind: str) -> str:
    try:
        return registry.for_object(api_version, kind).resource
    except NotFoundError:
        return ""


def events(
    store: Store,
    *,
    kind: str = "",
    namespace: str = "",
    event_type: str = "",
    reason: str = "",
    name: str = "",
) -> EventsPage:
    """Events, newest first, filtered by the involved object's kind (and name), the
    namespace, the type and the reason; the choices each filter offers."""
    rv = store.resource_version
    items, _ = store.list("events", None)
    rows: list[EventRow] = []
    kinds: set[str] = set()
    namespaces: set[str] = set()
    types: set[str] = set()
    reasons: set[str] = set()
    resources: dict[tuple[str, str], str] = {}
    for ev in items:
        involved = ev.get("involvedObject") or {}
        meta = ev.get("metadata") or {}
        ref = (str(involved.get("apiVersion") or ""), str(involved.get("kind") or ""))
        resource = resources.get(ref)
        if resource is None:
            resource = resources[ref] = _resource_for_kind(*ref)
        row = EventRow(
            str(ev.get("type") or "Normal"),
            str(ev.get("reason") or ""),
            str(ev.get("message") or ""),
            str(involved.get("kind") or ""),
            str(involved.get("name") or ""),
            str(meta.get("namespace") or ""),
            int(ev.get("count") or 1),
            str(
                ev.get("lastTimestamp")
                or ev.get("eventTime")
                or meta.get("creationTimestamp")
                or ""
            ),
            resource,
        )
        kinds.add(row.kind)
        namespaces.add(row.namespace)
        types.add(row.type)
        reasons.add(row.reason)
        if kind and row.kind != kind:
            continue
        if name and row.name != name:
            continue
        if namespace and row.namespace != namespace:
            continue
        if event_type and row.type != event_type:
            continue
        if reason and row.reason != reason:
            continue
        rows.append(row)
    rows.sort(key=lambda r: r.last, reverse=True)
    filters = {"kind": kind, "namespace": namespace, "type": event_type, "reason": reason}
    return EventsPage(
        rows[:MAX_EVENTS],
        len(rows),
        sorted(k for k in kinds if k),
        sorted(n for n in namespaces if n),
        sorted(t for t in types if t),
        sorted(r for r in reasons if r),
        {k: v for k, v in filters.items() if v},
        rv,
    )


def kubectl_events(filters: Mapping[str, str]) -> str:
    """The ``kubectl get events`` command that lists the same events."""
    selectors = []
    for key, field_name in (
        ("kind", "involvedObject.kind"),
        ("type", "type"),
        ("reason", "reason"),
    ):
        if filters.get(key):
            selectors.append(f"{field_name}={filters[key]}")
    scope = f"-n {filters['namespace']}" if filters.get("namespace") else "-A"
    command = f"kubectl get events {scope} --sort-by=.lastTimestamp"
    if selectors:
        command += " --field-selector " + ",".join(selectors)
    return command


def namespaces_of(items: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted({str((i.get("metadata") or {}).get("namespace") or "") for i in items} - {""})
