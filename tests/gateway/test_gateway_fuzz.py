"""Fuzzing the gateway's HTTP/1.1 and HTTP/2 parsers (a short run; bench/gateway/fuzz.py
runs the same for as long as it is asked).

Seeds are what httpx sends over HTTP/1.1 and HTTP/2; hypothesis mutates them. Hand-written
hostile HTTP/2 sequences come from the ``h2`` library. For every input: no 5xx, answers
that are well-formed, nothing held afterwards, every connection closed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _support.gateway_fuzz import (
    HOST,
    OPS,
    LiveGateway,
    adversarial_h2,
    capture_seeds,
    exchange,
    h1_statuses,
    h2_statuses,
    mutate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SEEDS = capture_seeds()
OP = st.tuples(st.sampled_from(OPS), st.integers(0, 1 << 20), st.binary(max_size=48))
FUZZ = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def live() -> Iterator[LiveGateway]:
    with LiveGateway() as gateway:
        yield gateway


def test_seeds_come_from_real_clients() -> None:
    assert len(SEEDS["h1"]) >= 5 and len(SEEDS["h2"]) >= 1
    assert all(s.endswith(b"\r\n") or b"\r\n\r\n" in s for s in SEEDS["h1"])


def check_h1(live: LiveGateway, payload: bytes, split: int) -> None:
    cut = split % (len(payload) + 1)
    data, _ = exchange(live.port, [payload[:cut], payload[cut:]])
    statuses = h1_statuses(data)
    assert all(s < 500 for s in statuses), (statuses, payload[:200])
    live.settle()


def check_h2(live: LiveGateway, payload: bytes, split: int) -> None:
    cut = split % (len(payload) + 1)
    data, _ = exchange(live.port, [payload[:cut], payload[cut:]])
    if data.startswith(b"HTTP/1.1 "):
        statuses = h1_statuses(data)  # a broken preface is read as HTTP/1.1
    else:
        statuses, _ = h2_statuses(data)
    assert all(s < 500 for s in statuses), (statuses, payload[:200])
    live.settle()


@FUZZ
@given(seed=st.sampled_from(SEEDS["h1"]), ops=st.lists(OP, max_size=6), split=st.integers(0))
def test_http1_parser_fuzz(live: LiveGateway, seed: bytes, ops: list, split: int) -> None:
    check_h1(live, mutate(seed, ops), split)


@FUZZ
@given(seed=st.sampled_from(SEEDS["h2"]), ops=st.lists(OP, max_size=6), split=st.integers(0))
def test_http2_parser_fuzz(live: LiveGateway, seed: bytes, ops: list, split: int) -> None:
    check_h2(live, mutate(seed, ops), split)


@pytest.mark.parametrize("name", sorted(adversarial_h2()))
def test_hostile_http2_sequences(live: LiveGateway, name: str) -> None:
    payload = adversarial_h2()[name]
    data, closed = exchange(live.port, [payload], idle=1.0)
    if data.startswith(b"HTTP/1.1 "):
        statuses, goaway = h1_statuses(data), None  # not a whole preface: HTTP/1.1
    else:
        statuses, goaway = h2_statuses(data)
    assert all(s < 500 for s in statuses), statuses
    if goaway is not None:
        assert closed, "a GOAWAY for an error must end the connection"
    live.settle()
    live.healthy()


def test_the_gateway_still_answers_after_the_fuzzing(live: LiveGateway) -> None:
    live.healthy()
    data, _ = exchange(
        live.port, [f"GET /a HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()] * 3, idle=0.5
    )
    assert h1_statuses(data) == [200, 200, 200]
    live.settle()
