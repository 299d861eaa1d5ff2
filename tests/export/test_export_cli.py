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
    assert main(["export", "--check", "-f", str(ROOT / "examples" / "conference" / "cluster")]) == 0
    out = capsys.readouterr().out
    assert out.strip() == "6 object(s) in 5 file(s): 0 error(s), 0 warning(s)"


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


def test_export_without_check_says_what_is_available(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export"]) == 2
    assert "only `wonderland export --check` is available" in capsys.readouterr().err


def test_versions_lists_the_vendored_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--versions"]) == 0
    out = capsys.readouterr().out
    assert "knative/serving knative-v1.21.3 (e8037506125f), Apache-2.0" in out
    assert "  serving.kserve.io/v1beta1/InferenceService" in out
