"""The lowest-versions check: install every dependency at the floor pyproject.toml states and
run a smoke test, so that a floor that does not work fails here rather than on a user's
machine.

``python tools/lowest_versions.py`` (``make lowest``) reads the ``>=`` floors of the base
dependencies and of the component extras (``[all]``), writes them as a pip constraints file
(``name==floor``: pip has no lowest-versions resolution of its own), installs the package
with them in a throwaway virtual environment and runs ``tools/lowest_smoke.py`` there:

- every module of the package imports (modules that need an extra outside the base and
  ``[all]``, such as mlflow or torch, are skipped by name), which runs the version checks of
  the generated protobuf and gRPC code;
- ``wonderland sidecar`` answers the Dapr HTTP API and the Dapr SDK's gRPC client;
- ``wonderland serve`` answers an Open Inference Protocol request over REST and gRPC;
- the component tests (state, pub/sub and configuration stores) run against the real Redis,
  PostgreSQL, RabbitMQ, NATS and Mosquitto servers (a backend that is not running is
  skipped, as in the suite), which checks the floors of the component extras.

``--keep DIR`` keeps (and reuses) the environment in DIR; ``--print`` only prints the
constraints; ``--no-backends`` leaves out the component tests.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("all",)
#: The tests run against real backends with the floors installed (pytest comes on top).
COMPONENT_TESTS = (
    "tests/dapr/test_dapr_state_stores.py",
    "tests/dapr/test_dapr_pubsub_brokers.py",
    "tests/dapr/test_dapr_configuration_stores.py",
    "tests/dapr/test_dapr_component_extras.py",
)
TEST_TOOLS = ("pytest>=8.0", "pytest-asyncio>=0.23", "pytest-timeout>=2.3")
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)")


def floors(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """Package name -> floor, for the base dependencies and the extras ``[all]`` pulls in."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    requirements = list(project["dependencies"])
    pending = list(EXTRAS)
    seen: set[str] = set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in optional[extra]:
            own = re.match(r"^wonderland\[([^\]]+)\]$", req.strip())
            if own:
                pending += [e.strip() for e in own.group(1).split(",")]
            else:
                requirements.append(req)
    out: dict[str, str] = {}
    for req in requirements:
        match = _REQUIREMENT.match(req)
        if match is None:
            raise SystemExit(f"pyproject.toml: {req!r} has no >= floor; give it one")
        out[match.group(1).lower()] = match.group(3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR")
    parser.add_argument("--print", action="store_true", help="print the constraints and stop")
    parser.add_argument("--no-backends", action="store_true", help="skip the component tests")
    args = parser.parse_args(argv)
    constraints = "".join(f"{name}=={version}\n" for name, version in sorted(floors().items()))
    if args.print:
        sys.stdout.write(constraints)
        return 0
    with tempfile.TemporaryDirectory(prefix="wonderland-lowest-") as tmp:
        venv = args.keep or Path(tmp) / "venv"
        started = time.monotonic()
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pins = Path(tmp) / "lowest.txt"
        pins.write_text(constraints)
        python = str(venv / "bin" / "python")
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "-c", str(pins), f"{ROOT}[{','.join(EXTRAS)}]"],
            check=True,
        )
        installed = time.monotonic() - started
        subprocess.run([python, "-m", "pip", "check"], check=True)
        smoke = subprocess.run([python, str(ROOT / "tools" / "lowest_smoke.py")], cwd=tmp)
        failed = smoke.returncode != 0
        if not failed and not args.no_backends:
            subprocess.run([python, "-m", "pip", "install", "-q", *TEST_TOOLS], check=True)
            tests = subprocess.run(
                [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *COMPONENT_TESTS],
                cwd=ROOT,
            )
            failed = tests.returncode != 0
        print(
            f"lowest versions: installed in {installed:.0f}s, smoke test and component tests "
            f"{'FAILED' if failed else 'passed'} ({time.monotonic() - started:.0f}s in all)"
        )
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
