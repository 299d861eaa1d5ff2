"""The InferenceService page (``/models/<namespace>/<name>``), its "try it" request and its
saved examples.

:func:`model_page` builds the page's typed data: conditions, URLs, the predictor and
transformer components with their revisions and split (canary), the V2 model metadata
(``GET /v2/models/<name>`` through the gateway: input names, datatypes, shapes) from
which the page builds its "try it" form and an example request, the saved example
requests (:mod:`~wonderland.console.examples`), request, latency and per-stage latency
charts from the metrics history (``kind=models``), the newest logged payloads and the
drift detector's statistics and reference sample
(:mod:`~wonderland.console.model_monitoring`). Each part that has nothing to show says
why.

:class:`ModelPages` serves the page, ``POST /models/<namespace>/<name>/infer`` (the body,
a V2 inference request, is sent through the gateway as any client would send it, and the
answer comes back as JSON with the model's status and body, the latency and the ``curl``
command that sends the same request), ``POST .../examples`` and
``DELETE .../examples/<name>``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson

from wonderland.console import model_views, views
from wonderland.console.app_pages import event_rows
from wonderland.console.charts import (
    RANGES,
    Chart,
    charts_json,
    make_chart,
    range_seconds,
    step_for,
)
from wonderland.console.examples import Example, ExampleStore, check_name, now_iso
from wonderland.console.model_monitoring import (
    DriftRow,
    PayloadRow,
    ReferenceFeature,
    ReferenceSummary,
    drift_statistics,
    payload_rows,
)
from wonderland.console.pages import Answer, Refused, Rendered, Request, Response, json_response
from wonderland.console.server import ConsoleServer
from wonderland.console.sources import HistorySource, ModelAnswer, ModelClient, Series
from wonderland.errors import ConflictError, InvalidError, NotFoundError
from wonderland.store import Store

__all__ = [
    "ComponentStatus",
    "DriftRow",
    "InputField",
    "ModelMetadata",
    "ModelPage",
    "ModelPages",
    "PayloadRow",
    "ReferenceFeature",
    "ReferenceSummary",
    "example_request",
    "model_page",
    "parse_metadata",
]

ISVC = "inferenceservices.serving.kserve.io"
PAYLOAD_SAMPLES = 10
MODEL_SERIES = (
    "request_rate",
    "error_rate",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "preprocess_p50",
    "preprocess_p95",
    "postprocess_p50",
    "postprocess_p95",
)
STAGES = (("preprocess", "preprocess"), ("predict", "latency"), ("postprocess", "postprocess"))
METADATA_CACHE = 256
_NUMERIC = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BF16",
}


@dataclass(frozen=True)
class InputField:
    """One input of the model's V2 metadata: the try-it form's field."""

    name: str
    datatype: str
    shape: list[int]

    @property
    def shape_text(self) -> str:
        return "[" + ", ".join("any" if d < 0 else str(d) for d in self.shape) + "]"

    @property
    def row_width(self) -> int:
        """Values per row (the product of the dimensions after the first), 1 if unknown."""
        width = 1
        for d in self.shape[1:]:
            width *= d if d > 0 else 1
        return width


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    platform: str
    versions: list[str]
    inputs: list[InputField]
    outputs: list[InputField]


@dataclass(frozen=True)
class ComponentStatus:
    """``status.components.<name>``: its URL, revisions and traffic."""

    name: str  # predictor | transformer
    ready: views.Condition
    url: str
    latest_created: str
    latest_ready: str
    previous: str
    traffic: str  # "rev-2 90%, rev-1 10%"


@dataclass(frozen=True)
class ModelPage:
    model: model_views.ModelRow
    conditions: list[tuple[str, views.Condition]]
    address: str
    components: list[ComponentStatus]
    metadata: ModelMetadata | None
    metadata_why: str  # why there is no form (not ready, no answer)
    example: str  # a V2 request built from the metadata (the raw editor's start)
    infer_path: str  # the model's V2 path, for the curl text
    range: str
    ranges: list[str]
    charts: list[Chart]
    payloads: list[PayloadRow]
    payloads_why: str
    drift: list[DriftRow]
    drift_detected: bool | None
    drift_why: str
    reference: ReferenceSummary | None
    examples: list[Example] | None  # None: no place to keep them
    events: list[views.EventRow]
    metrics_available: bool
    resource_version: str
    charts_data: str = field(default="", repr=False)


def parse_metadata(doc: Mapping[str, Any]) -> ModelMetadata:
    """The V2 metadata answer (``GET /v2/models/<name>``) as typed data."""

    def tensors(key: str) -> list[InputField]:
        out: list[InputField] = []
        for t in doc.get(key) or []:
            if isinstance(t, dict) and t.get("name"):
                shape = [int(d) for d in t.get("shape") or [] if isinstance(d, int | float)]
                out.append(InputField(str(t["name"]), str(t.get("datatype") or "FP32"), shape))
        return out

    return ModelMetadata(
        str(doc.get("name") or ""),
        str(doc.get("platform") or ""),
        [str(v) for v in doc.get("versions") or []],
        tensors("inputs"),
        tensors("outputs"),
    )


def example_request(metadata: ModelMetadata | None) -> str:
    """A V2 request with one row of zeros per input ("" and 0 for BYTES), to edit."""
    if metadata is None or not metadata.inputs:
        body: dict[str, Any] = {
            "inputs": [{"name": "input-0", "shape": [1, 1], "datatype": "FP32", "data": [0]}]
        }
    else:
        inputs = []
        for i in metadata.inputs:
            width = i.row_width
            shape = [1, *[d if d > 0 else 1 for d in i.shape[1:]]] if i.shape else [1]
            value: Any = "" if i.datatype == "BYTES" else (False if i.datatype == "BOOL" else 0)
            inputs.append(
                {"name": i.name, "shape": shape, "datatype": i.datatype, "data": [value] * width}
            )
        body = {"inputs": inputs}
    return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()


def _components(status: Mapping[str, Any]) -> list[ComponentStatus]:
    out: list[ComponentStatus] = []
    conds = {
        str(c.get("type")): views.Condition(
            str(c.get("status", "Unknown")), str(c.get("reason") or ""), str(c.get("message") or "")
        )
        for c in status.get("conditions") or []
        if isinstance(c, dict)
    }
    for name in ("predictor", "transformer"):
        comp = (status.get("components") or {}).get(name)
        if not isinstance(comp, dict):
            continue
        traffic = ", ".join(
            f"{t.get('revisionName') or 'latest'} {int(t.get('percent') or 0)}%"
            + (f" (tag {t['tag']})" if t.get("tag") else "")
            for t in comp.get("traffic") or []
            if isinstance(t, dict)
        )
        out.append(
            ComponentStatus(
                name,
                conds.get(f"{name.capitalize()}Ready", views.Condition("Unknown")),
                str(comp.get("url") or ""),
                str(comp.get("latestCreatedRevision") or ""),
                str(comp.get("latestReadyRevision") or ""),
                str(comp.get("previousRolledoutRevision") or ""),
                traffic,
            )
        )
    return out


def _logger(spec: Mapping[str, Any]) -> bool:
    return any(
        isinstance(spec.get(c), dict) and spec[c].get("logger")
        for c in ("predictor", "transformer")
    )


NO_HISTORY = (
    "No points in this range: the history fills in once per scrape "
    "(WONDERLAND_METRICS_SCRAPE_SECONDS) after the model served requests."
)
NO_SERIES = Series(np.empty(0), np.empty(0))


async def model_page(
    store: Store,
    namespace: str,
    name: str,
    *,
    sources: HistorySource,
    metadata: ModelMetadata | None = None,
    metadata_why: str = "",
    range_name: str = "",
    history_step: float = 10.0,
    now: float | None = None,
    examples: Sequence[Example] | None = None,
) -> ModelPage:
    """One InferenceService's page; NotFoundError when there is none."""
    isvc = store.get(ISVC, namespace, name)
    rv = store.resource_version
    row = next(m for m in model_views.models(store, {}, namespace).models if m.name == name)
    status = isvc.get("status") or {}
    spec = isvc.get("spec") or {}
    chosen, seconds = range_seconds(range_name)
    now = time.time() if now is None else now
    history = await sources.history(
        "models", namespace, name, now - seconds, step_for(seconds, history_step), MODEL_SERIES
    )
    charts = [
        make_chart(
            "chart-model-requests",
            "Requests",
            "req/s",
            [
                ("requests", history.get("request_rate", NO_SERIES)),
                ("errors", history.get("error_rate", NO_SERIES)),
            ],
            NO_HISTORY,
        ),
        make_chart(
            "chart-model-latency",
            "Predict latency",
            "s",
            [(q, history.get(f"latency_{q}", NO_SERIES)) for q in ("p50", "p95", "p99")],
            NO_HISTORY,
        ),
        make_chart(
            "chart-model-stages",
            "Latency per stage",
            "s",
            [
                (f"{stage} {q}", history[f"{series}_{q}"])
                for stage, series in STAGES
                for q in ("p50", "p95")
                if f"{series}_{q}" in history
            ],
            "No latency per stage in this range: the model server reports its preprocess, "
            "predict and postprocess times (request_*_seconds) once it serves requests.",
        ),
    ]
    items = await sources.payloads(namespace, name, PAYLOAD_SAMPLES)
    payloads = payload_rows(items or [])
    if not payloads and not _logger(spec):
        payloads_why = (
            "This InferenceService logs no payloads: add a logger to its predictor "
            "(spec.predictor.logger: {mode: all}) to see requests and responses here."
        )
    elif items is None:
        payloads_why = "The payload sink is not running in this daemon (the monitoring plugin)."
    elif not payloads:
        payloads_why = "No calls logged yet: send a request (try it below)."
    else:
        payloads_why = ""
    drift, detected, reference = await drift_statistics(sources, namespace, name)
    drift_why = ""
    if not drift and detected is None and reference is not None:
        drift_why = (
            "The drift detector has its reference sample (below); its statistics show "
            "here after its first full window of logged requests."
        )
    elif not drift and detected is None:
        drift_why = (
            "No drift statistics: no drift detector reports on this model. Point the "
            "logger at a detector (docs/monitoring.md, payload logging and drift); its "
            "statistics show here after its first full window."
        )
    conditions = [
        (
            str(c.get("type")),
            views.Condition(
                str(c.get("status", "Unknown")),
                str(c.get("reason") or ""),
                str(c.get("message") or ""),
            ),
        )
        for c in status.get("conditions") or []
        if isinstance(c, dict) and c.get("type")
    ]
    names = {
        name,
        *(p for c in _components(status) for p in (c.latest_created, c.latest_ready) if p),
    }
    return ModelPage(
        model=row,
        conditions=conditions,
        address=str((status.get("address") or {}).get("url") or ""),
        components=_components(status),
        metadata=metadata,
        metadata_why=metadata_why,
        example=example_request(metadata),
        infer_path=f"/v2/models/{name}/infer",
        range=chosen,
        ranges=list(RANGES),
        charts=charts,
        payloads=payloads,
        payloads_why=payloads_why,
        drift=drift,
        drift_detected=detected,
        drift_why=drift_why,
        reference=reference,
        examples=list(examples) if examples is not None else None,
        events=event_rows(store, namespace, names),
        metrics_available=sources.available,
        resource_version=str(rv),
        charts_data=charts_json(charts, now - seconds, now),
    )


