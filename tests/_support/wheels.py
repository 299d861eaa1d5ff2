"""Wheels made in a test: a pure-Python package, and a stand-in for this package's wheel
(so that pip runs offline, with ``--find-links`` and ``--no-index``)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

from wonderland import __version__

__all__ = ["make_wheel", "server_wheel"]


def make_wheel(
    folder: Path,
    name: str,
    version: str,
    requires: tuple[str, ...] = (),
    extras: tuple[str, ...] = (),
    script: str | None = None,
) -> Path:
    """A pure-Python wheel with one module (and a console script ``name``)."""
    module = name.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n\ndef main():\n    print(VERSION)\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n"
        + "".join(f"Provides-Extra: {e}\n" for e in extras)
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    if script:
        files[f"{dist}/entry_points.txt"] = f"[console_scripts]\n{script} = {module}:main\n"
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), text)
    return wheel


def server_wheel(wheels: Path) -> Path:
    """A stand-in for the package's wheel: its name and version, a core dependency, an
    extra and an extra that names another (as `all` does)."""
    return make_wheel(
        wheels.parent / "dist",
        "wonderland",
        __version__,
        requires=(
            "tinypkg>=1",
            'otherpkg==2.0; extra == "sklearn"',
            'absentpkg; extra == "xgboost"',
            'wonderland[sklearn]; extra == "all"',
            'tinypkg; python_version < "3.0"',
        ),
        extras=("sklearn", "xgboost", "all"),
        script="wonderland",
    )
