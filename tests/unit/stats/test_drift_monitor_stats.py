"""The drift monitor's statistics against scipy / statsmodels / by hand.

References:
- rates: ``scipy.stats.chi2_contingency([[x0, n0 - x0], [x1, n1 - x1]], correction=False)`` and
  ``statsmodels.stats.proportion.proportions_ztest([x1, x0], [n1, n0])`` (pooled z, two-sided; z² = X²)
- binned KS: ``scipy.stats.ks_2samp(np.repeat(mids, base), np.repeat(mids, now), method="asymp")`` on the
  samples that put every value of a bin on its middle; the statistic by hand on raw values for the bound
- the look alpha by hand: budget / (looks in 30 days x tests)
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from canarywise.stats._checks import StatsInputError
from canarywise.stats.drift import binned_ks_test, look_alpha, rate_test, sustained


@pytest.mark.parametrize(
    ("x0", "n0", "x1", "n1"),
    [(600, 10_000, 900, 10_000), (2_400, 40_000, 610, 10_000), (31, 500, 22, 480), (1, 12_000, 0, 3_000)],
)
def test_rate_test_matches_chi2_contingency_and_pooled_z(x0: int, n0: int, x1: int, n1: int) -> None:
    table = [[x0, n0 - x0], [x1, n1 - x1]]
    expected = stats.chi2_contingency(table, correction=False)
    z, p_z = proportions_ztest([x1, x0], [n1, n0])
    result = rate_test(x0, n0, x1, n1)
    assert_allclose([result.statistic, result.pvalue], [expected.statistic, expected.pvalue], rtol=1e-10)
    assert_allclose([result.statistic, result.pvalue], [z**2, p_z], rtol=1e-8)
    assert_allclose(result.difference, x1 / n1 - x0 / n0, rtol=1e-12)


def test_rate_test_without_variance_is_no_change() -> None:
    """No event in either window: nothing can have moved (chi2_contingency would divide by a zero margin)."""
    result = rate_test(0, 5_000, 0, 1_000)
    assert (result.statistic, result.pvalue, result.difference) == (0.0, 1.0, 0.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_binned_ks_equals_ks_2samp_on_bin_middles(seed: int) -> None:
    """Token counts binned at edges 50, 100, 150, 200, 300; scipy on the values put at the bins' middles."""
    rng = np.random.default_rng(seed)
    edges = [50.0, 100.0, 150.0, 200.0, 300.0]
    base_raw = rng.gamma(4.0, 30.0, size=4_000)
    now_raw = rng.gamma(4.0, 33.0, size=1_500)
    bins = np.searchsorted(edges, base_raw, side="right"), np.searchsorted(edges, now_raw, side="right")
    base, now = (np.bincount(b, minlength=len(edges) + 1) for b in bins)
    mids = np.array([25.0, 75.0, 125.0, 175.0, 250.0, 400.0])
    expected = stats.ks_2samp(np.repeat(mids, base), np.repeat(mids, now), method="asymp")
    result = binned_ks_test(list(base), list(now), edges=edges)
    assert_allclose([result.statistic, result.pvalue], [expected.statistic, expected.pvalue], rtol=1e-10)
    # The stated approximation: the distance at the edges never exceeds the raw values' KS distance.
    assert result.statistic <= stats.ks_2samp(base_raw, now_raw).statistic + 1e-12


def test_binned_ks_identical_shares_is_no_change() -> None:
    result = binned_ks_test([10, 20, 30], [20, 40, 60])
    assert (result.statistic, result.pvalue) == (0.0, 1.0)


def test_look_alpha_by_hand() -> None:
    """Hourly looks: 720 in 30 days; three tests; 0.1 false alerts per 30 days -> 0.1 / 2160."""
    assert_allclose(look_alpha(0.1, 3600, 3), 0.1 / 2160, rtol=1e-15)
    assert_allclose(look_alpha(0.5, 6 * 3600, 1), 0.5 / 120, rtol=1e-15)


def test_sustained_needs_the_last_looks_all_deviating() -> None:
    assert sustained([False, True, True], 2)
    assert not sustained([True, True, False], 2)
    assert not sustained([True], 2)
    assert sustained([True], 1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: rate_test(11, 10, 1, 10),
            "`baseline_successes` must not exceed its number of trials (10), found 11",
        ),
        (lambda: rate_test(1, 10, 1, 0), "`current_n` must be an integer >= 1, found 0"),
        (
            lambda: binned_ks_test([1, 2, 3], [1, 2]),
            "`baseline` and `current` must count the same bins (at least 2), found 3 and 2 bins",
        ),
        (
            lambda: binned_ks_test([1, 2, 3], [1, 2, 3], edges=[5.0, 1.0]),
            "`edges` must be 2 increasing inner edges, found [5.0, 1.0]",
        ),
        (
            lambda: binned_ks_test([0, 0], [1, 2]),
            "`baseline` and `current` must each count something, found 0 and 3",
        ),
        (lambda: look_alpha(2.0, 3600, 1), "`false_alerts_per_30d` must be in (0, 1], found 2.0"),
        (lambda: look_alpha(0.1, 3600, 0), "`tests` must be an integer >= 1, found 0"),
        (lambda: sustained([True], 0), "`looks` must be an integer >= 1, found 0"),
    ],
)
def test_raises(call: object, message: str) -> None:
    with pytest.raises(StatsInputError) as info:
        call()  # type: ignore[operator]
    assert str(info.value) == message
