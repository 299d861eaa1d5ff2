"""The protocol-agnostic data plane: health, metadata, inference, repository.

REST (V1 and V2) and gRPC adapters only read the transport, call one method here and
answer. A request is counted and timed here, in one place, as MLServer's ``DataPlane``
does, whichever protocol brought it: MLServer's per-model metrics
(``model_infer_request_success``/``_failure``/``_duration``), ``parallel_request_queue``,
KServe's stage histograms (the adapter's codec is timed as pre- and post-processing) and
``inference_requests{protocol, code}``, whose ``code`` is the answer in the protocol's own
terms (an HTTP status, a gRPC status name). The adapter hands over its codec as two
callables; the data plane knows no wire format.
Built-in runtimes go through their model's adaptive batcher; custom models run their
KServe-style hooks, sync hooks on a thread pool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from wonderland import __version__
from wonderland.inference.errors import (
    InferenceServerError,
    InvalidInputError,
    ModelFailedError,
    NotImplementedByModelError,
)
from wonderland.inference.generation import TextGenerationModel
from wonderland.inference.metrics import PARALLEL_QUEUE, ModelMetrics
from wonderland.inference.model import ArrayModel, CustomModel, Hook
from wonderland.inference.repository import ModelEntry, ModelRepository
from wonderland.inference.types import InferOutput, InferRequest, InferResponse, tensor_from_data

__all__ = ["EXTENSIONS", "GRPC", "REST", "REST_V1", "SERVER_NAME", "DataPlane", "Wire"]

SERVER_NAME = "wonderland"
EXTENSIONS = ["binary_tensor_data", "model_repository", "model_repository_extension"]

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class Wire:
    """How one protocol names a request's outcome in ``inference_requests``."""

    protocol: str  # the ``protocol`` label
    grpc: bool  # codes are gRPC status names (``OK``), else HTTP statuses (``200``)
    ok: str = field(init=False)  # the code of a success
    failure: str = field(init=False)  # the code of an error that is not the client's

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", "OK" if self.grpc else "200")
        object.__setattr__(self, "failure", "INTERNAL" if self.grpc else "500")

    def code(self, exc: BaseException) -> str:
        if isinstance(exc, InferenceServerError):
            return exc.grpc_code if self.grpc else str(exc.status)
        return self.failure


REST = Wire("rest", grpc=False)
REST_V1 = Wire("rest-v1", grpc=False)
GRPC = Wire("grpc", grpc=True)


