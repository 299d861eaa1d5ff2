"""The console's pages for any object: kinds, lists, one object (YAML, edit, delete,
events), the Apply page, the Events page and the node panel.

Each handler returns an :data:`~wonderland.console.pages.Answer` (a template, its
context and a status, or a redirect); the server renders it, so these pages share its security rules, its headers
and its live updates. The work is :mod:`wonderland.console.objects`' (through the store,
as ``wonderland apply`` and the control API write) and :mod:`wonderland.console.node`'s.

Routes: ``GET /objects`` (every kind with a count), ``GET /objects/<resource>`` (its
objects), ``GET|POST /object/<resource>/<namespace>/<name>`` (``action=apply`` saves the
edited YAML, ``action=delete`` with ``confirm=<name>`` deletes; ``?delete=1`` shows the
confirmation), ``GET|POST /apply``, ``GET /events``, ``GET /node`` (the node panel).
An empty namespace segment names a cluster-scoped object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import yaml

from wonderland.api import registry
from wonderland.api.kinds import ResourceKind
from wonderland.console import objects
from wonderland.console.node import NodeSampler
from wonderland.console.pages import Answer, Redirect, Rendered, Request
from wonderland.errors import NotFoundError, WonderlandError
from wonderland.store import Store

__all__ = ["MAX_YAML", "ObjectPages", "human_age", "human_bytes", "object_url"]

MAX_YAML = 512 * 1024  # bytes of a submitted form with YAML in it


def object_url(resource: str, namespace: str, name: str) -> str:
    return "/object/" + "/".join(quote(p, safe="") for p in (resource, namespace, name))


def _kubectl_target(kind: ResourceKind, namespace: str, name: str) -> str:
    scope = f" -n {namespace}" if kind.namespaced and namespace else ""
    return f"{kind.resource} {name}{scope}"


@dataclass(frozen=True)
class KindRow:
    resource: str
    kind: str
    group: str
    namespaced: bool
    count: int


@dataclass(frozen=True)
class ObjectRow:
    namespace: str
    name: str
    created: str
    ready: str  # the Ready condition's status, "" without one


def _form_value(form: Mapping[str, list[str]], name: str) -> str:
    values = form.get(name)
    return values[0] if values else ""


class ObjectPages:
    """The handlers (see the module docstring)."""

    def __init__(self, store: Store, node: NodeSampler) -> None:
        self.store = store
        self.node = node

    async def answer(self, request: Request) -> Answer | None:
        """The :class:`~wonderland.console.pages.PageSet` entry."""
        method, path, query = request.method, request.path, request.query
        form = request.form() if method == "POST" else {}
        return await self.route(method, path, query, form)

    async def route(
        self, method: str, path: str, query: Mapping[str, list[str]], form: Mapping[str, list[str]]
    ) -> Answer | None:
        """The page for ``path``, or None when the path is not one of these pages."""
        if path == "/objects" and method == "GET":
            return self.kinds(_form_value(query, "namespace"))
        if path.startswith("/objects/") and method == "GET":
            return self.listing(path.removeprefix("/objects/"), _form_value(query, "namespace"))
        if path.startswith("/object/"):
            parts = path.removeprefix("/object/").split("/")
            if len(parts) != 3 or not parts[0] or not parts[2]:
                return _missing("use /object/<resource>/<namespace>/<name>")
            resource, namespace, name = parts
            if method == "GET":
                return self.show(resource, namespace, name, _form_value(query, "delete") == "1")
            if method == "POST":
                return self.change(resource, namespace, name, form)
        if path == "/apply":
            if method == "GET":
                return Rendered("apply.html", {"nav": "apply", "text": "", "outcome": None})
            if method == "POST":
                return self.apply(form)
        if path == "/events" and method == "GET":
            return self.events(query)
        if path == "/node" and method == "GET":
            return Rendered("_node.html", {"node": await self.node.panel(), "fragment": True})
        return None

    # -- kinds and lists ---------------------------------------------------------------

    def kinds(self, namespace: str = "") -> Answer:
        """Every stored kind with how many objects it has (in ``namespace``, or all;
        cluster-scoped kinds count every object)."""
        rows: list[KindRow] = []
        for kind in sorted(registry.all_kinds(), key=lambda k: (k.group, k.kind)):
            if "list" not in kind.verbs or "create" not in kind.verbs:
                continue  # served, not stored (metrics.k8s.io)
            try:
                items, _ = self.store.list(kind.resource, namespace or None)
            except NotFoundError:
                continue
            rows.append(KindRow(kind.resource, kind.kind, kind.group, kind.namespaced, len(items)))
        context = {
            "nav": "objects",
            "kinds": rows,
            "namespace": namespace,
            "page": {"resource_version": self.store.resource_version},
        }
        return Rendered("objects.html", context)

    def listing(self, resource: str, namespace: str) -> Answer:
        try:
            kind = objects.kind_of(resource)
            items, rv = self.store.list(resource, namespace or None)
        except NotFoundError as exc:
            return _missing(str(exc))
        rows = []
        for obj in items:
            meta = obj.get("metadata") or {}
            ready = ""
            for cond in (obj.get("status") or {}).get("conditions") or []:
                if isinstance(cond, dict) and cond.get("type") == "Ready":
                    ready = str(cond.get("status") or "")
            rows.append(
                ObjectRow(
                    str(meta.get("namespace") or ""),
                    str(meta.get("name") or ""),
                    str(meta.get("creationTimestamp") or ""),
                    ready,
                )
            )
        rows.sort(key=lambda r: (r.namespace, r.name))
        scope = f" -n {namespace}" if namespace else (" -A" if kind.namespaced else "")
        context = {
            "nav": "objects",
            "kind": kind,
            "rows": rows,
            "namespace": namespace,
            "command": f"kubectl get {kind.resource}{scope}",
            "page": {"resource_version": rv},
        }
        return Rendered("object_list.html", context)

    # -- one object --------------------------------------------------------------------

    def _context(
        self, kind: ResourceKind, obj: dict[str, Any], namespace: str, name: str
    ) -> dict[str, Any]:
        shown = objects.masked(obj)
        target = _kubectl_target(kind, namespace, name)
        page = objects.events(self.store, kind=kind.kind, namespace=namespace, name=name)
        return {
            "nav": "objects",
            "kind": kind,
            "obj": shown,
            "namespace": namespace,
            "name": name,
            "url": object_url(kind.resource, namespace, name),
            "yaml": _yaml(shown),
            "edit": "" if kind.kind == "Secret" else objects.editable_yaml(obj),
            "secret": kind.kind == "Secret",
            "events": page.events,
            "commands": {
                "view": f"kubectl get {target} -o yaml",
                "edit": f"kubectl edit {target}",
                "apply": "kubectl apply -f FILE.yaml",
                "delete": f"kubectl delete {target}",
                "events": (
                    f"kubectl events --for {kind.kind.lower()}/{name}"
                    + (f" -n {namespace}" if namespace else "")
                ),
            },
            "page": {"resource_version": self.store.resource_version},
            "problems": [],
            "result": "",
            "confirm_delete": False,
        }

    def _load(
        self, resource: str, namespace: str, name: str
    ) -> tuple[ResourceKind, Any] | Rendered:
        try:
            kind = objects.kind_of(resource)
            obj = self.store.get(resource, namespace or None, name)
        except NotFoundError as exc:
            return _missing(str(exc))
        return kind, obj

    def show(self, resource: str, namespace: str, name: str, confirm_delete: bool) -> Answer:
        loaded = self._load(resource, namespace, name)
        if isinstance(loaded, Rendered):
            return loaded
        kind, obj = loaded
        context = self._context(kind, obj, namespace, name)
        context["confirm_delete"] = confirm_delete
        return Rendered("object.html", context)

    def change(
        self, resource: str, namespace: str, name: str, form: Mapping[str, list[str]]
    ) -> Answer:
        loaded = self._load(resource, namespace, name)
        if isinstance(loaded, Rendered):
            return loaded
        kind, obj = loaded
        action = _form_value(form, "action")
        if action == "delete":
            return self._delete(kind, obj, namespace, name, _form_value(form, "confirm"))
        if action != "apply":
            return _missing(f'no action "{action}": use apply or delete', 400)
        text = _form_value(form, "yaml")
        try:
            result, problems = objects.edit_text(self.store, resource, namespace, name, text)
        except NotFoundError as exc:
            return _missing(f"{exc} (deleted meanwhile?)")
        if not problems:
            location = object_url(resource, namespace, name) + f"?saved={result}"
            return Redirect(location)
        current = self.store.get(resource, namespace or None, name)
        context = self._context(kind, current, namespace, name)
        context["edit"] = text  # the user's own text back, to fix it
        context["problems"] = problems
        context["lines"] = _numbered(text, problems)
        return Rendered("object.html", context, max(p.status for p in problems))

    def _delete(
        self, kind: ResourceKind, obj: dict[str, Any], namespace: str, name: str, confirm: str
    ) -> Answer:
        if confirm.strip() != name:
            context = self._context(kind, obj, namespace, name)
            context["confirm_delete"] = True
            context["confirm_error"] = f'type the name "{name}" to confirm the deletion'
            return Rendered("object.html", context, 400)
        try:
            outcome = objects.delete_object(self.store, kind.resource, namespace, name)
        except NotFoundError as exc:
            return _missing(str(exc))
        except WonderlandError as exc:
            context = self._context(kind, obj, namespace, name)
            context["confirm_delete"] = True
            context["confirm_error"] = str(exc)
            return Rendered("object.html", context, 409)
        context = {
            "nav": "objects",
            "outcome": outcome,
            "kind": kind,
            "command": f"kubectl delete {_kubectl_target(kind, namespace, name)}",
        }
        return Rendered("deleted.html", context)

    # -- apply -------------------------------------------------------------------------

    def apply(self, form: Mapping[str, list[str]]) -> Answer:
        text = _form_value(form, "yaml")
        dry_run = _form_value(form, "mode") != "apply"
        outcome = objects.apply_text(self.store, text, dry_run=dry_run)
        context = {
            "nav": "apply",
            "text": text,
            "outcome": outcome,
            "lines": _numbered(text, outcome.problems) if outcome.problems else [],
            "object_url": object_url,
        }
        return Rendered("apply.html", context, outcome.status)

    # -- events ------------------------------------------------------------------------

    def events(self, query: Mapping[str, list[str]]) -> Answer:
        page = objects.events(
            self.store,
            kind=_form_value(query, "kind"),
            namespace=_form_value(query, "namespace"),
            event_type=_form_value(query, "type"),
            reason=_form_value(query, "reason"),
        )
        context = {
            "nav": "events",
            "page": page,
            "command": objects.kubectl_events(page.filters),
            "object_url": object_url,
        }
        return Rendered("events.html", context)


@dataclass(frozen=True)
class Line:
    number: int
    text: str
    problems: list[objects.Problem]


def _numbered(text: str, problems: list[objects.Problem]) -> list[Line]:
    by_line: dict[int, list[objects.Problem]] = {}
    for problem in problems:
        by_line.setdefault(problem.line, []).append(problem)
    return [
        Line(i, line, by_line.get(i, [])) for i, line in enumerate(text.splitlines() or [""], 1)
    ]


def _yaml(obj: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(obj), sort_keys=False, default_flow_style=False)


def _missing(message: str, status: int = 404) -> Rendered:
    return Rendered("error.html", {"message": message, "nav": ""}, status)


def human_bytes(value: int | None) -> str:
    """``1.5 GiB``-style sizes for the node panel."""
    if value is None:
        return "\N{EN DASH}"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def human_age(seconds: float | None) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``, as kubectl prints an age."""
    if seconds is None:
        return "\N{EN DASH}"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
