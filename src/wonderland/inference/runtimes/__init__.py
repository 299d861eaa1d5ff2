"""Runtimes by model format: one registry, found from the files in a model directory.

Each runtime module is imported only when a model of its format is loaded, so serving an
sklearn model never imports torch. Third parties add a format with :func:`register`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from wonderland.inference.errors import ModelConfigError

__all__ = ["RUNTIMES", "create_model", "detect_format", "register"]

# format name -> "module:Class" (lazy); the names users write in --model_format.
RUNTIMES: dict[str, str] = {
    "sklearn": "wonderland.inference.runtimes.sklearn:SKLearnRuntime",
    "xgboost": "wonderland.inference.runtimes.xgboost:XGBoostRuntime",
    "lightgbm": "wonderland.inference.runtimes.lightgbm:LightGBMRuntime",
    "onnx": "wonderland.inference.runtimes.onnx:ONNXRuntime",
    "pytorch": "wonderland.inference.runtimes.pytorch:TorchScriptRuntime",
    "huggingface": "wonderland.inference.runtimes.huggingface:create",
    "custom": "wonderland.inference.runtimes.custom:load_custom_model",
    "mlflow": "wonderland.inference.runtimes.mlflow:MLflowRuntime",
}
_ALIASES = {"torch": "pytorch", "torchscript": "pytorch", "hf": "huggingface", "python": "custom"}

_SUFFIXES: list[tuple[tuple[str, ...], str]] = [
    ((".onnx",), "onnx"),
    ((".pt", ".pth", ".torchscript"), "pytorch"),
    ((".joblib", ".pkl", ".pickle"), "sklearn"),
    ((".bst", ".ubj"), "xgboost"),
    ((".json",), "xgboost"),
    ((".txt",), "lightgbm"),
]


def register(format_name: str, target: str) -> None:
    """Add or replace a runtime: ``target`` is ``"module:ClassOrFactory"``."""
    RUNTIMES[format_name] = target


def _files(model_dir: Path) -> list[Path]:
    if model_dir.is_file():
        return [model_dir]
    return sorted(p for p in model_dir.iterdir() if p.is_file() and not p.name.startswith("."))


def detect_format(model_dir: Path) -> str:
    """The model format from the files in ``model_dir`` (see docs/inference.md)."""
    if not model_dir.exists():
        raise ModelConfigError(
            f"model directory {model_dir} does not exist; pass --model_dir pointing at the model"
        )
    if model_dir.is_dir() and (model_dir / "MLmodel").is_file():
        return "mlflow"
    files = _files(model_dir)
    if any(f.suffix == ".py" for f in files):
        return "custom"
    if model_dir.is_dir() and (model_dir / "config.json").is_file():
        return "huggingface"
    for suffixes, name in _SUFFIXES:
        if any(f.suffix in suffixes for f in files):
            return name
    found = ", ".join(f.name for f in files) or "no files"
    raise ModelConfigError(
        f"cannot tell the model format in {model_dir} (found {found}); expected model.joblib/"
        ".pkl (sklearn), .bst/.json/.ubj (xgboost), .txt (lightgbm), .onnx, .pt (TorchScript), "
        "config.json (Hugging Face), MLmodel (an MLflow model) or a .py with a model class; "
        "or pass --model_format"
    )


def model_file(model_dir: Path, suffixes: tuple[str, ...], fmt: str) -> Path:
    """The single file of the given suffixes in ``model_dir`` (or ``model_dir`` itself);
    in an MLflow model folder, the data file its ``fmt`` flavour names in ``MLmodel``."""
    if model_dir.is_dir() and (model_dir / "MLmodel").is_file():
        from wonderland.inference.mlmodel import flavour_file, read_mlmodel

        mlmodel = read_mlmodel(model_dir)
        found = flavour_file(mlmodel, fmt) if mlmodel is not None else None
        if found is not None:
            return found
        if mlmodel is not None:
            raise ModelConfigError(
                f"{model_dir} is an MLflow model without a {fmt} flavour (it has "
                f"{', '.join(mlmodel.flavors) or 'none'}); serve it with modelFormat mlflow"
            )
    files = [f for f in _files(model_dir) if f.suffix in suffixes]
    if not files:
        raise ModelConfigError(
            f"{model_dir} has no {'/'.join(suffixes)} file for the {fmt} runtime"
        )
    if len(files) > 1:
        preferred = [f for f in files if f.stem == "model"]
        if len(preferred) == 1:
            return preferred[0]
        raise ModelConfigError(
            f"{model_dir} has several {fmt} model files ({', '.join(f.name for f in files)}); "
            "keep one, or name the one to serve model" + suffixes[0]
        )
    return files[0]


def create_model(
    fmt: str, name: str, model_dir: Path, version: str | None = None, **options: Any
) -> Any:
    """Instantiate (not load) the runtime for ``fmt``."""
    fmt = _ALIASES.get(fmt, fmt)
    target = RUNTIMES.get(fmt)
    if target is None:
        raise ModelConfigError(
            f"unknown model format {fmt!r}; known formats: {', '.join(sorted(RUNTIMES))}"
        )
    module_name, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(name, model_dir, version, **options)
