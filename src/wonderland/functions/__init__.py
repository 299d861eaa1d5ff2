"""Functions: Knative Functions-compatible templates, loader, ``func.yaml`` and deploy.

``wonderland func create / run / deploy / invoke`` are thin commands over this package.
A function folder written here works unchanged with Knative's ``func``. Submodules are
imported on first use so that a function replica starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CreatedFunction",
    "FunctionConfig",
    "create_function",
    "load_config",
    "parse_config",
]

_LAZY = {
    "CreatedFunction": "wonderland.functions.create",
    "create_function": "wonderland.functions.create",
    "FunctionConfig": "wonderland.functions.funcyaml",
    "load_config": "wonderland.functions.funcyaml",
    "parse_config": "wonderland.functions.funcyaml",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wonderland.functions' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
