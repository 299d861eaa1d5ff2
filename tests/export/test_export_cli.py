"""The `wonderland export` command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from wonderland.cli import main

ROOT = Path(__file__).resolve().parents[2]

BAD = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: ok}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: store
spec:
  type: state.redis
  version: v1
  metdata: []
"""


def test_check_of_the_conference_cluster_folder_exits_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster = str(ROOT / "examples" / "conference" / "cluster")
    assert main(["export", "--check", "-R", "-f", cluster]) == 0
    out = capsys.readouterr().out
    assert out.strip() == "15 object(s) in 15 file(s): 0 error(s), 0 warning(s)"


def test_check_lists_each_error_and_exits_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "store.yaml"
    path.write_text(BAD)
    assert main(["export", "--check", "-f", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{path}:9: error: document 2 (Component/store): spec.metadata: required field is missing",
        f'{path}:12: error: document 2 (Component/store): spec.metdata: unknown field "metdata"; '
        "the fields here are: ignoreErrors, initTimeout, metadata, type, version",
        "2 object(s) in 1 file(s): 2 error(s), 0 warning(s)",
    ]


def test_warnings_do_not_fail_the_check_and_quiet_hides_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pubsub = str(ROOT / "examples" / "conference" / "pubsub.yaml")
    assert main(["export", "--check", "-f", pubsub]) == 0
    out = capsys.readouterr().out
    assert (
        'warning: document 1 (Component/conference-conference-pubsub): spec.type: local-only feature "pubsub.in-memory"'
        in out
    )
    assert main(["export", "--check", "-q", "-f", pubsub]) == 0
    assert "local-only" not in capsys.readouterr().out


def test_a_missing_path_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--check", "-f", "no/such/dir"]) == 1
    assert 'the path "no/such/dir" does not exist' in capsys.readouterr().err


def test_export_without_output_says_what_to_give(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "-f", "."]) == 1
    assert "give -o DIR" in capsys.readouterr().err
    assert main(["export", "-o", "out"]) == 1
    assert "give -f PATH (manifests to export) or --all" in capsys.readouterr().err
    assert main(["export", "-f", ".", "-o", "out", "--profile", "moon"]) == 1
    assert "--profile moon: no such profile; the profiles are: cluster" in capsys.readouterr().err


def test_export_writes_a_checked_tree_and_replaces_an_earlier_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    conference = str(ROOT / "examples" / "conference")
    args = ["export", "-f", conference, "-o", str(out), "--registry", "registry.example/conf"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"wrote 14 object(s) to {out}/ (kustomization.yaml, EXPORT-NOTES.md): 4 substitution(s), "
        "8 thing(s) left to do in EXPORT-NOTES.md",
        "check: 14 object(s) in 14 file(s): 0 error(s), 0 warning(s)",
    ]
    assert "warning: " in captured.err and '"pubsub.in-memory" -> "pubsub.redis"' in captured.err
    assert (out / "serving" / "service-frontend.yaml").is_file()
    (out / "README.md").write_text("kept\n")
    (out / "serving" / "service-gone.yaml").write_text("stale\n")
    assert main([*args, "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert (out / "README.md").read_text() == "kept\n"
    assert not (out / "serving" / "service-gone.yaml").exists()
    # The tree checks as it is, kustomization.yaml and all.
    assert main(["export", "--check", "-R", "-f", str(out)]) == 0


def test_export_refuses_a_folder_that_is_not_an_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    pubsub = str(ROOT / "examples" / "conference" / "pubsub.yaml")
    assert main(["export", "-f", pubsub, "-o", str(tmp_path)]) == 1
    assert "holds files that are not an earlier export" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_export_all_without_a_platform_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WONDERLAND_HOME", str(tmp_path / "home"))
    assert main(["export", "--all", "-o", str(tmp_path / "out")]) == 1
    assert "no wonderland daemon is running here" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_versions_lists_the_vendored_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--versions"]) == 0
    out = capsys.readouterr().out
    assert "knative/serving knative-v1.21.3 (e8037506125f), Apache-2.0" in out
    assert "  serving.kserve.io/v1beta1/InferenceService" in out
