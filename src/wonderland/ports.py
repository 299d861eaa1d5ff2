"""Free TCP ports for servers started later: replicas, sidecars, companions, notebooks,
rendezvous of training jobs, the tracking and Prometheus servers.

A port from ``bind(0)`` comes from the kernel's ephemeral range, which is also where the
local ports of outgoing connections come from. Between picking such a port and the server's
``listen()``, a busy machine's next outgoing connection can take it, and the server fails
with EADDRINUSE. So ports are picked at random outside that range, checked free by binding
them, and not handed out again by this process while recent.
"""

from __future__ import annotations

import random
import socket
from collections import deque
from pathlib import Path

__all__ = ["free_port"]

_LINUX_DEFAULT = (32768, 60999)
_RECENT = 4096  # ports handed out lately, not handed out again


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return _LINUX_DEFAULT


def _picking_range(ephemeral: tuple[int, int]) -> tuple[int, int] | None:
    """The widest span of unprivileged ports outside ``ephemeral``, from 10000 up (below
    that live well-known services); None when there is no room worth picking from."""
    low, high = ephemeral
    below = (10000, low - 1)
    above = (high + 1, 65535)
    best = max(below, above, key=lambda span: span[1] - span[0])
    return best if best[1] - best[0] >= 1000 else None


_SPAN = _picking_range(_ephemeral_range())
_recent: deque[int] = deque(maxlen=_RECENT)
_recent_set: set[int] = set()


def _remember(port: int) -> int:
    if len(_recent) == _recent.maxlen:
        _recent_set.discard(_recent[0])
    _recent.append(port)
    _recent_set.add(port)
    return port


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing is bound to now (see the module docstring)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if _SPAN is not None:
        for _ in range(200):
            port = random.randint(*_SPAN)
            if port in _recent_set:
                continue
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
            return _remember(port)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return _remember(int(sock.getsockname()[1]))
