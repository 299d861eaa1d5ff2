"""Recovery times under chaos: kill -9 of a sidecar under load, of a replica and of the daemon.

    python bench/chaos/run.py [--rounds 3]

Runs the chaos tests of the suite (``tests/dapr/test_dapr_chaos_e2e.py``: a sidecar killed
while state writes and publishes run against Redis; ``tests/serving/test_serving_chaos_e2e.py``:
a replica, the Dapr sidecar of a daemon-run Service under state writes and publishes
(Redis), and then the daemon killed; ``tests/kserve/test_kserve_restart.py``:
an InferenceService's predictor killed while requests run) ``--rounds`` times and prints the
recovery times each round measured, and what was lost (it must be nothing acknowledged: a
round that loses an acknowledged write or message fails). Needs Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = [
    "tests/dapr/test_dapr_chaos_e2e.py",
    "tests/serving/test_serving_chaos_e2e.py",
    "tests/kserve/test_kserve_restart.py::test_kill_9_of_the_predictor_under_traffic_recovers",
]
SECONDS = re.compile(r"([A-Za-z0-9 \-]+?) (?:in|after) (\d+\.\d+)s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    figures: dict[str, list[float]] = {}
    for n in range(1, args.rounds + 1):
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            *TESTS,
            "-q",
            "-s",
            "-n",
            "0",
            "-p",
            "no:cacheprovider",
        ]
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        lines = [ln for ln in result.stdout.splitlines() if ln.startswith("chaos:")]
        for line in lines:
            print(f"round {n}: {line}", flush=True)
            subject = ""
            for part in line.removeprefix("chaos:").split(";"):
                if " -> " in part:
                    subject, _, part = part.partition(" -> ")
                for what, secs in SECONDS.findall(part):
                    label = f"{subject.strip()}: {what.strip()}"
                    figures.setdefault(label, []).append(float(secs))
        if result.returncode != 0:
            print(result.stdout[-10000:], result.stderr[-3000:], sep="\n")
            return 1
    print("\nrecovery (median / max over rounds):")
    for what, values in figures.items():
        print(f"  {what}: {statistics.median(values):.2f}s / {max(values):.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
