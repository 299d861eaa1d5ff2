"""The building blocks the sidecar core is assembled from (one mixin each)."""

from __future__ import annotations