MAX_REQUEST = 16 * 1024  # the console's form limit (server.MAX_FORM)


class ModelPages:
    """``GET /models/<namespace>/<name>``, ``POST /models/<namespace>/<name>/infer`` and the
    saved examples: ``POST .../examples`` (save), ``DELETE .../examples/<name>``."""

    def __init__(
        self,
        server: ConsoleServer,
        sources: HistorySource,
        client: ModelClient,
        *,
        examples: ExampleStore | None = None,
        history_step: float = 10.0,
    ) -> None:
        self.server = server
        self.sources = sources
        self.client = client
        self.examples = examples
        self.history_step = history_step
        # (namespace, name, latest ready revision) -> metadata; read once per revision
        self._metadata: dict[tuple[str, str, str], ModelMetadata] = {}

    def install(self) -> None:
        self.server.add_pages(self)

    async def answer(self, request: Request) -> Answer | None:
        """The :class:`~wonderland.console.pages.PageSet` entry: paths under ``/models/``."""
        if not request.path.startswith("/models/"):
            return None
        body = request.body
        parts = request.path.removeprefix("/models/").split("/")
        if len(parts) == 3 and parts[2] == "infer" and all(parts[:2]):
            if request.method != "POST":
                return json_response(405, {"error": "POST a V2 inference request (JSON) here"})
            return await self.infer(parts[0], parts[1], body)
        if len(parts) in (3, 4) and parts[2] == "examples" and all(parts[:2]):
            if len(parts) == 3 and request.method == "POST":
                return await self.save_example(parts[0], parts[1], body)
            if len(parts) == 4 and parts[3] and request.method == "DELETE":
                return await self.delete_example(parts[0], parts[1], parts[3])
            return json_response(
                405,
                {"error": "POST an example to .../examples, DELETE .../examples/<name>"},
            )
        if request.method != "GET" or len(parts) != 2 or not all(parts):
            return Refused(404, "use /models/<namespace>/<name>")
        return await self.page(request, parts[0], parts[1])

    async def _read_metadata(
        self, namespace: str, name: str, isvc: Mapping[str, Any]
    ) -> tuple[ModelMetadata | None, str]:
        status = isvc.get("status") or {}
        url = str(status.get("url") or "")
        if views.ready_condition(isvc).status != "True" or not url:
            return None, "The model is not ready yet: the form appears once it is."
        revision = str(
            ((status.get("components") or {}).get("predictor") or {}).get("latestReadyRevision")
            or ""
        )
        key = (namespace, name, revision)
        cached = self._metadata.get(key)
        if cached is not None:
            return cached, ""
        answer = await self.client.get(url, f"/v2/models/{name}")
        if answer.status != 200:
            why = (
                answer.error
                or f"GET /v2/models/{name} answered {answer.status}: {answer.body[:300]}"
            )
            return None, f"The model's metadata could not be read: {why}"
        try:
            doc = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            return None, f"GET /v2/models/{name} did not answer JSON"
        metadata = parse_metadata(doc if isinstance(doc, dict) else {})
        if len(self._metadata) >= METADATA_CACHE:
            self._metadata.pop(next(iter(self._metadata)))
        self._metadata[key] = metadata
        return metadata, ""

    async def page(self, request: Request, namespace: str, name: str) -> Answer:
        try:
            isvc = self.server.store.get(ISVC, namespace, name)
        except NotFoundError:
            message = f"no InferenceService {namespace}/{name}; see the list on Models"
            return Refused(404, message)
        metadata, why = await self._read_metadata(namespace, name, isvc)
        try:
            data = await model_page(
                self.server.store,
                namespace,
                name,
                sources=self.sources,
                metadata=metadata,
                metadata_why=why,
                range_name=request.arg("range"),
                history_step=self.history_step,
                examples=self.examples.examples(namespace, name) if self.examples else None,
            )
        except NotFoundError:
            message = f"no InferenceService {namespace}/{name}; see the list on Models"
            return Refused(404, message)
        context = {"page": data, "nav": "models", "poll": max(1, round(self.history_step))}
        return Rendered("model.html", context)

    async def infer(self, namespace: str, name: str, body: bytes) -> Response:
        refused = v2_request_error(body)
        if refused is not None:
            return json_response(refused[0], {"error": refused[1] + "; fix it and send again"})
        try:
            isvc = self.server.store.get(ISVC, namespace, name)
        except NotFoundError:
            return json_response(404, {"error": f"no InferenceService {namespace}/{name}"})
        url = str((isvc.get("status") or {}).get("url") or "")
        answer = await self.client.post(url, f"/v2/models/{name}/infer", body)
        return json_response(200, _answer_json(answer))

    def _examples_answer(self, examples: Sequence[Example]) -> Response:
        return json_response(200, {"examples": [asdict(e) for e in examples]})

    async def save_example(self, namespace: str, name: str, body: bytes) -> Response:
        """``POST .../examples``: ``{"name", "body"}``, the body a V2 request."""
        if self.examples is None:
            return json_response(
                503, {"error": "this console keeps no examples (no state directory)"}
            )
        if not body.strip():
            return json_response(
                400,
                {
                    "error": f"the form is empty (or over {MAX_REQUEST // 1024} KiB): send "
                    '{"name": ..., "body": ...}'
                },
            )
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return json_response(422, {"error": f"the form is not JSON: {exc}"})
        if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
            return json_response(422, {"error": 'send {"name": "...", "body": "<a V2 request>"}'})
        request = str(doc.get("body") or "")
        refused = v2_request_error(request.encode())
        if refused is not None:
            return json_response(refused[0], {"error": refused[1] + "; fix it and save again"})
        try:
            self.server.store.get(ISVC, namespace, name)
        except NotFoundError:
            return json_response(404, {"error": f"no InferenceService {namespace}/{name}"})
        try:
            check_name(doc["name"])
            saved = self.examples.save(namespace, name, Example(doc["name"], request, now_iso()))
        except InvalidError as exc:
            return json_response(422, {"error": f"{exc.reason_text}; pick another name"})
        except ConflictError as exc:
            return json_response(409, {"error": str(exc)})
        return self._examples_answer(saved)

    async def delete_example(self, namespace: str, name: str, example: str) -> Response:
        if self.examples is None:
            return json_response(
                503, {"error": "this console keeps no examples (no state directory)"}
            )
        try:
            self.server.store.get(ISVC, namespace, name)
            kept = self.examples.delete(namespace, name, example)
        except NotFoundError as exc:
            return json_response(404, {"error": str(exc)})
        return self._examples_answer(kept)


def v2_request_error(body: bytes) -> tuple[int, str] | None:
    """Why ``body`` is not a V2 inference request (status, message), or None."""
    if not body.strip():
        return 400, (
            f"the request is empty (or over {MAX_REQUEST // 1024} KiB): send a V2 inference request"
        )
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return 422, f"the request is not JSON: {exc}"
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        return 422, 'a V2 request is a JSON object with an "inputs" list'
    return None


def _answer_json(answer: ModelAnswer) -> dict[str, Any]:
    return {
        "status": answer.status,
        "body": answer.body,
        "milliseconds": round(answer.seconds * 1000, 2),
        "curl": answer.curl,
        "error": answer.error,
    }
