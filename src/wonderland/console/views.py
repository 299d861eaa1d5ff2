"""What each console page shows, as typed data built from the store and the metrics history.

The pages render these objects and nothing else, so the tests check the data a page shows
without a browser. :func:`overview` counts and checks the kinds the platform runs;
:func:`apps` lists Knative Services with their revisions, traffic split, readiness and
the request rate and latency percentiles of ``/wonderland/v1/top`` (the monitoring
endpoint's route, asked in process through the :class:`MetricsSource` seam) and the rows
of each Service's traffic form (:func:`split_rows`, read back by
:func:`traffic_from_form`). The Models list is :mod:`~wonderland.console.model_views`'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from wonderland.errors import InvalidError, NotFoundError
from wonderland.monitoring.hub import HttpRequest, MetricsHub
from wonderland.store import Store

__all__ = [
    "COUNTED",
    "LATEST",
    "AppRow",
    "AppsPage",
    "Condition",
    "CountRow",
    "EventRow",
    "HubMetrics",
    "MetricsSource",
    "OverviewPage",
    "RevisionRow",
    "SplitRow",
    "TopRow",
    "TrafficRow",
    "UnhealthyRow",
    "apps",
    "conditions_of",
    "list_objects",
    "meta_of",
    "overview",
    "ready_condition",
    "split_rows",
    "traffic_from_form",
]

# (resource, label) of each kind the Overview counts, in order.
COUNTED: tuple[tuple[str, str], ...] = (
    ("services.serving.knative.dev", "Services"),
    ("revisions.serving.knative.dev", "Revisions"),
    ("inferenceservices.serving.kserve.io", "InferenceServices"),
    ("trainjobs.trainer.kubeflow.org", "TrainJobs"),
    ("experiments.kubeflow.org", "Experiments"),
    ("components.dapr.io", "Components"),
)
# Kinds whose outcome is a Succeeded/Failed condition rather than Ready.
_JOB_KINDS = frozenset({"trainjobs.trainer.kubeflow.org", "experiments.kubeflow.org"})
RECENT_EVENTS = 20
TOP_PATH = "/wonderland/v1/top"


@dataclass(frozen=True)
class Condition:
    status: str  # True | False | Unknown
    reason: str = ""
    message: str = ""


def conditions_of(obj: Mapping[str, Any]) -> dict[str, Condition]:
    out: dict[str, Condition] = {}
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type"):
            out[str(cond["type"])] = Condition(
                str(cond.get("status", "Unknown")),
                str(cond.get("reason") or ""),
                str(cond.get("message") or ""),
            )
    return out


def ready_condition(obj: Mapping[str, Any]) -> Condition:
    """The object's Ready condition; Unknown when it has none yet."""
    return conditions_of(obj).get("Ready", Condition("Unknown", "", "not reconciled yet"))


def _problem(resource: str, obj: Mapping[str, Any]) -> Condition | None:
    """What is wrong with ``obj``, or None when nothing is (or nothing is known yet)."""
    conds = conditions_of(obj)
    if resource in _JOB_KINDS:
        failed = conds.get("Failed")
        return failed if failed is not None and failed.status == "True" else None
    ready = conds.get("Ready") or conds.get("Succeeded")
    if ready is not None and ready.status == "False":
        return ready
    return None


def meta_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


@dataclass(frozen=True)
class CountRow:
    resource: str
    label: str
    total: int
    unhealthy: int


@dataclass(frozen=True)
class UnhealthyRow:
    resource: str
    kind: str
    namespace: str
    name: str
    reason: str
    message: str


@dataclass(frozen=True)
class EventRow:
    type: str  # Normal | Warning
    reason: str
    message: str
    object: str  # Kind/name
    namespace: str
    count: int
    last: str  # timestamp


@dataclass(frozen=True)
class OverviewPage:
    counts: list[CountRow]
    unhealthy: list[UnhealthyRow]
    events: list[EventRow]
    resource_version: str


