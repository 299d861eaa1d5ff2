"""The long fuzz run: the API fuzz tests of the suite, many more examples, a new seed each round.

    python bench/fuzz/run.py --minutes 30 [--examples 2000] [--only dapr]

Runs the hypothesis fuzz tests (OIP REST and gRPC, Dapr HTTP and gRPC, the control API and
the adversarial HTTP/2 frame sequences) under the ``long`` profile, round after round with a
fresh random seed, until the time is up. It prints each round's result and the peak memory
(RSS) of the run, and stops at the first failure with hypothesis's minimal example, which
belongs in the suite as a regression test (an ``@example`` on the failing test).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITES = {
    "inference": "tests/inference/test_inference_fuzz.py",
    "dapr": "tests/dapr/test_dapr_fuzz.py",
    "control": "tests/core/test_core_control_api_fuzz.py",
    "h2": "tests/h2grpc/test_h2grpc_frames_fuzz.py",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to fuzz")
    parser.add_argument("--examples", type=int, default=2000, help="examples per test per round")
    parser.add_argument("--only", choices=sorted(SUITES), action="append", help="one API only")
    args = parser.parse_args()
    files = [SUITES[name] for name in args.only or sorted(SUITES)]
    files = [f for f in files if (ROOT / f).exists()]
    env = {
        **os.environ,
        "WONDERLAND_FUZZ_PROFILE": "long",
        "WONDERLAND_FUZZ_EXAMPLES": str(args.examples),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    deadline = time.monotonic() + args.minutes * 60
    rounds = 0
    while time.monotonic() < deadline:
        seed = random.randrange(1 << 32)
        started = time.monotonic()
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            *files,
            "-q",
            "-x",
            "-n",
            "0",
            "-p",
            "no:cacheprovider",
        ]
        cmd += [f"--hypothesis-seed={seed}", "--timeout", str(int(args.minutes * 60) + 600)]
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        rounds += 1
        took = time.monotonic() - started
        summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        print(f"round {rounds} seed {seed}: {summary} ({took:.0f}s)", flush=True)
        if result.returncode != 0:
            print(result.stdout[-20000:], result.stderr[-4000:], sep="\n")
            return 1
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"{rounds} rounds of {args.examples} examples per test, no failure; peak RSS {peak:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
