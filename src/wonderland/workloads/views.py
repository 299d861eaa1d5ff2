"""Typed read-only views of what the workload controllers read besides a spec: object
metadata, owner references, conditions and timestamps.

The spec models in :mod:`wonderland.api.schemas` refuse unknown fields, as the API server
does; these views ignore them, because a status or a metadata block carries fields other
writers add (the kubelet, kubectl, other controllers).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ConditionView",
    "ConditionsView",
    "ObjectMetaView",
    "OwnerRefView",
    "View",
    "format_time",
    "parse_time",
]

Obj = dict[str, Any]


class View(BaseModel):
    """A typed view of a stored fragment: known fields typed, the rest ignored."""

    model_config = ConfigDict(extra="ignore")


class OwnerRefView(View):
    """One ``metadata.ownerReferences`` entry."""

    apiVersion: str = ""
    kind: str = ""
    name: str = ""
    uid: str = ""
    controller: bool | None = None
    blockOwnerDeletion: bool | None = None


class ObjectMetaView(View):
    """The ``metadata`` of a stored object."""

    name: str = ""
    namespace: str = ""
    uid: str = ""
    resourceVersion: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    finalizers: list[str] = Field(default_factory=list)
    ownerReferences: list[OwnerRefView] = Field(default_factory=list)
    creationTimestamp: str | None = None
    deletionTimestamp: str | None = None
    deletionGracePeriodSeconds: int | None = None

    def controller(self) -> OwnerRefView | None:
        """The owner reference with ``controller: true`` (metav1.GetControllerOf)."""
        return next((ref for ref in self.ownerReferences if ref.controller), None)


class ConditionView(View):
    """A status condition (Job, Pod): type, status, reason, message and times."""

    type: str
    status: str = ""
    reason: str = ""
    message: str = ""
    lastProbeTime: str | None = None
    lastTransitionTime: str | None = None

    def to_dict(self) -> Obj:
        """The condition as the API server serialises it (empty reason/message left out)."""
        out: Obj = {"type": self.type, "status": self.status}
        if self.lastProbeTime:
            out["lastProbeTime"] = self.lastProbeTime
        if self.lastTransitionTime:
            out["lastTransitionTime"] = self.lastTransitionTime
        if self.reason:
            out["reason"] = self.reason
        if self.message:
            out["message"] = self.message
        return out


class ConditionsView(View):
    """A status whose ``conditions`` are metav1 Conditions (TrainJob, OptimizationJob):
    looked up by type, set as ``meta.SetStatusCondition`` sets them."""

    conditions: list[ConditionView] = Field(default_factory=list)

    def find(self, kind: str) -> ConditionView | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def is_true(self, kind: str) -> bool:
        found = self.find(kind)
        return found is not None and found.status == "True"

    def finished(self) -> bool:
        """``Complete`` or ``Failed`` is True."""
        return self.is_true("Complete") or self.is_true("Failed")

    def set(self, kind: str, status: str, reason: str, message: str, now: datetime) -> None:
        """meta.SetStatusCondition: the transition time moves only when the status does."""
        found = self.find(kind)
        if found is None:
            self.conditions.append(
                ConditionView(
                    type=kind,
                    status=status,
                    reason=reason,
                    message=message,
                    lastTransitionTime=format_time(now),
                )
            )
            return
        if found.status != status:
            found.status = status
            found.lastTransitionTime = format_time(now)
        found.reason = reason
        found.message = message

    def conditions_dict(self) -> Obj:
        """``{"conditions": [...]}`` as serialised, or ``{}`` when there are none."""
        return {"conditions": [c.to_dict() for c in self.conditions]} if self.conditions else {}


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp of the API (``2024-05-01T10:00:00Z``) as an aware datetime."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """A timestamp as the API server stores them: UTC, whole seconds (metav1.Time)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
