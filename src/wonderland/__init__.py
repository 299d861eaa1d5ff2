"""wonderland: Knative, Dapr and KServe's self-service APIs on one machine."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
