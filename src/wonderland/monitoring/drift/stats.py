"""The statistics of drift detection, on numpy (scipy for exact p-values when installed).

- :func:`ks_2samp`: the two-sample Kolmogorov-Smirnov test of a numeric feature. With scipy
  (the ``monitoring`` extra) the p-value is ``scipy.stats.ks_2samp``'s (exact for small
  samples); without it, the asymptotic Kolmogorov distribution with Stephens' small-sample
  correction.
- :func:`chi2_test`: the χ² test of a categorical feature's counts, reference against
  current (``scipy.stats.chi2_contingency`` on the 2xk table without Yates' correction).
- :func:`psi`: the population stability index over 10 reference-quantile bins (one bin per
  category for categorical features), ε for empty bins, read with :func:`psi_band`.
- :func:`compare`: every feature of a window against the reference: KS or χ² per feature
  with a Bonferroni correction (drift when any p < alpha / d), plus PSI per feature.

Features are typed ``numeric`` or ``categorical``: declared, or inferred by
:func:`infer_kind` (strings and booleans are categorical, and so are numbers with at most
:data:`CATEGORICAL_MAX_UNIQUE` distinct values in the reference, as Evidently does).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "CATEGORICAL_MAX_UNIQUE",
    "PSI_BINS",
    "PSI_EPSILON",
    "DriftReport",
    "FeatureKind",
    "FeatureResult",
    "chi2_test",
    "compare",
    "infer_kind",
    "kolmogorov_sf",
    "ks_2samp",
    "psi",
    "psi_band",
]

FeatureKind = Literal["numeric", "categorical"]

CATEGORICAL_MAX_UNIQUE = 5
PSI_BINS = 10
PSI_EPSILON = 1e-4
PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25


@dataclass(frozen=True)
class FeatureResult:
    """One test of one feature: ``method`` is ``ks``, ``chi2`` or ``psi``; ``p_value`` is
    None for PSI (a score with bands, not a test)."""

    name: str
    method: str
    score: float
    p_value: float | None
    drift: bool

    def as_event(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "score": self.score,
            "pValue": self.p_value,
            "drift": self.drift,
        }


@dataclass(frozen=True)
class DriftReport:
    """A window compared with the reference. ``detected`` when any KS or χ² p-value is
    below ``threshold`` (alpha over the number of features tested: Bonferroni)."""

    detected: bool
    threshold: float
    window_size: int
    features: tuple[FeatureResult, ...]
    skipped: tuple[str, ...] = ()  # features with fewer than the minimum sample


def _sorted_floats(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[~np.isnan(arr)]
    arr.sort()
    return arr


def kolmogorov_sf(x: float) -> float:
    """P(K > x) of the Kolmogorov distribution: 2 Σ (-1)^(k-1) exp(-2 k² x²)."""
    if x <= 0:
        return 1.0
    if x < 0.2:
        return 1.0  # the series converges slowly here and the value is 1 to 1e-16
    total = 0.0
    for k in range(1, 101):
        term = math.exp(-2.0 * k * k * x * x)
        total += term if k % 2 else -term
        if term < 1e-16:
            break
    return min(1.0, max(0.0, 2.0 * total))


def _ks_statistic(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    both = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, both, side="right") / a.size
    cdf_b = np.searchsorted(b, both, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def ks_2samp(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """The two-sided two-sample KS statistic D and its p-value (NaNs ignored)."""
    a = _sorted_floats(reference)
    b = _sorted_floats(current)
    if a.size == 0 or b.size == 0:
        raise ValueError("the KS test needs values in both samples")
    try:
        from scipy import stats
    except ImportError:
        d = _ks_statistic(a, b)
        en = math.sqrt(a.size * b.size / (a.size + b.size))
        return d, kolmogorov_sf((en + 0.12 + 0.11 / en) * d)
    result = stats.ks_2samp(a, b)
    return float(result.statistic), float(result.pvalue)


def _gammaincc(s: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(s, x) (Numerical Recipes' gammq)."""
    if x <= 0:
        return 1.0
    gln = math.lgamma(s)
    if x < s + 1.0:  # series for P, then Q = 1 - P
        term = total = 1.0 / s
        ap = s
        for _ in range(1000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + s * math.log(x) - gln))
    tiny = 1e-300  # Lentz's continued fraction for Q
    b = x + 1.0 - s
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - s)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(-x + s * math.log(x) - gln) * h)


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X > statistic) for X ~ χ²(dof)."""
    try:
        from scipy import stats
    except ImportError:
        return _gammaincc(dof / 2.0, statistic / 2.0)
    return float(stats.chi2.sf(statistic, dof))


def _counts(
    reference: Sequence[Any], current: Sequence[Any]
) -> tuple[list[str], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    ref = [str(v) for v in reference]
    cur = [str(v) for v in current]
    categories = sorted(set(ref) | set(cur))
    index = {c: i for i, c in enumerate(categories)}
    ref_counts = np.zeros(len(categories))
    cur_counts = np.zeros(len(categories))
    for v in ref:
        ref_counts[index[v]] += 1
    for v in cur:
        cur_counts[index[v]] += 1
    return categories, ref_counts, cur_counts


def chi2_test(reference: Sequence[Any], current: Sequence[Any]) -> tuple[float, float]:
    """χ² statistic and p-value of the 2xk table of category counts (reference, current)."""
    _, ref_counts, cur_counts = _counts(reference, current)
    if ref_counts.sum() == 0 or cur_counts.sum() == 0:
        raise ValueError("the chi-squared test needs values in both samples")
    if ref_counts.size < 2:
        return 0.0, 1.0  # one category in both: nothing can differ
    table = np.vstack([ref_counts, cur_counts])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, chi2_sf(statistic, ref_counts.size - 1)


def _psi(ref_share: npt.NDArray[np.float64], cur_share: npt.NDArray[np.float64]) -> float:
    ref_share = np.where(ref_share == 0, PSI_EPSILON, ref_share)
    cur_share = np.where(cur_share == 0, PSI_EPSILON, cur_share)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def psi(
    reference: Sequence[Any] | npt.ArrayLike,
    current: Sequence[Any] | npt.ArrayLike,
    kind: FeatureKind = "numeric",
    bins: int = PSI_BINS,
) -> float:
    """PSI = Σ (cur% - ref%) · ln(cur% / ref%) over the reference's quantile bins (numeric)
    or the categories (categorical); empty bins count as :data:`PSI_EPSILON`."""
    if kind == "categorical":
        _, ref_counts, cur_counts = _counts(list(reference), list(current))  # type: ignore[arg-type]
        return _psi(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum())
    a = _sorted_floats(reference)
    b = _sorted_floats(current)
    if a.size == 0 or b.size == 0:
        raise ValueError("PSI needs values in both samples")
    # inner edges at the reference's deciles; a value equal to an edge goes to the upper bin
    edges = np.unique(np.quantile(a, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_bins = np.bincount(np.searchsorted(edges, a, side="right"), minlength=edges.size + 1)
    cur_bins = np.bincount(np.searchsorted(edges, b, side="right"), minlength=edges.size + 1)
    return _psi(ref_bins / a.size, cur_bins / b.size)


def psi_band(value: float) -> str:
    """``none`` (< 0.1), ``moderate`` (0.1-0.25) or ``significant`` (> 0.25)."""
    if value < PSI_MODERATE:
        return "none"
    if value <= PSI_SIGNIFICANT:
        return "moderate"
    return "significant"


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float | np.integer | np.floating):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def infer_kind(values: Sequence[Any]) -> FeatureKind:
    """``categorical`` for strings, booleans or few distinct numbers; else ``numeric``."""
    present = [v for v in values if v is not None and v != ""]
    if not all(_is_number(v) for v in present):
        return "categorical"
    if len({float(v) for v in present}) <= CATEGORICAL_MAX_UNIQUE:
        return "categorical"
    return "numeric"


def compare(
    reference: Mapping[str, Sequence[Any]],
    current: Mapping[str, Sequence[Any]],
    kinds: Mapping[str, FeatureKind],
    *,
    alpha: float = 0.05,
    min_samples: int = 30,
) -> DriftReport:
    """Test each feature of ``current`` against ``reference`` (see the module docstring).

    A feature with fewer than ``min_samples`` values in the window is skipped; the
    Bonferroni threshold is ``alpha`` over the number of features tested."""
    tested: list[tuple[str, FeatureKind, list[Any], list[Any]]] = []
    skipped: list[str] = []
    for name, kind in kinds.items():
        ref = [v for v in reference[name] if v is not None and v != ""]
        cur = [v for v in current.get(name, ()) if v is not None and v != ""]
        if kind == "numeric":
            ref = [v for v in ref if _is_number(v) and not math.isnan(float(v))]
            cur = [v for v in cur if _is_number(v) and not math.isnan(float(v))]
        if len(cur) < min_samples or not ref:
            skipped.append(name)
            continue
        tested.append((name, kind, ref, cur))
    threshold = alpha / max(1, len(tested))
    results: list[FeatureResult] = []
    for name, kind, ref, cur in tested:
        if kind == "numeric":
            ref_f = np.asarray(ref, dtype=np.float64)
            cur_f = np.asarray(cur, dtype=np.float64)
            stat, p = ks_2samp(ref_f, cur_f)
            results.append(FeatureResult(name, "ks", stat, p, p < threshold))
            score = psi(ref_f, cur_f, "numeric")
        else:
            stat, p = chi2_test(ref, cur)
            results.append(FeatureResult(name, "chi2", stat, p, p < threshold))
            score = psi(ref, cur, "categorical")
        results.append(FeatureResult(name, "psi", score, None, score > PSI_SIGNIFICANT))
    window = max((len(current.get(n, ())) for n in kinds), default=0)
    detected = any(r.drift for r in results if r.method != "psi")
    return DriftReport(detected, threshold, window, tuple(results), tuple(skipped))
