"""`wonderland func create`: Knative's Python template layout, both templates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wonderland.errors import ConflictError, InvalidError
from wonderland.functions.create import create_function
from wonderland.functions.funcyaml import load_config

from .conftest import WONDERLAND

LAYOUT = {
    ".gitignore",
    "README.md",
    "func.yaml",
    "function/__init__.py",
    "function/func.py",
    "pyproject.toml",
    "tests/test_func.py",
}


@pytest.mark.parametrize("template", ["http", "cloudevents"])
def test_cli_create_writes_the_knative_layout_and_its_tests_pass(
    tmp_path: Path, template: str
) -> None:
    target = tmp_path / f"my-{template}"
    proc = subprocess.run(
        [*WONDERLAND, "func", "create", "-l", "python", "-t", template, str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"Created python function my-{template}" in proc.stdout
    files = {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
    assert files == LAYOUT
    config = load_config(target)
    assert config.name == f"my-{template}"
    assert config.runtime == "python"
    assert config.data["specVersion"] == "0.36.0"
    assert config.invoke == ("cloudevent" if template == "cloudevents" else "http")
    func_py = (target / "function" / "func.py").read_text()
    assert "def new()" in func_py
    assert "async def handle(self, scope, receive, send)" in func_py
    pyproject = (target / "pyproject.toml").read_text()
    assert 'name = "function"' in pyproject
    assert ("cloudevents>=2,<3" in pyproject) == (template == "cloudevents")
    # the generated unit tests pass as a user would run them
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=target,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_create_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidError, match="template 'grpc' does not exist"):
        create_function(tmp_path / "a", template="grpc")
    with pytest.raises(InvalidError, match="language 'go' is not available"):
        create_function(tmp_path / "a", language="go")
    with pytest.raises(InvalidError, match="function name 'Bad_Name'"):
        create_function(tmp_path / "Bad_Name")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "main.go").write_text("package main\n")
    with pytest.raises(ConflictError, match=r"is not empty \(main.go\)"):
        create_function(busy)
    create_function(tmp_path / "once")
    with pytest.raises(ConflictError, match="already holds a function"):
        create_function(tmp_path / "once")


def test_cli_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*WONDERLAND, "func", "create", "-t", "nope", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: template 'nope' does not exist")
    assert "Traceback" not in proc.stderr
