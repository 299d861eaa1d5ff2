"""Building a function once into its cached environment when it needs a package the
platform does not have (a local wheel, so no network is involved)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import httpx
import pytest

from wonderland.functions.build import build_function
from wonderland.functions.create import create_function

from .conftest import WONDERLAND, free_port, running, stop_group

pytestmark = pytest.mark.e2e

FILES = {
    "fn_build_probe/__init__.py": 'VALUE = "from the wheel"\n',
    "fn_build_probe-1.0.dist-info/METADATA": (
        "Metadata-Version: 2.1\nName: fn-build-probe\nVersion: 1.0\n"
    ),
    "fn_build_probe-1.0.dist-info/WHEEL": (
        "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    ),
}


def make_wheel(folder: Path) -> Path:
    wheel = folder / "fn_build_probe-1.0-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in FILES.items():
            data = text.encode()
            zf.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(data)}")
        record.append("fn_build_probe-1.0.dist-info/RECORD,,")
        zf.writestr("fn_build_probe-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def test_missing_dependencies_are_installed_once_into_the_functions_environment(
    tmp_path: Path,
) -> None:
    wheel = make_wheel(tmp_path)
    root = create_function(tmp_path / "needs-dep").root
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            '  "httpx",', f'  "httpx",\n  "fn-build-probe @ {wheel.as_uri()}",'
        )
    )
    (root / "function" / "func.py").write_text(
        "import fn_build_probe\n\n"
        "def new():\n    return F()\n\n"
        "class F:\n"
        "    async def handle(self, scope, receive, send):\n"
        "        await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "        await send({'type': 'http.response.body', 'body': fn_build_probe.VALUE.encode()})\n"
    )
    built = build_function(root)
    assert not built.cached
    assert [name.split(" @")[0] for name in built.installed] == ["fn-build-probe"]
    assert built.python == root / ".func" / "wonderland" / "venv" / "bin" / "python"
    again = build_function(root)
    assert again.cached and again.python == built.python  # nothing installed twice

    port = free_port()
    argv = [*WONDERLAND, "func", "run", "-p", str(root), "--address", f"127.0.0.1:{port}"]
    with running(argv, f"http://127.0.0.1:{port}/health/readiness") as proc:
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "from the wheel"
        stop_group(proc)
