"""From a tracking URI to the artifact folder it names, through the registry.

``models:/NAME@ALIAS`` → the version the alias points at → its download location
(``mlflow-artifacts:/1/models/m-<id>/artifacts`` for an MLflow 3 logged model);
``runs:/RUN/PATH`` → the run's artifact folder, or the logged model named PATH that the
run made (MLflow 3 no longer stores models among the run's artifacts). :func:`download`
copies the folder (or file) to a local path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from wonderland.tracking.client import MlflowApiError, RestClient, TrackingError
from wonderland.tracking.uris import ModelUri, RunUri, TrackingUri

__all__ = ["Pinned", "Resolved", "UnknownModel", "download", "resolve", "resolve_version"]


class UnknownModel(TrackingError):
    """The registry has no such model, version, alias or run (what it said is the message)."""


@dataclass(frozen=True)
class Resolved:
    """Where a tracking URI's files are: ``location`` is an artifact URI
    (``mlflow-artifacts:/...`` served by the tracking server, or ``file://``/a path for a
    store the server reads locally); ``version`` is the model version it came from, if any."""

    uri: TrackingUri
    location: str
    version: dict[str, Any] = field(default_factory=dict)

    @property
    def version_number(self) -> str:
        return str(self.version.get("version", ""))

    @property
    def run_id(self) -> str:
        return str(self.version.get("run_id", "")) or (
            self.uri.run_id if isinstance(self.uri, RunUri) else ""
        )


def resolve(client: RestClient, uri: TrackingUri) -> Resolved:
    """What ``uri`` names now; :class:`UnknownModel` with the registry's message when there
    is no such thing, :class:`TrackingUnavailable` when the server is down."""
    try:
        if isinstance(uri, ModelUri):
            return _model(client, uri)
        if isinstance(uri, RunUri):
            return _run(client, uri)
        return Resolved(uri, str(uri))
    except MlflowApiError as exc:
        if exc.not_found or exc.status == 404:
            raise UnknownModel(f"{uri}: {exc.message}") from exc
        raise


class Pinned(NamedTuple):
    """What a URI names now: ``uri`` pinned to its version (``models:/iris@champion`` ->
    ``models:/iris/3``; other URIs unchanged), the ``version`` ("" for a run's
    artifacts) and the ``run_id`` that made it."""

    uri: str
    version: str
    run_id: str


def resolve_version(uri: str, tracking_uri: str, *, timeout: float = 30.0) -> Pinned:
    """Pin ``uri`` before deploying it, so a moved alias does not change a running
    revision: :class:`InvalidError` for a malformed URI, :class:`UnknownModel` with the
    registry's message, :class:`TrackingUnavailable` when the server is down."""
    from wonderland.tracking.uris import parse

    parsed = parse(uri)
    with RestClient(tracking_uri, timeout=timeout) as client:
        found = resolve(client, parsed)
    pinned = str(parsed)
    if isinstance(parsed, ModelUri) and not parsed.model_id and found.version_number:
        pinned = str(parsed.pinned(found.version_number))
    return Pinned(pinned, found.version_number, found.run_id)


def _model(client: RestClient, uri: ModelUri) -> Resolved:
    if uri.model_id:
        model = client.get_logged_model(uri.model_id)
        return Resolved(uri, str(model["info"]["artifact_uri"]))
    if uri.alias:
        mv = client.version_by_alias(uri.name, uri.alias)
    elif uri.latest:
        mv = client.latest_version(uri.name)
    else:
        mv = client.model_version(uri.name, uri.version)
    if mv.get("status") not in (None, "", "READY"):
        raise TrackingError(
            f"{uri}: version {mv.get('version')} is {mv.get('status')} "
            f"({mv.get('status_message') or 'still being created'}); try again when it is READY"
        )
    location = client.download_uri(uri.name, str(mv["version"]))
    if uri.path:
        location = f"{location.rstrip('/')}/{uri.path}"
    return Resolved(uri, location, mv)


def _run(client: RestClient, uri: RunUri) -> Resolved:
    run = client.get_run(uri.run_id)
    root = str(run["info"]["artifact_uri"]).rstrip("/")
    if not uri.path:
        return Resolved(uri, root)
    first = uri.path.split("/", 1)[0]
    listed = _artifact_path(root)
    if listed is not None:
        parent = f"{listed}/{uri.path}".rsplit("/", 1)[0]
        names = {
            str(e["path"]).rstrip("/").rsplit("/", 1)[-1] for e in client.list_artifacts(parent)
        }
        if uri.path.rsplit("/", 1)[-1] in names:
            return Resolved(uri, f"{root}/{uri.path}")
    # MLflow 3: log_model(name=...) makes a logged model, not run artifacts
    experiment = str(run["info"]["experiment_id"])
    models = client.search_logged_models(
        [experiment], f"source_run_id = '{uri.run_id}' AND name = '{first}'"
    )
    if not models:
        raise UnknownModel(
            f"{uri}: run {uri.run_id} has no artifact or logged model named {first!r}"
        )
    rest = uri.path[len(first) :].strip("/")
    location = str(models[0]["info"]["artifact_uri"]).rstrip("/")
    return Resolved(uri, f"{location}/{rest}" if rest else location)


def _artifact_path(location: str) -> str | None:
    """The path on the artifact proxy of a ``mlflow-artifacts:`` location, else None."""
    if not location.startswith("mlflow-artifacts:"):
        return None
    return unquote(urlsplit(location).path).strip("/")


def download(client: RestClient, resolved: Resolved, dest: Path) -> Path:
    """Copy the files at ``resolved.location`` into the new folder ``dest`` (atomically:
    a partial download never appears at ``dest``); ``dest``, or the file in it when the
    location is one file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mlflow-", dir=dest.parent))
    try:
        proxied = _artifact_path(resolved.location)
        if proxied is not None:
            single = _download_proxied(client, proxied, staging)
        else:
            single = _copy_local(resolved.location, staging)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest / single if single else dest


def _download_proxied(client: RestClient, path: str, staging: Path) -> str:
    """The files under ``path`` into ``staging``; the file's name when ``path`` is one file."""
    files = list(client.walk(path))
    if not files:
        name = path.rsplit("/", 1)[-1]
        client.download_file(path, staging / name)
        return name
    for f in files:
        target = staging / f.path
        if ".." in Path(f.path).parts:
            raise TrackingError(f"artifact {f.path!r} under {path} escapes its folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        got = client.download_file(f"{path}/{f.path}", target)
        if f.size is not None and got != f.size:
            raise TrackingError(
                f"artifact {path}/{f.path}: got {got} bytes, the server listed {f.size}; "
                "the download was cut short, try again"
            )
    return ""


def _copy_local(location: str, staging: Path) -> str:
    source = Path(unquote(urlsplit(location).path) if location.startswith("file:") else location)
    if not source.exists():
        raise UnknownModel(f"artifact location {location} does not exist on this machine")
    if source.is_dir():
        shutil.copytree(source, staging, dirs_exist_ok=True)
        return ""
    shutil.copy2(source, staging / source.name)
    return source.name
