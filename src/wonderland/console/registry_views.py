"""What the Registry page shows: the MLflow model registry, read through MLflow's REST API.

:func:`registry` lists registered models, each with its aliases and its newest versions
(tags, status, the source run with its metrics) and the InferenceServices that serve each
version now (their ``status.modelRegistry``) or follow one of its aliases (a
``storageUri`` of ``models:/NAME@ALIAS``: they roll when the alias moves). The
:class:`RegistryAccess` seam says where the registry is; the platform's is the tracking
server, woken on demand (:class:`TrackingRegistry`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import Field

from wonderland.errors import InvalidError
from wonderland.tracking.access import TrackingAccess
from wonderland.tracking.client import RestClient, TrackingError, TrackingUnavailable
from wonderland.tracking.registry import ARCHIVED_TAG, Lineage, lineage, proxied_path
from wonderland.tracking.uris import ModelUri, is_tracking_uri, parse
from wonderland.workloads.views import ObjectMetaView, View

__all__ = [
    "MAX_MODELS",
    "MAX_RUN_METRICS",
    "MAX_VERSIONS",
    "CompareRow",
    "Comparison",
    "LineagePage",
    "LineageStep",
    "LoggedModelRow",
    "ModelRow",
    "RegistryAccess",
    "RegistryPage",
    "RunOutputs",
    "RunSeries",
    "TrackingRegistry",
    "VersionRow",
    "compare_versions",
    "deploy_commands",
    "deploy_uri",
    "lineage_page",
    "promote_commands",
    "register_commands",
    "registry",
    "run_history",
    "run_outputs",
]

MAX_MODELS = 50
MAX_VERSIONS = 20  # newest versions shown per model
MAX_RUN_METRICS = 8  # metrics of a run charted on a TrainJob's page
MAX_RUN_POINTS = 1000  # points per metric
EXTRA_HINT = "pip install 'wonderland[mlflow]'"


class RegistryAccess(Protocol):
    """Where the console reads and moves aliases: the base URL of an MLflow server."""

    async def base_url(self) -> str:
        """The server's URL, started first when it is asleep; :class:`TrackingError` with
        what to do when there is none."""
        ...

    @property
    def client_url(self) -> str:
        """What MLflow clients on this machine use (``MLFLOW_TRACKING_URI``), "" if none."""
        ...

    def running_url(self) -> str | None:
        """The server's URL if it runs now (never starts it), else None."""
        ...


class TrackingRegistry:
    """:class:`RegistryAccess` over the platform's tracking server (``TrackingAccess``)."""

    def __init__(self, access: TrackingAccess | None) -> None:
        self.access = access

    async def base_url(self) -> str:
        if self.access is None or not self.access.enabled:
            raise TrackingUnavailable(
                "the platform runs no MLflow tracking server, so there is no model "
                f"registry: install the mlflow extra ({EXTRA_HINT}) and restart "
                "`wonderland up`, or set WONDERLAND_MLFLOW_TRACKING_URI"
            )
        return await self.access.wake()

    @property
    def client_url(self) -> str:
        return self.access.client_uri if self.access is not None else ""

    def running_url(self) -> str | None:
        if self.access is None or not self.access.enabled:
            return None
        return self.access.running_uri()


class _Model(View):
    predictor: dict[str, Any] = Field(default_factory=dict)


class _IsvcStatus(View):
    modelRegistry: dict[str, str] | None = None
    url: str = ""
    components: dict[str, dict[str, Any]] = Field(default_factory=dict)


class _Isvc(View):
    metadata: ObjectMetaView = Field(default_factory=ObjectMetaView)
    spec: _Model = Field(default_factory=_Model)
    status: _IsvcStatus = Field(default_factory=_IsvcStatus)

    @property
    def storage_uri(self) -> str:
        model = self.spec.predictor.get("model") or {}
        return str(model.get("storageUri") or self.spec.predictor.get("storageUri") or "")

    @property
    def label(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"


@dataclass(frozen=True)
class VersionRow:
    version: str
    aliases: list[str]
    tags: dict[str, str]
    status: str
    created: str
    source: str
    run_id: str
    run_name: str
    metrics: dict[str, float]
    served_by: list[str]  # InferenceServices serving this version now (ns/name)

    @property
    def archived(self) -> bool:
        return self.tags.get(ARCHIVED_TAG, "").lower() == "true"


@dataclass(frozen=True)
class ModelRow:
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, str]  # alias → version
    versions: list[VersionRow]
    total_versions: int
    followers: dict[str, list[str]]  # alias (or "latest") → InferenceServices following it

    def rolls(self, alias: str) -> list[str]:
        """The InferenceServices that roll out a new predictor when ``alias`` moves."""
        return self.followers.get(alias, [])


