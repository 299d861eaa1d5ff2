"""Resource kinds: the names, scopes and printer columns of every kind wonderland serves.

The values match the CRDs and built-in types of Knative Serving, KServe, Dapr and core
Kubernetes, so that kubectl and the ``kubernetes`` client resolve the same short names
and print the same columns as on a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PrinterColumn", "ResourceKind"]


@dataclass(frozen=True)
class PrinterColumn:
    """One column of ``get`` output, as a CRD's ``additionalPrinterColumns`` entry."""

    name: str
    type: str
    json_path: str
    priority: int = 0
    description: str = ""
    format: str = ""


@dataclass(frozen=True)
class ResourceKind:
    """A kind of object the store keeps and the control API serves.

    ``version`` is the preferred (storage) version; ``versions`` lists every version
    accepted on input and served by discovery (the preferred one first).
    """

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...] = ()
    namespaced: bool = True
    categories: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = ()
    versions: tuple[str, ...] = field(default=())
    subresources: tuple[str, ...] = ("status",)
    # Built-in kinds print computed cells (kubectl's STATUS of a pod): ``row(obj)`` gives
    # every cell of ``printer_columns``, which then include the Name column.
    row: Callable[[dict[str, Any]], list[Any]] | None = field(default=None, compare=False)
    # Deleting a running object only marks it (deletionTimestamp); its controller finishes
    # the deletion once the object stopped, as the kubelet does for a pod.
    graceful_deletion: bool = False
    # What clients may do; read-only views (metrics.k8s.io) list only get and list.
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    # Subresources served for reading only (``pods/log``).
    read_subresources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.versions:
            object.__setattr__(self, "versions", (self.version,))

    @property
    def resource(self) -> str:
        """The key objects are stored under: ``<plural>.<group>`` (``<plural>`` for core)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        """The preferred ``apiVersion`` string: ``<group>/<version>`` (``v1`` for core)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def api_versions(self) -> tuple[str, ...]:
        """Every accepted ``apiVersion`` string, preferred first."""
        return tuple(f"{self.group}/{v}" if self.group else v for v in self.versions)

    def list_kind(self) -> str:
        return f"{self.kind}List"
