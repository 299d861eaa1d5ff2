"""What one HTTP/2 connection of the gRPC server may cost: the limits and their defaults.

The defaults follow the servers a gRPC client meets elsewhere: nghttp2's rapid-reset
budget (CVE-2023-44487: a burst of 1000 stream resets, then 33 a second), Envoy's
consecutive empty-frame limit, its 60 KiB header list and one-hour idle timeout,
nghttp2's cap on CONTINUATION frames (CVE-2024-27316 and its kin). A peer that goes
over a flood limit gets GOAWAY ``ENHANCE_YOUR_CALM`` and the connection is closed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["H2Limits", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class H2Limits:
    """Limits of one connection; every field has the default documented in docs/dapr.md."""

    max_concurrent_streams: int = 1000
    """SETTINGS_MAX_CONCURRENT_STREAMS: streams past it are refused (REFUSED_STREAM)."""
    max_header_list_size: int = 64 * 1024
    """SETTINGS_MAX_HEADER_LIST_SIZE (RFC 7541 sizes: name + value + 32 per field).

    A request over it fails alone (RESOURCE_EXHAUSTED); one over twice it, or a header
    block over four times it in encoded bytes, ends the connection."""
    header_table_size: int = 4096
    """SETTINGS_HEADER_TABLE_SIZE: the most the client's encoder may put in our table."""
    stream_window: int = 1 << 20
    """Receive window of a stream: what a client stream may send ahead of its handler."""
    connection_window: int = 1 << 24
    """Receive window of the connection, across its streams."""
    max_queued_messages: int = 64
    """Parsed messages a client-streaming handler may have waiting; past it, bytes stay
    unacknowledged in the stream window until the handler reads."""
    max_continuation_frames: int = 16
    """CONTINUATION frames in one header block (a 256 KiB block at 16 KiB frames)."""
    max_consecutive_empty_frames: int = 1
    """DATA, HEADERS or CONTINUATION frames in a row with no payload and no END_STREAM."""
    reset_burst: int = 1000
    reset_rate: float = 33.0
    """Streams reset by the client or refused by us: a burst, then so many a second."""
    ping_burst: int = 100
    ping_rate: float = 10.0
    """PING frames (not acknowledgements): a burst, then so many a second."""
    settings_burst: int = 100
    settings_rate: float = 10.0
    """SETTINGS frames (not acknowledgements): a burst, then so many a second."""
    header_timeout: float = 10.0
    """Seconds for the client preface and for a header block split over CONTINUATIONs."""
    idle_timeout: float | None = 3600.0
    """Seconds without a stream before the connection is closed (GOAWAY NO_ERROR)."""

    def __post_init__(self) -> None:
        for name in (
            "max_concurrent_streams",
            "max_header_list_size",
            "stream_window",
            "connection_window",
            "max_queued_messages",
            "max_continuation_frames",
            "reset_burst",
            "ping_burst",
            "settings_burst",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"H2Limits.{name} must be at least 1, not {getattr(self, name)}")
        for name in ("stream_window", "connection_window"):
            if not 65535 <= getattr(self, name) <= (1 << 31) - 1:
                raise ValueError(f"H2Limits.{name} must be from 65535 (the default) to 2**31-1")
        if self.header_table_size < 0 or self.max_consecutive_empty_frames < 0:
            raise ValueError("H2Limits.header_table_size and its empty-frame limit must be >= 0")
        if self.header_table_size > self.max_header_list_size // 4:
            raise ValueError("H2Limits.header_table_size must be at most max_header_list_size/4")
        if self.header_timeout <= 0 or (self.idle_timeout is not None and self.idle_timeout <= 0):
            raise ValueError("H2Limits timeouts must be positive seconds (idle_timeout: or None)")


class TokenBucket:
    """``burst`` events at once, refilled at ``rate`` a second."""

    __slots__ = ("_at", "_burst", "_rate", "_tokens")

    def __init__(self, burst: int, rate: float) -> None:
        self._burst = float(burst)
        self._rate = rate
        self._tokens = float(burst)
        self._at = time.monotonic()

    def spend(self) -> bool:
        """Take one token; False when the budget is gone."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
