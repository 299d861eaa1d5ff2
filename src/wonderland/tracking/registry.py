"""The registry's platform operations: promotion by alias behind an evaluation gate,
lineage (version → run → the workload that made it → where it is served), registering
a run's model as a new version (:func:`register_run_model`, as ``mlflow.register_model``
does) and archiving a version (:func:`archive`: its aliases removed, the tag
:data:`ARCHIVED_TAG` set, as MLflow's guidance after stages were deprecated says).

Both work on MLflow's REST API through :class:`RestClient`; the CLI (``wonderland
models``) renders what they return.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from wonderland.errors import InvalidError
from wonderland.tracking.client import MlflowApiError, RestClient, TrackingError

__all__ = [
    "ARCHIVED_TAG",
    "Archived",
    "Lineage",
    "Promotion",
    "Served",
    "archive",
    "lineage",
    "promote",
    "proxied_path",
    "register_run_model",
    "restore",
]

ARCHIVED_TAG = "archived"

Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` did: ``moved`` is False when the gate refused (``reason`` says why)."""

    name: str
    alias: str
    version: str
    previous: str  # the version that held the alias before, "" when none
    moved: bool
    reason: str
    candidate_value: float | None = None
    current_value: float | None = None


def _metric(client: RestClient, mv: dict[str, Any], metric: str) -> float | None:
    """The latest value of ``metric`` on the run that made the version ``mv``."""
    run_id = str(mv.get("run_id") or "")
    if not run_id:
        return None
    run = client.get_run(run_id)
    for m in (run.get("data") or {}).get("metrics") or []:
        if m.get("key") == metric:
            return float(m["value"])
    return None


def promote(
    client: RestClient,
    name: str,
    version: str,
    alias: str,
    *,
    if_better: str = "",
    direction: Direction = "maximize",
) -> Promotion:
    """Point ``alias`` of ``name`` at ``version``; with ``if_better``, only when the
    candidate's run recorded a better value of that metric than the current holder's."""
    if not version.isdigit():
        raise InvalidError("VERSION", f"{version!r} is not a model version (1, 2, ...)")
    candidate = client.model_version(name, version)
    try:
        current = client.version_by_alias(name, alias)
    except MlflowApiError as exc:
        if not exc.not_found:
            raise
        current = None
    previous = str(current["version"]) if current else ""
    if previous == version:
        return Promotion(
            name, alias, version, previous, False, f"{alias} already is version {version}"
        )
    cand_value = cur_value = None
    if if_better:
        cand_value = _metric(client, candidate, if_better)
        if cand_value is None:
            return Promotion(
                name,
                alias,
                version,
                previous,
                False,
                f"version {version} has no {if_better!r} metric on its run "
                f"({candidate.get('run_id') or 'no run'}); log it before promoting, or "
                "promote without --if-better",
            )
        if current is not None:
            cur_value = _metric(client, current, if_better)
            if cur_value is not None:
                better = (
                    cand_value > cur_value if direction == "maximize" else cand_value < cur_value
                )
                if not better:
                    word = "higher" if direction == "maximize" else "lower"
                    return Promotion(
                        name,
                        alias,
                        version,
                        previous,
                        False,
                        f"version {version} has {if_better}={cand_value:g}, not {word} than "
                        f"{alias} (version {previous}) with {cur_value:g}; the alias stays",
                        cand_value,
                        cur_value,
                    )
    client.set_alias(name, alias, version)
    if previous and if_better and cur_value is not None:
        reason = f"{if_better} {cur_value:g} → {cand_value:g}"
    elif previous:
        reason = f"moved from version {previous}"
    else:
        reason = "new alias"
    return Promotion(name, alias, version, previous, True, reason, cand_value, cur_value)


@dataclass(frozen=True)
class Served:
    """An InferenceService serving a version now."""

    namespace: str
    name: str
    storage_uri: str
    url: str


