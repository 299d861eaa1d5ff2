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
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from wonderland.console import registry_views, training_views, tuning_views
from wonderland.console.registry_views import (
    RegistryAccess,
    RegistryPage,
    RunSeries,
    TrackingRegistry,
)
from wonderland.console.training_views import MetricHistory
from wonderland.console.tuning_views import ObservationReader
from wonderland.control.sources import LogQuery, PodLogSource
from wonderland.errors import InvalidError, NotFoundError, WonderlandError
from wonderland.store import Store
from wonderland.tracking.client import MlflowApiError, RestClient, TrackingError
from wonderland.tracking.registry import Promotion, promote

__all__ = [
    "Answer",
    "LogStream",
    "MlopsPages",
    "Redirect",
    "Refused",
    "Rendered",
    "chart_json",
]

log = logging.getLogger("wonderland.console")

ISVCS = "inferenceservices.serving.kserve.io"
LOG_TAIL_LINES = 500
MAX_LOG_STREAMS = 16  # followed logs open at once, all clients together
REGISTRY_CACHE_SECONDS = 2.0
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


@dataclass(frozen=True)
class Rendered:
    template: str
    context: dict[str, Any]
    status: int = 200


@dataclass(frozen=True)
class Redirect:
    location: str


@dataclass(frozen=True)
class Refused:
    status: int
    message: str


Answer = Rendered | Redirect | Refused


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
        self._run_cache: dict[str, tuple[float, str, list[RunSeries]]] = {}

    async def start(self) -> None:
        await self.history.start()

    async def stop(self) -> None:
        await self.history.stop()

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
        run_series, run_note = await self._run_history(page.run_id, page.job_version)
        chart = dict(page.chart_data)
        chart["run"] = [{"name": r.name, "step": r.step, "v": r.v} for r in run_series]
        context = {
            "page": page,
            "nav": "training",
            "chart": chart_json(chart),
            "logs_available": self.logs is not None,
            "run_series": run_series,
            "run_note": run_note,
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

    async def _run_history(self, run_id: str, version: str) -> tuple[list[RunSeries], str]:
        """The metric history of the job's MLflow run, when the tracking server runs (the
        page never wakes it), read again when the job changed (``version``, its
        resourceVersion: a report, its end) or after ``REGISTRY_CACHE_SECONDS``; else why
        not."""
        if not run_id:
            return [], ""
        url = self.registry_access.running_url()
        if url is None:
            return [], (
                "The metric history of its MLflow run shows here while the tracking server "
                "runs; it is asleep now (the Registry page, MLflow's UI or a training run "
                "wakes it)."
            )
        cached = self._run_cache.get(run_id)
        now = time.monotonic()
        if cached is not None and cached[1] == version and now - cached[0] < REGISTRY_CACHE_SECONDS:
            return cached[2], ""
        try:
            series = await asyncio.to_thread(registry_views.run_history, url, run_id)
        except TrackingError as exc:
            return [], f"The MLflow run's metric history could not be read: {exc}."
        if len(self._run_cache) >= 64:
            self._run_cache.clear()
        self._run_cache[run_id] = (now, version, series)
        return series, ""

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
    ) -> Answer:
        page = await self.registry_page()
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
        }
        return Rendered("registry.html", context, status)

    # -- POST ----------------------------------------------------------------------------

    async def post(self, path: str, form: Mapping[str, list[str]]) -> Answer | None:
        if path == "/registry":
            return await self._promote(form)
        return None

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

            def move() -> Promotion:
                with RestClient(url) as client:
                    return promote(client, name, version, alias)

            done = await asyncio.to_thread(move)
        except InvalidError as exc:
            return await refused(422, exc.reason_text)
        except MlflowApiError as exc:
            return await refused(404 if exc.not_found else 422, exc.message)
        except TrackingError as exc:
            return await refused(503, str(exc))
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
