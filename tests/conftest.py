"""Suite-wide collection and scheduling rules.

``make test`` runs the suite with pytest-xdist. Each test file runs whole on one worker, so
its module fixtures (daemons, model servers) start once; the quickstart's files share one
worker, so their session fixture starts `make up` once. Files with slow or end-to-end tests
are collected first and handed out in that order (``--no-loadscope-reorder``), so the long
runs overlap from the start and the quick files fill the gaps at the end, instead of one
worker finishing a long file alone while the others idle.
"""

from __future__ import annotations

from typing import Any

import pytest

# Files whose tests share a session fixture run on one worker, as one unit.
SHARED_SESSION_FOLDERS = ("tests/quickstart/",)


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its file, or the folder for the files above."""
    path = nodeid.split("::", 1)[0]
    for folder in SHARED_SESSION_FOLDERS:
        if path.startswith(folder):
            return folder
    return path


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # the suite also runs in one process without pytest-xdist
    pass
else:

    class WorkUnitScheduling(LoadScopeScheduling):
        """Load scheduling by ``work_unit``. (``--dist loadgroup`` cannot do this under
        pytest 9.2: xdist 3.8 tags the group onto ``item._nodeid``, which pytest no longer
        reads, so every test became its own unit.)"""

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

        def remove_node(self, node: Any) -> str | None:
            """A worker ended (a test past its timeout ends its worker): the test it was
            running is the crashed one and is reported failed; the rest of its file goes
            back to the queue. (xdist's own version queues the crashed test again, so a
            hanging test ran until the restart limit and then the run never finished.)"""
            workload = self.assigned_work.pop(node)
            pending = [
                (unit, nodeid)
                for unit, tests in workload.items()
                for nodeid, completed in tests.items()
                if not completed
            ]
            if not pending:
                return None
            unit, crashed = pending[0]
            workload[unit][crashed] = True
            self.workqueue.update(
                {unit: tests for unit, tests in workload.items() if not all(tests.values())}
            )
            for other in self.assigned_work:
                self._reschedule(other)
            return crashed

    def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") in ("loadfile", "loadgroup", "loadscope"):
            return WorkUnitScheduling(config, log)
        return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with slow or end-to-end tests first; the sort is stable and keys on the work
    unit, so each file's tests stay together and in their order."""
    slow = {
        work_unit(item.nodeid)
        for item in items
        if item.get_closest_marker("slow") is not None or item.get_closest_marker("e2e")
    }
    items.sort(key=lambda item: work_unit(item.nodeid) not in slow)
