"""``python -m wonderland.training.initializers dataset|model [--dest DIR]``."""

from __future__ import annotations

from wonderland.training.initializers._program import main

raise SystemExit(main())
