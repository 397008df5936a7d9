"""Drift tests against statsmodels / by hand.

References:
- ``statsmodels.stats.contingency_tables.Table(table).test_nominal_association()`` (Pearson chi-square of
  independence on the 2 x k table) and the homogeneity formula by hand
- two-sample KS: the statistic by hand (largest gap of the empirical CDFs); exact p-values by counting
  (fully separated samples of 5 and 5: 2 / C(10, 5)); ``scipy.stats.ks_2samp`` called directly
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats.contingency_tables import Table

from canarywise.stats._checks import StatsInputError
from canarywise.stats.drift import category_mix_test, ks_test

INTENTS_BASE = {"order_status": 5200, "recommendation": 3100, "return": 1700}
INTENTS_NOW = {"order_status": 5050, "recommendation": 3400, "return": 1550}


def test_category_mix_matches_statsmodels_and_hand() -> None:
    """statsmodels: ``Table([[5200, 3100, 1700], [5050, 3400, 1550]]).test_nominal_association()``;
    by hand: E_ij = row_i * col_j / total, X² = sum (O - E)² / E, df = 2."""
    table = np.array([[5200, 3100, 1700], [5050, 3400, 1550]], dtype=float)
    expected_counts = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    x2 = ((table - expected_counts) ** 2 / expected_counts).sum()
    sm = Table(table).test_nominal_association()
    result = category_mix_test(INTENTS_BASE, INTENTS_NOW)
    assert_allclose([result.statistic, result.pvalue], [sm.statistic, sm.pvalue], rtol=1e-9)
    assert_allclose(result.statistic, x2, rtol=1e-12)
    assert result.df == sm.df == 2
    assert result.categories == ("order_status", "recommendation", "return")
    assert_allclose(result.current_shares, [0.505, 0.34, 0.155], rtol=1e-12)


def test_mappings_align_by_key_and_empty_categories_drop() -> None:
    """A category new in the current window counts 0 in the baseline; one empty in both is dropped."""
    base = {"order_status": 5200, "recommendation": 3100, "legacy": 0}
    now = {"recommendation": 3400, "order_status": 5050, "manga_search": 40}
    result = category_mix_test(base, now)
    assert result.categories == ("order_status", "recommendation", "manga_search")
    # shift_zeros=False: statsmodels would otherwise add 0.5 to the zero cell.
    sm = Table(np.array([[5200, 3100, 0], [5050, 3400, 40]], dtype=float), shift_zeros=False)
    sm = sm.test_nominal_association()
    assert_allclose(result.statistic, sm.statistic, rtol=1e-9)
    assert result.df == 2


def test_sequences_align_by_position() -> None:
    by_key = category_mix_test(INTENTS_BASE, INTENTS_NOW)
    by_position = category_mix_test([5200, 3100, 1700], [5050, 3400, 1550])
    assert_allclose(by_position.statistic, by_key.statistic, rtol=1e-12)


def test_two_categories_with_and_without_yates() -> None:
    """By hand: 2 x 2 table, Yates: sum (|O - E| - 0.5)² / E."""
    table = np.array([[900, 100], [860, 140]], dtype=float)
    e = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    plain = ((table - e) ** 2 / e).sum()
    yates = ((np.abs(table - e) - 0.5) ** 2 / e).sum()
    assert_allclose(category_mix_test([900, 100], [860, 140]).statistic, plain, rtol=1e-12)
    assert_allclose(category_mix_test([900, 100], [860, 140], correction=True).statistic, yates, rtol=1e-12)
    assert_allclose(category_mix_test([900, 100], [860, 140]).pvalue, stats.chi2.sf(plain, 1), rtol=1e-10)


def ecdf_gap(a: np.ndarray, b: np.ndarray) -> float:
    """By hand: sup |F_a - F_b| evaluated at every observed point."""
    points = np.concatenate([a, b])
    fa = np.searchsorted(np.sort(a), points, side="right") / a.size
    fb = np.searchsorted(np.sort(b), points, side="right") / b.size
    return float(np.abs(fa - fb).max())


def test_ks_fully_separated_samples_exact_by_counting() -> None:
    """Of the C(10, 5) = 252 equally likely orderings, 2 give D = 1 (two-sided), 1 gives current all
    larger ('greater': baseline's CDF above)."""
    base, now = [1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0]
    assert ks_test(base, now).statistic == 1.0
    assert_allclose(ks_test(base, now).pvalue, 2 / math.comb(10, 5), rtol=1e-9)
    assert_allclose(ks_test(base, now, alternative="greater").pvalue, 1 / math.comb(10, 5), rtol=1e-9)
    assert_allclose(ks_test(base, now, alternative="less").pvalue, 1.0, rtol=1e-9)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_ks_matches_hand_statistic_and_scipy(alternative: str) -> None:
    """scipy: ``ks_2samp(base, now, alternative)``; two-sided statistic by hand."""
    rng = np.random.default_rng(5)
    base = rng.lognormal(5.3, 0.4, size=300)  # latency, ms
    now = rng.lognormal(5.35, 0.45, size=250)
    expected = stats.ks_2samp(base, now, alternative=alternative)
    result = ks_test(list(base), list(now), alternative=alternative)
    assert_allclose([result.statistic, result.pvalue], [expected.statistic, expected.pvalue], rtol=1e-12)
    if alternative == "two-sided":
        assert_allclose(result.statistic, ecdf_gap(base, now), rtol=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: category_mix_test([1, 2], [1, 2, 3]),
            "`current` must have one count per category of `baseline` (2), found [1, 2, 3]",
        ),
        (lambda: category_mix_test([1, -2], [1, 2]), "`baseline['1']` must be an integer >= 0, found -2"),
        (
            lambda: category_mix_test({"a": 5}, {"a": 3}),
            "`baseline` and `current` must each have observations and together at least 2 non-empty "
            "categories, found {'a': 5} and {'a': 3}",
        ),
        (
            lambda: ks_test([], [1.0]),
            "`baseline` and `current` must each hold at least one value, found 0 and 1",
        ),
        (
            lambda: ks_test([1.0], [2.0], alternative="up"),
            "`alternative` must be one of ('two-sided', 'greater', 'less'), found 'up'",
        ),
    ],
)
def test_raises(call: object, message: str) -> None:
    with pytest.raises(StatsInputError) as info:
        call()  # type: ignore[operator]
    assert str(info.value) == message
