"""gRPC status codes, the abort exception and the servicer context handlers receive."""

from __future__ import annotations

import base64
import enum
import time
from collections.abc import Iterable, Sequence
from typing import NoReturn

__all__ = ["Metadata", "RpcAbort", "ServicerContext", "StatusCode"]

Metadata = Sequence[tuple[str, str | bytes]]


class StatusCode(enum.IntEnum):
    """The status codes of the gRPC protocol (grpc/doc/statuscodes.md)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class RpcAbort(Exception):
    """Ends the call with ``code`` and ``details``; raised by :meth:`ServicerContext.abort`."""

    def __init__(self, code: StatusCode, details: str, trailing_metadata: Metadata = ()) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.trailing_metadata = tuple(trailing_metadata)


class ServicerContext:
    """What a handler may ask of its call: the request metadata, the deadline, the peer.

    The subset of ``grpc.aio.ServicerContext`` that handlers written for grpcio use,
    so a servicer class runs on this server unchanged.
    """

    __slots__ = ("_deadline", "_metadata", "_peer", "trailing_metadata")

    def __init__(
        self, metadata: tuple[tuple[str, str | bytes], ...], deadline: float | None, peer: str
    ) -> None:
        self._metadata = metadata
        self._deadline = deadline
        self._peer = peer
        self.trailing_metadata: tuple[tuple[str, str | bytes], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        """The request's custom metadata, ``-bin`` values decoded to bytes."""
        return self._metadata

    async def abort(
        self, code: StatusCode, details: str = "", trailing_metadata: Metadata = ()
    ) -> NoReturn:
        """End the call now with ``code``; never returns."""
        raise RpcAbort(StatusCode(int(code)), details, trailing_metadata)

    def set_trailing_metadata(self, trailing_metadata: Iterable[tuple[str, str | bytes]]) -> None:
        self.trailing_metadata = tuple(trailing_metadata)

    def time_remaining(self) -> float | None:
        """Seconds left before the client's deadline, or None without one."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def peer(self) -> str:
        return self._peer


def decode_bin(value: str) -> bytes:
    """A ``-bin`` metadata value: base64, padded or not (both are allowed on the wire)."""
    return base64.b64decode(value + "=" * (-len(value) % 4))
