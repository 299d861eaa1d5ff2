"""Dapr-compatible building blocks: state, pub/sub, secrets, configuration, invocation, resiliency.

``wonderland sidecar`` serves Dapr's HTTP and gRPC APIs from the same Component,
Subscription, Resiliency and Configuration YAML that real Dapr reads, so the official
``dapr`` SDK works unchanged. See docs/dapr.md.
"""

from __future__ import annotations

from wonderland.dapr.errors import APIError, DaprError
from wonderland.dapr.runtime import DaprRuntime, RuntimeOptions
from wonderland.dapr.sidecar import Sidecar, SidecarProcess, free_port

__all__ = [
    "APIError",
    "DaprError",
    "DaprRuntime",
    "RuntimeOptions",
    "Sidecar",
    "SidecarProcess",
    "free_port",
]
