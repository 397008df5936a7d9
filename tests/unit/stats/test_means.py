"""Welch t-test from summary statistics, against scipy and statsmodels.

References (dev dependencies only):
- ``scipy.stats.ttest_ind_from_stats(mean_t, sd_t, n_t, mean_c, sd_c, n_c, equal_var=False, alternative=...)``
- ``statsmodels.stats.weightstats.ttest_ind(x_t, x_c, usevar='unequal', alternative=..., value=margin)``
  -> (t, p, df) on raw data, and ``CompareMeans.from_data(x_t, x_c).tconfint_diff(alpha, alternative,
  usevar='unequal')`` for the interval
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans
from statsmodels.stats.weightstats import ttest_ind as sm_ttest_ind

from canarywise.stats._checks import StatsInputError
from canarywise.stats.means import SummaryStats, welch_ttest

SM_ALTERNATIVE = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}
ALTERNATIVES = list(SM_ALTERNATIVE)
# Latency (ms) as users report it: (n, mean, sd) for control and canary.
LATENCY_CONTROL = (1200, 212.4, 85.3)
LATENCY_CANARY = (1150, 219.9, 97.1)


def test_summary_stats_round_trips_mean_and_sd() -> None:
    arm = SummaryStats.from_mean_sd(*LATENCY_CONTROL)
    assert arm.n == 1200
    assert_allclose([arm.mean, arm.sd], [212.4, 85.3], rtol=1e-12)
    assert_allclose(arm.variance, 85.3**2, rtol=1e-12)


def test_summary_stats_from_values_and_pooling_match_numpy() -> None:
    """numpy: ``mean``, ``var(ddof=1)`` of the raw and of the concatenated values."""
    rng = np.random.default_rng(7)
    first, second = rng.gamma(2.0, 100.0, size=300), rng.gamma(2.5, 90.0, size=200)
    a, b = SummaryStats.from_values(first), SummaryStats.from_values(second)
    assert_allclose([a.mean, a.variance], [first.mean(), first.var(ddof=1)], rtol=1e-12)
    pooled = a + b
    both = np.concatenate([first, second])
    assert pooled.n == 500
    assert_allclose([pooled.mean, pooled.variance], [both.mean(), both.var(ddof=1)], rtol=1e-12)


def test_summary_stats_degenerate_values_are_nan_not_errors() -> None:
    assert math.isnan(SummaryStats(0, 0.0, 0.0).mean)
    one = SummaryStats.from_values([5.0])
    assert one.mean == 5.0
    assert math.isnan(one.variance)
    assert math.isnan(one.sd)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("margin", [0.0, 5.0])
def test_welch_from_mean_sd_matches_scipy(alternative: str, margin: float) -> None:
    """scipy: ``ttest_ind_from_stats(219.9 - margin, 97.1, 1150, 212.4, 85.3, 1200, equal_var=False)``
    (a margin shifts the treatment mean)."""
    expected = stats.ttest_ind_from_stats(
        219.9 - margin, 97.1, 1150, 212.4, 85.3, 1200, equal_var=False, alternative=alternative
    )
    result = welch_ttest(
        SummaryStats.from_mean_sd(*LATENCY_CONTROL),
        SummaryStats.from_mean_sd(*LATENCY_CANARY),
        alternative=alternative,
        margin=margin,
    )
    assert_allclose(result.statistic, expected.statistic, rtol=1e-10)
    assert_allclose(result.pvalue, expected.pvalue, rtol=1e-10)
    assert_allclose(result.diff, 7.5, rtol=1e-10)
    assert result.margin == margin


def test_welch_df_by_hand() -> None:
    """Welch-Satterthwaite: df = (a + b)² / (a²/(n_c - 1) + b²/(n_t - 1)), a = s_c²/n_c, b = s_t²/n_t."""
    a, b = 85.3**2 / 1200, 97.1**2 / 1150
    df = (a + b) ** 2 / (a * a / 1199 + b * b / 1149)
    result = welch_ttest(
        SummaryStats.from_mean_sd(*LATENCY_CONTROL), SummaryStats.from_mean_sd(*LATENCY_CANARY)
    )
    assert_allclose(result.df, df, rtol=1e-10)
    half = stats.t.ppf(0.975, df) * math.sqrt(a + b)
    assert_allclose([result.ci_low, result.ci_high], [7.5 - half, 7.5 + half], rtol=1e-9)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize(("alpha", "margin"), [(0.05, 0.0), (0.1, -3.0), (0.01, 2.0)])
def test_welch_from_sums_matches_statsmodels_on_raw_data(
    alternative: str, alpha: float, margin: float
) -> None:
    """statsmodels: ``ttest_ind(x_t, x_c, usevar='unequal', alternative, value=margin)`` and
    ``CompareMeans.from_data(x_t, x_c).tconfint_diff(alpha, alternative, usevar='unequal')``."""
    rng = np.random.default_rng(2026)
    x_c = rng.lognormal(mean=1.0, sigma=0.6, size=80)  # token cost per answer, skewed
    x_t = rng.lognormal(mean=1.1, sigma=0.8, size=55)
    sm = SM_ALTERNATIVE[alternative]
    t_expected, p_expected, df_expected = sm_ttest_ind(
        x_t, x_c, usevar="unequal", alternative=sm, value=margin
    )
    ci_expected = CompareMeans.from_data(x_t, x_c).tconfint_diff(
        alpha=alpha, alternative=sm, usevar="unequal"
    )

    control = SummaryStats(n=80, sum=float(x_c.sum()), sum_squares=float((x_c**2).sum()))
    treatment = SummaryStats(n=55, sum=float(x_t.sum()), sum_squares=float((x_t**2).sum()))
    result = welch_ttest(control, treatment, alternative=alternative, alpha=alpha, margin=margin)
    assert_allclose(
        [result.statistic, result.pvalue, result.df], [t_expected, p_expected, df_expected], rtol=1e-9
    )
    assert_allclose([result.ci_low, result.ci_high], ci_expected, rtol=1e-9)


def test_one_zero_variance_arm_still_works() -> None:
    """With s_c = 0 the Welch df is n_t - 1 (hand) and t = diff / (s_t/sqrt(n_t)): a one-sample t."""
    treatment_values = np.array([1.0, 2.0, 4.0, 7.0])
    result = welch_ttest(SummaryStats.from_values([3.0] * 5), SummaryStats.from_values(treatment_values))
    expected = stats.ttest_1samp(treatment_values, 3.0)
    assert_allclose(result.df, 3.0, rtol=1e-12)
    assert_allclose([result.statistic, result.pvalue], [expected.statistic, expected.pvalue], rtol=1e-10)


def test_insufficient_data_is_a_documented_result() -> None:
    result = welch_ttest(SummaryStats.from_values([1.0]), SummaryStats.from_values([1.0, 2.0, 3.0]))
    assert result.message.startswith("insufficient-data:")
    assert math.isnan(result.statistic)
    assert math.isnan(result.pvalue)
    assert result.diff == 1.0


def test_zero_variance_is_a_documented_result() -> None:
    result = welch_ttest(SummaryStats.from_values([2.0] * 3), SummaryStats.from_values([2.5] * 4))
    assert result.message.startswith("zero-variance:")
    assert math.isnan(result.pvalue)
    assert result.diff == 0.5


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SummaryStats(-1, 0.0, 0.0), "`n` must be an integer >= 0, found -1"),
        (lambda: SummaryStats(3, 1.0, -1.0), "`sum_squares` must be >= 0, found -1.0"),
        (lambda: SummaryStats(3, math.inf, 1.0), "`sum` must be a finite number, found inf"),
        (lambda: SummaryStats.from_mean_sd(3, 1.0, -2.0), "`sd` must be >= 0, found -2.0"),
        (
            lambda: welch_ttest(SummaryStats(3, 1.0, 1.0), SummaryStats(3, 1.0, 1.0), alternative="larger"),
            "`alternative` must be one of ('two-sided', 'greater', 'less'), found 'larger'",
        ),
        (
            lambda: welch_ttest(SummaryStats(3, 1.0, 1.0), SummaryStats(3, 1.0, 1.0), alpha=0.0),
            "`alpha` must be in (0, 1), found 0.0",
        ),
        (
            lambda: welch_ttest((3, 1.0, 1.0), SummaryStats(3, 1.0, 1.0)),  # type: ignore[arg-type]
            "`control` and `treatment` must be SummaryStats, found tuple and SummaryStats",
        ),
    ],
)
def test_raises(build: object, message: str) -> None:
    with pytest.raises(StatsInputError) as info:
        build()  # type: ignore[operator]
    assert str(info.value) == message


class TestCancellation:
    """A mean far above its spread (1e9 ± 1): Σx² − (Σx)²/n of raw sums cancels to noise in doubles (their
    spacing at 1e18 is 128). References: numpy's two-pass ``var(ddof=1)`` of the values, by hand."""

    VALUES = 1e9 + np.array([-1.0, 0.0, 1.0, 2.0, -2.0, 0.5])

    def test_from_values_keeps_the_variance(self) -> None:
        arm = SummaryStats.from_values(self.VALUES)
        assert_allclose(arm.variance, np.var(self.VALUES - 1e9, ddof=1), rtol=1e-12)
        assert_allclose(arm.mean, 1e9 + np.mean(self.VALUES - 1e9), rtol=1e-15)

    def test_from_mean_sd_keeps_the_sd(self) -> None:
        arm = SummaryStats.from_mean_sd(1000, 1e9, 1.0)
        assert_allclose([arm.mean, arm.sd], [1e9, 1.0], rtol=1e-12)

    def test_pooling_shifted_stats_keeps_the_variance(self) -> None:
        rng = np.random.default_rng(3)
        first, second = 1e9 + rng.normal(0, 1, 200), 1e9 + 5 + rng.normal(0, 2, 300)
        pooled = SummaryStats.from_values(first) + SummaryStats.from_values(second)
        both = np.concatenate([first, second])
        assert_allclose(pooled.variance, np.var(both - 1e9, ddof=1), rtol=1e-9)
        assert_allclose(pooled.mean, 1e9 + np.mean(both - 1e9), rtol=1e-15)

    def test_raw_sums_that_lost_the_variance_say_so(self) -> None:
        """Unshifted sums (what a service emitting x and x² sends): the variance is below what their
        rounding can resolve, so it is NaN (no evidence), not a made-up number."""
        raw = SummaryStats(self.VALUES.size, float(self.VALUES.sum()), float((self.VALUES**2).sum()))
        assert math.isnan(raw.variance)
        # on a natural scale the same formula is exact enough
        natural = SummaryStats(3, 6.0, 14.0)
        assert natural.variance == 1.0
