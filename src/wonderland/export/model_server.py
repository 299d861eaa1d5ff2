"""The model server's image: one name for ``wonderland export`` (the ClusterServingRuntime
points at it) and ``wonderland build --model-server`` (which builds it)."""

from __future__ import annotations

from collections.abc import Iterable

from wonderland import __version__

__all__ = [
    "FORMAT_EXTRAS",
    "MODEL_SERVER_GRPC_PORT",
    "MODEL_SERVER_HTTP_PORT",
    "MODEL_SERVER_NAME",
    "extras_for",
    "model_server_ref",
]

MODEL_SERVER_NAME = "model-server"
MODEL_SERVER_HTTP_PORT = 8080
MODEL_SERVER_GRPC_PORT = 8081  # KServe's default gRPC port (its model_server.py)
# The model formats of an InferenceService and the package extras that serve them.
FORMAT_EXTRAS = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "onnx": "onnx",
    "pytorch": "torch",
    "huggingface": "huggingface",
    "mlflow": "mlflow",
}


def model_server_ref(registry: str | None, extras: Iterable[str] = ()) -> str:
    """``REG/model-server:<version>[-<extra>...]`` (``wonderland/model-server:...`` with
    no registry): the tag names the extras the image holds (sorted), so that images
    built for other model formats do not take each other's name."""
    repo = registry.rstrip("/") if registry else "wonderland"
    tag = "-".join([__version__, *sorted(set(extras))])
    return f"{repo}/{MODEL_SERVER_NAME}:{tag}"


def extras_for(formats: Iterable[str]) -> list[str]:
    """The extras that serve ``formats`` (model format names), sorted; formats the core
    serves alone (custom) need none."""
    return sorted({FORMAT_EXTRAS[f] for f in formats if f in FORMAT_EXTRAS})
