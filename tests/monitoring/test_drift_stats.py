"""The drift statistics against scipy's results and known cases, with and without scipy."""

from __future__ import annotations

import builtins
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from wonderland.monitoring.drift import stats

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.fixture
def no_scipy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Imports of scipy fail, as on an install without the ``monitoring`` extra."""
    real = builtins.__import__

    def guarded(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "scipy" or name.startswith("scipy."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", guarded)
    yield


def _samples(shift: float, n: int = 200, m: int = 150, seed: int = 7) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, n), rng.normal(shift, 1, m)


@pytest.mark.parametrize("shift", [0.0, 0.2, 0.5, 1.0])
def test_ks_matches_scipy(shift: float) -> None:
    a, b = _samples(shift)
    d, p = stats.ks_2samp(a, b)
    want = scipy_stats.ks_2samp(a, b)
    assert d == pytest.approx(want.statistic)
    assert p == pytest.approx(want.pvalue)


@pytest.mark.parametrize("shift", [0.0, 0.2, 0.5, 1.0])
def test_ks_without_scipy_is_the_asymptotic_distribution(shift: float, no_scipy: None) -> None:
    a, b = _samples(shift)
    d, p = stats.ks_2samp(a, b)
    want = scipy_stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(want.statistic)
    assert p == pytest.approx(want.pvalue, abs=0.02)


def test_kolmogorov_sf_known_values() -> None:
    assert stats.kolmogorov_sf(0.0) == 1.0
    # the 5% and 1% critical values of the Kolmogorov distribution
    assert stats.kolmogorov_sf(1.358) == pytest.approx(0.05, abs=5e-4)
    assert stats.kolmogorov_sf(1.628) == pytest.approx(0.01, abs=2e-4)
    for x in (0.3, 0.8, 1.2, 2.0):
        assert stats.kolmogorov_sf(x) == pytest.approx(scipy_stats.kstwobign.sf(x), rel=1e-9)


def test_identical_samples_do_not_drift_and_disjoint_ones_do() -> None:
    same = np.arange(100.0)
    assert stats.ks_2samp(same, same) == (0.0, 1.0)
    d, p = stats.ks_2samp(same, same + 1000)
    assert d == 1.0 and p < 1e-10


def test_chi2_matches_scipy_contingency() -> None:
    ref = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    cur = ["a"] * 20 + ["b"] * 30 + ["c"] * 50
    stat, p = stats.chi2_test(ref, cur)
    table = np.array([[50, 30, 20], [20, 30, 50]])
    want = scipy_stats.chi2_contingency(table, correction=False)
    assert stat == pytest.approx(want.statistic)
    assert p == pytest.approx(want.pvalue)


@pytest.mark.parametrize(
    ("statistic", "dof"), [(0.5, 1), (3.84, 1), (10.0, 3), (40.0, 9), (2.0, 20)]
)
def test_chi2_sf_without_scipy(statistic: float, dof: int, no_scipy: None) -> None:
    assert stats.chi2_sf(statistic, dof) == pytest.approx(
        scipy_stats.chi2.sf(statistic, dof), rel=1e-9
    )


def test_chi2_one_category_is_no_drift_and_new_categories_are() -> None:
    assert stats.chi2_test(["x"] * 10, ["x"] * 40) == (0.0, 1.0)
    _, p = stats.chi2_test(["a", "b"] * 50, ["c"] * 50)
    assert p < 1e-10


def test_psi_bands_and_known_value() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 5000)
    assert stats.psi(ref, rng.normal(0, 1, 5000)) < 0.1
    assert stats.psi_band(stats.psi(ref, rng.normal(0.5, 1, 5000))) in ("moderate", "significant")
    assert stats.psi_band(stats.psi(ref, rng.normal(2, 1, 5000))) == "significant"
    assert stats.psi_band(0.05) == "none"
    assert stats.psi_band(0.1) == "moderate"
    assert stats.psi_band(0.25) == "moderate"
    assert stats.psi_band(0.26) == "significant"
    # categorical: 50/50 -> 25/75 is (0.25-0.5)ln(0.5) + (0.75-0.5)ln(1.5)
    value = stats.psi(["a", "b"] * 50, ["a"] * 25 + ["b"] * 75, "categorical")
    assert value == pytest.approx(-0.25 * math.log(0.5) + 0.25 * math.log(1.5))


def test_psi_uses_epsilon_for_empty_bins() -> None:
    ref = np.arange(1000.0)
    value = stats.psi(ref, np.full(100, 5000.0))  # everything in the top bin
    top = 1.0 - 0.1
    expected = 9 * (stats.PSI_EPSILON - 0.1) * math.log(stats.PSI_EPSILON / 0.1) + top * math.log(
        1.0 / 0.1
    )
    assert value == pytest.approx(expected, rel=1e-6)


def test_feature_typing() -> None:
    assert stats.infer_kind([1.5, 2.25, 3.0, 4.5, 5.0, 6.5]) == "numeric"
    assert stats.infer_kind(["red", "green"]) == "categorical"
    assert stats.infer_kind([True, False, True]) == "categorical"
    assert stats.infer_kind([0, 1, 1, 0, 2]) == "categorical"  # few distinct numbers


def test_compare_bonferroni_and_minimum_sample() -> None:
    rng = np.random.default_rng(3)
    ref = {
        "x": rng.normal(0, 1, 300).tolist(),
        "y": rng.normal(0, 1, 300).tolist(),
        "color": (["r", "g", "b"] * 100),
    }
    kinds: dict[str, stats.FeatureKind] = {"x": "numeric", "y": "numeric", "color": "categorical"}
    same = {
        "x": rng.normal(0, 1, 100).tolist(),
        "y": rng.normal(0, 1, 100).tolist(),
        "color": ["r", "g", "b"] * 33 + ["g"],
    }
    report = stats.compare(ref, same, kinds)
    assert not report.detected
    assert report.threshold == pytest.approx(0.05 / 3)
    assert report.window_size == 100
    assert {(r.name, r.method) for r in report.features} == {
        ("x", "ks"),
        ("x", "psi"),
        ("y", "ks"),
        ("y", "psi"),
        ("color", "chi2"),
        ("color", "psi"),
    }
    shifted = {**same, "y": (np.asarray(same["y"]) + 2).tolist()}
    report = stats.compare(ref, shifted, kinds)
    assert report.detected
    assert [r.name for r in report.features if r.drift and r.method == "ks"] == ["y"]
    small = {k: v[:10] for k, v in shifted.items()}
    report = stats.compare(ref, small, kinds, min_samples=30)
    assert not report.detected and set(report.skipped) == {"x", "y", "color"}


def test_bonferroni_threshold_decides_a_borderline_p_value() -> None:
    """A p-value between alpha/d and alpha drifts alone, not among ten features."""
    rng = np.random.default_rng(11)
    ref = rng.normal(0, 1, 400)
    cur = None
    for shift in np.linspace(0.1, 0.6, 200):
        candidate = rng.normal(shift, 1, 100)
        p = stats.ks_2samp(ref, candidate)[1]
        if 0.05 / 10 < p < 0.05:
            cur = candidate
            break
    assert cur is not None
    one = stats.compare({"f": ref.tolist()}, {"f": cur.tolist()}, {"f": "numeric"})
    assert one.detected
    names = [f"f{i}" for i in range(10)]
    ref10 = {n: ref.tolist() for n in names}
    cur10 = {n: (cur if n == "f0" else ref[:100]).tolist() for n in names}
    ten = stats.compare(ref10, cur10, dict.fromkeys(names, "numeric"))
    assert not ten.detected
