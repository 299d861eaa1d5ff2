"""An MLflow model folder, read without importing mlflow: its ``MLmodel`` file (flavours,
signature), which flavour the model server loads, where that flavour's data file is, and
whether loading it would unpickle (or otherwise run) code carried by the model.

The flavour order is sklearn, xgboost, lightgbm, onnx, pytorch, then ``python_function``
(see docs/tracking.md). Storage uses :func:`code_loading` to refuse such models
from remote sources unless the InferenceService opts in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wonderland.inference.errors import ModelConfigError
from wonderland.inference.types import TensorMetadata

__all__ = [
    "FLAVOUR_ORDER",
    "MLMODEL",
    "ColumnSpec",
    "MLModel",
    "TensorSpec",
    "code_loading",
    "flavour_file",
    "read_mlmodel",
]

MLMODEL = "MLmodel"
FLAVOUR_ORDER = ("sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "python_function")

# MLflow's column types (mlflow.types.DataType) and numpy dtypes -> OIP datatypes.
_COLUMN_TYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}
_NUMPY_TYPES = {
    "float64": "FP64",
    "float32": "FP32",
    "float16": "FP16",
    "int64": "INT64",
    "int32": "INT32",
    "int16": "INT16",
    "int8": "INT8",
    "uint64": "UINT64",
    "uint32": "UINT32",
    "uint16": "UINT16",
    "uint8": "UINT8",
    "bool": "BOOL",
    "object": "BYTES",
    "str": "BYTES",
}


class TensorSpec(BaseModel):
    """``{"type": "tensor", "tensor-spec": {"dtype": ..., "shape": [...]}, "name": ...}``."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    name: str | None = None
    dtype: str
    shape: list[int] = Field(default_factory=lambda: [-1])

    @property
    def datatype(self) -> str:
        dt = self.dtype.lower()
        if dt.startswith(("<u", "<s", "|s", "str", "unicode", "bytes", "object")):
            return "BYTES"
        return _NUMPY_TYPES.get(dt, "BYTES")


