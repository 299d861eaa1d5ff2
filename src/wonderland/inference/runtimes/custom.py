"""Custom Python models: a ``.py`` file in the model directory defining a model class.

The class is the one defined in that file with a ``predict`` (or, for a transformer,
``preprocess``/``postprocess``) method, or the one named by ``model_class``. It is built
as ``cls(name)`` (KServe's constructor) or ``cls()``.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from wonderland.inference.errors import ModelConfigError
from wonderland.inference.model import CustomModel

__all__ = ["load_custom_model"]

_HOOKS = ("predict", "preprocess", "postprocess")


def _import_file(path: Path) -> Any:
    module_name = f"wonderland_custom_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelConfigError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    parent = str(path.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ModelConfigError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def load_custom_model(
    name: str,
    model_dir: Path,
    version: str | None = None,
    model_class: str | None = None,
    predictor_host: str | None = None,
    predictor_protocol: str = "v1",
    predictor_use_ssl: bool = False,
    predictor_request_timeout_seconds: float = 600.0,
    **_: Any,
) -> CustomModel:
    files = [model_dir] if model_dir.is_file() else sorted(model_dir.glob("*.py"))
    if not files:
        raise ModelConfigError(f"{model_dir} has no .py file defining a model class")
    candidates: list[tuple[str, type]] = []
    for path in files:
        module = _import_file(path)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and value.__module__ == module.__name__
                and any(callable(getattr(value, h, None)) for h in _HOOKS)
            ):
                candidates.append((attr, value))
    if model_class:
        chosen = [c for c in candidates if c[0] == model_class]
        if not chosen:
            raise ModelConfigError(
                f"no class {model_class!r} with a predict method in {model_dir}; found "
                f"{[c[0] for c in candidates]}"
            )
    else:
        chosen = candidates
    if len(chosen) != 1:
        raise ModelConfigError(
            f"{model_dir} defines {len(chosen)} model classes "
            f"({', '.join(c[0] for c in chosen) or 'none'}); a model class has a predict, "
            "preprocess or postprocess method; pass --model_class to pick one"
        )
    cls = chosen[0][1]
    try:
        obj = cls(name)
    except TypeError:
        obj = cls()
    if not getattr(obj, "name", None):
        try:
            obj.name = name
        except AttributeError:
            pass
    predictor = None
    if predictor_host:
        from wonderland.inference.predictor import PredictorClient

        predictor = PredictorClient(
            predictor_host, predictor_protocol, predictor_use_ssl, predictor_request_timeout_seconds
        )
        # KServe's Model keeps these; transformer code may read them.
        for attr, value in (("predictor_host", predictor_host), ("protocol", predictor_protocol)):
            if getattr(obj, attr, None) is None:
                try:
                    setattr(obj, attr, value)
                except AttributeError:
                    pass
    return CustomModel(name, obj, version, predictor)
