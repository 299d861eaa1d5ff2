"""The metrics history's rings and derivations: rates from counters (resets included),
quantiles from bucket deltas, eviction, the saved file and a corrupt one."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from wonderland.monitoring.derive import SeriesDeriver, histogram_quantile
from wonderland.monitoring.history import HistoryStore, SeriesKey
from wonderland.monitoring.scrape import Sample, TargetHealth, TargetScrape
from wonderland.monitoring.selectors import parse_selector

T0 = 1_800_000_000.0
REV = {"k8s_namespace_name": "default", "kn_revision_name": "hello-00001"}


def _scrape(at: float, *samples: tuple[str, dict[str, str], float]) -> TargetScrape:
    health = TargetHealth("http://127.0.0.1:1/metrics", "pods", {}, health="up")
    return TargetScrape(health, at, [Sample(n, labels, v) for n, labels, v in samples])


def _derived(deriver: SeriesDeriver, scrape: TargetScrape) -> dict[str, float]:
    return {k.series: v for k, v in deriver.derive([scrape])}


def _key(series: str, name: str = "hello-00001") -> SeriesKey:
    return SeriesKey("revisions", "default", name, series)


def test_request_rate_comes_from_counter_deltas_and_survives_a_reset() -> None:
    d = SeriesDeriver()
    count = "kn_serving_invocation_duration_seconds_count"
    ok = {**REV, "http_response_status_code": "200"}
    bad = {**REV, "http_response_status_code": "503"}
    assert "request_rate" not in _derived(d, _scrape(T0, (count, ok, 100), (count, bad, 0)))
    got = _derived(d, _scrape(T0 + 10, (count, ok, 150), (count, bad, 10)))
    assert got["request_rate"] == pytest.approx(6.0)  # (50 + 10) / 10 s
    assert got["error_rate"] == pytest.approx(1.0)
    # the replica restarted: its counter starts again from 0, and 20 is the increase
    got = _derived(d, _scrape(T0 + 20, (count, ok, 20), (count, bad, 10)))
    assert got["request_rate"] == pytest.approx(2.0)
    assert got["error_rate"] == 0.0


def test_status_classes_and_autoscaler_windows_are_kept_for_revisions() -> None:
    d = SeriesDeriver()
    count = "kn_serving_invocation_duration_seconds_count"

    def code(c: str) -> dict[str, str]:
        return {**REV, "http_response_status_code": c}

    def scrape(at: float, ok: float, missing: float, failed: float) -> TargetScrape:
        return _scrape(
            at,
            (count, code("200"), ok),
            (count, code("404"), missing),
            (count, code("503"), failed),
            ("kn_revision_concurrency_stable", REV, 1.5),
            ("kn_revision_concurrency_panic", REV, 4.0),
        )

    d.derive([scrape(T0, 0, 0, 0)])
    got = _derived(d, scrape(T0 + 10, 70, 20, 10))
    assert got["request_rate"] == pytest.approx(10.0)
    assert got["rate_4xx"] == pytest.approx(2.0) and got["error_rate"] == pytest.approx(1.0)
    # 2xx is the rest (request_rate less every class kept), so it takes no row of its own
    assert "rate_2xx" not in got and "rate_5xx" not in got and "rate_3xx" not in got
    assert (got["concurrency_stable"], got["concurrency_panic"]) == (1.5, 4.0)


def test_a_counter_born_in_a_known_target_counts_its_first_requests() -> None:
    d = SeriesDeriver()
    count = "kn_serving_invocation_duration_seconds_count"
    ok = {**REV, "http_response_status_code": "200"}
    d.derive([_scrape(T0)])  # the replica answers, but has served nothing yet
    got = _derived(d, _scrape(T0 + 2, (count, ok, 8)))
    assert got["request_rate"] == pytest.approx(4.0)
    # a target seen for the first time has no past: no rate from its first scrape
    fresh = TargetScrape(
        TargetHealth("http://127.0.0.1:2/metrics", "pods", {}, health="up"),
        T0 + 4,
        [Sample(count, {**ok, "kn_revision_name": "other-00001"}, 50)],
    )
    assert all(k.name != "other-00001" for k, _ in d.derive([fresh]))


def test_latency_quantiles_come_from_bucket_deltas() -> None:
    d = SeriesDeriver()
    bucket = "kn_serving_invocation_duration_seconds_bucket"

    def buckets(at: float, counts: tuple[float, float, float, float]) -> TargetScrape:
        les = ("0.1", "0.5", "1", "+Inf")
        return _scrape(
            at, *((bucket, {**REV, "le": le}, c) for le, c in zip(les, counts, strict=True))
        )

    # a history of slow requests before the window
    assert "latency_p50" not in _derived(d, buckets(T0, (0, 0, 100, 100)))
    # 100 new requests in the window, all under 0.1 s: the old slow ones do not count
    got = _derived(d, buckets(T0 + 10, (100, 100, 200, 200)))
    assert got["latency_p50"] == pytest.approx(0.05)
    assert got["latency_p99"] == pytest.approx(0.099)
    # no request in the next window: no latency
    assert "latency_p50" not in _derived(d, buckets(T0 + 20, (100, 100, 200, 200)))


def test_a_models_pre_and_postprocess_latency_are_kept_per_stage() -> None:
    d = SeriesDeriver()
    model = {"model_name": "iris"}

    def stages(at: float, n: float) -> TargetScrape:
        samples = []
        for stage, le_fast in (
            ("preprocess", "0.001"),
            ("predict", "0.01"),
            ("postprocess", "0.1"),
        ):
            for le in (le_fast, "+Inf"):
                samples.append((f"request_{stage}_seconds_bucket", {**model, "le": le}, n))
        return _scrape(at, *samples)

    d.derive([stages(T0, 0)])
    got = _derived(d, stages(T0 + 10, 100))
    assert got["preprocess_p50"] == pytest.approx(0.0005)
    assert got["latency_p50"] == pytest.approx(0.005)  # the predict step, as before
    assert got["postprocess_p95"] == pytest.approx(0.095)
    assert "preprocess_p99" not in got  # stages keep p50 and p95 only


def test_histogram_quantile_follows_prometheus() -> None:
    b = [(0.1, 10.0), (0.5, 20.0), (1.0, 20.0), (math.inf, 30.0)]
    assert histogram_quantile(0.5, b) == pytest.approx(0.1 + 0.4 * 5 / 10)
    assert histogram_quantile(0.99, b) == 1.0  # in +Inf: the highest finite bound
    assert histogram_quantile(0.25, b) == pytest.approx(0.075)
    assert math.isnan(histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]))
    assert math.isnan(histogram_quantile(0.5, [(0.1, 1.0)]))  # no +Inf bucket


def test_dapr_latency_is_in_milliseconds_and_models_and_jobs_have_their_rows() -> None:
    d = SeriesDeriver()
    ns = {"namespace": "shop"}
    first = _scrape(
        T0,
        ("dapr_http_server_latency_bucket", {**ns, "app_id": "cart", "le": "10"}, 0),
        ("dapr_http_server_latency_bucket", {**ns, "app_id": "cart", "le": "+Inf"}, 0),
        ("inference_requests_total", {"model_name": "iris", "code": "200", "protocol": "v2"}, 5),
        ("wonderland_trainjob_progress_percentage", {**ns, "trainjob": "t1"}, 40),
        ("wonderland_trainjob_metric", {**ns, "trainjob": "t1", "metric": "loss"}, 0.5),
    )
    d.derive([first])
    second = _scrape(
        T0 + 5,
        ("dapr_http_server_latency_bucket", {**ns, "app_id": "cart", "le": "10"}, 4),
        ("dapr_http_server_latency_bucket", {**ns, "app_id": "cart", "le": "+Inf"}, 4),
        ("inference_requests_total", {"model_name": "iris", "code": "200", "protocol": "v2"}, 15),
        ("wonderland_trainjob_progress_percentage", {**ns, "trainjob": "t1"}, 60),
    )
    got = {(k.kind, k.namespace, k.name, k.series): v for k, v in d.derive([second])}
    assert got[("sidecars", "shop", "cart", "latency_p50")] == pytest.approx(0.005)
    assert got[("models", "", "iris", "request_rate")] == pytest.approx(2.0)
    assert got[("jobs", "shop", "t1", "progress")] == 60


def test_the_ring_keeps_24h_at_10s_and_blanks_what_nobody_wrote() -> None:
    store = HistoryStore(step=10, slots=8640, max_series=4)
    key = _key("request_rate")
    store.write(T0, [(key, 1.0)])
    store.write(T0 + 30, [(key, 4.0)])
    points = store.read(key, T0, T0 + 30)
    assert points == [(T0, 1.0), (T0 + 10, None), (T0 + 20, None), (T0 + 30, 4.0)]
    assert store.read(key, T0, T0 + 30, step=20) == [(T0, 1.0), (T0 + 20, 4.0)]
    # a day later the first value has been overwritten; the ring is still 8640 wide
    store.write(T0 + 86400, [(key, 9.0)])
    assert store.latest(key) == (T0 + 86400, 9.0)
    assert store.read(key, T0, T0 + 86400)[0][0] == T0 + 10
    assert store.nbytes() < 4 * 8640 * 4 + 1000


def test_a_full_store_evicts_the_idlest_series_and_refuses_when_all_are_live() -> None:
    store = HistoryStore(step=10, slots=16, max_series=2)
    a, b, c = _key("request_rate", "a"), _key("request_rate", "b"), _key("request_rate", "c")
    store.write(T0, [(a, 1.0), (b, 1.0)])
    store.write(T0 + 10, [(b, 2.0)])
    store.write(T0 + 20, [(b, 3.0), (c, 1.0)])  # a idles longest: c takes its row
    assert set(store.series_keys()) == {b, c}
    assert store.read(c, T0, T0 + 20) == [(T0, None), (T0 + 10, None), (T0 + 20, 1.0)]
    store.write(T0 + 30, [(b, 1.0), (c, 1.0), (a, 1.0)])  # both live: a is dropped
    assert a not in set(store.series_keys()) and store.dropped == 1
    assert store.evict_idle(T0 + 100, idle_seconds=30) == 2
    assert len(store) == 0


def test_the_history_survives_a_save_and_load(tmp_path: Path) -> None:
    path = tmp_path / "monitoring" / "history.npz"
    store = HistoryStore(step=10, slots=64, max_series=8)
    key = _key("latency_p95")
    for i in range(5):
        store.write(T0 + 10 * i, [(key, 0.1 * i)])
    store.save(path)
    again = HistoryStore(step=10, slots=64, max_series=8)
    assert again.load(path)
    assert [v for _, v in again.read(key, T0, T0 + 40)] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    again.write(T0 + 50, [(key, 1.0)])
    assert again.latest(key) == (T0 + 50, 1.0)


def test_a_corrupt_history_is_moved_aside_and_the_store_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "history.npz"
    path.write_bytes(b"not a zip file")
    store = HistoryStore(step=10, slots=64)
    with caplog.at_level(logging.WARNING, "wonderland.monitoring"):
        assert not store.load(path)
    assert not path.exists()
    (aside,) = tmp_path.glob("history.npz.corrupt-*")
    assert aside.read_bytes() == b"not a zip file"
    assert "cannot be read" in caplog.text and str(aside) in caplog.text
    store.write(T0, [(_key("request_rate"), 1.0)])  # and it records as usual
    assert len(store) == 1
    # a file of another step is set aside too rather than misread
    other = HistoryStore(step=5, slots=64)
    other.write(T0, [(_key("request_rate"), 1.0)])
    other.save(path)
    assert not HistoryStore(step=10, slots=64).load(path)


def test_selectors_parse_every_operator_and_refuse_bad_ones() -> None:
    sel = parse_selector('kn_serving_queue_depth{kn_revision_name=~"hello-.*",ns!="x"}')
    labels = {"__name__": "kn_serving_queue_depth", "kn_revision_name": "hello-00001"}
    assert sel.matches(labels)
    assert not sel.matches({**labels, "ns": "x"})
    assert not sel.matches({**labels, "kn_revision_name": "other-hello-1"})  # anchored
    assert parse_selector('{__name__!~"go_.*",job="pods"}').matches(
        {"__name__": "up", "job": "pods"}
    )
    for bad, why in (
        ('up{job="pods"', "not closed"),
        ("up{job=pods}", "quoted value"),
        ('{job=""}', "matches every series"),
        ('up{job=~"("}', "regular expression"),
        ("", "metric name or a label matcher"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_selector(bad)


def test_float32_rows_are_preallocated_in_blocks() -> None:
    store = HistoryStore(step=10, slots=8640, max_series=100)
    store.write(T0, [(_key("request_rate", f"r{i}"), 1.0) for i in range(100)])
    assert store.nbytes() <= 100 * 8640 * 4 + 100 * 8 + 1
    assert store.read(_key("request_rate", "r7"), T0, T0)[0][1] == 1.0
