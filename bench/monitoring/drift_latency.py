"""Time from the first drifted request to the ``drift detected`` event.

A ``wonderland serve`` model server (sklearn iris, examples/inference) logs to a drift
detector process (``python -m wonderland.monitoring.drift``, reference: the iris data,
``--drift_batch_size`` rows per window) whose ``--reply_url`` is a local receiver. After a
window of in-distribution rows, drifted rows (petal length +3 cm, width +1.5 cm) are sent
one row per request; the clock runs from the first drifted request to the event's arrival.
Printed: that time, and how much of it the window took to fill (the requests themselves).
The platform path (the detector publishing through its Dapr sidecar to a subscriber) is the
e2e test tests/monitoring/test_drift_e2e.py.

    python bench/monitoring/drift_latency.py [--batch 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import free_port, model_server, process, receiver, train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from sklearn import datasets

    data = np.asarray(datasets.load_iris().data)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "reference.csv"
        lines = ["sepal_length,sepal_width,petal_length,petal_width"]
        ref.write_text("\n".join(lines + [",".join(f"{v:g}" for v in r) for r in data]) + "\n")
        model_dir = train(Path(tmp) / "model")
        port = free_port()
        with receiver() as sink:
            detector = [
                sys.executable,
                "-m",
                "wonderland.monitoring.drift",
                f"--storage_uri={ref}",
                f"--drift_batch_size={args.batch}",
                f"--http_port={port}",
                f"--reply_url={sink}/",
            ]
            with (
                process(detector, f"http://127.0.0.1:{port}/healthz"),
                model_server(
                    model_dir,
                    "iris",
                    KSERVE_LOGGER_URL=f"http://127.0.0.1:{port}/",
                    KSERVE_LOGGER_MODE="request",
                    KSERVE_INFERENCESERVICE="iris",
                    KSERVE_NAMESPACE="default",
                ) as url,
                httpx.Client(timeout=10) as client,
            ):
                predict = f"{url}/v1/models/iris:predict"
                totals, fills = [], []
                for _ in range(args.rounds):
                    same = data[rng.choice(len(data), args.batch, replace=True)]
                    client.post(predict, json={"instances": same.tolist()})  # one clean window
                    seen = len(client.get(f"{sink}/received").json())
                    drifted = same + np.array([0, 0, 3.0, 1.5])
                    start = time.time()
                    for row in drifted:
                        client.post(predict, json={"instances": [row.tolist()]})
                    filled = time.time()
                    while True:
                        events = client.get(f"{sink}/received").json()
                        if len(events) > seen:
                            break
                        time.sleep(0.002)
                    totals.append((events[seen]["at"] - start) * 1000)
                    fills.append((filled - start) * 1000)
    print(f"window {args.batch} rows, one row per drifted request, {args.rounds} rounds (ms)")
    print(
        f"first drifted request -> event: p50 {statistics.median(totals):.1f}, "
        f"max {max(totals):.1f}"
    )
    print(f"  of which sending the window's requests: p50 {statistics.median(fills):.1f}")
    print(
        f"  last request -> event: p50 "
        f"{statistics.median(t - f for t, f in zip(totals, fills, strict=True)):.1f}"
    )


if __name__ == "__main__":
    main()
