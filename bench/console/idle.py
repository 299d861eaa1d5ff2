"""Console against a real daemon, side by side with the MLflow UI it hosts: the daemon's CPU
with 5 consoles open and idle, and the bytes a browser transfers on a first load.

Starts ``wonderland up`` (nothing applied) in a temporary home, then drives Debian's
Chromium through Playwright:

- bytes transferred on a first load (a fresh browser context: nothing cached), summed from
  the page's Resource Timing entries (``transferSize``: headers and body as sent), for the
  console's Overview, Experiments and Registry and for the MLflow UI's experiments and
  models pages that the same daemon serves (MLflow's own React bundle, the peer);
- the CPU of the daemon's process tree (the daemon and every process under it, MLflow's
  server included), from ``/proc``, over ``--seconds`` with no page open, with 5 console
  Overviews open and idle, and with 5 MLflow UI experiments pages open and idle.

Run: ``python bench/console/idle.py [--seconds 20]`` (needs ``make browser``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")
LOAD_BYTES = """() => {
  const all = [...performance.getEntriesByType('navigation'),
               ...performance.getEntriesByType('resource')];
  return all.reduce((n, e) => n + (e.transferSize || 0), 0);
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of ``root`` and every live process under it."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / TICK
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(p for p, parent in parents.items() if parent == pid)
    return total


def _cpu_percent(root: int, seconds: float) -> float:
    cpu, wall = _tree_cpu(root), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (_tree_cpu(root) - cpu) / (time.monotonic() - wall)


@contextlib.contextmanager
def _daemon(tmp: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    home = tmp / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WONDERLAND_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(
        WONDERLAND_HOME=str(home),
        WONDERLAND_API_PORT="0",
        WONDERLAND_GATEWAY_PORT=str(_free_port()),
        WONDERLAND_MLFLOW_PORT="0",
        WONDERLAND_METRICS_PORT="0",
        HOME=str(tmp),
    )
    log = (tmp / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wonderland", "up"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        info: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit((tmp / "daemon.log").read_text(errors="replace"))
            with contextlib.suppress(OSError, ValueError):
                info = json.loads((home / "daemon.json").read_text())
                if (info.get("console") or {}).get("state") == "running" and info.get("mlflow"):
                    break
            time.sleep(0.2)
        else:
            raise SystemExit("the daemon did not start within 120 s")
        info["token"] = (home / "token").read_text().strip()
        yield proc, info
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _sign_in(page: Any, console: str, token: str, path: str = "/") -> None:
    page.goto(f"{console}/signin?next={path}")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_selector("#live-status:text('live')")


def _first_load(browser: Any, url: str, sign_in: tuple[str, str] | None = None) -> float:
    """KB transferred by a first load of ``url`` in a fresh context (signed in first, and
    the sign-in's own transfers left out, when ``sign_in`` is given)."""
    context = browser.new_context()
    try:
        page = context.new_page()
        if sign_in is not None:
            console, token = sign_in
            _sign_in(page, console, token, "/apply")
            page.close()
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.clearBrowserCache")
        page.goto(url, wait_until="load")
        page.wait_for_timeout(2000)  # scripts that load more (MLflow's chunks, chart data)
        return float(page.evaluate(LOAD_BYTES)) / 1024
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as tmp, _daemon(Path(tmp)) as (proc, info):
        console, token = info["console"]["direct"], info["token"]
        mlflow = str(info["mlflow"]["url"]).rstrip("/")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True)
            try:
                print("first load, KB transferred (fresh context, nothing cached):")
                for path in ("/", "/experiments", "/registry"):
                    kb = _first_load(browser, console + path, (console, token))
                    print(f"  console {path:<14} {kb:8.1f} KB")
                for route in ("#/experiments", "#/models"):
                    kb = _first_load(browser, f"{mlflow}/{route}")
                    print(f"  MLflow UI {route:<12} {kb:8.1f} KB")

                idle = _cpu_percent(proc.pid, args.seconds)
                contexts = []
                for _ in range(5):
                    ctx = browser.new_context()
                    _sign_in(ctx.new_page(), console, token)
                    contexts.append(ctx)
                consoles = _cpu_percent(proc.pid, args.seconds)
                for ctx in contexts:
                    ctx.close()
                contexts = []
                for _ in range(5):
                    ctx = browser.new_context()
                    ctx.new_page().goto(f"{mlflow}/#/experiments", wait_until="load")
                    contexts.append(ctx)
                peers = _cpu_percent(proc.pid, args.seconds)
                for ctx in contexts:
                    ctx.close()
            finally:
                browser.close()
        print(f"daemon process tree CPU over {args.seconds:.0f} s, % of one core:")
        print(f"  nothing open                          {idle:6.2f} %")
        print(f"  5 console Overviews open and idle     {consoles:6.2f} %")
        print(f"  5 MLflow UI experiment pages, idle    {peers:6.2f} %")


if __name__ == "__main__":
    main()
