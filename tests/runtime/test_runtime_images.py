"""Image names mapped by ``wonderland.yaml`` to an existing Python environment."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from wonderland.runtime.images import BuildError, ImageResolver


def _project(tmp_path: Path, environment: str) -> ImageResolver:
    (tmp_path / "wonderland.yaml").write_text(
        f"build:\n  artifacts:\n    - image: team/trial\n      environment: {environment}\n"
    )
    return ImageResolver(tmp_path / "builds", [tmp_path])


async def test_an_image_runs_in_the_environment_it_names_without_a_build(tmp_path: Path) -> None:
    venv = Path(sys.prefix)
    resolver = _project(tmp_path, str(venv))
    built = await resolver.build("docker.io/team/trial:1.0")
    assert built.venv == venv and dict(built.env) == {"VIRTUAL_ENV": str(venv)}
    assert built.argv == () and built.pod_workdir
    assert not (tmp_path / "builds").exists()


async def test_an_environment_without_python_is_refused_with_the_path(tmp_path: Path) -> None:
    resolver = _project(tmp_path, "./missing-venv")
    with pytest.raises(BuildError) as info:
        await resolver.build("team/trial")
    message = str(info.value)
    assert "build.artifacts[0].environment" in message
    assert str(tmp_path / "missing-venv") in message and "python -m venv" in message
