from __future__ import annotations

from quickstart_platform import quickstart  # noqa: F401  (the session fixture)
