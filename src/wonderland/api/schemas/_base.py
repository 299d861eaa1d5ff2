"""The pydantic base every schema model uses: strict types, unknown fields refused."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["AnyMap", "Quantity", "Schema", "StringMap"]

StringMap = dict[str, str]
AnyMap = dict[str, Any]
# A Kubernetes quantity: "500m", "1Gi", 2, 0.5.
Quantity = str | int | float


class Schema(BaseModel):
    """A manifest fragment: field types as on the cluster, no field it does not know."""

    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())
