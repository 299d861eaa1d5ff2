"""A restarted daemon converges InferenceServices again: same revision, rollout history
kept, the model served from the cache without a second download."""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kserve_testing import IRIS, KServeDaemon, isvc, model, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def model_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """The iris model on a static HTTP server; yields (url, request log)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "inference"))
    from train import train

    root = tmp_path / "www"
    train(root)
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            seen.append(str(args[1]) if len(args) > 1 else "")

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/model.joblib", seen
    finally:
        server.shutdown()
        server.server_close()


def test_restart_keeps_the_inference_service(
    tmp_path: Path, model_server: tuple[str, list[str]]
) -> None:
    url, seen = model_server
    manifests = tmp_path / "empty.yaml"
    manifests.write_text("")
    d = KServeDaemon(tmp_path)
    try:
        d.start(manifests)
        # A pickle from a remote URL is loaded only when the owner opts in.
        d.apply(isvc("iris", model("sklearn", url)))

        def refused() -> bool:
            cond = d.condition("iris", "Ready")
            return cond.get("status") == "False" and "is a pickle" in cond.get("message", "")

        wait_for(refused, 60, "iris to say the remote pickle is refused")
        trusted = {"serving.wonderland.dev/allow-remote-pickle": "true"}
        d.apply(isvc("iris", model("sklearn", url), annotations=trusted))
        before = d.wait_ready("iris")["status"]["components"]["predictor"]
        assert seen.count("200") == 1
        d.kill()
        d.start(manifests)
        after = d.wait_ready("iris")["status"]["components"]["predictor"]
        assert d.condition("iris", "LatestDeploymentReady")["status"] == "True"
        assert after["latestReadyRevision"] == before["latestReadyRevision"]
        assert after["latestRolledoutRevision"] == before["latestRolledoutRevision"]

        def answered() -> bool:
            r = httpx.post(
                d.gateway + "/v1/models/iris:predict",
                json={"instances": IRIS},
                headers={"Host": d.host("iris")},
                timeout=60,
            )
            return r.status_code == 200 and r.json() == {"predictions": [1, 1]}

        wait_for(answered, 60, "iris to answer after the restart")
        assert seen.count("200") == 1  # revalidated (304), not downloaded again
        assert "304" in seen
    finally:
        d.kill()


def _predictor_pid(d: KServeDaemon) -> int | None:
    out = d.cli("get", "pods", "-o", "json", check=False)
    try:
        pods = json.loads(out)["items"]
    except (ValueError, KeyError):
        return None
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status["name"] == "kserve-container" and status.get("ready"):
                return int(status["containerID"].rsplit("/", 1)[1])
    return None


@pytest.mark.slow
def test_kill_9_of_the_predictor_under_traffic_recovers(
    tmp_path: Path, model_server: tuple[str, list[str]]
) -> None:
    """Chaos: the predictor process killed with SIGKILL while requests run; the replica is
    restarted and the InferenceService answers again (the recovery time is printed)."""
    url, _ = model_server
    manifests = tmp_path / "empty.yaml"
    manifests.write_text("")
    d = KServeDaemon(tmp_path)
    trusted = {"serving.wonderland.dev/allow-remote-pickle": "true"}
    results: list[tuple[float, bool]] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    r = client.post(
                        d.gateway + "/v1/models/iris:predict",
                        json={"instances": IRIS},
                        headers={"Host": d.host("iris")},
                    )
                    ok = r.status_code == 200 and r.json() == {"predictions": [1, 1]}
                except httpx.HTTPError:
                    ok = False
                results.append((time.monotonic(), ok))

    try:
        d.start(manifests)
        d.apply(isvc("iris", model("sklearn", url), annotations=trusted))
        d.wait_ready("iris")
        pid = wait_for(lambda: _predictor_pid(d), 60, "the predictor's pid")
        sender = threading.Thread(target=traffic, daemon=True)
        sender.start()
        wait_for(lambda: sum(ok for _, ok in results) >= 20, 60, "traffic to flow")
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_for(
            lambda: (
                any(t > killed + 0.05 and ok for t, ok in results[-5:])
                and _predictor_pid(d) not in (None, pid)
            ),
            90,
            "the predictor to answer again",
        )
        back = next(t for t, ok in results if t > killed + 0.05 and ok and t > killed)
        stop.set()
        sender.join(30)
        failed = sum(1 for t, ok in results if not ok)
        print(
            f"\nchaos: predictor kill -9 -> answering again in {back - killed:.2f}s "
            f"({failed} of {len(results)} requests failed)"
        )
        assert results[-1][1]
    finally:
        stop.set()
        d.kill()
