"""The Service page (``/apps/<namespace>/<name>``).

:func:`service_page` builds the page's typed data: the Service and its revisions (as on
Apps), charts over a time range from the metrics history
(:func:`~wonderland.console.app_charts.service_charts`), the autoscaler's view of each
revision (:class:`~wonderland.autoscaler.exporter.ScalerSource`), the recent cold starts
the gateway saw and how long they took, the Pods with their containers, the events of
the Service and everything it owns, its Dapr side
(:func:`~wonderland.console.app_dapr.dapr_app`), and its function facts when
``wonderland func deploy`` made it.

:class:`AppPages` serves the page, ``/apps/functions`` (the deployed functions with their
runtime, :func:`functions_page`) and a function's invoke box
(``POST /apps/<namespace>/<name>/invoke``,
:mod:`~wonderland.console.function_invoke`). A Pod's log follows the server's
``/logs/<namespace>/<pod>?container=`` (plain text, the console's form of
``wonderland logs -f``), offered when a :class:`~wonderland.control.sources.PodLogSource`
is there.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wonderland.autoscaler.exporter import ScalerSnapshot, ScalerSource
from wonderland.console import views
from wonderland.console.app_charts import ColdStartBin, cold_start_histogram, service_charts
from wonderland.console.app_dapr import (
    ComponentRow,
    DaprApp,
    PolicyRow,
    SubscriptionRow,
    dapr_app,
)
from wonderland.console.charts import (
    RANGES,
    Chart,
    range_seconds,
    step_for,
)
from wonderland.console.function_invoke import (
    DEFAULT_DATA,
    InvokeRefused,
    func_invoke_command,
    invoke_function,
    parse_invoke,
)
from wonderland.console.pages import Answer, Refused, Rendered, Request, Response, json_response
from wonderland.console.server import MAX_FORM, ConsoleServer
from wonderland.console.sources import GatewayClient, HistorySource
from wonderland.control.sources import PodLogSource
from wonderland.errors import NotFoundError
from wonderland.gateway import RoutingTable
from wonderland.store import Store

__all__ = [
    "AppPages",
    "ColdStartRow",
    "ComponentRow",
    "DaprApp",
    "FunctionInfo",
    "FunctionRow",
    "FunctionsPage",
    "PodRow",
    "PolicyRow",
    "ScalerRow",
    "ServicePage",
    "SubscriptionRow",
    "functions_page",
    "service_page",
]

L_REVISION = "serving.knative.dev/revision"
L_SERVICE = "serving.knative.dev/service"
RECENT_COLD_STARTS = 20
RECENT_EVENTS = 30
LOG_TAIL = 200
MAX_LOG_LINE = 16 * 1024


@dataclass(frozen=True)
class ScalerRow:
    """The autoscaler's view of one revision now (Knative's "Scaling Debugging")."""

    revision: str
    metric: str  # concurrency | rps
    desired: int
    requested: int
    ready: int
    not_ready: int
    pending: int
    stable: float | None
    panic: float | None
    target: float
    panicking: bool


@dataclass(frozen=True)
class ColdStartRow:
    revision: str
    at: str  # ISO time, UTC
    seconds: float


@dataclass(frozen=True)
class PodRow:
    name: str
    revision: str
    phase: str
    ready: bool
    containers: list[str]
    started: str


@dataclass(frozen=True)
class FunctionInfo:
    """A Service made by ``wonderland func deploy`` (labels ``function.knative.dev/*``):
    its name, runtime, how it is invoked (``http`` or ``cloudevent``, func.yaml's
    ``invoke``) and its folder, both from the function host's arguments."""

    name: str
    runtime: str
    invoke: str = "http"
    folder: str = ""


@dataclass(frozen=True)
class ServicePage:
    app: views.AppRow
    range: str
    ranges: list[str]
    charts: list[Chart]
    scaler: list[ScalerRow]
    scaler_available: bool
    cold_starts: list[ColdStartRow]
    cold_start_count: int  # over the range, from the history
    cold_start_bins: list[ColdStartBin]  # durations of those the gateway saw
    pods: list[PodRow]
    events: list[views.EventRow]
    dapr: DaprApp | None
    function: FunctionInfo | None
    metrics_available: bool
    resource_version: str
    charts_data: str = field(default="", repr=False)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _list(store: Store, resource: str, namespace: str) -> list[dict[str, Any]]:
    try:
        items, _ = store.list(resource, namespace)
    except NotFoundError:  # the kind's plugin is not installed
        return []
    return items


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scaler_rows(
    snapshots: Iterable[ScalerSnapshot], namespace: str, revisions: Sequence[str]
) -> list[ScalerRow]:
    wanted = set(revisions)
    rows = [
        ScalerRow(
            s.revision,
            s.metric,
            s.desired,
            s.requested,
            s.ready,
            s.not_ready,
            s.pending,
            s.stable,
            s.panic,
            s.target,
            s.panicking,
        )
        for s in snapshots
        if s.namespace == namespace and s.revision in wanted
    ]
    order = {name: i for i, name in enumerate(revisions)}
    return sorted(rows, key=lambda r: order.get(r.revision, 0))


def pod_rows(store: Store, namespace: str, revisions: Sequence[str]) -> list[PodRow]:
    wanted = set(revisions)
    rows: list[PodRow] = []
    for pod in _list(store, "pods", namespace):
        meta = _meta(pod)
        revision = str((meta.get("labels") or {}).get(L_REVISION) or "")
        if revision not in wanted:
            continue
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
            if isinstance(c, dict)
        )
        containers = [
            str(c.get("name"))
            for c in (pod.get("spec") or {}).get("containers") or []
            if isinstance(c, dict) and c.get("name")
        ]
        rows.append(
            PodRow(
                str(meta.get("name", "")),
                revision,
                str(status.get("phase") or "Pending"),
                ready,
                containers,
                str(status.get("startTime") or meta.get("creationTimestamp") or ""),
            )
        )
    rows.sort(key=lambda p: (p.revision, p.name), reverse=True)
    return rows


def event_rows(store: Store, namespace: str, names: set[str]) -> list[views.EventRow]:
    """The newest events of the objects named ``names`` in ``namespace``."""
    rows: list[views.EventRow] = []
    for ev in _list(store, "events", namespace):
        involved = ev.get("involvedObject") or {}
        if str(involved.get("name", "")) not in names:
            continue
        meta = _meta(ev)
        rows.append(
            views.EventRow(
                str(ev.get("type") or "Normal"),
                str(ev.get("reason") or ""),
                str(ev.get("message") or ""),
                f"{involved.get('kind', '')}/{involved.get('name', '')}",
                str(meta.get("namespace", "")),
                int(ev.get("count") or 1),
                str(
                    ev.get("lastTimestamp")
                    or ev.get("eventTime")
                    or meta.get("creationTimestamp")
                    or ""
                ),
            )
        )
    rows.sort(key=lambda e: e.last, reverse=True)
    return rows[:RECENT_EVENTS]


def _host_args(service: Mapping[str, Any]) -> list[str]:
    """The arguments of the Service's first container (the function host's
    ``--invoke MODE FOLDER`` for a deployed function)."""
    template = (service.get("spec") or {}).get("template") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    first = containers[0] if containers and isinstance(containers[0], dict) else {}
    return [str(a) for a in first.get("args") or []]


def function_info(service: Mapping[str, Any]) -> FunctionInfo | None:
    labels = _meta(service).get("labels") or {}
    name = labels.get("function.knative.dev/name") or labels.get("boson.dev/function")
    if not name:
        return None
    runtime = labels.get("function.knative.dev/runtime") or labels.get("boson.dev/runtime")
    args = _host_args(service)
    invoke, folder = "http", ""
    if "--invoke" in args[:-1]:
        at = args.index("--invoke")
        invoke = "cloudevent" if args[at + 1] == "cloudevent" else "http"
        folder = args[-1] if len(args) > at + 2 else ""
    return FunctionInfo(str(name), str(runtime or "unknown"), invoke, folder)


@dataclass(frozen=True)
class FunctionRow:
    """A deployed function on the Functions list."""

    namespace: str
    name: str  # the Service's name
    function: FunctionInfo
    url: str
    ready: views.Condition


@dataclass(frozen=True)
class FunctionsPage:
    functions: list[FunctionRow]
    resource_version: str


def functions_page(store: Store) -> FunctionsPage:
    """Every Service made by ``wonderland func deploy``, with its function's runtime."""
    rv = store.resource_version
    rows: list[FunctionRow] = []
    try:
        services, _ = store.list("services.serving.knative.dev", None)
    except NotFoundError:
        services = []
    for svc in services:
        info = function_info(svc)
        if info is None:
            continue
        meta = _meta(svc)
        rows.append(
            FunctionRow(
                str(meta.get("namespace", "")),
                str(meta.get("name", "")),
                info,
                str((svc.get("status") or {}).get("url") or ""),
                views.ready_condition(svc),
            )
        )
    rows.sort(key=lambda r: (r.namespace, r.name))
    return FunctionsPage(rows, str(rv))


async def service_page(
    store: Store,
    namespace: str,
    name: str,
    *,
    sources: HistorySource,
    scaler: ScalerSource | None = None,
    table: RoutingTable | None = None,
    range_name: str = "",
    history_step: float = 10.0,
    now: float | None = None,
) -> ServicePage:
    """The data of one Service's page; NotFoundError when there is no such Service."""
    service = store.get("services.serving.knative.dev", namespace, name)
    rv = store.resource_version
    (app,) = views.apps(store, {}, namespace, name).apps
    revisions = [r.name for r in app.revisions]  # newest first
    chosen, seconds = range_seconds(range_name)
    now = time.time() if now is None else now
    step = step_for(seconds, history_step)
    since = now - seconds
    drawn = await service_charts(sources, namespace, revisions, since, step, now)
    mine = set(revisions)
    seen = [
        ColdStartRow(c.revision, _iso(c.at), c.seconds)
        for c in reversed(list(table.cold_starts) if table is not None else [])
        if c.namespace == namespace and c.revision in mine
    ]
    names = {name, *revisions}
    pods = pod_rows(store, namespace, revisions)
    names.update(p.name for p in pods)
    return ServicePage(
        app=app,
        range=chosen,
        ranges=list(RANGES),
        charts=drawn.charts,
        scaler=scaler_rows(scaler.scaler_snapshots(), namespace, revisions) if scaler else [],
        scaler_available=scaler is not None,
        cold_starts=seen[:RECENT_COLD_STARTS],
        cold_start_bins=cold_start_histogram([c.seconds for c in seen]),
        cold_start_count=drawn.cold_start_count,
        pods=pods,
        events=event_rows(store, namespace, names),
        dapr=dapr_app(store, namespace, service),
        function=function_info(service),
        metrics_available=sources.available,
        resource_version=str(rv),
        charts_data=drawn.data,
    )


# -- the handlers ----------------------------------------------------------------------------


class AppPages:
    """``GET /apps/<namespace>/<name>``, ``GET /apps/functions`` and a function's invoke box
    (``POST /apps/<namespace>/<name>/invoke``, :mod:`~wonderland.console.function_invoke`);
    a Pod's log is followed over the server's ``/logs/<namespace>/<pod>``."""

    def __init__(
        self,
        server: ConsoleServer,
        sources: HistorySource,
        *,
        scaler: ScalerSource | None = None,
        table: RoutingTable | None = None,
        logs: PodLogSource | None = None,
        client: GatewayClient | None = None,
        history_step: float = 10.0,
    ) -> None:
        self.server = server
        self.sources = sources
        self.scaler = scaler
        self.table = table
        self.logs = logs
        self.client = client
        self.history_step = history_step

    def install(self) -> None:
        self.server.add_pages(self)

    async def answer(self, request: Request) -> Answer | None:
        """The :class:`~wonderland.console.pages.PageSet` entry: paths under ``/apps/``."""
        if not request.path.startswith("/apps/"):
            return None
        body = request.body
        parts = request.path.removeprefix("/apps/").split("/")
        if request.method == "GET" and parts == ["functions"]:
            context = {"page": functions_page(self.server.store), "nav": "apps"}
            return Rendered("functions.html", context)
        if len(parts) == 3 and parts[2] == "invoke" and all(parts[:2]):
            if request.method != "POST":
                return json_response(405, {"error": "POST the invoke box's form (JSON) here"})
            return await self.invoke(parts[0], parts[1], body)
        if request.method != "GET" or len(parts) != 2 or not all(parts):
            return Refused(404, "use /apps/<namespace>/<name>")
        namespace, name = parts
        try:
            data = await service_page(
                self.server.store,
                namespace,
                name,
                sources=self.sources,
                scaler=self.scaler,
                table=self.table,
                range_name=request.arg("range"),
                history_step=self.history_step,
            )
        except NotFoundError:
            message = f"no Service {namespace}/{name}; see the list on Apps"
            return Refused(404, message)
        context = {
            "page": data,
            "nav": "apps",
            "poll": max(1, round(self.history_step)),
            "logs_available": self.logs is not None,
            "invoke_available": self.client is not None,
            "default_data": DEFAULT_DATA,
        }
        return Rendered("service.html", context)

    async def invoke(self, namespace: str, name: str, body: bytes) -> Response:
        """Send the invoke box's request to the function through the gateway."""
        if self.client is None:
            return json_response(
                503, {"error": "this console has no gateway to send requests through"}
            )
        try:
            form = parse_invoke(body, MAX_FORM)
        except InvokeRefused as refused:
            return json_response(
                refused.status, {"error": refused.message + "; fix it and send again"}
            )
        try:
            service = self.server.store.get("services.serving.knative.dev", namespace, name)
        except NotFoundError:
            return json_response(404, {"error": f"no Service {namespace}/{name}"})
        info = function_info(service)
        if info is None:
            return json_response(
                409,
                {
                    "error": f"Service {namespace}/{name} is not a function (no "
                    "function.knative.dev/name label); send it requests with curl"
                },
            )
        url = str((service.get("status") or {}).get("url") or "")
        answer, event_id = await invoke_function(self.client, url, form)
        return json_response(
            200,
            {
                "status": answer.status,
                "body": answer.body,
                "milliseconds": round(answer.seconds * 1000, 2),
                "headers": dict(answer.headers),
                "eventId": event_id,
                "curl": answer.curl,
                "func": func_invoke_command(form, namespace, info.folder),
                "error": answer.error,
            },
        )
