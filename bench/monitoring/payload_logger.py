"""What the payload logger adds to the inference path: p50/p90/p99 of a V1 iris predict
with the logger off and on, side by side in one run.

Two ``wonderland serve`` processes serve the same sklearn iris model (examples/inference);
one has ``KSERVE_LOGGER_URL`` (mode all) at a local CloudEvents receiver that answers 202,
as the InferenceService reconciler sets it. One keep-alive client alternates between them,
request by request, so both see the same machine load; the first ``--warmup`` requests of
each are not counted.

    python bench/monitoring/payload_logger.py [--requests 3000] [--warmup 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import model_server, receiver, train

BODY = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = train(Path(tmp) / "model")
        with (
            receiver() as sink,
            model_server(model_dir, "iris") as off,
            model_server(
                model_dir, "iris", KSERVE_LOGGER_URL=f"{sink}/", KSERVE_INFERENCESERVICE="iris"
            ) as on,
            httpx.Client(timeout=10) as client,
        ):
            took: dict[str, list[float]] = {"off": [], "on": []}
            for i in range(args.warmup + args.requests):
                for name, url in (
                    (("off", off), ("on", on)) if i % 2 else (("on", on), ("off", off))
                ):
                    start = time.perf_counter()
                    r = client.post(f"{url}/v1/models/iris:predict", json=BODY)
                    elapsed = time.perf_counter() - start
                    assert r.status_code == 200, r.text
                    if i >= args.warmup:
                        took[name].append(elapsed * 1000)
            logged = len(client.get(f"{sink}/received").json())
    print(f"{args.requests} requests each, alternating; times in ms")
    print(f"{'logger':<8}{'p50':>8}{'p90':>8}{'p99':>8}{'mean':>8}")
    for name in ("off", "on"):
        v = took[name]
        print(
            f"{name:<8}{pct(v, 0.5):8.3f}{pct(v, 0.9):8.3f}{pct(v, 0.99):8.3f}"
            f"{statistics.fmean(v):8.3f}"
        )
    added = pct(took["on"], 0.5) - pct(took["off"], 0.5)
    print(f"added p50: {added:+.3f} ms; events received by the sink: {logged}")


if __name__ == "__main__":
    main()