class ColumnSpec(BaseModel):
    """``{"type": "double", "name": "sepal length", "required": true}``."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    type: str
    required: bool = True

    @property
    def datatype(self) -> str:
        return _COLUMN_TYPES.get(self.type, "BYTES")


Spec = TensorSpec | ColumnSpec


def _specs(raw: Any, where: str) -> list[Spec]:
    if raw in (None, "", "null"):
        return []
    items = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise ModelConfigError(f"{where}: expected a list of specs, got {type(items).__name__}")
    out: list[Spec] = []
    for item in items:
        if not isinstance(item, dict):
            raise ModelConfigError(f"{where}: a spec is an object, got {item!r}")
        if item.get("type") == "tensor":
            tensor = item.get("tensor-spec") or {}
            out.append(
                TensorSpec(
                    name=item.get("name"),
                    dtype=str(tensor.get("dtype", "float64")),
                    shape=[int(d) for d in tensor.get("shape") or [-1]],
                )
            )
        else:
            out.append(ColumnSpec.model_validate(item))
    return out


class Signature(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inputs: Any = None
    outputs: Any = None


class MLModel(BaseModel):
    """The fields of ``MLmodel`` the model server uses."""

    model_config = ConfigDict(extra="ignore")

    flavors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    signature: Signature | None = None
    mlflow_version: str | None = None
    folder: Path = Path()

    @property
    def flavour(self) -> str:
        """The flavour the model server loads (the first of :data:`FLAVOUR_ORDER`)."""
        for name in FLAVOUR_ORDER:
            if name in self.flavors:
                return name
        raise ModelConfigError(
            f"{self.folder / MLMODEL}: no flavour the model server can load (it has "
            f"{', '.join(self.flavors) or 'none'}; known: {', '.join(FLAVOUR_ORDER)})"
        )

    def conf(self, flavour: str) -> dict[str, Any]:
        return self.flavors.get(flavour) or {}

    def input_specs(self) -> list[Spec]:
        return _specs(self.signature.inputs if self.signature else None, "signature inputs")

    def output_specs(self) -> list[Spec]:
        return _specs(self.signature.outputs if self.signature else None, "signature outputs")


def read_mlmodel(folder: Path) -> MLModel | None:
    """The parsed ``MLmodel`` of ``folder``, or None when it is not an MLflow model folder."""
    path = folder / MLMODEL
    if not folder.is_dir() or not path.is_file():
        return None
    try:
        raw = yaml.safe_load(path.read_text())
        model = MLModel.model_validate(raw if isinstance(raw, dict) else {})
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ModelConfigError(f"{path} is not a readable MLmodel file: {exc}") from None
    return model.model_copy(update={"folder": folder})


# The key naming each flavour's data file (relative to the model folder).
_DATA_KEYS = {
    "sklearn": ("pickled_model",),
    "xgboost": ("data",),
    "lightgbm": ("data",),
    "onnx": ("data",),
    "pytorch": ("model_data",),
}


def flavour_file(mlmodel: MLModel, flavour: str) -> Path | None:
    """The data file of ``flavour`` (``model.skops``, ``model.ubj``, ``data/model.pth``...),
    or None when the folder has no such flavour."""
    conf = mlmodel.flavors.get(flavour)
    if conf is None:
        return None
    for key in _DATA_KEYS.get(flavour, ("data",)):
        value = conf.get(key)
        if value:
            path = (mlmodel.folder / str(value)).resolve()
            if not path.is_relative_to(mlmodel.folder.resolve()):
                raise ModelConfigError(f"{mlmodel.folder / MLMODEL}: {key} leaves the folder")
            if path.is_dir():
                # pytorch: data/ holds model.pth (pickle) or model.pt2 (torch.export)
                found = [p for p in sorted(path.iterdir()) if p.suffix in (".pth", ".pt2")]
                if found:
                    return found[0]
            if not path.exists():
                raise ModelConfigError(
                    f"{mlmodel.folder / MLMODEL}: the {flavour} flavour's {key} {value} is missing"
                )
            return path
    raise ModelConfigError(f"{mlmodel.folder / MLMODEL}: the {flavour} flavour names no data file")


_SKOPS = "skops"


def code_loading(mlmodel: MLModel) -> str | None:
    """Why loading this model may run code it carries (a pickle, a python_function's
    loader), or None when the flavour served loads from a data format (skops, xgboost,
    LightGBM text, ONNX)."""
    flavour = mlmodel.flavour
    conf = mlmodel.conf(flavour)
    if flavour == "sklearn":
        fmt = str(conf.get("serialization_format") or "cloudpickle")
        if fmt == _SKOPS:
            return None
        return f"its sklearn flavour is a {fmt} file ({conf.get('pickled_model')})"
    if flavour == "xgboost" or flavour == "onnx":
        return None
    if flavour == "lightgbm":
        model_class = str(conf.get("model_class") or "lightgbm.basic.Booster")
        if model_class == "lightgbm.basic.Booster" or conf.get("serialization_format") == _SKOPS:
            return None
        return f"its lightgbm flavour is a {conf.get('serialization_format') or 'pickle'} file"
    if flavour == "pytorch":
        return "its pytorch flavour is loaded with torch.load/torch.export.load (pickles)"
    return "it is served through mlflow.pyfunc, whose loaders unpickle or import its code"


def signature_metadata(specs: list[Spec], prefix: str) -> list[TensorMetadata]:
    """V2 tensor metadata from signature specs: a tensor spec keeps its shape (``-1``
    included); a column is a 1-D tensor ``[-1]`` named after the column."""
    out = []
    for i, spec in enumerate(specs):
        if isinstance(spec, TensorSpec):
            out.append(TensorMetadata(spec.name or f"{prefix}-{i}", spec.datatype, spec.shape))
        else:
            out.append(TensorMetadata(spec.name or f"{prefix}-{i}", spec.datatype, [-1]))
    return out
