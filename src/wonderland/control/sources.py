"""What the control API serves from outside the store: ``pods/log``, ``metrics.k8s.io``
and object actions (a POST on an object's subresource that another component answers and
authenticates itself, such as the trainer status endpoint).

The kubelet implements the first two; the API only parses the request and streams the
answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

__all__ = [
    "ActionRegistry",
    "ControlEndpoint",
    "LogQuery",
    "ObjectAction",
    "PodLogSource",
    "ResourceMetricsSource",
]


class LogQuery:
    """``kubectl logs`` options as the API receives them."""

    def __init__(
        self,
        container: str | None = None,
        follow: bool = False,
        previous: bool = False,
        tail_lines: int | None = None,
        timestamps: bool = False,
        since: datetime | None = None,
        limit_bytes: int | None = None,
    ) -> None:
        self.container = container
        self.follow = follow
        self.previous = previous
        self.tail_lines = tail_lines
        self.timestamps = timestamps
        self.since = since
        self.limit_bytes = limit_bytes


class PodLogSource(Protocol):
    """Reads a container's log: the whole of it, or it and what follows."""

    def read(self, namespace: str, pod: str, query: LogQuery) -> bytes:
        """Raise ``NotFoundError`` for an unknown pod, ``InvalidError``-like
        ``LogRequestError`` (400) for an unknown or not yet started container."""
        ...

    def follow(self, namespace: str, pod: str, query: LogQuery) -> AsyncIterator[bytes]: ...


class ResourceMetricsSource(Protocol):
    """``metrics.k8s.io/v1beta1`` NodeMetrics and PodMetrics, measured now."""

    async def node_metrics(self) -> list[dict[str, Any]]: ...

    async def pod_metrics(self, namespace: str | None) -> list[dict[str, Any]]: ...


class ObjectAction(Protocol):
    """A POST on ``<object>/<subresource>`` served by another component.

    The control API routes it before its own authentication: the action authenticates the
    caller itself (a pod's projected token, not the kubeconfig's). ``body`` is at most
    ``max_body`` bytes (the API answers 413 beyond). Returns the HTTP code and a JSON body.
    """

    max_body: int

    async def __call__(
        self, namespace: str, name: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]: ...


@dataclass
class ActionRegistry:
    """Object actions by (resource, subresource), e.g. ``("trainjobs.trainer.kubeflow.org",
    "status")``; plugins add theirs at install time."""

    actions: dict[tuple[str, str], ObjectAction] = field(default_factory=dict)

    def add(self, resource: str, subresource: str, action: ObjectAction) -> None:
        self.actions[(resource, subresource)] = action

    def get(self, resource: str, subresource: str) -> ObjectAction | None:
        return self.actions.get((resource, subresource))


@dataclass(frozen=True)
class ControlEndpoint:
    """Where the control API listens (``https://127.0.0.1:<port>``) and the PEM of the
    certificate it presents, for components that point programs at it."""

    url: str
    ca_pem: bytes
