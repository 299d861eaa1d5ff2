"""A generative InferenceService (`modelFormat: huggingface` on a causal language model)
through a real `wonderland up` and its gateway, driven by the official `openai` client,
streaming included. The model is built here: random weights, a word-level tokenizer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
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
    manifests.write_text(yaml.safe_dump(isvc("tiny-lm", predictor)))
    d = KServeDaemon(tmp)
    try:
        d.start(manifests)
        d.wait_ready("tiny-lm", timeout=300)
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
