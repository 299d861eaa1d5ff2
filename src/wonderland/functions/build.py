"""Build a function once into its cached environment.

The function's dependencies (``pyproject.toml`` ``[project].dependencies`` and, for the
legacy layout, ``requirements.txt``) are installed at build time, never on the request
path. When the running interpreter already satisfies them all, that interpreter is the
environment and nothing is installed. Otherwise a virtualenv under ``.func/wonderland``
(the folder Knative's ``func`` keeps for local runtime data) falls back to wonderland's
packages and gets the missing ones; a stamp of the dependency list makes later builds
instant until the list changes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
import tomllib
import venv
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from wonderland.errors import ConfigError, InvalidError
from wonderland.runtime.images import link_platform_packages

__all__ = ["BuiltFunction", "build_function", "function_requirements"]

# Provided by wonderland's own host; installing them would only shadow it.
_PROVIDED = {"parliament-functions", "func-python", "function"}
_TOOLS = {"pytest", "pytest-asyncio"}  # test-only tools the templates list as deps
ENV_DIR = Path(".func") / "wonderland"


@dataclass(frozen=True)
class BuiltFunction:
    """The interpreter that runs the function and what the build did."""

    python: Path
    installed: tuple[str, ...]
    cached: bool


def function_requirements(root: Path) -> list[Requirement]:
    """The requirements the function declares, minus what wonderland provides."""
    lines: list[tuple[str, str]] = []
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InvalidError(f"{pyproject}: not valid TOML ({exc}); fix the syntax") from exc
        for dep in data.get("project", {}).get("dependencies", []) or []:
            lines.append((str(pyproject), str(dep)))
    requirements = root / "requirements.txt"
    if requirements.is_file():
        for raw in requirements.read_text(encoding="utf-8").splitlines():
            line = raw.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                lines.append((str(requirements), line))
    out: list[Requirement] = []
    for source, line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise InvalidError(f"{source}: dependency {line!r} is not valid: {exc}") from exc
        name = req.name.lower().replace("_", "-")
        if name in _PROVIDED or (req.marker is not None and not req.marker.evaluate()):
            continue
        out.append(req)
    return out


def _satisfied(req: Requirement) -> bool:
    try:
        version = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return not req.specifier or req.specifier.contains(version, prereleases=True)


def build_function(root: Path, *, force: bool = False) -> BuiltFunction:
    """Make sure the function's dependencies are installed; return its interpreter."""
    reqs = function_requirements(root)
    missing = [r for r in reqs if not _satisfied(r) and r.name.lower() not in _TOOLS]
    if not missing and not force:
        return BuiltFunction(Path(sys.executable), (), cached=True)
    env_dir = root / ENV_DIR / "venv"
    stamp_path = root / ENV_DIR / "build.json"
    wanted = sorted(str(r) for r in reqs)
    digest = hashlib.sha256(
        json.dumps({"python": sys.version, "base": sys.prefix, "deps": wanted}).encode()
    ).hexdigest()
    python = env_dir / "bin" / "python"
    if not force and python.exists() and stamp_path.is_file():
        try:
            if json.loads(stamp_path.read_text()).get("digest") == digest:
                return BuiltFunction(python, (), cached=True)
        except ValueError:
            pass
    venv.EnvBuilder(clear=True, with_pip=False).create(env_dir)
    link_platform_packages(env_dir)
    # The venv falls back to wonderland's site-packages, so only missing packages land in it;
    # pip runs from wonderland's interpreter and targets the venv with --python.
    cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", *wanted]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise ConfigError(
            f"{root}: installing the function's dependencies ({', '.join(wanted)}) failed:\n"
            f"{tail}\nFix the dependency list in pyproject.toml / requirements.txt"
        )
    stamp_path.write_text(json.dumps({"digest": digest, "deps": wanted}))
    return BuiltFunction(python, tuple(str(r) for r in missing), cached=False)
