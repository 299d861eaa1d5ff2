"""Errors of the model server, each carrying its REST status and gRPC code.

Adapters map these without knowing their meaning: ``status`` for REST,
``grpc_code`` (a ``grpc.StatusCode`` name) for gRPC.
"""

from __future__ import annotations

from wonderland.errors import ConfigError, InvalidError, NotFoundError, WonderlandError

__all__ = [
    "InferenceServerError",
    "InvalidInputError",
    "ModelConfigError",
    "ModelFailedError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "NotImplementedByModelError",
    "PayloadTooLargeError",
    "ServerBusyError",
]


class InferenceServerError(WonderlandError):
    """Base of errors a model server answers with; ``status`` and ``grpc_code`` pick the reply."""

    status: int = 500
    grpc_code: str = "INTERNAL"


class InvalidInputError(InferenceServerError, InvalidError):
    """The request is malformed: bad JSON, unknown datatype, shape and data disagree, ..."""

    status = 400
    grpc_code = "INVALID_ARGUMENT"


class ModelNotFoundError(InferenceServerError, NotFoundError):
    """No model (or version) of that name is served."""

    status = 404
    grpc_code = "NOT_FOUND"


class ModelNotReadyError(InferenceServerError):
    """The model exists but is not ready (loading, failed, unloaded)."""

    status = 503
    grpc_code = "UNAVAILABLE"


class ServerBusyError(InferenceServerError):
    """The model's request queue is full; the client should retry later."""

    status = 503
    grpc_code = "UNAVAILABLE"


class PayloadTooLargeError(InferenceServerError):
    """The request body is over the configured size limit."""

    status = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class NotImplementedByModelError(InferenceServerError):
    """The model does not offer this operation (for example ``:explain``)."""

    status = 501
    grpc_code = "UNIMPLEMENTED"


class ModelFailedError(InferenceServerError):
    """The model code raised; the message is the model's own."""

    status = 500
    grpc_code = "INTERNAL"


class ModelConfigError(ConfigError):
    """A model directory or repository cannot be served as given."""
