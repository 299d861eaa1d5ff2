"""Knative-style status conditions (``knative.dev/pkg/apis`` Conditions)."""

from __future__ import annotations

import datetime
from typing import Any

__all__ = ["condition", "get_condition", "is_true", "set_condition"]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(ctype: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    """A condition object."""
    cond: dict[str, Any] = {"type": ctype, "status": status}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def get_condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    """The condition of type ``ctype`` in ``obj``'s status, or None."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def is_true(obj: dict[str, Any] | None, ctype: str = "Ready") -> bool:
    """Whether ``obj``'s condition ``ctype`` has status True."""
    cond = get_condition(obj, ctype)
    return cond is not None and cond.get("status") == "True"


def set_condition(
    previous: list[dict[str, Any]] | None,
    ctype: str,
    status: str,
    reason: str = "",
    message: str = "",
) -> list[dict[str, Any]]:
    """Conditions with ``ctype`` set; ``lastTransitionTime`` changes only with the status."""
    out = [dict(c) for c in previous or [] if c.get("type") != ctype]
    old = next((c for c in previous or [] if c.get("type") == ctype), None)
    new = condition(ctype, status, reason, message)
    if old is not None and old.get("status") == status and old.get("lastTransitionTime"):
        new["lastTransitionTime"] = old["lastTransitionTime"]
    else:
        new["lastTransitionTime"] = _now()
    if ctype != "Ready" and status != "True":
        new["severity"] = "Error" if ctype in ("ContainerHealthy", "ResourcesAvailable") else ""
        if not new["severity"]:
            del new["severity"]
    out.append(new)
    order = {"Ready": 0}
    out.sort(key=lambda c: (order.get(c["type"], 1), c["type"]))
    return out
