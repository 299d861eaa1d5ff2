"""Checks and defaults of the core kinds (ConfigMap, Secret), as the API server applies them.

They are part of the Kubernetes API itself, so every store has them, with or without a
platform: :func:`core_admission` is the admission a store starts with.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from wonderland.api.admission import Admission
from wonderland.errors import InvalidError

__all__ = ["core_admission", "install", "normalize_secret"]


def _check_secret_data(new: dict[str, Any], old: dict[str, Any] | None) -> None:
    for key, value in (new.get("data") or {}).items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidError(
                f"data.{key}", "is not base64; put plain text under stringData instead"
            ) from None


def _check_immutable(new: dict[str, Any], old: dict[str, Any] | None) -> None:
    if old is None or not old.get("immutable"):
        return
    if not new.get("immutable"):
        raise InvalidError("immutable", "cannot be unset once true; delete and recreate instead")
    for field in ("data", "binaryData", "stringData"):
        if field == "stringData" and new.get(field):
            raise InvalidError(field, "is immutable (immutable: true); delete and recreate instead")
        if field != "stringData" and new.get(field) != old.get(field):
            raise InvalidError(field, "is immutable (immutable: true); delete and recreate instead")


def normalize_secret(obj: dict[str, Any]) -> None:
    """Fold ``stringData`` into base64 ``data`` and default ``type``, as Kubernetes does."""
    plain = obj.pop("stringData", None)
    if plain:
        data = dict(obj.get("data") or {})
        for key, value in plain.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data
    obj.setdefault("type", "Opaque")


def install(admission: Admission) -> None:
    """Register the core kinds' checks into ``admission``."""
    admission.register("secrets", _check_secret_data)
    admission.register("secrets", _check_immutable)
    admission.register("configmaps", _check_immutable)


def core_admission() -> Admission:
    """A new admission with the schema validation and the core kinds' checks only."""
    admission = Admission()
    install(admission)
    return admission