@dataclass(frozen=True)
class RegistryPage:
    models: list[ModelRow]
    total_models: int
    unavailable: str  # why there is no registry to show, "" when there is
    tracking_url: str
    resource_version: str = ""
    notes: list[str] = field(default_factory=list)


def _when(millis: object) -> str:
    try:
        stamp = int(str(millis))
    except ValueError:
        return ""
    return datetime.fromtimestamp(stamp / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tags(raw: object) -> dict[str, str]:
    if not isinstance(raw, list):
        return {}
    return {str(t.get("key")): str(t.get("value", "")) for t in raw if isinstance(t, dict)}


def _followers(isvcs: Iterable[_Isvc], name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for isvc in isvcs:
        uri = isvc.storage_uri
        if not is_tracking_uri(uri):
            continue
        try:
            parsed = parse(uri)
        except InvalidError:
            continue
        if not isinstance(parsed, ModelUri) or parsed.name != name:
            continue
        key = parsed.alias or ("latest" if parsed.latest else "")
        if key:
            out.setdefault(key, []).append(isvc.label)
    return out


def registry(
    base_url: str, isvcs: Iterable[Mapping[str, Any]], *, timeout: float = 10.0
) -> RegistryPage:
    """The registry at ``base_url`` (blocking: call it in a worker thread)."""
    views = [_Isvc.model_validate(i) for i in isvcs]
    with RestClient(base_url, timeout=timeout) as client:
        found = client.call("GET", "/registered-models/search", params={"max_results": MAX_MODELS})
        raw_models = [m for m in found.get("registered_models") or [] if isinstance(m, dict)]
        models: list[ModelRow] = []
        runs: dict[str, dict[str, Any]] = {}
        for raw in sorted(raw_models, key=lambda m: str(m.get("name"))):
            name = str(raw.get("name") or "")
            aliases = {
                str(a.get("alias")): str(a.get("version"))
                for a in raw.get("aliases") or []
                if isinstance(a, dict)
            }
            versions = client.versions(name)
            versions.sort(key=lambda v: int(str(v.get("version") or 0)), reverse=True)
            rows: list[VersionRow] = []
            for mv in versions[:MAX_VERSIONS]:
                version = str(mv.get("version") or "")
                run_id = str(mv.get("run_id") or "")
                run: dict[str, Any] = {}
                if run_id:
                    if run_id not in runs:
                        try:
                            runs[run_id] = client.get_run(run_id)
                        except TrackingError:
                            runs[run_id] = {}
                    run = runs[run_id]
                data = run.get("data") or {}
                info = run.get("info") or {}
                served = [
                    v.label
                    for v in views
                    if (v.status.modelRegistry or {}).get("name") == name
                    and str((v.status.modelRegistry or {}).get("version")) == version
                ]
                rows.append(
                    VersionRow(
                        version,
                        sorted(a for a, v in aliases.items() if v == version),
                        _tags(mv.get("tags")),
                        str(mv.get("status") or ""),
                        _when(mv.get("creation_timestamp")),
                        str(mv.get("source") or ""),
                        run_id,
                        str(info.get("run_name") or ""),
                        {
                            str(m["key"]): float(m["value"])
                            for m in data.get("metrics") or []
                            if isinstance(m, dict) and "key" in m
                        },
                        served,
                    )
                )
            models.append(
                ModelRow(
                    name,
                    str(raw.get("description") or ""),
                    _tags(raw.get("tags")),
                    dict(sorted(aliases.items())),
                    rows,
                    len(versions),
                    _followers(views, name),
                )
            )
    notes = []
    if len(raw_models) >= MAX_MODELS:
        notes.append(f"The first {MAX_MODELS} registered models are shown.")
    return RegistryPage(models, len(models), "", base_url, notes=notes)


def promote_commands(name: str, version: str, alias: str) -> tuple[str, str]:
    """The command line and the MLflow client call that do what the promote form does."""
    cli = f"wonderland models promote {name} {version} --alias {alias}"
    py = (
        'python -c "from mlflow import MlflowClient; '
        f"MlflowClient().set_registered_model_alias('{name}', '{alias}', '{version}')\""
    )
    return cli, py


@dataclass(frozen=True)
class RunSeries:
    """One metric of an MLflow run by step (``metrics/get-history``)."""

    name: str
    step: list[int]
    v: list[float]


def run_history(base_url: str, run_id: str, *, timeout: float = 3.0) -> list[RunSeries]:
    """The history of each metric the run ``run_id`` logged (the first
    ``MAX_RUN_METRICS`` by name, the last ``MAX_RUN_POINTS`` points of each); blocking."""
    out: list[RunSeries] = []
    with RestClient(base_url, timeout=timeout) as client:
        run = client.get_run(run_id)
        keys = sorted(
            {str(m["key"]) for m in (run.get("data") or {}).get("metrics") or [] if "key" in m}
        )
        for key in keys[:MAX_RUN_METRICS]:
            found = client.call(
                "GET",
                "/metrics/get-history",
                params={"run_id": run_id, "metric_key": key, "max_results": 25000},
            )
            points = sorted(
                (int(m.get("step") or 0), int(m.get("timestamp") or 0), float(m["value"]))
                for m in found.get("metrics") or []
                if isinstance(m, dict) and "value" in m
            )[-MAX_RUN_POINTS:]
            out.append(RunSeries(key, [p[0] for p in points], [p[2] for p in points]))
    return out


# -- what a run produced -------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedModelRow:
    """A model the run logged: an artifact folder with an ``MLmodel`` file, or an MLflow 3
    logged model (``model_id`` set). ``path`` is what ``runs:/RUN_ID/PATH`` names."""

    path: str
    model_id: str
    location: str
    flavors: str = ""


@dataclass(frozen=True)
class RunOutputs:
    artifacts: list[tuple[str, bool, int | None]]  # top-level (path, is a folder, size)
    models: list[LoggedModelRow]
    artifact_uri: str


MAX_ARTIFACTS = 50


def run_outputs(base_url: str, run_id: str, *, timeout: float = 3.0) -> RunOutputs:
    """The run's top-level artifacts and the models it logged (blocking)."""
    with RestClient(base_url, timeout=timeout) as client:
        run = client.get_run(run_id)
        info = run.get("info") or {}
        root = str(info.get("artifact_uri") or "").rstrip("/")
        artifacts: list[tuple[str, bool, int | None]] = []
        models: list[LoggedModelRow] = []
        listed = proxied_path(root)
        if listed is not None:
            for entry in client.list_artifacts(listed)[:MAX_ARTIFACTS]:
                rel = str(entry.get("path", "")).rstrip("/").rsplit("/", 1)[-1]
                is_dir = bool(entry.get("is_dir"))
                size = entry.get("file_size")
                artifacts.append((rel, is_dir, int(size) if size is not None else None))
                if is_dir:
                    inner = client.list_artifacts(f"{listed}/{rel}")
                    names = {str(e.get("path", "")).rstrip("/").rsplit("/", 1)[-1] for e in inner}
                    if "MLmodel" in names:
                        models.append(LoggedModelRow(rel, "", f"{root}/{rel}"))
        found = client.search_logged_models(
            [str(info.get("experiment_id") or "0")], f"source_run_id = '{run_id}'"
        )
        for model in found:
            minfo = model.get("info") or {}
            name = str(minfo.get("name") or "")
            if name and all(m.path != name for m in models):
                models.append(
                    LoggedModelRow(
                        name,
                        str(minfo.get("model_id") or ""),
                        str(minfo.get("artifact_uri") or ""),
                        ", ".join(
                            str(t.get("value"))
                            for t in minfo.get("tags") or []
                            if t.get("key") == "mlflow.loggedModel.flavors"
                        ),
                    )
                )
    return RunOutputs(artifacts, models, root)


def register_commands(run_id: str, path: str, name: str) -> str:
    """The MLflow call that does what the "register model" form does."""
    return f"python -c \"import mlflow; mlflow.register_model('runs:/{run_id}/{path}', '{name}')\""


# -- deploy --------------------------------------------------------------------------------

_ALIAS_REF = re.compile(r"^@[A-Za-z0-9_-]{1,255}$")


def deploy_uri(name: str, ref: str) -> str:
    """``models:/NAME/VERSION`` for a version number, ``models:/NAME@ALIAS`` for ``@ALIAS``
    (the InferenceService then follows the alias); :class:`InvalidError` otherwise."""
    ref = ref.strip()
    if ref.isdigit():
        return f"models:/{name}/{ref}"
    if _ALIAS_REF.match(ref):
        return f"models:/{name}{ref}"
    raise InvalidError("ref", f"{ref!r} is neither a version (1, 2, ...) nor an alias (@champion)")


def deploy_commands(namespace: str, isvc: str, uri: str, exists: bool) -> str:
    """The ``kubectl`` command that does what the deploy form does."""
    if exists:
        patch = '{"spec":{"predictor":{"model":{"storageUri":"' + uri + '"}}}}'
        return f"kubectl patch inferenceservice {isvc} -n {namespace} --type merge -p '{patch}'"
    return (
        "kubectl apply -f - <<EOF\n"
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        f"metadata:\n  name: {isvc}\n  namespace: {namespace}\n"
        "spec:\n  predictor:\n    model:\n      modelFormat:\n        name: mlflow\n"
        f"      storageUri: {uri}\nEOF"
    )


# -- compare two versions ------------------------------------------------------------------


@dataclass(frozen=True)
class CompareRow:
    key: str
    a: str
    b: str
    delta: float | None  # b - a, for metrics with both values

    @property
    def differs(self) -> bool:
        return self.a != self.b


@dataclass(frozen=True)
class Comparison:
    name: str
    a: str
    b: str
    a_run: str
    b_run: str
    metrics: list[CompareRow]
    params: list[CompareRow]


def _run_of(client: RestClient, name: str, version: str) -> tuple[str, dict[str, Any]]:
    mv = client.model_version(name, version)
    run_id = str(mv.get("run_id") or "")
    if not run_id:
        return "", {}
    try:
        return run_id, client.get_run(run_id).get("data") or {}
    except TrackingError:
        return run_id, {}


def compare_versions(
    base_url: str, name: str, a: str, b: str, *, timeout: float = 10.0
) -> Comparison:
    """The metrics and parameters of the runs that made versions ``a`` and ``b``."""
    for v in (a, b):
        if not v.isdigit():
            raise InvalidError("version", f"{v!r} is not a model version (1, 2, ...)")
    with RestClient(base_url, timeout=timeout) as client:
        a_run, a_data = _run_of(client, name, a)
        b_run, b_data = _run_of(client, name, b)

    def pairs(data: dict[str, Any], part: str) -> dict[str, str]:
        return {
            str(m["key"]): str(m.get("value", ""))
            for m in data.get(part) or []
            if isinstance(m, dict) and "key" in m
        }

    metrics: list[CompareRow] = []
    am, bm = pairs(a_data, "metrics"), pairs(b_data, "metrics")
    for key in sorted(am.keys() | bm.keys()):
        x, y = am.get(key, ""), bm.get(key, "")
        delta = float(y) - float(x) if x and y else None
        metrics.append(
            CompareRow(key, f"{float(x):.6g}" if x else "", f"{float(y):.6g}" if y else "", delta)
        )
    ap, bp = pairs(a_data, "params"), pairs(b_data, "params")
    params = [
        CompareRow(k, ap.get(k, ""), bp.get(k, ""), None) for k in sorted(ap.keys() | bp.keys())
    ]
    return Comparison(name, a, b, a_run, b_run, metrics, params)


# -- lineage -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineageStep:
    kind: str  # Dataset | TrainJob | Trial | Job | Run | ModelVersion | InferenceService
    label: str
    href: str = ""


@dataclass(frozen=True)
class LineagePage:
    lineage: Lineage
    steps: list[LineageStep]


_PAGES = {"TrainJob": "/training", "Trial": "/trials", "Experiment": "/experiments"}


def lineage_page(
    base_url: str,
    name: str,
    version: str,
    isvcs: Iterable[Mapping[str, Any]],
    *,
    timeout: float = 10.0,
) -> LineagePage:
    """Dataset → the workload and its run → the model version → the InferenceServices (and
    the revision) serving it, from what the run and the store recorded (blocking)."""
    if not version.isdigit():
        raise InvalidError("version", f"{version!r} is not a model version (1, 2, ...)")
    raw = [dict(i) for i in isvcs]
    with RestClient(base_url, timeout=timeout) as client:
        found = lineage(client, f"{name}/{version}", raw)
    steps = [LineageStep("Dataset", d) for d in found.datasets]
    if found.workload:
        kind, _, where = found.workload.partition(" ")
        page = _PAGES.get(kind)
        steps.append(LineageStep(kind, f"{kind} {where}", f"{page}/{where}" if page else ""))
    if found.run_id:
        label = f"MLflow run {found.run_name or found.run_id}"
        if found.experiment:
            label += f" (experiment {found.experiment})"
        steps.append(LineageStep("Run", label))
    aliases = "".join(f" @{a}" for a in found.aliases)
    steps.append(LineageStep("ModelVersion", f"{name} version {found.version}{aliases}"))
    views = {
        (v.metadata.namespace, v.metadata.name): v for v in (_Isvc.model_validate(i) for i in raw)
    }
    for served in found.served:
        view = views.get((served.namespace, served.name))
        revision = ""
        if view is not None:
            predictor = view.status.components.get("predictor") or {}
            revision = str(predictor.get("latestReadyRevision") or "")
        label = f"InferenceService {served.namespace}/{served.name}"
        if revision:
            label += f", revision {revision}"
        steps.append(
            LineageStep(
                "InferenceService",
                label,
                f"/yaml/inferenceservices.serving.kserve.io/{served.namespace}/{served.name}",
            )
        )
    return LineagePage(found, steps)
