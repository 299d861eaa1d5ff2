"""The Kubernetes-shaped HTTPS control API (see :class:`ControlAPI`)."""

from __future__ import annotations

from wonderland.control.app import ControlAPI, status_body

__all__ = ["ControlAPI", "status_body"]
