"""What the Registry page shows: the MLflow model registry, read through MLflow's REST API.

:func:`registry` lists registered models, each with its aliases and its newest versions
(tags, status, the source run with its metrics) and the InferenceServices that serve each
version now (their ``status.modelRegistry``) or follow one of its aliases (a
``storageUri`` of ``models:/NAME@ALIAS``: they roll when the alias moves). The
:class:`RegistryAccess` seam says where the registry is; the platform's is the tracking
server, woken on demand (:class:`TrackingRegistry`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import Field

from wonderland.errors import InvalidError
from wonderland.tracking.access import TrackingAccess
from wonderland.tracking.client import RestClient, TrackingError, TrackingUnavailable
from wonderland.tracking.uris import ModelUri, is_tracking_uri, parse
from wonderland.workloads.views import ObjectMetaView, View

__all__ = [
    "MAX_MODELS",
    "MAX_RUN_METRICS",
    "MAX_VERSIONS",
    "ModelRow",
    "RegistryAccess",
    "RegistryPage",
    "RunSeries",
    "TrackingRegistry",
    "VersionRow",
    "promote_commands",
    "registry",
    "run_history",
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
