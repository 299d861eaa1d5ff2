"""The Open Inference Protocol model server (``wonderland serve``).

Public entry points: :func:`serve` / :class:`ServerOptions` to run a server, and the
types custom models see (:class:`Model`, :class:`InferRequest`, :class:`InferResponse`,
:class:`InferInput`, :class:`InferOutput`). Heavy parts load lazily.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "Model",
    "ServerOptions",
    "serve",
]

_LAZY = {
    "InferInput": "wonderland.inference.types",
    "InferOutput": "wonderland.inference.types",
    "InferRequest": "wonderland.inference.types",
    "InferResponse": "wonderland.inference.types",
    "Model": "wonderland.inference.model",
    "ServerOptions": "wonderland.inference.server",
    "serve": "wonderland.inference.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wonderland.inference' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
