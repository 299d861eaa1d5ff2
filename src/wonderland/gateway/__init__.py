"""The data plane: Host routing, traffic split, tags, activator, queue-proxy semantics.

Controllers fill a ``RoutingTable``; ``GatewayServer`` serves it.
"""

from __future__ import annotations

from wonderland.gateway.server import GatewayServer
from wonderland.gateway.table import Endpoint, HostRoute, RevisionTarget, RoutingTable

__all__ = ["Endpoint", "GatewayServer", "HostRoute", "RevisionTarget", "RoutingTable"]