@dataclass
class Lineage:
    name: str
    version: str
    aliases: list[str]
    source: str
    run_id: str
    run_name: str = ""
    experiment: str = ""
    status: str = ""
    workload: str = ""  # Kind namespace/name, from the run's tags
    uid: str = ""
    code_digest: str = ""
    git_commit: str = ""
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)


def lineage(client: RestClient, ref: str, isvcs: Iterable[dict[str, Any]] = ()) -> Lineage:
    """The lineage of ``NAME``, ``NAME@ALIAS``, ``NAME/VERSION`` (``NAME`` alone: the
    latest version); ``isvcs`` are InferenceServices to match against (``status.modelRegistry``)."""
    name, version, alias = _split_ref(ref)
    if alias:
        mv = client.version_by_alias(name, alias)
    elif version:
        mv = client.model_version(name, version)
    else:
        mv = client.latest_version(name)
    out = Lineage(
        name=name,
        version=str(mv["version"]),
        aliases=[str(a) for a in mv.get("aliases") or []],
        source=str(mv.get("source") or ""),
        run_id=str(mv.get("run_id") or ""),
    )
    if out.run_id:
        try:
            run = client.get_run(out.run_id)
        except TrackingError:
            run = {}
        info = run.get("info") or {}
        data = run.get("data") or {}
        tags = {str(t["key"]): str(t.get("value", "")) for t in data.get("tags") or []}
        out.run_name = str(info.get("run_name") or tags.get("mlflow.runName", ""))
        out.status = str(info.get("status") or "")
        out.experiment = _experiment_name(client, str(info.get("experiment_id") or ""))
        kind = tags.get("wonderland.kind", "")
        if kind:
            out.workload = (
                f"{kind} {tags.get('wonderland.namespace', '')}/{tags.get('wonderland.name', '')}"
            )
        out.uid = tags.get("wonderland.uid", "")
        out.code_digest = tags.get("wonderland.code.digest", "")
        out.git_commit = tags.get("mlflow.source.git.commit", "")
        out.params = {str(p["key"]): str(p.get("value", "")) for p in data.get("params") or []}
        out.metrics = {str(m["key"]): float(m["value"]) for m in data.get("metrics") or []}
        for di in (run.get("inputs") or {}).get("dataset_inputs") or []:
            ds = di.get("dataset") or {}
            label = str(ds.get("name") or "dataset")
            if ds.get("digest"):
                label += f" (digest {ds['digest']})"
            if ds.get("source"):
                label += f" from {_dataset_source(str(ds['source']))}"
            out.datasets.append(label)
    for isvc in isvcs:
        pin = (isvc.get("status") or {}).get("modelRegistry") or {}
        if pin.get("name") == name and str(pin.get("version")) == out.version:
            meta = isvc["metadata"]
            out.served.append(
                Served(
                    meta.get("namespace", "default"),
                    meta["name"],
                    str(pin.get("uri", "")),
                    str((isvc.get("status") or {}).get("url", "")),
                )
            )
    return out


def _split_ref(ref: str) -> tuple[str, str, str]:
    ref = ref.strip()
    if ref.startswith("models:/"):
        ref = ref[len("models:/") :]
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return name, "", alias
    name, _, version = ref.partition("/")
    if version and not version.isdigit():
        raise InvalidError("MODEL", f"{ref!r}: write NAME, NAME/VERSION or NAME@ALIAS")
    if not name:
        raise InvalidError(
            "MODEL", "the model name is empty; write NAME, NAME/VERSION or NAME@ALIAS"
        )
    return name, version, ""


def _experiment_name(client: RestClient, experiment_id: str) -> str:
    if not experiment_id:
        return ""
    try:
        found = client.call("GET", "/experiments/get", params={"experiment_id": experiment_id})
    except TrackingError:
        return experiment_id
    return str((found.get("experiment") or {}).get("name") or experiment_id)


def _dataset_source(source: str) -> str:
    import json

    try:
        parsed = json.loads(source)
    except ValueError:
        return source
    if isinstance(parsed, dict):
        for key in ("uri", "url", "path"):
            if parsed.get(key):
                return str(parsed[key])
    return source


