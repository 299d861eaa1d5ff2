"""A generative InferenceService (`modelFormat: huggingface` on a causal language model)
through a real `wonderland up` and its gateway, driven by the official `openai` client,
streaming included. The model is built here: random weights, a word-level tokenizer."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from _support.tiny_lm import build_tiny_lm
from kserve_testing import KServeDaemon, isvc, model

import wonderland

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KServeDaemon]:
    tmp = tmp_path_factory.mktemp("kserve-genai")
    lm = build_tiny_lm(tmp / "tiny-lm")
    manifests = tmp / "isvc.yaml"
    # the replica runs the wonderland under test (a checkout's src/ may not be the one the
    # interpreter has installed)
    src = str(Path(wonderland.__file__).resolve().parent.parent)
    env = [{"name": "PYTHONPATH", "value": src}]
    predictor = model("huggingface", f"file://{lm}", env=env)
    # the same model again behind a predictor whose only port speaks gRPC
    grpc_predictor = model("huggingface", f"file://{lm}", env=env, protocolVersion="grpc-v2")
    manifests.write_text(
        yaml.safe_dump_all([isvc("tiny-lm", predictor), isvc("tiny-lm-grpc", grpc_predictor)])
    )
    d = KServeDaemon(tmp)
    try:
        d.start(manifests)
        d.wait_ready("tiny-lm", timeout=300)
        d.wait_ready("tiny-lm-grpc", timeout=300)
        yield d
    finally:
        d.kill()


@pytest.fixture(scope="module")
def client(daemon: KServeDaemon) -> Any:
    return openai.OpenAI(
        base_url=daemon.gateway + "/openai/v1",
        api_key="unused",
        default_headers={"Host": daemon.host("tiny-lm")},
        max_retries=0,
        timeout=60,
    )


def test_openai_client_streams_through_the_gateway(client: Any) -> None:
    assert [m.id for m in client.models.list()] == ["tiny-lm"]
    args = {"model": "tiny-lm", "prompt": "the cat", "max_tokens": 12, "temperature": 0}
    whole = client.completions.create(**args, extra_body={"ignore_eos": True})
    chunks = list(
        client.completions.create(
            **args,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage.completion_tokens == 12
    chat = client.chat.completions.create(
        model="tiny-lm",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=5,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    deltas = [c.choices[0].delta for c in chat]
    assert deltas[0].role == "assistant" and len(deltas) == 7  # role, 5 tokens, finish


def test_the_openai_client_example_runs(daemon: KServeDaemon) -> None:
    """examples/inference/openai_client.py against the same InferenceService name."""
    example = Path(__file__).resolve().parents[2] / "examples/inference/openai_client.py"
    out = subprocess.run(
        [sys.executable, str(example), "--url", daemon.gateway, "--host", daemon.host("tiny-lm")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "models: ['tiny-lm']"
    assert re.fullmatch(r"\d+ tokens", lines[-1]), out.stdout  # the chat stream's usage


def test_first_event_arrives_before_the_stream_ends(daemon: KServeDaemon) -> None:
    """The gateway passes events on as they come (it does not hold the stream whole)."""
    doc = {
        "model": "tiny-lm",
        "prompt": "a",
        "max_tokens": 1500,
        "stream": True,
        "ignore_eos": True,
    }
    started = time.perf_counter()
    first = None
    with httpx.stream(
        "POST",
        daemon.gateway + "/openai/v1/completions",
        json=doc,
        headers={"Host": daemon.host("tiny-lm")},
        timeout=60,
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for chunk in r.iter_raw():
            if first is None and b'"text"' in chunk:
                first = time.perf_counter() - started
    total = time.perf_counter() - started
    assert first is not None and first < total / 2, (first, total)


def test_v2_generate_through_the_gateway(daemon: KServeDaemon) -> None:
    r = httpx.post(
        daemon.gateway + "/v2/models/tiny-lm/generate",
        json={"text_input": "red", "max_tokens": 3, "temperature": 0, "ignore_eos": True},
        headers={"Host": daemon.host("tiny-lm")},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["model_name"] == "tiny-lm" and len(r.json()["text_output"].split()) == 3


def test_the_isvc_reads_as_huggingface(daemon: KServeDaemon, tmp_path: Path) -> None:
    ksvc = daemon.get("ksvc", "tiny-lm-predictor")
    assert ksvc["metadata"]["labels"]["serving.kserve.io/inferenceservice"] == "tiny-lm"


def _stream_inputs(grpcclient: Any, prompt: str, params: dict[str, Any]) -> list[Any]:
    def tensor(name: str, datatype: str, value: Any) -> Any:
        t = grpcclient.InferInput(name, [1], datatype)
        t.set_data_from_numpy(np.array([value], dtype=object if datatype == "BYTES" else None))
        return t

    return [
        tensor("text_input", "BYTES", prompt.encode()),
        tensor("stream", "BOOL", True),
        tensor("sampling_parameters", "BYTES", json.dumps(params).encode()),
    ]


def test_grpc_model_stream_infer_through_the_gateway(daemon: KServeDaemon, client: Any) -> None:
    """Triton's bidirectional stream at the InferenceService's host, through the gateway,
    into a predictor whose only port speaks gRPC: one response per token as they come."""
    grpcclient = pytest.importorskip("tritonclient.grpc")
    spec = daemon.get("ksvc", "tiny-lm-grpc-predictor")["spec"]["template"]["spec"]
    assert spec["containers"][0]["ports"][0]["name"] == "h2c"
    grpc = grpcclient.InferenceServerClient(
        daemon.gateway.removeprefix("http://"),
        channel_args=[("grpc.default_authority", daemon.host("tiny-lm-grpc"))],
    )
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    arrived: list[float] = []

    def callback(result: Any, error: Any) -> None:
        arrived.append(time.perf_counter())
        results.put((result, error))

    greedy = {"max_tokens": 8, "temperature": 0, "ignore_eos": True}
    try:
        grpc.start_stream(callback=callback)
        grpc.async_stream_infer(
            "tiny-lm-grpc", _stream_inputs(grpcclient, "red", greedy), request_id="s"
        )
        grpc.async_stream_infer(
            "tiny-lm-grpc", _stream_inputs(grpcclient, "red", {"top_k": 2}), request_id="bad"
        )
        long = {"max_tokens": 600, "ignore_eos": True}
        started = time.perf_counter()
        grpc.async_stream_infer(
            "tiny-lm-grpc", _stream_inputs(grpcclient, "a", long), request_id="l"
        )
        grpc.stop_stream()  # closes our side; the predictor answers everything first
    finally:
        grpc.close()
    got: dict[str, list[tuple[str, bool, float]]] = {}
    errors = []
    for at in arrived:
        result, error = results.get_nowait()
        if error is not None:
            errors.append(error.message())
            continue
        reply = result.get_response()
        text = "".join(x.decode() for x in result.as_numpy("text_output"))
        final = reply.parameters["triton_final_response"].bool_param
        got.setdefault(reply.id, []).append((text, final, at))
    streamed = got["s"]
    assert [f for _, f, _ in streamed] == [False] * (len(streamed) - 1) + [True]
    want = client.completions.create(
        model="tiny-lm", prompt="red", max_tokens=8, temperature=0, extra_body={"ignore_eos": True}
    )
    assert "".join(t for t, _, _ in streamed) == want.choices[0].text
    # a bad request answers its error through the gateway and the stream goes on
    assert errors == [
        "sampling parameters: unknown parameter 'top_k'; known: "
        "ignore_eos, max_tokens, n, seed, stop, stream, temperature, top_p"
    ]
    # the gateway passes responses on as they come (it does not hold the stream whole)
    first, last = (got["l"][i][2] - started for i in (0, -1))
    assert len(got["l"]) > 300 and first < last / 2, (first, last)
