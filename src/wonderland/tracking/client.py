"""A small client of MLflow's REST API (``/api/2.0/mlflow/...`` and the artifact proxy
``/api/2.0/mlflow-artifacts/...``): what the platform itself calls, without importing
mlflow (a second of import time) into the daemon, the model server or the CLI.

Synchronous (httpx); the daemon calls it in a worker thread. Errors:
:class:`TrackingUnavailable` when the server cannot be reached, :class:`MlflowApiError`
with MLflow's ``error_code`` and message when it answers with an error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from wonderland.errors import WonderlandError
from wonderland.tracking.access import TRACKING_URI_ENV

__all__ = [
    "ArtifactFile",
    "MlflowApiError",
    "RestClient",
    "TrackingError",
    "TrackingUnavailable",
    "discover_tracking_uri",
]

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
# runs/log-batch limits (MLflow's REST API reference)
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000


def discover_tracking_uri(state_dir: Path, environ: Mapping[str, str]) -> str:
    """The MLflow server a command on this machine talks to: ``MLFLOW_TRACKING_URI`` when
    it is an http(s) URL, else the running platform's (``<state_dir>/daemon.json``), else
    "" (no server)."""
    explicit = environ.get(TRACKING_URI_ENV, "")
    if explicit.startswith(("http://", "https://")):
        return explicit
    try:
        info = json.loads((state_dir / "daemon.json").read_text())
    except (OSError, ValueError):
        return ""
    mlflow = info.get("mlflow") if isinstance(info, dict) else None
    url = mlflow.get("url") if isinstance(mlflow, dict) else None
    return str(url) if url else ""


class TrackingError(WonderlandError):
    """Something about MLflow tracking or the registry went wrong."""


class TrackingUnavailable(TrackingError):
    """The tracking server cannot be reached (not running, not installed, down)."""


class MlflowApiError(TrackingError):
    """The tracking server answered with an error: ``status``, ``error_code``, ``message``."""

    def __init__(self, status: int, error_code: str, message: str, what: str) -> None:
        self.status = status
        self.error_code = error_code
        self.message = message
        super().__init__(f"{what}: {message} ({error_code})")

    @property
    def not_found(self) -> bool:
        # MLflow answers a missing alias with INVALID_PARAMETER_VALUE, a missing model or
        # version with RESOURCE_DOES_NOT_EXIST
        return self.error_code == "RESOURCE_DOES_NOT_EXIST" or (
            self.error_code == "INVALID_PARAMETER_VALUE" and "not found" in self.message
        )


@dataclass(frozen=True)
class ArtifactFile:
    path: str  # relative to the folder listed
    size: int | None


class RestClient:
    """MLflow's REST API at ``base_url`` (``http://127.0.0.1:5000``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers=dict(headers or {}),
            transport=transport,
            trust_env=False,  # loopback: never through a proxy
            # building the CA bundle costs 30-80 ms per client; plain http needs none
            verify=not self.base_url.startswith("http://"),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        what = f"MLflow {path.rsplit('/', 2)[-2]}/{path.rsplit('/', 1)[-1]} at {self.base_url}"
        try:
            response = self._http.request(method, API + path, params=params, json=body)
        except httpx.TransportError as exc:
            raise TrackingUnavailable(
                f"the MLflow tracking server at {self.base_url} cannot be reached ({exc}); "
                "is the platform running (wonderland up) with the mlflow extra installed?"
            ) from exc
        return self._decode(response, what)

    @staticmethod
    def _decode(response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = {"message": response.text[:300]}
        if not isinstance(data, dict):
            data = {"message": str(data)[:300]}
        if response.status_code >= 400:
            raise MlflowApiError(
                response.status_code,
                str(data.get("error_code") or f"HTTP_{response.status_code}"),
                str(data.get("message") or response.reason_phrase),
                what,
            )
        return data

    def health(self) -> bool:
        try:
            return self._http.get("/health", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    # -- experiments and runs ----------------------------------------------------------

    def experiment_by_name(self, name: str) -> dict[str, Any] | None:
        try:
            found = self.call("GET", "/experiments/get-by-name", params={"experiment_name": name})
        except MlflowApiError as exc:
            if exc.not_found:
                return None
            raise
        experiment: dict[str, Any] = found["experiment"]
        return experiment

    def ensure_experiment(self, name: str, tags: Mapping[str, str] | None = None) -> str:
        """The id of the experiment ``name``, created when missing (a concurrent creator
        wins without an error); a deleted one is restored."""
        found = self.experiment_by_name(name)
        if found is None:
            body: dict[str, Any] = {"name": name}
            if tags:
                body["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
            try:
                return str(self.call("POST", "/experiments/create", body=body)["experiment_id"])
            except MlflowApiError as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                found = self.experiment_by_name(name)
                if found is None:
                    raise
        if found.get("lifecycle_stage") == "deleted":
            self.call(
                "POST", "/experiments/restore", body={"experiment_id": found["experiment_id"]}
            )
        return str(found["experiment_id"])

    def create_run(
        self, experiment_id: str, run_name: str, tags: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        body = {
            "experiment_id": experiment_id,
            "run_name": run_name,
            "start_time": int(time.time() * 1000),
            "tags": [{"key": k, "value": _clip(v, MAX_TAG_VALUE)} for k, v in (tags or {}).items()],
        }
        run: dict[str, Any] = self.call("POST", "/runs/create", body=body)["run"]
        return run

    def get_run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.call("GET", "/runs/get", params={"run_id": run_id})["run"]
        return run

    def update_run(self, run_id: str, status: str, end_time: int | None = None) -> None:
        body: dict[str, Any] = {"run_id": run_id, "status": status}
        if end_time is not None:
            body["end_time"] = end_time
        self.call("POST", "/runs/update", body=body)

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: list[tuple[str, float, int, int]] | None = None,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Metrics as (key, value, timestamp ms, step); split to MLflow's batch limits."""
        m = [
            {"key": k, "value": v, "timestamp": ts, "step": step}
            for k, v, ts, step in metrics or []
        ]
        p = [{"key": k, "value": _clip(v, MAX_PARAM_VALUE)} for k, v in (params or {}).items()]
        t = [{"key": k, "value": _clip(v, MAX_TAG_VALUE)} for k, v in (tags or {}).items()]
        while m or p or t:
            body = {
                "run_id": run_id,
                "metrics": m[:MAX_BATCH_METRICS],
                "params": p[:MAX_BATCH_PARAMS],
                "tags": t[:MAX_BATCH_TAGS],
            }
            m, p, t = m[MAX_BATCH_METRICS:], p[MAX_BATCH_PARAMS:], t[MAX_BATCH_TAGS:]
            self.call("POST", "/runs/log-batch", body=body)

    def log_inputs(self, run_id: str, datasets: list[dict[str, Any]]) -> None:
        """Dataset inputs of a run (``runs/log-inputs``: each ``{"dataset": {...}, "tags":
        [...]}``); MLflow keeps one input per dataset and tags."""
        if datasets:
            self.call("POST", "/runs/log-inputs", body={"run_id": run_id, "datasets": datasets})

    def search_runs(
        self, experiment_ids: list[str], filter_string: str = "", max_results: int = 100
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"experiment_ids": experiment_ids, "max_results": max_results}
        if filter_string:
            body["filter"] = filter_string
        runs: list[dict[str, Any]] = self.call("POST", "/runs/search", body=body).get("runs", [])
        return runs

    def search_logged_models(
        self, experiment_ids: list[str], filter_string: str
    ) -> list[dict[str, Any]]:
        body = {"experiment_ids": experiment_ids, "filter": filter_string, "max_results": 50}
        models: list[dict[str, Any]] = self.call("POST", "/logged-models/search", body=body).get(
            "models", []
        )
        return models

    def get_logged_model(self, model_id: str) -> dict[str, Any]:
        model: dict[str, Any] = self.call("GET", f"/logged-models/{quote(model_id)}")["model"]
        return model

    # -- the registry ------------------------------------------------------------------

    def registered_model(self, name: str) -> dict[str, Any]:
        model: dict[str, Any] = self.call("GET", "/registered-models/get", params={"name": name})[
            "registered_model"
        ]
        return model

    def model_version(self, name: str, version: str) -> dict[str, Any]:
        mv: dict[str, Any] = self.call(
            "GET", "/model-versions/get", params={"name": name, "version": version}
        )["model_version"]
        return mv

    def version_by_alias(self, name: str, alias: str) -> dict[str, Any]:
        mv: dict[str, Any] = self.call(
            "GET", "/registered-models/alias", params={"name": name, "alias": alias}
        )["model_version"]
        return mv

    def latest_version(self, name: str) -> dict[str, Any]:
        """The highest version of ``name`` (``models:/NAME/latest``)."""
        found = self.call(
            "GET",
            "/model-versions/search",
            params={
                "filter": f"name='{_quote_filter(name)}'",
                "order_by": "version_number DESC",
                "max_results": 1,
            },
        ).get("model_versions", [])
        if not found:
            self.registered_model(name)  # raises RESOURCE_DOES_NOT_EXIST for an unknown name
            raise MlflowApiError(
                404, "RESOURCE_DOES_NOT_EXIST", f"Registered model {name} has no versions", "latest"
            )
        mv: dict[str, Any] = found[0]
        return mv

    def versions(self, name: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token = ""
        while True:
            params: dict[str, Any] = {"filter": f"name='{_quote_filter(name)}'", "max_results": 200}
            if token:
                params["page_token"] = token
            page = self.call("GET", "/model-versions/search", params=params)
            out.extend(page.get("model_versions", []))
            token = str(page.get("next_page_token") or "")
            if not token:
                return out

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.call(
            "POST",
            "/registered-models/alias",
            body={"name": name, "alias": alias, "version": version},
        )

    def download_uri(self, name: str, version: str) -> str:
        return str(
            self.call(
                "GET",
                "/model-versions/get-download-uri",
                params={"name": name, "version": version},
            )["artifact_uri"]
        )

    # -- artifacts (the server's proxy) ------------------------------------------------

    def list_artifacts(self, path: str) -> list[dict[str, Any]]:
        try:
            response = self._http.get(ARTIFACTS, params={"path": path})
        except httpx.TransportError as exc:
            raise TrackingUnavailable(
                f"the MLflow tracking server at {self.base_url} cannot be reached ({exc})"
            ) from exc
        files: list[dict[str, Any]] = self._decode(response, f"listing {path}").get("files", [])
        return files

    def walk(self, path: str) -> Iterator[ArtifactFile]:
        """Every file under the artifact folder ``path`` (relative paths), depth first."""
        stack = [""]
        while stack:
            sub = stack.pop()
            for entry in self.list_artifacts(f"{path}/{sub}".rstrip("/") if sub else path):
                # the proxy names entries relative to the folder listed
                name = str(entry["path"]).rstrip("/").rsplit("/", 1)[-1]
                rel = f"{sub}/{name}" if sub else name
                if entry.get("is_dir"):
                    stack.append(rel)
                else:
                    size = entry.get("file_size")
                    yield ArtifactFile(rel, int(size) if size is not None else None)

    def download_file(self, path: str, dest: Path) -> int:
        """Stream the artifact ``path`` into ``dest``; its size."""
        url = ARTIFACTS + "/" + quote(path)
        written = 0
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code >= 400:
                    response.read()
                    self._decode(response, f"downloading {path}")
                with dest.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
                        written += len(chunk)
        except httpx.TransportError as exc:
            raise TrackingUnavailable(
                f"the MLflow tracking server at {self.base_url} cannot be reached ({exc})"
            ) from exc
        return written


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _quote_filter(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
