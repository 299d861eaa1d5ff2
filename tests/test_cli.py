from __future__ import annotations

import subprocess
import sys

import wonderland
from wonderland.cli import main


def test_version_flag_prints_the_package_version(capsys: object) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wonderland", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"wonderland {wonderland.__version__}"


def test_unknown_command_exits_with_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wonderland", "no-such-command"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_no_command_prints_help_and_succeeds() -> None:
    assert main([]) == 0
