"""What one client may make the gateway hold: the limits and their defaults.

Every value here is listed with its default in docs/security.md. The request-body limit,
the header and idle timeouts and the activator's byte budget are settings
(``WONDERLAND_GATEWAY_MAX_BODY_BYTES``, ``WONDERLAND_GATEWAY_HEADER_TIMEOUT``,
``WONDERLAND_GATEWAY_IDLE_TIMEOUT``, ``WONDERLAND_GATEWAY_QUEUE_MAX_BYTES``); the others are fixed here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GatewayLimits"]


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    """Limits of the gateway's client connections; see docs/security.md."""

    max_body_bytes: int = 64 * 1024 * 1024
    """The largest request body (HTTP/1.1 and HTTP/2 alike); past it, 413. An HTTP/1.1
    body that comes with its head is held until it is complete, so that the request can be
    retried on another replica; one still arriving after its head streams to the replica."""
    max_header_bytes: int = 64 * 1024
    """Request line and headers of an HTTP/1.1 request together; past it, 431."""
    header_timeout: float = 30.0
    """Seconds a client has to send a complete request head (from the connection's first
    byte, or the request's), and the most a request body may pause between two reads;
    past it, 408 and the connection is closed (slowloris). A streamed body whose response
    has begun may pause up to ``idle_timeout`` instead. An HTTP/2 client must send its
    preface within this time too."""
    idle_timeout: float = 3600.0
    """Seconds a client connection may stay open with no request under way (an HTTP/1.1
    keep-alive connection between requests, an HTTP/2 connection with no open stream);
    then it is closed, an HTTP/2 one with GOAWAY ``NO_ERROR`` first (Envoy's
    ``idle_timeout``, one hour by default)."""
    max_pipelined: int = 16
    """HTTP/1.1 requests read ahead on one connection while an earlier one is answered;
    past it, the gateway stops reading from that client until it catches up."""
    queue_max_bytes: int = 256 * 1024 * 1024
    """Request bytes a revision's activator/concurrency queue may hold (beside
    ``ACTIVATOR_QUEUE_DEPTH`` requests); past it, 503 as Knative's activator answers a full
    queue."""
    h2_max_concurrent_streams: int = 1000
    """SETTINGS_MAX_CONCURRENT_STREAMS the gateway advertises to HTTP/2 clients; a stream
    past it is refused with RST_STREAM ``REFUSED_STREAM`` (the connection stays open), and
    refusals count as resets against the flood limit below."""
    h2_max_header_list_size: int = 64 * 1024
    """SETTINGS_MAX_HEADER_LIST_SIZE (RFC 7541 sizes) for HTTP/2 clients."""
    h2_reset_burst: int = 1000
    h2_reset_rate: float = 33.0
    """Streams an HTTP/2 client resets: a burst, then so many a second (CVE-2023-44487)."""
    h2_ping_burst: int = 100
    h2_ping_rate: float = 10.0
    """PING frames from an HTTP/2 client: a burst, then so many a second."""
    h2_settings_burst: int = 100
    h2_settings_rate: float = 10.0
    """SETTINGS frames from an HTTP/2 client: a burst, then so many a second."""
    h2_max_empty_frames: int = 100
    """DATA frames in a row with no payload and no END_STREAM. Past a flood limit the
    client gets GOAWAY ``ENHANCE_YOUR_CALM`` and the connection is closed."""

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_header_bytes",
            "max_pipelined",
            "queue_max_bytes",
            "h2_max_concurrent_streams",
            "h2_max_header_list_size",
            "h2_reset_burst",
            "h2_ping_burst",
            "h2_settings_burst",
            "h2_max_empty_frames",
        ):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"GatewayLimits.{name} must be at least 1, not {getattr(self, name)}"
                )
        if self.header_timeout <= 0:
            raise ValueError("GatewayLimits.header_timeout must be more than 0 seconds")
        if self.idle_timeout <= 0:
            raise ValueError("GatewayLimits.idle_timeout must be more than 0 seconds")
