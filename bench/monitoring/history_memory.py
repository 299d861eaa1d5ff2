"""The metrics history's memory and the cost of one scrape round.

1. Memory: 100 derived series x 24 h at 10 s (8640 float32 slots each), every slot
   written, as the process's resident memory grows (aim: at most 20 MB), beside what the
   arrays hold; then the time to save and load ``history.npz``.
2. One round: a target process serving the exposition of 10 Knative revisions (the
   queue-proxy's histogram by status code, the pod gauges, 100 derived series in all) is
   scraped over HTTP with the daemon's keep-alive client, parsed, derived and recorded;
   printed: the time of a round (p50/p95/p99) and of its parts.

    python bench/monitoring/history_memory.py [--series 100] [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wonderland.monitoring.derive import KIND_SERIES, SeriesDeriver
from wonderland.monitoring.history import DEFAULT_SLOTS, HistoryStore, SeriesKey
from wonderland.monitoring.scrape import MetricsScraper
from wonderland.monitoring.targets import ScrapeTarget

STEP = 10.0
TARGET_MB = 20.0

SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
revisions = int(sys.argv[2])
les = ["0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"]
scrapes = 0
def body():
    # every scrape adds requests, so each round has rates and latencies to derive
    n = scrapes
    lines = []
    for r in range(revisions):
        rev = f'k8s_namespace_name="default",kn_service_name="svc{r}",kn_revision_name="svc{r}-00001"'
        for code, share in (("200", 10), ("500", 1)):
            for i, le in enumerate(les):
                lines.append(f'kn_serving_invocation_duration_seconds_bucket{{{rev},http_response_status_code="{code}",le="{le}"}} {share * n * (i + 1)}')
            lines.append(f'kn_serving_invocation_duration_seconds_count{{{rev},http_response_status_code="{code}"}} {share * n * len(les)}')
            lines.append(f'kn_serving_invocation_duration_seconds_sum{{{rev},http_response_status_code="{code}"}} {0.1 * n}')
        for name in ("kn_serving_queue_depth", "kn_revision_pods_count", "kn_revision_pods_desired"):
            lines.append(f"{name}{{{rev}}} 1")
        lines.append(f'wonderland_revision_requests_in_flight{{namespace="default",revision="svc{r}-00001"}} 2')
        lines.append(f"faas_coldstarts_total{{{rev}}} {n // 100}")
    return ("\n".join(lines) + "\n").encode()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # headers and body in one write: no delayed-ACK stall
    disable_nagle_algorithm = True
    def do_GET(self):
        global scrapes
        scrapes += 1
        data = body()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def memory(series: int) -> HistoryStore:
    per = KIND_SERIES["revisions"]
    keys = [
        SeriesKey("revisions", "default", f"svc{i // len(per)}-00001", per[i % len(per)])
        for i in range(series)
    ]
    before = rss_bytes()
    store = HistoryStore(step=STEP, slots=DEFAULT_SLOTS, max_series=max(series, 1))
    t0 = 1_800_000_000.0
    started = time.perf_counter()
    for tick in range(DEFAULT_SLOTS):
        store.write(t0 + tick * STEP, [(k, float(tick)) for k in keys])
    filled = time.perf_counter() - started
    grown = rss_bytes() - before
    mb = grown / 1e6
    print(
        f"history: {series} series x {DEFAULT_SLOTS} slots ({DEFAULT_SLOTS * STEP / 3600:g} h at {STEP:g} s)"
    )
    print(f"  arrays:           {store.nbytes() / 1e6:6.2f} MB")
    print(
        f"  resident growth:  {mb:6.2f} MB  ({mb / TARGET_MB:.2f} x the {TARGET_MB:g} MB aim,"
        f" {grown / series / 1024:.1f} KB/series)"
    )
    print(
        f"  filling 24 h:     {filled:6.2f} s  ({filled / DEFAULT_SLOTS * 1e6:.0f} us per step of {series} values)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.npz"
        started = time.perf_counter()
        store.save(path)
        saved = time.perf_counter() - started
        again = HistoryStore(step=STEP, slots=DEFAULT_SLOTS, max_series=max(series, 1))
        started = time.perf_counter()
        again.load(path)
        loaded = time.perf_counter() - started
        print(
            f"  save: {saved * 1000:.0f} ms, load: {loaded * 1000:.0f} ms, file {path.stat().st_size / 1e6:.2f} MB"
        )
        key = keys[0]
        started = time.perf_counter()
        points = again.read(key, t0, t0 + DEFAULT_SLOTS * STEP, step=60)
        read = time.perf_counter() - started
        print(f"  read 24 h at 60 s: {len(points)} points in {read * 1000:.2f} ms")
    return store


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def rounds(port: int, n: int, revisions: int) -> None:
    target = ScrapeTarget("pods", f"127.0.0.1:{port}", "/metrics", (("namespace", "default"),))
    scraper = MetricsScraper(lambda: [target])
    deriver = SeriesDeriver()
    store = HistoryStore(step=STEP, max_series=1000)
    scrape_s: list[float] = []
    derive_s: list[float] = []
    total_s: list[float] = []
    t = 1_800_000_000.0
    derived = 0
    try:
        for _ in range(n + 5):
            a = time.perf_counter()
            scrapes = await scraper.scrape()
            b = time.perf_counter()
            out = deriver.derive(scrapes)
            store.write(t, out)
            c = time.perf_counter()
            t += STEP
            derived = len(out)
            scrape_s.append(b - a)
            derive_s.append(c - b)
            total_s.append(c - a)
        health = scraper.health[target.url]
        assert health.health == "up", health.last_error
    finally:
        await scraper.close()
    scrape_s, derive_s, total_s = scrape_s[5:], derive_s[5:], total_s[5:]
    samples = scrapes[0].health.samples
    print(
        f"one round: {revisions} revisions, {samples} samples scraped, {derived} series derived, {n} rounds"
    )
    for name, values in (
        ("scrape+parse", scrape_s),
        ("derive+record", derive_s),
        ("round", total_s),
    ):
        print(
            f"  {name:14s} p50 {pct(values, 0.5) * 1000:6.2f} ms  p95 {pct(values, 0.95) * 1000:6.2f} ms"
            f"  p99 {pct(values, 0.99) * 1000:6.2f} ms  mean {statistics.fmean(values) * 1000:6.2f} ms"
        )
    print(f"  a round takes {statistics.fmean(total_s) / STEP * 100:.3f}% of a {STEP:g} s interval")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    memory(args.series)
    revisions = max(1, args.series // len(KIND_SERIES["revisions"]))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(revisions)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        asyncio.run(rounds(port, args.rounds, revisions))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
