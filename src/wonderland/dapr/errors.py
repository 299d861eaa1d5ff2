"""Errors of the Dapr-compatible sidecar, each carrying Dapr's wire identity.

An :class:`APIError` knows the HTTP status, the legacy ``errorCode`` (``ERR_...``), the
gRPC status code name and the rich-error ``reason`` (``DAPR_...``) that daprd answers
with for the same situation, so the HTTP and gRPC adapters only translate.
"""

from __future__ import annotations

from wonderland.errors import ConfigError, ConflictError, InvalidError, WonderlandError

__all__ = [
    "APIError",
    "ComponentConfigError",
    "DaprError",
    "ETagInvalidError",
    "ETagMismatchError",
    "ResourceError",
]


class DaprError(WonderlandError):
    """Base of the sidecar's errors."""


class ResourceError(ConfigError, DaprError):
    """A Component, Subscription, Resiliency or Configuration resource is wrong."""


class ComponentConfigError(ResourceError):
    """A component's metadata is missing a field, has an unknown one, or a bad value."""


class ETagMismatchError(ConflictError, DaprError):
    """The ETag sent with a write does not match the stored one (HTTP 409, gRPC ABORTED)."""


class ETagInvalidError(InvalidError, DaprError):
    """The ETag sent with a write is not in the store's format (HTTP 400)."""


class APIError(DaprError):
    """An error answered to a client, with Dapr's status codes and error codes."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        grpc_code: str = "INTERNAL",
        reason: str = "",
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.grpc_code = grpc_code
        self.reason = reason
        self.metadata = metadata or {}

    def body(self) -> dict[str, object]:
        """The JSON error body daprd sends: ``{errorCode, message[, details]}``."""
        out: dict[str, object] = {"errorCode": self.code, "message": self.message}
        if self.reason:
            out["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "domain": "dapr.io",
                    "reason": self.reason,
                    "metadata": self.metadata,
                }
            ]
        return out
