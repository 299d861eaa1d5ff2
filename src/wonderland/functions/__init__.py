"""Functions: Knative Functions-compatible templates, loader, ``func.yaml`` and deploy.

``wonderland func create / run / deploy / invoke`` are thin commands over this package.
A function folder written here works unchanged with Knative's ``func``.
"""

from __future__ import annotations

from wonderland.functions.create import CreatedFunction, create_function
from wonderland.functions.funcyaml import FunctionConfig, load_config, parse_config

__all__ = [
    "CreatedFunction",
    "FunctionConfig",
    "create_function",
    "load_config",
    "parse_config",
]
