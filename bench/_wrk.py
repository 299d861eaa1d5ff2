"""wrk's summary (``--latency``) as numbers: shared by the gateway benchmarks."""

from __future__ import annotations

import re
import subprocess


def wrk_stats(out: str) -> dict[str, float]:
    """req/s, p50/p90/p99 (ms), requests and non-2xx/3xx answers from wrk's output."""

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.MULTILINE)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": ms("50"),
        "p90": ms("90"),
        "p99": ms("99"),
        "requests": float(total.group(1)) if total else 0.0,
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def run_wrk(
    url: str, headers: list[str], *, threads: int, connections: int, duration: int
) -> dict[str, float]:
    """Run wrk against ``url`` with ``headers`` (``"Name: value"``); its summary."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    for header in headers:
        cmd += ["-H", header]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    return wrk_stats(out)