# -- register a run's model ----------------------------------------------------------------


def proxied_path(location: str) -> str | None:
    """The path on the artifact proxy of a ``mlflow-artifacts:`` location, else None."""
    if not location.startswith("mlflow-artifacts:"):
        return None
    return unquote(urlsplit(location).path).strip("/")


def register_run_model(
    client: RestClient, run_id: str, name: str, path: str = "model"
) -> dict[str, Any]:
    """Register the model the run ``run_id`` logged under ``path`` as a new version of
    ``name`` (the registered model is made when missing), as
    ``mlflow.register_model("runs:/RUN_ID/PATH", NAME)`` does: the run's artifact folder
    when it holds an ``MLmodel`` file, else the MLflow 3 logged model of that name made
    by the run. The new model version."""
    name, path = name.strip(), path.strip().strip("/")
    if not name:
        raise InvalidError("name", "name the registered model (e.g. iris)")
    if not path:
        raise InvalidError("path", "name the run's model (the artifact path, e.g. model)")
    run = client.get_run(run_id)
    info = run.get("info") or {}
    root = str(info.get("artifact_uri") or "").rstrip("/")
    source, model_id = "", ""
    listed = proxied_path(root)
    if listed is not None:
        entries = client.list_artifacts(f"{listed}/{path}")
        if any(str(e.get("path", "")).rstrip("/").endswith("MLmodel") for e in entries):
            source = f"{root}/{path}"
    if not source:
        found = client.search_logged_models(
            [str(info.get("experiment_id") or "0")],
            f"source_run_id = '{run_id}' AND name = '{path}'",
        )
        if not found:
            raise InvalidError(
                "path",
                f"run {run_id} logged no model named {path!r} (no MLmodel under its "
                f"artifacts/{path} and no logged model of that name); log one with "
                f"mlflow.<flavour>.log_model(..., name={path!r})",
            )
        model_id = str(found[0]["info"]["model_id"])
        source = f"models:/{model_id}"
    try:
        client.call("POST", "/registered-models/create", body={"name": name})
    except MlflowApiError as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    body: dict[str, Any] = {"name": name, "source": source, "run_id": run_id}
    if model_id:
        body["model_id"] = model_id
    mv: dict[str, Any] = client.call("POST", "/model-versions/create", body=body)["model_version"]
    return mv


# -- archive -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Archived:
    """What :func:`archive` did: the aliases it removed from the version."""

    name: str
    version: str
    removed_aliases: list[str]


def archive(client: RestClient, name: str, version: str) -> Archived:
    """Archive a version: remove every alias that points at it (nothing reaches it by
    alias any more) and set the version tag ``archived=true``. MLflow deprecated stages
    (``Archived`` among them) in 2.9 for aliases and tags; this is that migration's
    reading of "archived". The version and its files stay: ``models:/NAME/VERSION`` still
    resolves, and :func:`restore` undoes the tag."""
    if not version.isdigit():
        raise InvalidError("version", f"{version!r} is not a model version (1, 2, ...)")
    mv = client.model_version(name, version)
    aliases = [str(a) for a in mv.get("aliases") or []]
    for alias in aliases:
        client.call("DELETE", "/registered-models/alias", body={"name": name, "alias": alias})
    client.call(
        "POST",
        "/model-versions/set-tag",
        body={"name": name, "version": version, "key": ARCHIVED_TAG, "value": "true"},
    )
    return Archived(name, version, aliases)


def restore(client: RestClient, name: str, version: str) -> None:
    """Undo :func:`archive`'s tag (aliases it removed are not put back)."""
    if not version.isdigit():
        raise InvalidError("version", f"{version!r} is not a model version (1, 2, ...)")
    client.call(
        "DELETE",
        "/model-versions/delete-tag",
        body={"name": name, "version": version, "key": ARCHIVED_TAG},
    )
