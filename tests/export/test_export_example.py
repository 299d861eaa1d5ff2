"""`examples/conference/cluster/` is what `wonderland export` writes for the demo."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from wonderland.cli import main
from wonderland.export import check_paths

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "examples" / "conference" / "cluster"


def _tool_args() -> list[str]:
    spec = importlib.util.spec_from_file_location(
        "export_conference", ROOT / "tools" / "export_conference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args: list[str] = module.ARGS
    return args


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): p.read_text()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "README.md"
    }


def test_the_committed_tree_is_a_fresh_export_and_passes_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _tool_args()
    out = args.index("-o") + 1
    args[out] = str(tmp_path / "cluster")
    monkeypatch.chdir(ROOT)
    assert main(args) == 0
    capsys.readouterr()
    fresh, committed = _tree(tmp_path / "cluster"), _tree(CLUSTER)
    assert sorted(fresh) == sorted(committed), "run: python tools/export_conference.py"
    for name, text in fresh.items():
        assert committed[name] == text, f"{name} differs; run: python tools/export_conference.py"
    report = check_paths([str(CLUSTER)], recursive=True)
    assert report.ok and report.warnings == [], [str(f) for f in report.findings]
