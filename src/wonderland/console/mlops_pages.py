"""The Training, Experiments and Registry pages: routing and actions, over the typed views.

:class:`MlopsPages` answers ``GET /training``, ``/training/<ns>/<name>``, ``/experiments``,
``/experiments/<ns>/<name>``, ``/trials/<ns>/<name>``, ``/registry`` and ``POST /registry`` (promote: move an alias
to a version) with an :data:`Answer` (a template and its context, a redirect, or a
refusal) that the console server renders, and ``GET /logs/<ns>/<pod>`` (one container's
log, followed) with a :class:`LogStream`. The server has already checked the Host, the
Origin of a POST and the session.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import orjson

from wonderland.console import registry_views, training_views, tuning_views
from wonderland.console.pages import Answer, Redirect, Refused, Rendered, Request
from wonderland.console.registry_views import (
    RegistryAccess,
    RegistryPage,
    RunOutputs,
    RunSeries,
    TrackingRegistry,
)
from wonderland.console.training_views import MetricHistory
from wonderland.console.tuning_views import ObservationReader
from wonderland.control.sources import LogQuery, PodLogSource
from wonderland.errors import ConflictError, InvalidError, NotFoundError, WonderlandError
from wonderland.store import Store
from wonderland.tracking.client import MlflowApiError, RestClient, TrackingError
from wonderland.tracking.registry import (
    Promotion,
    archive,
    promote,
    register_run_model,
    restore,
)

__all__ = ["LogStream", "MlopsPages", "chart_json"]

log = logging.getLogger("wonderland.console")
_T = TypeVar("_T")

ISVCS = "inferenceservices.serving.kserve.io"
LOG_TAIL_LINES = 500
MAX_LOG_STREAMS = 16  # followed logs open at once, all clients together
REGISTRY_CACHE_SECONDS = 2.0
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,256}$")


@dataclass(frozen=True)
class LogStream:
    """A followed log: ``chunks`` to send, or ``status`` and ``message`` when refused."""

    status: int
    message: str = ""
    chunks: AsyncIterator[bytes] | None = None


def chart_json(data: object) -> str:
    """Chart data for a ``<script type="application/json">`` block: ``<``, ``>`` and ``&``
    escaped so that no value can close the block."""
    text = orjson.dumps(data).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _two(rest: str) -> tuple[str, str] | None:
    parts = rest.split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


def _arg(args: Mapping[str, list[str]], name: str) -> str:
    values = args.get(name)
    return values[0] if values else ""


# What a call to the registry can fail with, and the answer each gets.
_REGISTRY_ERRORS = (InvalidError, MlflowApiError, TrackingError)


def _registry_refusal(exc: Exception) -> tuple[int, str]:
    """The status and reason for a failed registry call (one of ``_REGISTRY_ERRORS``): a
    bad value 422, an MLflow refusal 404 (not found) or 422, no tracking server 503."""
    if isinstance(exc, InvalidError):
        return 422, exc.reason_text
    if isinstance(exc, MlflowApiError):
        return (404 if exc.not_found else 422), exc.message
    return 503, str(exc)


class MlopsPages:
    """The pages of the model life cycle (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        logs: PodLogSource | None = None,
        registry: RegistryAccess | None = None,
        history: MetricHistory | None = None,
        observations: ObservationReader | None = None,
    ) -> None:
        self.store = store
        self.logs = logs
        self.observations = observations
        self.registry_access: RegistryAccess = registry or TrackingRegistry(None)
        self.history = history or MetricHistory(store)
        self._registry_cache: tuple[float, RegistryPage] | None = None
        self.open_logs = 0
        self._run_cache: dict[str, tuple[float, str, list[RunSeries], RunOutputs]] = {}

    async def start(self) -> None:
        await self.history.start()

    async def stop(self) -> None:
        await self.history.stop()

    async def answer(self, request: Request) -> Answer | None:
        """The :class:`~wonderland.console.pages.PageSet` entry: a GET or a form's POST."""
        if request.method == "GET":
            return await self.get(request.path, request.query)
        if request.method == "POST":
            return await self.post(request.path, request.form())
        return None

    # -- GET -----------------------------------------------------------------------------

    async def get(self, path: str, args: Mapping[str, list[str]]) -> Answer | None:
        """The answer to ``GET path``, or None when the path is none of these pages."""
        namespace = _arg(args, "namespace") or None
        if path == "/training":
            page = training_views.training(self.store, namespace)
            return Rendered("training.html", {"page": page, "nav": "training"})
        if path.startswith("/training/"):
            return await self._trainjob(path.removeprefix("/training/"))
        if path == "/experiments":
            exps = tuning_views.experiments(self.store, namespace)
            return Rendered("experiments.html", {"page": exps, "nav": "experiments"})
        if path.startswith("/experiments/"):
            return self._experiment(path.removeprefix("/experiments/"))
        if path.startswith("/trials/"):
            return self._trial(path.removeprefix("/trials/"))
        if path == "/registry":
            return await self._registry(args)
        if path == "/registry/compare":
            return await self._compare(args)
        if path == "/registry/lineage":
            return await self._lineage(args)
        return None

    async def _trainjob(self, rest: str) -> Answer:
        found = _two(rest)
        if found is None:
            return Refused(404, "use /training/<namespace>/<name>")
        namespace, name = found
        try:
            page = training_views.trainjob(self.store, self.history, namespace, name)
        except NotFoundError:
            return Refused(404, f'no TrainJob "{name}" in namespace "{namespace}"')
        run_series, run_note, outputs = await self._run_history(page.run_id, page.job_version)
        chart = dict(page.chart_data)
        chart["run"] = [{"name": r.name, "step": r.step, "v": r.v} for r in run_series]
        context = {
            "page": page,
            "nav": "training",
            "chart": chart_json(chart),
            "logs_available": self.logs is not None,
            "run_series": run_series,
            "run_note": run_note,
            "outputs": outputs,
            "register_commands": registry_views.register_commands,
        }
        return Rendered("trainjob.html", context)

    def _experiment(self, rest: str) -> Answer:
        found = _two(rest)
        if found is None:
            return Refused(404, "use /experiments/<namespace>/<name>")
        namespace, name = found
        try:
            page = tuning_views.experiment(self.store, namespace, name)
        except NotFoundError:
            return Refused(404, f'no Experiment "{name}" in namespace "{namespace}"')
        context = {"page": page, "nav": "experiments", "chart": chart_json(page.chart_data)}
        return Rendered("experiment.html", context)

    def _trial(self, rest: str) -> Answer:
        found = _two(rest)
        if found is None:
            return Refused(404, "use /trials/<namespace>/<name>")
        namespace, name = found
        try:
            page = tuning_views.trial(self.store, self.observations, namespace, name)
        except NotFoundError:
            return Refused(404, f'no Trial "{name}" in namespace "{namespace}"')
        context = {
            "page": page,
            "nav": "experiments",
            "chart": chart_json(page.curves),
            "logs_available": self.logs is not None,
        }
        return Rendered("trial.html", context)

    async def _run_history(
        self, run_id: str, version: str
    ) -> tuple[list[RunSeries], str, RunOutputs | None]:
        """The metric history and the outputs (artifacts, logged models) of the job's
        MLflow run, when the tracking server runs (the page never wakes it), read again
        when the job changed (``version``, its resourceVersion: a report, its end) or after
        ``REGISTRY_CACHE_SECONDS``; else why not."""
        if not run_id:
            return [], "", None
        url = self.registry_access.running_url()
        if url is None:
            return (
                [],
                (
                    "The metric history of its MLflow run shows here while the tracking server "
                    "runs; it is asleep now (the Registry page, MLflow's UI or a training run "
                    "wakes it)."
                ),
                None,
            )
        cached = self._run_cache.get(run_id)
        now = time.monotonic()
        if cached is not None and cached[1] == version and now - cached[0] < REGISTRY_CACHE_SECONDS:
            return cached[2], "", cached[3]
        try:
            series = await asyncio.to_thread(registry_views.run_history, url, run_id)
            outputs = await asyncio.to_thread(registry_views.run_outputs, url, run_id)
        except TrackingError as exc:
            return [], f"The MLflow run could not be read: {exc}.", None
        if len(self._run_cache) >= 64:
            self._run_cache.clear()
        self._run_cache[run_id] = (now, version, series, outputs)
        return series, "", outputs

    async def registry_page(self) -> RegistryPage:
        """The registry's data, at most ``REGISTRY_CACHE_SECONDS`` old (a page refreshes on
        every change of the store; the registry is not in it)."""
        cached = self._registry_cache
        now = time.monotonic()
        if cached is not None and now - cached[0] < REGISTRY_CACHE_SECONDS:
            return cached[1]
        rv = self.store.resource_version
        try:
            url = await self.registry_access.base_url()
            isvcs = self._isvcs()
            page = await asyncio.to_thread(registry_views.registry, url, isvcs)
        except TrackingError as exc:
            page = RegistryPage([], 0, str(exc), "")
        shown = self.registry_access.client_url or page.tracking_url
        page = RegistryPage(
            page.models, page.total_models, page.unavailable, shown, str(rv), page.notes
        )
        if not page.unavailable:
            self._registry_cache = (now, page)
        return page

    def _isvcs(self) -> list[dict[str, Any]]:
        try:
            items, _ = self.store.list(ISVCS)
        except NotFoundError:
            return []
        return items

    async def _registry(
        self,
        args: Mapping[str, list[str]],
        error: PromoteError | None = None,
        status: int = 200,
        action_error: str = "",
    ) -> Answer:
        page = await self.registry_page()
        notice = ""
        if _arg(args, "deployed"):
            verb = "created" if _arg(args, "created") else "now serves"
            notice = (
                f"InferenceService {_arg(args, 'deployed')} {verb} {_arg(args, 'uri')}. "
                f"Same as: {_arg(args, 'command')}"
            )
        elif _arg(args, "archived"):
            removed = _arg(args, "removed")
            notice = f"{_arg(args, 'archived')} version {_arg(args, 'version')} is archived" + (
                f" (aliases removed: {removed})." if removed else "."
            )
        elif _arg(args, "restored"):
            notice = (
                f"{_arg(args, 'restored')} version {_arg(args, 'version')} is no longer archived."
            )
        elif _arg(args, "registered"):
            notice = (
                f"Registered {_arg(args, 'registered')} version {_arg(args, 'version')} "
                f"from run {_arg(args, 'run')}."
            )
        done = None
        if _arg(args, "moved"):
            done = {
                "name": _arg(args, "moved"),
                "alias": _arg(args, "alias"),
                "version": _arg(args, "version"),
                "previous": _arg(args, "previous"),
            }
        context = {
            "page": page,
            "nav": "registry",
            "done": done,
            "promote_error": error,
            "commands": registry_views.promote_commands,
            "notice": notice,
            "action_error": action_error,
            "isvc_names": sorted(
                {
                    f"{i['metadata'].get('namespace', 'default')}/{i['metadata']['name']}"
                    for i in self._isvcs()
                }
            ),
        }
        return Rendered("registry.html", context, status)

    # -- POST ----------------------------------------------------------------------------

    async def post(self, path: str, form: Mapping[str, list[str]]) -> Answer | None:
        if path == "/registry":
            return await self._promote(form)
        if path == "/registry/deploy":
            return await self._deploy(form)
        if path == "/registry/archive":
            return await self._archive(form)
        if path == "/registry/register":
            return await self._register(form)
        return None

    def _refused_action(self, status: int, message: str) -> Awaitable[Answer]:
        return self._registry({}, None, status, message)

    async def _deploy(self, form: Mapping[str, list[str]]) -> Answer:
        """``POST /registry/deploy``: serve a version (or whatever an alias points at) from
        an InferenceService: the one named is patched (``storageUri`` only) or created
        (``modelFormat: mlflow``); an ordinary store write, with the same validation as
        ``kubectl apply``. 303 back to the model; the page with the error otherwise."""
        name, ref, namespace, isvc = (
            _arg(form, k).strip() for k in ("name", "ref", "namespace", "isvc")
        )
        namespace = namespace or "default"
        if not name or not isvc:
            return await self._refused_action(
                400, "name the model and the InferenceService (name and isvc fields)"
            )
        try:
            uri = registry_views.deploy_uri(name, ref)
            try:
                current = self.store.get(ISVCS, namespace, isvc)
            except NotFoundError:
                current = None
            if current is None:
                self.store.create(
                    {
                        "apiVersion": "serving.kserve.io/v1beta1",
                        "kind": "InferenceService",
                        "metadata": {"name": isvc, "namespace": namespace},
                        "spec": {
                            "predictor": {
                                "model": {"modelFormat": {"name": "mlflow"}, "storageUri": uri}
                            }
                        },
                    }
                )
            else:
                predictor = current.setdefault("spec", {}).setdefault("predictor", {})
                model = predictor.get("model")
                if not isinstance(model, dict):
                    return await self._refused_action(
                        422,
                        f"InferenceService {namespace}/{isvc} has no spec.predictor.model "
                        "(a custom container?): edit its YAML instead",
                    )
                model["storageUri"] = uri
                self.store.update(current)
        except InvalidError as exc:
            where = f" ({exc.field})" if exc.field else ""
            return await self._refused_action(422, f"not deployed{where}: {exc.reason_text}")
        except ConflictError as exc:
            return await self._refused_action(409, f"not deployed: {exc}; try again")
        except WonderlandError as exc:
            return await self._refused_action(422, f"not deployed: {exc}")
        command = registry_views.deploy_commands(namespace, isvc, uri, current is not None)
        log.info("console: InferenceService %s/%s serves %s", namespace, isvc, uri)
        query = (
            f"deployed={quote(namespace + '/' + isvc, safe='')}&uri={quote(uri, safe='')}"
            f"&command={quote(command, safe='')}" + ("" if current is not None else "&created=1")
        )
        return Redirect(f"/registry?{query}#model-{quote(name)}")

    async def _archive(self, form: Mapping[str, list[str]]) -> Answer:
        """``POST /registry/archive``: archive a version (``action=restore``: undo), refused
        (409) while an InferenceService serves it or follows one of its aliases."""
        name, version, action = (_arg(form, k).strip() for k in ("name", "version", "action"))
        if not name or not version:
            return await self._refused_action(400, "name the model and the version")
        try:
            url = await self.registry_access.base_url()
            if action == "restore":
                await asyncio.to_thread(self._with_client, url, restore, name, version)
                self._registry_cache = None
                return Redirect(
                    f"/registry?restored={quote(name)}&version={quote(version)}#model-{quote(name)}"
                )
            self._registry_cache = None  # who serves it now, not two seconds ago
            page = await self.registry_page()
            model = next((m for m in page.models if m.name == name), None)
            row = next((v for v in model.versions if v.version == version), None) if model else None
            if model is not None and row is not None:
                users = list(row.served_by)
                for alias in row.aliases:
                    users += model.rolls(alias)
                if users:
                    return await self._refused_action(
                        409,
                        f"not archived: {name} version {version} is served by "
                        f"{', '.join(sorted(set(users)))}; deploy another version there or "
                        "move the alias first",
                    )
            done = await asyncio.to_thread(self._with_client, url, archive, name, version)
        except _REGISTRY_ERRORS as exc:
            status, why = _registry_refusal(exc)
            if isinstance(exc, InvalidError):
                why = f"not archived: {why}"
            return await self._refused_action(status, why)
        self._registry_cache = None
        log.info("console: %s version %s archived", name, version)
        removed = ",".join(done.removed_aliases)
        return Redirect(
            f"/registry?archived={quote(name)}&version={quote(version)}"
            f"&removed={quote(removed)}#model-{quote(name)}"
        )

    @staticmethod
    def _with_client(url: str, call: Callable[..., _T], *args: str) -> _T:
        """``call(client, *args)`` with a client of the registry at ``url`` (blocking)."""
        with RestClient(url) as client:
            return call(client, *args)

    async def _register(self, form: Mapping[str, list[str]]) -> Answer:
        """``POST /registry/register``: register the model a run logged (``path``) as a new
        version of ``name``, as ``mlflow.register_model`` does; 303 to the model."""
        run_id, path, name = (_arg(form, k).strip() for k in ("run_id", "path", "name"))
        if not run_id or not name:
            return Refused(400, "name the run and the registered model (run_id and name fields)")
        if not _NAME.match(name):
            return Refused(
                422,
                f"the model name {name!r} must be 1-256 letters, digits, '.', '_' or '-'",
            )
        try:
            url = await self.registry_access.base_url()
            mv = await asyncio.to_thread(
                self._with_client, url, register_run_model, run_id, name, path or "model"
            )
        except _REGISTRY_ERRORS as exc:
            status, why = _registry_refusal(exc)
            return Refused(status, f"Not registered: {why}")
        self._registry_cache = None
        version = str(mv.get("version") or "")
        log.info("console: run %s registered as %s version %s", run_id, name, version)
        return Redirect(
            f"/registry?registered={quote(name)}&version={quote(version)}"
            f"&run={quote(run_id)}#model-{quote(name)}"
        )

    # -- compare and lineage -------------------------------------------------------------

    async def _compare(self, args: Mapping[str, list[str]]) -> Answer:
        name, a, b = (_arg(args, k).strip() for k in ("name", "a", "b"))
        if not name or not a or not b:
            return Refused(400, "use /registry/compare?name=MODEL&a=VERSION&b=VERSION")
        try:
            url = await self.registry_access.base_url()
            found = await asyncio.to_thread(registry_views.compare_versions, url, name, a, b)
        except _REGISTRY_ERRORS as exc:
            return Refused(*_registry_refusal(exc))
        return Rendered("compare.html", {"page": found, "nav": "registry"})

    async def _lineage(self, args: Mapping[str, list[str]]) -> Answer:
        name, version = _arg(args, "name").strip(), _arg(args, "version").strip()
        if not name or not version:
            return Refused(400, "use /registry/lineage?name=MODEL&version=VERSION")
        try:
            url = await self.registry_access.base_url()
            found = await asyncio.to_thread(
                registry_views.lineage_page, url, name, version, self._isvcs()
            )
        except _REGISTRY_ERRORS as exc:
            return Refused(*_registry_refusal(exc))
        return Rendered("lineage.html", {"page": found, "nav": "registry"})

    async def _promote(self, form: Mapping[str, list[str]]) -> Answer:
        """``POST /registry``: point ``alias`` of the model ``name`` at ``version``, as
        ``wonderland models promote NAME VERSION --alias ALIAS`` does. 303 back to the
        model on success; the page with the error next to the form otherwise."""
        name, version, alias = (_arg(form, k).strip() for k in ("name", "version", "alias"))

        def refused(status: int, message: str) -> Awaitable[Answer]:
            return self._registry({}, PromoteError(name, version, alias, message), status)

        if not name or not version:
            return await refused(400, "name the model and the version (name and version fields)")
        if not _ALIAS.match(alias):
            return await refused(
                422, f"the alias {alias!r} must be 1-255 letters, digits, '_' or '-', e.g. champion"
            )
        try:
            url = await self.registry_access.base_url()
            done: Promotion = await asyncio.to_thread(
                self._with_client, url, promote, name, version, alias
            )
        except _REGISTRY_ERRORS as exc:
            return await refused(*_registry_refusal(exc))
        self._registry_cache = None
        if not done.moved:
            return await refused(409, done.reason)
        log.info("console: %s@%s moved to version %s", name, alias, version)
        query = (
            f"moved={quote(name)}&alias={quote(alias)}&version={quote(version)}"
            f"&previous={quote(done.previous)}"
        )
        return Redirect(f"/registry?{query}#model-{quote(name)}")

    # -- logs ----------------------------------------------------------------------------

    def log_stream(self, rest: str, args: Mapping[str, list[str]]) -> LogStream:
        """``GET /logs/<ns>/<pod>?container=C``: the container's last lines, then what it
        writes until it ends. Refused (4xx) when the pod or container is unknown or has
        not started yet (the page asks again later)."""
        if self.logs is None:
            return LogStream(503, "this console has no access to pod logs (no kubelet)")
        found = _two(rest)
        if found is None:
            return LogStream(404, "use /logs/<namespace>/<pod>?container=NAME")
        namespace, pod = found
        container = _arg(args, "container") or None
        try:  # fail before the answer starts: unknown pod, container waiting
            self.logs.read(namespace, pod, LogQuery(container=container, tail_lines=1))
        except NotFoundError as exc:
            return LogStream(404, str(exc))
        except WonderlandError as exc:
            return LogStream(409, str(exc))
        if self.open_logs >= MAX_LOG_STREAMS:
            return LogStream(
                429, f"{MAX_LOG_STREAMS} logs are followed already; close a console tab and retry"
            )
        query = LogQuery(container=container, follow=True, tail_lines=LOG_TAIL_LINES)
        return LogStream(200, chunks=self._counted(self.logs.follow(namespace, pod, query)))

    async def _counted(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        self.open_logs += 1
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            self.open_logs -= 1


@dataclass(frozen=True)
class PromoteError:
    """A refused promotion: the form as submitted and why."""

    name: str
    version: str
    alias: str
    message: str
