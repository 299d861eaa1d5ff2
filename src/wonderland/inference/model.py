"""Model contracts: built-in array runtimes and KServe-style custom models.

Two kinds of model are served:

* :class:`ArrayModel` - a built-in runtime (sklearn, xgboost, ONNX, ...): numpy arrays
  in, numpy arrays out, rows independent, so concurrent requests can be merged into one
  ``predict_arrays`` call by the adaptive batcher.
* :class:`CustomModel` - wraps any object with KServe's method names (``load``,
  ``preprocess``, ``predict``, ``postprocess``, ``explain``; each sync or async). Sync
  hooks run on a thread pool so they never block the event loop. ``kserve`` need not be
  installed; subclassing :class:`Model` is optional.
"""

from __future__ import annotations

import asyncio
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wonderland.inference.errors import InvalidInputError, ModelConfigError, ModelFailedError
from wonderland.inference.types import TensorMetadata

__all__ = ["ArrayModel", "CustomModel", "Hook", "Model"]


class Model:
    """Optional base for custom models, with KServe's ``Model`` method names.

    Override ``load`` (set up, return normally when ready) and ``predict``; ``preprocess``,
    ``postprocess`` and ``explain`` are optional. Any hook may be ``async``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready = False

    def load(self) -> bool:
        self.ready = True
        return True

    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        return payload

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        raise NotImplementedError("predict is not implemented")

    def postprocess(self, result: Any, headers: dict[str, str] | None = None) -> Any:
        return result


class ArrayModel(ABC):
    """Seam for built-in runtimes: load once, then predict on named numpy arrays.

    ``predict_arrays`` must be thread-safe for one caller at a time and must treat rows
    (axis 0) independently; that is what lets the batcher concatenate requests.
    """

    platform: str = ""
    batchable: bool = True

    def __init__(self, name: str, model_dir: Path, version: str | None = None) -> None:
        self.name = name
        self.model_dir = model_dir
        self.version = version

    @abstractmethod
    def load(self) -> None:
        """Load the model from ``model_dir``; heavy imports belong here."""

    @abstractmethod
    def predict_arrays(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        """Run the model; returns output name -> array (first axis = rows)."""

    def inputs_metadata(self) -> list[TensorMetadata]:
        return []

    def outputs_metadata(self) -> list[TensorMetadata]:
        return []

    def first_input(self, inputs: dict[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
        if len(inputs) != 1:
            raise InvalidInputError(
                f"model {self.name!r} takes one input tensor, the request has {len(inputs)}"
            )
        return next(iter(inputs.values()))

    def v1_inputs(self, instances: Any) -> dict[str, np.ndarray[Any, Any]]:
        """V1 ``instances`` as the model's input arrays."""
        try:
            arr = np.asarray(instances)
        except ValueError as exc:
            raise InvalidInputError(f"'instances' is not a rectangular array ({exc})") from None
        if arr.dtype == object:
            raise InvalidInputError("'instances' must be a rectangular array of numbers")
        names = [t.name for t in self.inputs_metadata()] or ["input-0"]
        return {names[0]: arr}


def _arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(
        1
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )


class Hook:
    """A KServe hook (preprocess, predict, postprocess, explain) as the data plane calls it:
    the function, whether it is a coroutine function, and whether it takes the headers."""

    __slots__ = ("fn", "is_async", "takes_headers")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.takes_headers = _arity(fn) >= 2


class CustomModel:
    """A user object with KServe hook names, adapted to the data plane."""

    platform = "custom"
    batchable = False

    def __init__(
        self, name: str, obj: Any, version: str | None = None, predictor: Any = None
    ) -> None:
        self.name = name
        self.obj = obj
        self.version = version
        self.predictor = predictor
        self.hooks: dict[str, Hook] = {}
        for hook in ("preprocess", "predict", "postprocess", "explain"):
            fn = getattr(obj, hook, None)
            if callable(fn):
                self.hooks[hook] = Hook(fn)
        own_predict = getattr(type(obj), "predict", None)
        if own_predict is None or own_predict is Model.predict:
            if predictor is None:
                raise ModelConfigError(
                    f"custom model {name!r} has no predict method; define one, or pass "
                    "--predictor_host to forward to a predictor (transformer mode)"
                )

            async def forward(payload: Any, headers: dict[str, str] | None = None) -> Any:
                return await predictor.predict(name, payload, headers or {})

            self.hooks["predict"] = Hook(forward)

    async def close(self) -> None:
        if self.predictor is not None:
            await self.predictor.close()

    def load(self) -> None:
        fn = getattr(self.obj, "load", None)
        if callable(fn):
            result = fn()
            if inspect.iscoroutine(result):
                # Loads run on a worker thread, which has no running loop of its own.
                result = asyncio.run(result)
            if result is False:
                raise ModelFailedError(f"custom model {self.name!r}: load() returned False")
        if hasattr(self.obj, "ready"):
            self.obj.ready = True

    def inputs_metadata(self) -> list[TensorMetadata]:
        return _metadata(getattr(self.obj, "get_input_types", None))

    def outputs_metadata(self) -> list[TensorMetadata]:
        return _metadata(getattr(self.obj, "get_output_types", None))


def _metadata(fn: Any) -> list[TensorMetadata]:
    if not callable(fn):
        return []
    out = []
    for item in fn() or []:
        if isinstance(item, dict):
            out.append(
                TensorMetadata(item["name"], item["datatype"], list(item.get("shape", [-1])))
            )
    return out
