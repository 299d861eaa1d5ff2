"""The console's own pages: Overview, the Apps list with its traffic form, the Models
list and the YAML view of any object (a :class:`~wonderland.console.pages.PageSet`).

``GET /`` (Overview), ``GET /apps`` (one page of Services, ``?q=`` to search names,
``?page=N``, ``?edit=<namespace>/<name>`` for that Service's traffic form),
``POST /apps`` (the traffic form), ``GET /models``, ``GET /yaml/<resource>/<ns>/<name>``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import yaml

from wonderland.console import model_views, views
from wonderland.console.node import NodeSampler
from wonderland.console.pages import Answer, Redirect, Refused, Rendered, Request
from wonderland.errors import ConflictError, InvalidError, NotFoundError
from wonderland.store import Store

__all__ = ["APPS_PER_PAGE", "CorePages", "TrafficError", "int_or_zero"]

log = logging.getLogger("wonderland.console")

APPS_PER_PAGE = 20  # Services per page of Apps
NODE_POLL_SECONDS = 5  # how often the Overview refreshes the node's figures
# Secrets show their keys, never their values.
MASK = "(hidden)"


class CorePages:
    """Overview, Apps, Models and the YAML view (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        metrics: views.MetricsSource,
        node: NodeSampler,
        poll_seconds: float = 10.0,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.node = node
        self.poll_seconds = poll_seconds  # how often pages with metrics refresh them

    async def answer(self, request: Request) -> Answer | None:
        path, method = request.path, request.method
        if path == "/apps" and method == "POST":
            return await self.set_traffic(request)
        if method != "GET":
            return None
        if path == "/":
            return await self.overview(request)
        if path == "/apps":
            return await self.apps(request)
        if path == "/models":
            return await self.models(request)
        if path.startswith("/yaml/"):
            return self.yaml_view(path.removeprefix("/yaml/"))
        return None

    async def overview(self, request: Request) -> Answer:
        data = views.overview(self.store, request.arg("namespace") or None)
        links = {
            r: "/apps" for r in ("services.serving.knative.dev", "revisions.serving.knative.dev")
        }
        links["trainjobs.trainer.kubeflow.org"] = "/training"
        links["experiments.kubeflow.org"] = "/experiments"
        node = await self.node.panel()
        context = {
            "page": data,
            "nav": "overview",
            "page_links": links,
            "node": node,
            "poll": NODE_POLL_SECONDS,
        }
        return Rendered("overview.html", context)

    async def apps(
        self, request: Request, error: TrafficError | None = None, status: int = 200
    ) -> Answer:
        """``GET /apps``: one page of Services (``?q=`` searches names, ``?page=N``), and
        the traffic form of the one named by ``?edit=<namespace>/<name>`` (or of the
        refused submission): the forms are rendered on demand, not one per Service."""
        top = await self.metrics.top("revisions")
        namespace = request.arg("namespace") or None
        query = request.arg("q")
        number = int_or_zero(request.arg("page")) or 1
        data = views.apps(
            self.store, top, namespace, query=query, page=number, per_page=APPS_PER_PAGE
        )
        editing: views.AppRow | None = None
        edit_missing = ""
        target = f"{error.namespace}/{error.name}" if error is not None else request.arg("edit")
        if target and not (error is not None and error.orphan):
            ns, _, name = target.partition("/")
            try:
                (editing,) = views.apps(self.store, top, ns, name).apps
            except NotFoundError:
                edit_missing = f"No Service {target} to edit; pick one in the list."

        def apps_url(**changes: str | int) -> str:
            args = {"namespace": namespace or "", "q": query, "page": data.page, "edit": ""}
            args.update(changes)
            if args["page"] == 1:
                args["page"] = ""
            shown = {k: str(v) for k, v in args.items() if v not in ("", None)}
            return "/apps" + ("?" + urlencode(shown) if shown else "")

        context = {
            "page": data,
            "nav": "apps",
            "poll": max(1, round(self.poll_seconds)),
            "traffic_error": error,
            "editing": editing,
            "edit_missing": edit_missing,
            "apps_url": apps_url,
            "page_namespace": namespace or "",
        }
        return Rendered("apps.html", context, status)

    async def set_traffic(self, request: Request) -> Answer:
        """``POST /apps``: a Service's traffic form. The new split is an ordinary update of
        the Service (the store's update runs the Service's own validation, as for
        ``wonderland apply``); the page answers 303 back to the Service, or 4xx with the
        error next to the form."""
        form = request.form()
        namespace = (form.get("namespace") or [""])[0]
        name = (form.get("name") or [""])[0]
        targets, percents, tags = (form.get(k) or [] for k in ("target", "percent", "tag"))
        rows = [
            views.SplitRow(t, int_or_zero(p), g)
            for t, p, g in zip(targets, percents, tags, strict=False)
        ]

        def refused(status: int, where: str, message: str) -> Awaitable[Answer]:
            orphan = status in (400, 404)
            error = TrafficError(namespace, name, where, message, rows, orphan)
            return self.apps(request, error, status)

        if not namespace or not name:
            return await refused(400, "form", "name the Service (namespace and name fields)")
        labels: list[str] = []
        try:
            traffic, labels = views.traffic_from_form(targets, percents, tags)
            service = self.store.get("services.serving.knative.dev", namespace, name)
            service.setdefault("spec", {})["traffic"] = traffic
            self.store.update(service)
        except InvalidError as exc:
            return await refused(422, _form_place(exc.field, labels), exc.reason_text)
        except NotFoundError as exc:
            return await refused(404, f"Service {namespace}/{name}", str(exc))
        except ConflictError as exc:
            return await refused(409, f"Service {namespace}/{name}", str(exc))
        log.info("console: traffic of %s/%s set to %s", namespace, name, traffic)
        back = urlencode({"namespace": namespace, "q": name})
        return Redirect(f"/apps?{back}#app-{namespace}-{name}")

    async def models(self, request: Request) -> Answer:
        top = await self.metrics.top("models")
        namespace = request.arg("namespace") or None
        data = model_views.models(self.store, top, namespace)
        context = {"page": data, "nav": "models", "poll": max(1, round(self.poll_seconds))}
        return Rendered("models.html", context)

    def yaml_view(self, rest: str) -> Answer:
        parts = rest.split("/")
        if len(parts) != 3 or not all(parts[0::2]):
            return Refused(404, "use /yaml/<resource>/<namespace>/<name>")
        resource, namespace, name = parts
        try:
            obj = self.store.get(resource, namespace or None, name)
        except NotFoundError as exc:
            return Refused(404, str(exc))
        if obj.get("kind") == "Secret":
            obj = _mask_secret(obj)
        text = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)
        context = {"obj": obj, "text": text, "resource": resource, "nav": ""}
        return Rendered("yaml.html", context)


