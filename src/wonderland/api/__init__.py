"""Resource kinds, schemas, validation and the admission seam.

Objects are plain JSON-like dicts shaped like Kubernetes objects (:data:`Obj`).
"""

from __future__ import annotations

from wonderland.api import admission, registry
from wonderland.api.admission import Obj
from wonderland.api.kinds import PrinterColumn, ResourceKind

__all__ = ["Obj", "PrinterColumn", "ResourceKind", "admission", "registry"]
