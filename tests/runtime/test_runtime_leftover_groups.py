"""The process groups a killed daemon's containers left: killed by the next daemon, and only
they (never a process that merely reuses a recorded pid)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _support.daemon import wait_for

from wonderland.runtime.containers import kill_leftover_groups, record_group

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_children_of_a_dead_container_leader_are_killed(tmp_path: Path) -> None:
    pids = tmp_path / "child.pid"
    leader = subprocess.Popen(
        [
            "/bin/sh",
            "-c",
            f'{sys.executable} -c "import time; time.sleep(60)" & echo $! > {pids}; wait',
        ],
        start_new_session=True,
    )
    try:
        wait_for(lambda: pids.exists() and pids.read_text().strip(), 10, "the child")
        child = int(pids.read_text())
        group = record_group(tmp_path / "pods" / "default_web_uid" / "user-container", leader.pid)
        os.kill(leader.pid, signal.SIGKILL)  # the leader dies with the daemon; the child stays
        leader.wait(5)
        assert _alive(child)
        assert kill_leftover_groups(tmp_path / "pods") == [leader.pid]
        wait_for(lambda: not _alive(child), 5, "the child to be killed")
        assert not group.exists()
    finally:
        if leader.poll() is None:
            os.killpg(leader.pid, signal.SIGKILL)
            leader.wait(5)


def test_a_process_reusing_the_recorded_pid_is_left_alone(tmp_path: Path) -> None:
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        folder = tmp_path / "pods" / "default_web_uid" / "user-container"
        folder.mkdir(parents=True)
        (folder / "group").write_text(f"{other.pid} 1")  # recorded with another start time
        assert kill_leftover_groups(tmp_path / "pods") == []
        assert other.poll() is None
        assert not (folder / "group").exists()
    finally:
        other.kill()
        other.wait(5)
