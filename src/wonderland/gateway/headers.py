"""The gateway's one HTTP header layer, shared by every protocol pairing and the tunnels.

HTTP/1.1 to HTTP/1.1, HTTP/1.1 to an h2c revision, HTTP/2 to an HTTP/1.1 revision and
HTTP/2 to HTTP/2 all drop the same hop-by-hop headers (RFC 9110 section 7.6.1, plus the
ones a client's ``Connection`` header names) and add the same forwarding headers
(``X-Forwarded-For``, RFC 7239 ``Forwarded``, ``X-Forwarded-Proto``), from the functions
here. The HTTP/1.1 path works on raw bytes, the HTTP/2 paths on the ``str`` names the
``h2`` library hands over; both sets come from the one list below.
"""

from __future__ import annotations

__all__ = [
    "FRAMING",
    "HOP_BY_HOP",
    "HOP_BY_HOP_STR",
    "REASONS",
    "TAG_HEADER",
    "connection_named",
    "error_response",
    "forwarding",
    "forwarding_str",
    "keeps_te",
]

# RFC 9110 7.6.1 and the de-facto proxy headers: meaningful for one connection only,
# never forwarded (``proxy-authorization`` carries the client's credentials for *this*
# proxy: a replica must never see it).
HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
HOP_BY_HOP_STR: frozenset[str] = frozenset(n.decode("ascii") for n in HOP_BY_HOP)
# The message framing the gateway writes itself for the replica's connection.
FRAMING: frozenset[bytes] = frozenset({b"content-length", b"expect"})
TAG_HEADER = b"knative-serving-tag"

REASONS = {
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


def error_response(status: int, message: str, keep_alive: bool = True) -> bytes:
    """A complete plain-text HTTP/1.1 error response."""
    body = message.encode() + b"\n"
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Error")),
            b"Content-Type: text/plain; charset=utf-8\r\n",
            b"Content-Length: %d\r\n" % len(body),
            b"" if keep_alive else b"Connection: close\r\n",
            b"\r\n",
            body,
        )
    )


def connection_named(value: bytes) -> frozenset[bytes]:
    """The header names a ``Connection`` header lists (lower case): hop-by-hop too."""
    return frozenset(t.strip().lower() for t in value.split(b",") if t.strip())


def keeps_te(value: bytes) -> bool:
    """Whether a ``TE`` value asks for trailers: the one TE that is forwarded (as
    ``te: trailers``, what gRPC needs and the only TE HTTP/2 allows)."""
    return any(t.split(b";")[0].strip().lower() == b"trailers" for t in value.split(b","))


def forwarding(client_ip: bytes, host: bytes, xff: bytes, fwd: bytes) -> tuple[bytes, bytes]:
    """The ``X-Forwarded-For`` and ``Forwarded`` values for a request from ``client_ip``
    to ``host``, appended to what the client sent (``xff``, ``fwd``)."""
    node = b'"[' + client_ip + b']"' if b":" in client_ip else client_ip
    own = b"for=" + node + b";proto=http"
    if host:
        # RFC 7239: a value with ":" (a port) is not a token and must be quoted
        own += b';host="' + host + b'"' if b":" in host else b";host=" + host
    return (
        xff + b", " + client_ip if xff else client_ip,
        fwd + b", " + own if fwd else own,
    )


def forwarding_str(client_ip: str, host: str, xff: str, fwd: str) -> list[tuple[str, str]]:
    """``forwarding`` as HTTP/2 header fields (lower-case names, ``str`` values)."""
    x, f = forwarding(
        client_ip.encode("latin-1"),
        host.encode("latin-1"),
        xff.encode("latin-1"),
        fwd.encode("latin-1"),
    )
    return [("x-forwarded-for", x.decode("latin-1")), ("forwarded", f.decode("latin-1"))]