@dataclass(frozen=True)
class TrafficError:
    """A refused traffic form: which Service, where in the form, what is wrong, and the
    rows as they were submitted (the form shows them again)."""

    namespace: str
    name: str
    where: str
    message: str
    rows: list[views.SplitRow]
    orphan: bool = False  # no such Service on the page: the error shows at the top

    def for_app(self, namespace: str, name: str) -> bool:
        return (self.namespace, self.name) == (namespace, name)


_TRAFFIC_FIELD = re.compile(r"^spec\.traffic\[(\d+)\](?:\.(\w+))?")


def _form_place(field: str | None, labels: Sequence[str]) -> str:
    """Where in the form an error of ``field`` is: ``spec.traffic[1].tag`` becomes
    ``tag of hello-00001``, ``spec.traffic`` the whole split."""
    if not field:
        return "the split"
    match = _TRAFFIC_FIELD.match(field)
    if match is not None:
        index = int(match.group(1))
        row = labels[index] if index < len(labels) else f"row {index + 1}"
        return f"{match.group(2) or 'row'} of {row}"
    if field == "spec.traffic":
        return "the split"
    return field


def int_or_zero(text: str) -> int:
    try:
        return int(text.strip() or 0)
    except ValueError:
        return 0


def _mask_secret(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    for key in ("data", "stringData"):
        if isinstance(out.get(key), dict):
            out[key] = dict.fromkeys(out[key], MASK)
    annotations = dict((out.get("metadata") or {}).get("annotations") or {})
    if "kubectl.kubernetes.io/last-applied-configuration" in annotations:
        annotations["kubectl.kubernetes.io/last-applied-configuration"] = MASK
        out["metadata"] = {**out["metadata"], "annotations": annotations}
    return out
