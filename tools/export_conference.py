"""Regenerate ``examples/conference/cluster/`` with ``wonderland export``.

The folder is the conference demo as a cluster needs it: run this after changing the
demo's manifests or its apps (an app's source digest names its image), from anywhere::

    python tools/export_conference.py

``tests/export/test_export_example.py`` fails when the committed folder and a fresh
export differ.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# kind's local registry (docs/cluster.md) and the domain the demo uses on this machine,
# so that the cluster answers the same URLs.
ARGS = [
    "export",
    "-f",
    "examples/conference",
    "-o",
    "examples/conference/cluster",
    "--registry",
    "localhost:5001",
    "--domain",
    "127.0.0.1.sslip.io",
]


def main() -> int:
    sys.path.insert(0, str(ROOT / "src"))
    from wonderland.cli import main as cli

    os.chdir(ROOT)
    return cli(ARGS)


if __name__ == "__main__":
    raise SystemExit(main())
