"""What the control API serves from outside the store: ``pods/log`` and ``metrics.k8s.io``.

The kubelet implements both; the API only parses the request and streams the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol

__all__ = ["LogQuery", "PodLogSource", "ResourceMetricsSource"]


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
