"""A restarted daemon converges InferenceServices again: same revision, rollout history
kept, the model served from the cache without a second download."""

from __future__ import annotations

import functools
import http.server
import threading
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
