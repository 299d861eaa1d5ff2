"""``python -m wonderland.monitoring.drift``: the drift detector (image
``wonderland/drift-detector``); see :mod:`wonderland.monitoring.drift.cli`."""

from __future__ import annotations

import sys

from wonderland.monitoring.drift.cli import main

if __name__ == "__main__":
    sys.exit(main())
