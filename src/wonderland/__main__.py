from __future__ import annotations

from wonderland.cli import main

raise SystemExit(main())
