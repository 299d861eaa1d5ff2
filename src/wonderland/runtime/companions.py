"""Replica companions: processes that run beside each replica, as sidecars in a pod.

Another area (the Dapr sidecar) registers a factory; the supervisor calls every factory
for each replica it starts. A factory gets the Revision object and a :class:`ReplicaInfo`
and returns ``None`` (not for this revision) or a :class:`Companion`: processes to start
before the app, and extra environment for the app (e.g. ``DAPR_HTTP_PORT``)::

    from wonderland.runtime import companions

    def dapr_sidecar(revision: Obj, replica: ReplicaInfo) -> Companion | None:
        annotations = revision["metadata"].get("annotations", {})
        if annotations.get("dapr.io/enabled") != "true":
            return None
        http_port = replica.free_port()
        return Companion(
            processes=[CompanionProcess("daprd", ["wonderland", "sidecar", ...])],
            app_env={"DAPR_HTTP_PORT": str(http_port)},
        )

    companions.register("dapr", dapr_sidecar)

Companion processes run as native sidecars of the replica's pod (``initContainers`` with
``restartPolicy: Always``): ``kubectl logs POD -c daprd`` shows their output, the app
starts once their ``ready_port`` answers, and they stop after the app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wonderland import ports

__all__ = [
    "Companion",
    "CompanionFactory",
    "CompanionProcess",
    "ReplicaInfo",
    "factories",
    "register",
    "unregister",
]


@dataclass(frozen=True)
class ReplicaInfo:
    """One replica as a companion factory sees it."""

    namespace: str
    revision: str
    service: str
    replica: str
    app_port: int
    app_env: Mapping[str, str]
    log_dir: Path
    gateway_url: str = ""

    @staticmethod
    def free_port() -> int:
        """A free TCP port on 127.0.0.1 for a companion to listen on."""
        return ports.free_port()


@dataclass(frozen=True)
class CompanionProcess:
    """A process started beside the replica; ``ready_port`` (if set) is waited for
    (TCP connect) before the app starts."""

    name: str
    argv: list[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    ready_port: int | None = None
    # the image the process stands for on a cluster (shown in the pod; never pulled)
    image: str = ""
    # further ports it listens on, by name (shown as the pod's container ports)
    ports: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Companion:
    """What a factory adds to one replica: processes beside it and env for the app."""

    processes: list[CompanionProcess] = field(default_factory=list)
    app_env: Mapping[str, str] = field(default_factory=dict)


CompanionFactory = Callable[[dict[str, Any], ReplicaInfo], "Companion | None"]

_FACTORIES: dict[str, CompanionFactory] = {}


def register(name: str, factory: CompanionFactory) -> None:
    """Call ``factory(revision, replica)`` for every replica started from now on."""
    _FACTORIES[name] = factory


def unregister(name: str) -> None:
    """Stop calling the factory registered as ``name``."""
    _FACTORIES.pop(name, None)


def factories() -> list[tuple[str, CompanionFactory]]:
    """The registered factories, in registration order."""
    return list(_FACTORIES.items())