class DataPlane:
    """Everything a protocol adapter can ask of the model server."""

    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository
        self.live = True
        self._in_flight = 0

    # -- health and metadata ----------------------------------------------------------------

    def ready(self) -> bool:
        return self.repository.all_ready()

    def metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def model_ready(self, name: str, version: str | None = None) -> bool:
        return self.repository.get(name, version).ready

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        entry = self.repository.ready_entry(name, version)
        model = entry.model
        assert model is not None
        doc: dict[str, Any] = {"name": name}
        versions = self.repository.versions(name)
        if versions:
            doc["versions"] = versions
        doc["platform"] = model.platform
        doc["inputs"] = [t.to_dict() for t in model.inputs_metadata()]
        doc["outputs"] = [t.to_dict() for t in model.outputs_metadata()]
        return doc

    def model_config(self, name: str, version: str | None = None) -> dict[str, Any]:
        """A minimal Triton-style model config, enough for perf_analyzer."""
        meta = self.model_metadata(name, version)
        entry = self.repository.get(name, version)
        batch = self.repository.batching.max_batch_size if entry.batcher else 0

        def conv(t: dict[str, Any]) -> dict[str, Any]:
            dims = t["shape"][1:] if batch and t["shape"] else t["shape"]
            return {"name": t["name"], "data_type": f"TYPE_{t['datatype']}", "dims": dims}

        return {
            "name": name,
            "platform": meta["platform"],
            "max_batch_size": batch,
            "input": [conv(t) for t in meta["inputs"]],
            "output": [conv(t) for t in meta["outputs"]],
        }

    # -- inference ---------------------------------------------------------------------------

    async def _measured(self, name: str, version: str | None, call: Awaitable[_T]) -> _T:
        """Await one inference, counting it as MLServer does: success or failure and the
        duration per model version, and the requests in flight when it started. Requests
        for models the repository does not hold are not counted (no series per typo)."""
        try:
            m: ModelMetrics | None = self.repository.get(name, version).metrics
        except InferenceServerError:
            m = None
        self._in_flight += 1
        PARALLEL_QUEUE.observe(self._in_flight)
        started = time.perf_counter()
        try:
            result = await call
        except BaseException:
            if m is not None:
                m.infer_failure.inc()
            raise
        finally:
            self._in_flight -= 1
            if m is not None:
                m.infer_duration.observe(time.perf_counter() - started)
        if m is not None:
            m.infer_success.inc()
        return result

    async def serve_infer(
        self,
        wire: Wire,
        name: str,
        version: str | None,
        decode: Callable[[], InferRequest],
        encode: Callable[[InferResponse, InferRequest], _R],
        headers: Callable[[], dict[str, str]] | None = None,
    ) -> _R:
        """One V2 inference as a protocol adapter receives it: ``decode`` the wire request,
        infer, ``encode`` the answer, counted and timed here. ``headers`` gives what a custom
        model's hooks see (asked only for models that have hooks). A request for a model
        that is not ready is refused before it is counted (no series per typo)."""
        entry = self.repository.ready_entry(name, version)
        m = entry.metrics
        assert m is not None
        code = wire.failure
        try:
            started = time.perf_counter()
            request = decode()
            m.pre.observe(time.perf_counter() - started)
            hook_headers = headers() if headers is not None and entry.batcher is None else None
            response = await self.infer(request, hook_headers)
            started = time.perf_counter()
            out = encode(response, request)
            m.post.observe(time.perf_counter() - started)
            code = wire.ok
        except BaseException as exc:
            code = wire.code(exc)
            raise
        finally:
            m.request(wire.protocol, code)
        return out

    async def infer(
        self, request: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        """Run one V2 inference request (any protocol)."""
        return await self._measured(
            request.model_name, request.model_version, self._infer(request, headers)
        )

    async def _infer(self, request: InferRequest, headers: dict[str, str] | None) -> InferResponse:
        entry = self.repository.ready_entry(request.model_name, request.model_version)
        _not_generative(entry)
        if entry.batcher is not None:
            outputs = await entry.batcher.submit({t.name: t.data for t in request.inputs})
            return InferResponse(
                request.model_name,
                [InferOutput.from_numpy(k, v) for k, v in outputs.items()],
                request.id,
                entry.version,
            )
        result = await self._run_hooks(entry, request, headers)
        return self._v2_response(result, entry, request)

    async def predict_v1(self, name: str, doc: Any, headers: dict[str, str] | None = None) -> Any:
        """V1 ``:predict``: ``{"instances": [...]}`` (or ``inputs``) -> ``{"predictions"}``."""
        return await self._counted_v1(
            name, self._measured(name, None, self._predict_v1(name, doc, headers))
        )

    async def _counted_v1(self, name: str, call: Awaitable[_T]) -> _T:
        """Count one V1 request (``protocol="rest-v1"``; V1 exists only over REST)."""
        try:
            m: ModelMetrics | None = self.repository.get(name).metrics
        except InferenceServerError:
            m = None
        code = REST_V1.failure
        try:
            result = await call
            code = REST_V1.ok
            return result
        except BaseException as exc:
            code = REST_V1.code(exc)
            raise
        finally:
            if m is not None:
                m.request(REST_V1.protocol, code)

    async def _predict_v1(self, name: str, doc: Any, headers: dict[str, str] | None) -> Any:
        entry = self.repository.ready_entry(name)
        _not_generative(entry)
        model = entry.model
        if isinstance(model, ArrayModel):
            if not isinstance(doc, dict):
                raise InvalidInputError("V1 predict: body must be a JSON object with 'instances'")
            instances = doc.get("instances", doc.get("inputs"))
            if instances is None:
                raise InvalidInputError(
                    "V1 predict: body has no 'instances' (or 'inputs'); send "
                    '{"instances": [[...], ...]}'
                )
            assert entry.batcher is not None
            outputs = await entry.batcher.submit(model.v1_inputs(instances))
            first = np.asarray(next(iter(outputs.values())))
            if first.dtype == object:  # BYTES: JSON has strings, not numpy objects
                return {"predictions": InferOutput("p", [], "BYTES", first).as_string_list()}
            return {"predictions": first}
        result = await self._run_hooks(entry, doc, headers)
        if isinstance(result, dict):
            return result
        if isinstance(result, InferResponse):
            return {"predictions": result.outputs[0].data if result.outputs else []}
        return {"predictions": result}

    async def explain_v1(self, name: str, doc: Any, headers: dict[str, str] | None = None) -> Any:
        """V1 ``:explain``: a custom model's ``explain`` hook."""
        return await self._counted_v1(name, self._explain_v1(name, doc, headers))

    async def _explain_v1(self, name: str, doc: Any, headers: dict[str, str] | None) -> Any:
        entry = self.repository.ready_entry(name)
        model = entry.model
        if not isinstance(model, CustomModel) or "explain" not in model.hooks:
            raise NotImplementedByModelError(
                f"model {name!r} has no explainer; :explain needs a model with an explain method"
            )
        assert entry.metrics is not None
        started = time.perf_counter()
        try:
            return await self._call(model.hooks["explain"], doc, headers)
        finally:
            entry.metrics.explain.observe(time.perf_counter() - started)

    async def _run_hooks(
        self, entry: ModelEntry, payload: Any, headers: dict[str, str] | None
    ) -> Any:
        model = entry.model
        assert isinstance(model, CustomModel) and entry.metrics is not None
        m = entry.metrics
        hooks = model.hooks
        if "preprocess" in hooks:
            started = time.perf_counter()
            payload = await self._call(hooks["preprocess"], payload, headers)
            m.pre.observe(time.perf_counter() - started)
        started = time.perf_counter()
        result = await self._call(hooks["predict"], payload, headers)
        m.predict.observe(time.perf_counter() - started)
        if "postprocess" in hooks:
            started = time.perf_counter()
            result = await self._call(hooks["postprocess"], result, headers)
            m.post.observe(time.perf_counter() - started)
        return result

    async def _call(self, hook: Hook, payload: Any, headers: dict[str, str] | None) -> Any:
        args = (payload, headers or {}) if hook.takes_headers else (payload,)
        try:
            if hook.is_async:
                return await hook.fn(*args)
            return await asyncio.get_running_loop().run_in_executor(None, hook.fn, *args)
        except InferenceServerError:
            raise
        except Exception as exc:
            # KServe's own InvalidInput (when user code imports kserve) is a client error.
            if type(exc).__name__ == "InvalidInput":
                raise InvalidInputError(str(exc)) from exc
            raise ModelFailedError(f"{type(exc).__name__}: {exc}") from exc

    def _v2_response(self, result: Any, entry: ModelEntry, request: InferRequest) -> InferResponse:
        if isinstance(result, InferResponse):
            result.model_name = result.model_name or request.model_name
            result.id = result.id or request.id
            if result.model_version is None:
                result.model_version = entry.version
            return result
        foreign = getattr(result, "infer_outputs", None)
        if foreign is not None:  # kserve.InferResponse, when the model code imports kserve
            outputs = []
            for o in foreign:
                arr = np.asarray(o.as_numpy() if hasattr(o, "as_numpy") else o.data)
                if arr.dtype.kind in "SU":
                    arr = InferOutput.from_numpy(o.name, arr).data
                outputs.append(InferOutput(o.name, list(arr.shape), o.datatype, arr))
            rid = getattr(result, "id", None) or request.id
            return InferResponse(request.model_name, outputs, rid, entry.version)
        if isinstance(result, dict) and isinstance(result.get("outputs"), list):
            outputs = []
            for i, o in enumerate(result["outputs"]):
                if isinstance(o, InferOutput):
                    outputs.append(o)
                    continue
                if not isinstance(o, dict):
                    raise ModelFailedError(f"model output {i} is {type(o).__name__}, not a tensor")
                where = f"model output {i}"
                try:
                    data = o["data"]
                    shape = o.get("shape") or list(np.shape(data))
                    arr = tensor_from_data(data, shape, o["datatype"], where)
                except (KeyError, InvalidInputError) as exc:
                    raise ModelFailedError(f"{where} is not a valid tensor: {exc}") from exc
                outputs.append(InferOutput(o["name"], list(shape), o["datatype"], arr))
            return InferResponse(request.model_name, outputs, request.id, entry.version)
        if isinstance(result, dict) and "predictions" in result:
            result = result["predictions"]
        try:
            out = InferOutput.from_numpy("output-0", result)
        except (InvalidInputError, ValueError) as exc:
            raise ModelFailedError(
                f"model {entry.name!r} returned {type(result).__name__}, which is not a tensor; "
                "return an InferResponse, a numpy array or a list"
            ) from exc
        return InferResponse(request.model_name, [out], request.id, entry.version)

    # -- repository ----------------------------------------------------------------------------

    def repository_index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        return self.repository.index(ready_only)

    async def load(self, name: str) -> None:
        await self.repository.load(name)

    async def unload(self, name: str) -> None:
        await self.repository.unload(name)


def _not_generative(entry: ModelEntry) -> None:
    if isinstance(entry.model, TextGenerationModel):
        raise NotImplementedByModelError(
            f"model {entry.name!r} generates text: use POST /v2/models/{entry.name}/generate "
            "(or generate_stream, infer_stream) or the OpenAI routes under /openai/v1"
        )