def list_objects(store: Store, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
    try:
        items, _ = store.list(resource, namespace)
    except NotFoundError:  # the kind's plugin is not installed
        return []
    return items


def overview(store: Store, namespace: str | None = None) -> OverviewPage:
    """Counts per kind, what is unhealthy and the newest events (of ``namespace``, or
    all)."""
    rv = store.resource_version
    counts: list[CountRow] = []
    unhealthy: list[UnhealthyRow] = []
    for resource, label in COUNTED:
        items = list_objects(store, resource, namespace)
        bad = 0
        for obj in items:
            problem = _problem(resource, obj)
            if problem is None:
                continue
            bad += 1
            meta = meta_of(obj)
            unhealthy.append(
                UnhealthyRow(
                    resource,
                    str(obj.get("kind", "")),
                    str(meta.get("namespace", "")),
                    str(meta.get("name", "")),
                    problem.reason,
                    problem.message,
                )
            )
        counts.append(CountRow(resource, label, len(items), bad))
    events: list[EventRow] = []
    for ev in list_objects(store, "events", namespace):
        involved = ev.get("involvedObject") or {}
        last = str(
            ev.get("lastTimestamp")
            or ev.get("eventTime")
            or meta_of(ev).get("creationTimestamp")
            or ""
        )
        events.append(
            EventRow(
                str(ev.get("type") or "Normal"),
                str(ev.get("reason") or ""),
                str(ev.get("message") or ""),
                f"{involved.get('kind', '')}/{involved.get('name', '')}",
                str(meta_of(ev).get("namespace", "")),
                int(ev.get("count") or 1),
                last,
            )
        )
    events.sort(key=lambda e: e.last, reverse=True)
    return OverviewPage(counts, unhealthy, events[:RECENT_EVENTS], str(rv))


# -- metrics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TopRow:
    """The newest values of one object's derived series (``/wonderland/v1/top``)."""

    namespace: str
    name: str
    values: Mapping[str, float | None]

    def value(self, series: str) -> float | None:
        return self.values.get(series)


class MetricsSource(Protocol):
    """Where the console reads the metrics history's newest row per object."""

    async def top(self, kind: str) -> dict[tuple[str, str], TopRow]: ...


class HubMetrics:
    """:class:`MetricsSource` over the monitoring endpoint's ``/wonderland/v1/top`` route,
    called in process through the :class:`MetricsHub` (no HTTP round trip)."""

    def __init__(self, hub: MetricsHub) -> None:
        self.hub = hub

    async def top(self, kind: str) -> dict[tuple[str, str], TopRow]:
        handler = self.hub.route(TOP_PATH)
        if handler is None:  # no metrics history in this daemon
            return {}
        response = await handler(HttpRequest("GET", TOP_PATH, f"kind={kind}"))
        if response.status != 200:
            return {}
        body = orjson.loads(response.body)
        out: dict[tuple[str, str], TopRow] = {}
        for item in body.get("items") or []:
            row = TopRow(str(item["namespace"]), str(item["name"]), dict(item.get("values") or {}))
            out[(row.namespace, row.name)] = row
        return out


# -- apps --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrafficRow:
    revision: str
    percent: int
    tag: str
    latest: bool
    url: str


@dataclass(frozen=True)
class RevisionRow:
    name: str
    created: str
    ready: Condition
    traffic: int  # percent of the Service's traffic
    image: str
    request_rate: float | None
    latency_p50: float | None  # seconds
    latency_p95: float | None
    latency_p99: float | None
    replicas: float | None


@dataclass(frozen=True)
class SplitRow:
    """One row of a Service's traffic form: a revision (or the latest one), its percent
    of the Service's traffic and its tag, as ``spec.traffic`` asks for them now."""

    target: str  # a revision's name, or LATEST for latestRevision: true
    percent: int
    tag: str

    @property
    def label(self) -> str:
        return "latest revision" if self.target == LATEST else self.target


LATEST = "@latest"


@dataclass(frozen=True)
class AppRow:
    namespace: str
    name: str
    url: str
    ready: Condition
    latest_created: str
    latest_ready: str
    traffic: list[TrafficRow]
    revisions: list[RevisionRow] = field(default_factory=list)
    split: list[SplitRow] = field(default_factory=list)  # the traffic form's rows

    @property
    def request_rate(self) -> float | None:
        rates = [r.request_rate for r in self.revisions if r.request_rate is not None]
        return sum(rates) if rates else None

    @property
    def replicas(self) -> float | None:
        counts = [r.replicas for r in self.revisions if r.replicas is not None]
        return sum(counts) if counts else None

    @property
    def latency_p95(self) -> float | None:
        """The slowest p95 of its revisions that take traffic (what a caller may see)."""
        values = [r.latency_p95 for r in self.revisions if r.latency_p95 is not None]
        return max(values) if values else None


@dataclass(frozen=True)
class AppsPage:
    """One page of the Apps list: the Services whose name holds ``query`` (of
    ``namespace``, or all), ``per_page`` at a time; ``total`` of them match."""

    apps: list[AppRow]
    metrics_available: bool
    resource_version: str
    total: int = 0
    page: int = 1
    per_page: int = 0  # 0: every match on one page
    query: str = ""

    @property
    def pages(self) -> int:
        if self.per_page <= 0:
            return 1
        return max(1, -(-self.total // self.per_page))


def _image(revision: Mapping[str, Any]) -> str:
    containers = (revision.get("spec") or {}).get("containers") or []
    if containers and isinstance(containers[0], dict):
        first = containers[0]
        return str(first.get("image") or " ".join(map(str, first.get("command") or [])))
    return ""


def _traffic(service: Mapping[str, Any]) -> list[TrafficRow]:
    out: list[TrafficRow] = []
    for entry in (service.get("status") or {}).get("traffic") or []:
        if not isinstance(entry, dict):
            continue
        out.append(
            TrafficRow(
                str(entry.get("revisionName") or ""),
                int(entry.get("percent") or 0),
                str(entry.get("tag") or ""),
                bool(entry.get("latestRevision")),
                str(entry.get("url") or ""),
            )
        )
    return out


def split_rows(service: Mapping[str, Any], revisions: Sequence[str]) -> list[SplitRow]:
    """The traffic form's rows: what ``spec.traffic`` asks for (or, when it asks for
    nothing, the split in effect), then 0 % rows for the latest revision and every
    revision not named yet, so that any of them can be given traffic."""
    spec = (service.get("spec") or {}).get("traffic") or []
    entries = spec or (service.get("status") or {}).get("traffic") or []
    rows: list[SplitRow] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        latest = bool(entry.get("latestRevision")) or not entry.get("revisionName")
        target = LATEST if latest else str(entry.get("revisionName"))
        rows.append(SplitRow(target, int(entry.get("percent") or 0), str(entry.get("tag") or "")))
    if not entries:
        rows.append(SplitRow(LATEST, 100, ""))
    named = {r.target for r in rows}
    for target in (LATEST, *revisions):
        if target not in named:
            rows.append(SplitRow(target, 0, ""))
            named.add(target)
    return rows


def traffic_from_form(
    targets: Sequence[str], percents: Sequence[str], tags: Sequence[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """``spec.traffic`` from the traffic form's rows, and each entry's row label (to say
    where an error is). Rows with 0 % and no tag are left out; the rest of the checks
    (sum 100, 0-100, unique DNS-label tags, known revisions) are the Service's own
    validation, run by the store's update."""
    if not (len(targets) == len(percents) == len(tags)):
        raise InvalidError("form", "every row needs a target, a percent and a tag field")
    traffic: list[dict[str, Any]] = []
    where: list[str] = []
    for target, raw, tag in zip(targets, percents, tags, strict=True):
        label = "latest revision" if target == LATEST else target
        text, tag = raw.strip(), tag.strip()
        try:
            percent = int(text) if text else 0
        except ValueError:
            raise InvalidError(
                f"percent of {label}", f'"{raw}" is not a whole number; give 0 to 100'
            ) from None
        if percent == 0 and not tag:
            continue
        entry: dict[str, Any] = (
            {"latestRevision": True} if target == LATEST else {"revisionName": target}
        )
        entry["percent"] = percent
        if tag:
            entry["tag"] = tag
        traffic.append(entry)
        where.append(label)
    if not traffic:
        raise InvalidError(
            "traffic", "every row is 0 %; give the revisions percentages that sum to 100"
        )
    return traffic, where


def apps(
    store: Store,
    top: Mapping[tuple[str, str], TopRow],
    namespace: str | None = None,
    name: str | None = None,
    *,
    query: str = "",
    page: int = 1,
    per_page: int = 0,
) -> AppsPage:
    """Knative Services (of ``namespace``, or all; or the one named ``name`` in
    ``namespace``) whose name holds ``query``, by namespace and name, with their revisions
    newest first. With ``per_page`` only page ``page`` of them (clamped to the last) is
    built: the others are counted, not read further."""
    rv = store.resource_version
    if name is not None and namespace is not None:
        services = [store.get("services.serving.knative.dev", namespace, name)]
    else:
        needle = query.strip().lower()
        services = [
            s
            for s in list_objects(store, "services.serving.knative.dev", namespace)
            if needle in str(meta_of(s).get("name", "")).lower()
        ]
    services.sort(key=lambda s: (meta_of(s).get("namespace"), meta_of(s).get("name")))
    total = len(services)
    pages = max(1, -(-total // per_page)) if per_page > 0 else 1
    page = min(max(1, page), pages)
    if per_page > 0:
        services = services[(page - 1) * per_page : page * per_page]
    wanted = {
        (str(meta_of(s).get("namespace", "")), str(meta_of(s).get("name", ""))) for s in services
    }
    revisions: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if services:
        only = namespace if namespace is not None else None
        if len({ns for ns, _ in wanted}) == 1:
            only = next(iter(wanted))[0]
        for rev in list_objects(store, "revisions.serving.knative.dev", only):
            meta = meta_of(rev)
            owner = (meta.get("labels") or {}).get("serving.knative.dev/service")
            key = (str(meta.get("namespace", "")), str(owner))
            if owner and key in wanted:
                revisions.setdefault(key, []).append(rev)
    rows = [_app_row(svc, revisions, top) for svc in services]
    return AppsPage(rows, bool(top), str(rv), total, page, per_page, query.strip())


def _app_row(
    svc: Mapping[str, Any],
    revisions: Mapping[tuple[str, str], list[dict[str, Any]]],
    top: Mapping[tuple[str, str], TopRow],
) -> AppRow:
    meta = meta_of(svc)
    ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    status = svc.get("status") or {}
    traffic = _traffic(svc)
    percent: dict[str, int] = {}
    for t in traffic:
        percent[t.revision] = percent.get(t.revision, 0) + t.percent
    revs: list[RevisionRow] = []
    for rev in revisions.get((ns, name), []):
        rmeta = meta_of(rev)
        rname = str(rmeta.get("name", ""))
        m = top.get((ns, rname))
        revs.append(
            RevisionRow(
                rname,
                str(rmeta.get("creationTimestamp") or ""),
                ready_condition(rev),
                percent.get(rname, 0),
                _image(rev),
                m.value("request_rate") if m else None,
                m.value("latency_p50") if m else None,
                m.value("latency_p95") if m else None,
                m.value("latency_p99") if m else None,
                m.value("replicas") if m else None,
            )
        )
    revs.sort(key=lambda r: (r.created, r.name), reverse=True)
    return AppRow(
        ns,
        name,
        str(status.get("url") or ""),
        ready_condition(svc),
        str(status.get("latestCreatedRevisionName") or ""),
        str(status.get("latestReadyRevisionName") or ""),
        traffic,
        revs,
        split_rows(svc, [r.name for r in revs]),
    )


def summarize_traffic(traffic: Sequence[TrafficRow]) -> str:
    """``"rev-00002 90%, rev-00001 10% (tag canary)"``: the split in one line."""
    parts = []
    for t in traffic:
        tag = f" (tag {t.tag})" if t.tag else ""
        parts.append(f"{t.revision or 'latest'} {t.percent}%{tag}")
    return ", ".join(parts)
