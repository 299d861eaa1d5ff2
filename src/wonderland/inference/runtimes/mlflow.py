"""MLflow runtime (``modelFormat: mlflow``): a folder with an ``MLmodel`` file, served by
the flavour's native loader where there is one, ``mlflow.pyfunc`` otherwise.

Flavour order: sklearn (``model.skops`` through skops' trusted-types check, or a pickle),
xgboost (the data file and ``model_class``), lightgbm, onnx, pytorch (``torch.load`` of
the whole module, or a ``torch.export`` archive), then ``python_function``. The built-in
runtimes do the predicting (sklearn, xgboost Booster, lightgbm Booster, ONNX, torch);
this one shapes inputs and names by the model's signature:

* a tensor signature: one input (its name, or ``input-0``) of the signature's datatype
  and shape (``-1`` kept);
* a column signature (a DataFrame): one 1-D input per column named after it, as MLServer
  serves MLflow models; one 2-D tensor whose columns follow the signature's order (any
  name, e.g. ``input-0`` of ``[N, 4]``) is accepted too.

Remote pickles are refused by storage before a model gets here (see
:func:`wonderland.inference.mlmodel.code_loading`); a local folder is trusted.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wonderland.inference.errors import InvalidInputError, ModelConfigError
from wonderland.inference.mlmodel import (
    ColumnSpec,
    MLModel,
    Spec,
    TensorSpec,
    flavour_file,
    read_mlmodel,
    signature_metadata,
)
from wonderland.inference.model import ArrayModel
from wonderland.inference.types import DATATYPES, TensorMetadata

__all__ = ["MLflowRuntime"]

Arrays = dict[str, np.ndarray[Any, Any]]


class _Estimator(ArrayModel):
    """An object with ``predict`` (an sklearn-API booster): rows in, predictions out."""

    def __init__(self, name: str, model_dir: Path, estimator: Any) -> None:
        super().__init__(name, model_dir)
        self.estimator = estimator

    def load(self) -> None:
        pass

    def predict_arrays(self, inputs: Arrays) -> dict[str, Any]:
        return {"output-0": np.asarray(self.estimator.predict(self.first_input(inputs)))}

    def inputs_metadata(self) -> list[TensorMetadata]:
        n = getattr(self.estimator, "n_features_in_", None)
        return [TensorMetadata("input-0", "FP64", [-1, int(n) if n else -1])]


class MLflowRuntime(ArrayModel):
    """Serves an MLflow model folder (see the module docstring)."""

    platform = "mlflow"

    def __init__(
        self,
        name: str,
        model_dir: Path,
        version: str | None = None,
        nthread: int = 1,
        **options: Any,
    ) -> None:
        super().__init__(name, model_dir, version)
        self.nthread = nthread
        self.options = options
        self.flavour = ""
        self._inner: ArrayModel | None = None
        self._pyfunc: Any = None
        self._in_specs: list[Spec] = []
        self._out_specs: list[Spec] = []

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        mlmodel = read_mlmodel(self.model_dir)
        if mlmodel is None:
            raise ModelConfigError(
                f"{self.model_dir} has no MLmodel file; modelFormat mlflow serves a folder "
                "saved by mlflow (log_model/save_model)"
            )
        self.flavour = mlmodel.flavour
        self._in_specs = mlmodel.input_specs()
        self._out_specs = mlmodel.output_specs()
        loader: Callable[[MLModel], None] = getattr(self, f"_load_{self.flavour}")
        loader(mlmodel)

    def _runtime(self, fmt: str) -> ArrayModel:
        from wonderland.inference.runtimes import create_model

        model = create_model(
            fmt, self.name, self.model_dir, self.version, nthread=self.nthread, **self.options
        )
        assert isinstance(model, ArrayModel)
        model.load()
        return model

    def _load_sklearn(self, mlmodel: MLModel) -> None:
        self._inner = self._runtime("sklearn")

    def _load_xgboost(self, mlmodel: MLModel) -> None:
        model_class = str(mlmodel.conf("xgboost").get("model_class") or "xgboost.core.Booster")
        if model_class == "xgboost.core.Booster":
            self._inner = self._runtime("xgboost")
            return
        module, _, attr = model_class.rpartition(".")
        if not module.startswith("xgboost."):
            raise ModelConfigError(
                f"{self.model_dir}: unexpected xgboost model_class {model_class}"
            )
        estimator = getattr(importlib.import_module(module), attr)(n_jobs=self.nthread)
        path = flavour_file(mlmodel, "xgboost")
        estimator.load_model(str(path))
        self._inner = _Estimator(self.name, self.model_dir, estimator)

    def _load_lightgbm(self, mlmodel: MLModel) -> None:
        conf = mlmodel.conf("lightgbm")
        if str(conf.get("model_class") or "lightgbm.basic.Booster") == "lightgbm.basic.Booster":
            self._inner = self._runtime("lightgbm")
            return
        from wonderland.inference.runtimes.sklearn import load_estimator

        path = flavour_file(mlmodel, "lightgbm")
        assert path is not None
        estimator = load_estimator(
            path, str(conf.get("serialization_format") or ""), conf.get("skops_trusted_types")
        )
        self._inner = _Estimator(self.name, self.model_dir, estimator)

    def _load_onnx(self, mlmodel: MLModel) -> None:
        self._inner = self._runtime("onnx")

    def _load_pytorch(self, mlmodel: MLModel) -> None:
        import torch

        from wonderland.inference.runtimes.pytorch import TorchScriptRuntime

        path = flavour_file(mlmodel, "pytorch")
        assert path is not None
        torch.set_num_threads(self.nthread)
        if path.suffix == ".pt2":
            # an exported program's module has no eval(): it is traced in inference mode
            module = torch.export.load(str(path)).module()
        else:
            # the whole module, pickled: storage refused it if it came from a remote
            # source without the allow-remote-pickle annotation
            module = torch.load(str(path), map_location="cpu", weights_only=False)
            module.eval()
        inner = TorchScriptRuntime(self.name, self.model_dir, self.version, self.nthread)
        inner.use(module)
        self._inner = inner

    def _load_python_function(self, mlmodel: MLModel) -> None:
        try:
            import mlflow.pyfunc
        except ImportError:
            raise ModelConfigError(
                f"{self.model_dir}: its flavours ({', '.join(mlmodel.flavors)}) are served "
                "through mlflow.pyfunc, and mlflow is not installed; install the "
                "wonderland[mlflow] extra"
            ) from None
        self._pyfunc = mlflow.pyfunc.load_model(str(self.model_dir))

    # -- predicting ------------------------------------------------------------------------

    def predict_arrays(self, inputs: Arrays) -> dict[str, Any]:
        prepared = self._prepare(inputs)
        if self._pyfunc is not None:
            result = self._pyfunc.predict(prepared)
        else:
            assert self._inner is not None
            if self.flavour in ("onnx", "pytorch") and hasattr(prepared, "to_numpy"):
                prepared = prepared.to_numpy()
            feed = prepared if isinstance(prepared, dict) else {"input-0": prepared}
            result = self._inner.predict_arrays(feed)
        return self._outputs(result)

    def _prepare(self, inputs: Arrays) -> Any:
        specs = self._in_specs
        if not specs:
            return next(iter(inputs.values())) if len(inputs) == 1 else dict(inputs)
        if all(isinstance(s, ColumnSpec) for s in specs):
            return self._frame(inputs, [s for s in specs if isinstance(s, ColumnSpec)])
        tensors = [s for s in specs if isinstance(s, TensorSpec)]
        if len(tensors) == 1 and len(inputs) == 1:
            return _cast(next(iter(inputs.values())), tensors[0].datatype)
        out: dict[str, Any] = {}
        for i, spec in enumerate(tensors):
            key = spec.name or f"input-{i}"
            if key not in inputs:
                raise InvalidInputError(
                    f"model {self.name!r} needs input {key!r}; the request has {list(inputs)}"
                )
            out[key] = _cast(inputs[key], spec.datatype)
        return out

    def _frame(self, inputs: Arrays, specs: list[ColumnSpec]) -> Any:
        names = [s.name or str(i) for i, s in enumerate(specs)]
        columns: dict[str, np.ndarray[Any, Any]] = {}
        only = next(iter(inputs.values())) if len(inputs) == 1 else None
        if only is not None and (
            len(specs) == 1
            or next(iter(inputs)) not in names
            or (only.ndim == 2 and only.shape[1] == len(specs))
        ):
            matrix = only.reshape(len(only), -1)
            if matrix.shape[1] != len(specs):
                raise InvalidInputError(
                    f"model {self.name!r} takes {len(specs)} columns ({', '.join(names)}); "
                    f"the tensor has {matrix.shape[1]}"
                )
            for i, name in enumerate(names):
                columns[name] = matrix[:, i]
        else:
            missing = [
                n for n, s in zip(names, specs, strict=True) if s.required and n not in inputs
            ]
            if missing:
                raise InvalidInputError(
                    f"model {self.name!r} needs the columns {', '.join(names)}, as one 1-D "
                    f"tensor each or one 2-D tensor of {len(names)} columns; missing "
                    f"{', '.join(missing)}"
                )
            for name in names:
                if name in inputs:
                    columns[name] = inputs[name].reshape(len(inputs[name]), -1)[:, 0]
        for spec, name in zip(specs, names, strict=True):
            if name in columns:
                columns[name] = _cast(columns[name], spec.datatype)
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - mlflow, xgboost and lightgbm bring pandas
            return np.column_stack(list(columns.values()))
        return pd.DataFrame(columns)

    def _outputs(self, result: Any) -> dict[str, Any]:
        names = [t.name for t in signature_metadata(self._out_specs, "output")]
        if isinstance(result, dict):
            if list(result) == ["output-0"] and len(names) == 1:
                return {names[0]: np.asarray(result["output-0"])}
            return {str(k): _array(v) for k, v in result.items()}
        columns = getattr(result, "columns", None)
        if columns is not None and hasattr(result, "to_numpy"):
            if len(columns) == 1 and len(names) <= 1:
                return {names[0] if names else "output-0": result.iloc[:, 0].to_numpy()}
            return {str(c): result[c].to_numpy() for c in columns}
        return {names[0] if names else "output-0": _array(result)}

    # -- metadata ---------------------------------------------------------------------------

    def inputs_metadata(self) -> list[TensorMetadata]:
        if self._in_specs:
            return signature_metadata(self._in_specs, "input")
        return self._inner.inputs_metadata() if self._inner is not None else []

    def outputs_metadata(self) -> list[TensorMetadata]:
        if self._out_specs:
            return signature_metadata(self._out_specs, "output")
        return self._inner.outputs_metadata() if self._inner is not None else []


def _cast(arr: np.ndarray[Any, Any], datatype: str) -> np.ndarray[Any, Any]:
    if datatype == "BYTES":
        if arr.dtype == object:
            return np.array(
                [x.decode("utf-8") if isinstance(x, bytes) else x for x in arr.reshape(-1)],
                dtype=object,
            ).reshape(arr.shape)
        return arr
    want = DATATYPES.get(datatype)
    if want is not None and arr.dtype != want and arr.dtype != object:
        return arr.astype(want)
    return arr


def _array(value: Any) -> np.ndarray[Any, Any]:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    elif hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value)
