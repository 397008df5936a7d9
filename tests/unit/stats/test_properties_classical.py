"""Invariants of the classical tests, checked on generated inputs (hypothesis).

- every p-value is in [0, 1];
- swapping the arms flips the sign of the effect, its interval, and the statistic, and leaves the
  two-sided p-value unchanged;
- adjusted p-values are monotone in the raw ones (BH, BY, Holm, Bonferroni) and never below them;
- a confidence interval contains its estimate;
- one-sided p-values of a continuous statistic add to 1, and the two-sided one is twice the smaller.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from canarywise.stats.means import SummaryStats, welch_ttest
from canarywise.stats.multiple import METHODS, adjust_pvalues
from canarywise.stats.paired import mcnemar_test, paired_ttest
from canarywise.stats.planning import mde_proportions, sample_size_proportions
from canarywise.stats.proportions import fisher_exact_test, two_proportion_ztest
from canarywise.stats.srm import srm_test

ALTERNATIVES = st.sampled_from(["two-sided", "greater", "less"])
# No per-example deadline: the machine is shared, and the first call of a test that imports scipy.stats
# lazily pays for the import.
relaxed = settings(deadline=None)


@st.composite
def arms(draw: st.DrawFn, max_n: int = 1_000_000) -> tuple[int, int, int, int]:
    n_c = draw(st.integers(1, max_n))
    n_t = draw(st.integers(1, max_n))
    return draw(st.integers(0, n_c)), n_c, draw(st.integers(0, n_t)), n_t


@st.composite
def summaries(draw: st.DrawFn) -> SummaryStats:
    n = draw(st.integers(2, 100_000))
    mean = draw(st.floats(-1e4, 1e4))
    sd = draw(st.floats(1e-3, 1e4))
    return SummaryStats.from_mean_sd(n, mean, sd)


def contains(low: float, estimate: float, high: float) -> bool:
    slack = 1e-12 * max(1.0, abs(estimate))  # rounding of the last bit
    return low - slack <= estimate <= high + slack


@relaxed
@given(arms(), ALTERNATIVES, st.floats(0.001, 0.5))
def test_ztest_pvalue_in_unit_interval_and_intervals_contain_estimates(
    counts: tuple[int, int, int, int], alternative: str, alpha: float
) -> None:
    r = two_proportion_ztest(*counts, alternative=alternative, alpha=alpha)
    assert math.isnan(r.pvalue) == r.message.startswith("zero-variance")
    if not math.isnan(r.pvalue):
        assert 0.0 <= r.pvalue <= 1.0
    assert contains(r.ci_low, r.diff, r.ci_high)
    assert contains(r.wald_ci_low, r.diff, r.wald_ci_high)
    assert -1.0 <= r.ci_low <= r.ci_high <= 1.0
    if not math.isnan(r.lift):
        assert contains(r.lift_ci_low, r.lift, r.lift_ci_high)


@relaxed
@given(arms())
def test_ztest_swapping_arms_flips_the_sign(counts: tuple[int, int, int, int]) -> None:
    x_c, n_c, x_t, n_t = counts
    r = two_proportion_ztest(x_c, n_c, x_t, n_t)
    s = two_proportion_ztest(x_t, n_t, x_c, n_c)
    assert s.diff == -r.diff
    assert_allclose([s.ci_low, s.ci_high], [-r.ci_high, -r.ci_low], rtol=1e-9, atol=1e-15)
    if not math.isnan(r.statistic):
        assert_allclose(s.statistic, -r.statistic, rtol=1e-9, atol=1e-15)
        assert_allclose(s.pvalue, r.pvalue, rtol=1e-9)


@relaxed
@given(arms(), st.floats(-0.2, 0.2))
def test_ztest_one_sided_pvalues_add_to_one(counts: tuple[int, int, int, int], margin: float) -> None:
    greater = two_proportion_ztest(*counts, alternative="greater", margin=margin)
    less = two_proportion_ztest(*counts, alternative="less", margin=margin)
    both = two_proportion_ztest(*counts, margin=margin)
    assume(not math.isnan(both.pvalue))
    assert_allclose(greater.pvalue + less.pvalue, 1.0, rtol=1e-12)
    assert_allclose(both.pvalue, 2 * min(greater.pvalue, less.pvalue), rtol=1e-9)


@settings(max_examples=50, deadline=None)
@given(arms(max_n=3000), ALTERNATIVES)
def test_fisher_pvalue_in_unit_interval_and_swap(counts: tuple[int, int, int, int], alternative: str) -> None:
    x_c, n_c, x_t, n_t = counts
    r = fisher_exact_test(x_c, n_c, x_t, n_t, alternative=alternative)
    assert 0.0 <= r.pvalue <= 1.0
    mirrored = {"two-sided": "two-sided", "greater": "less", "less": "greater"}[alternative]
    s = fisher_exact_test(x_t, n_t, x_c, n_c, alternative=mirrored)
    assert s.diff == -r.diff
    assert_allclose(s.pvalue, r.pvalue, rtol=1e-9)


@relaxed
@given(summaries(), summaries(), ALTERNATIVES, st.floats(0.001, 0.5))
def test_welch_pvalue_interval_and_swap(
    control: SummaryStats, treatment: SummaryStats, alternative: str, alpha: float
) -> None:
    r = welch_ttest(control, treatment, alternative=alternative, alpha=alpha)
    assert 0.0 <= r.pvalue <= 1.0
    assert contains(r.ci_low, r.diff, r.ci_high)
    s = welch_ttest(treatment, control)
    two = welch_ttest(control, treatment)
    assert_allclose(s.diff, -two.diff, rtol=1e-12, atol=1e-9)
    assert_allclose(
        [s.statistic, s.pvalue, s.df], [-two.statistic, two.pvalue, two.df], rtol=1e-9, atol=1e-12
    )
    assert_allclose([s.ci_low, s.ci_high], [-two.ci_high, -two.ci_low], rtol=1e-9, atol=1e-9)


@relaxed
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40), st.lists(st.floats(-1e3, 1e3), max_size=40))
def test_summary_stats_pool_like_the_concatenation(first: list[float], second: list[float]) -> None:
    pooled = SummaryStats.from_values(first) + SummaryStats.from_values(second)
    both = np.array(first + second)
    assert pooled.n == both.size
    assert_allclose(pooled.mean, both.mean(), rtol=1e-9, atol=1e-9)
    if both.size >= 2:
        assert_allclose(pooled.variance, both.var(ddof=1), rtol=1e-6, atol=1e-6)


@relaxed
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60), st.sampled_from(METHODS))
def test_adjusted_pvalues_are_monotone_and_not_below_raw(pvalues: list[float], method: str) -> None:
    r = adjust_pvalues(pvalues, method=method)
    order = np.argsort(pvalues, kind="stable")
    adjusted = np.asarray(r.adjusted)[order]
    assert np.all(np.diff(adjusted) >= -1e-15)
    assert np.all(np.asarray(r.adjusted) >= np.asarray(pvalues) - 1e-15)
    assert np.all((adjusted >= 0.0) & (adjusted <= 1.0))
    assert r.rejected == tuple(q <= 0.05 for q in r.adjusted)


@relaxed
@given(st.lists(st.integers(0, 10**7), min_size=2, max_size=6), st.data())
def test_srm_pvalue_in_unit_interval(observed: list[int], data: st.DataObject) -> None:
    weights = data.draw(st.lists(st.floats(0.01, 100.0), min_size=len(observed), max_size=len(observed)))
    r = srm_test(observed, weights)
    assert 0.0 <= r.pvalue <= 1.0
    assert r.statistic >= 0.0


@relaxed
@given(st.integers(0, 5000), st.integers(0, 5000), st.booleans(), ALTERNATIVES)
def test_mcnemar_pvalue_in_unit_interval_and_swap(b: int, c: int, exact: bool, alternative: str) -> None:
    alternative = alternative if exact else "two-sided"
    r = mcnemar_test(b, c, exact=exact, alternative=alternative)
    if b + c > 0 or exact:
        assert 0.0 <= r.pvalue <= 1.0
    s = mcnemar_test(c, b, exact=exact)
    two = mcnemar_test(b, c, exact=exact)
    if b + c > 0:
        assert_allclose(s.pvalue, two.pvalue, rtol=1e-9)


@relaxed
@given(summaries(), ALTERNATIVES, st.floats(-10.0, 10.0))
def test_paired_t_pvalue_and_interval(differences: SummaryStats, alternative: str, null: float) -> None:
    r = paired_ttest(differences, alternative=alternative, null=null)
    assert 0.0 <= r.pvalue <= 1.0
    assert contains(r.ci_low, r.diff, r.ci_high)


@relaxed
@given(st.floats(0.01, 0.95), st.floats(0.002, 0.04))
def test_sample_size_shrinks_as_the_effect_grows_and_mde_inverts_it(baseline: float, mde: float) -> None:
    assume(baseline + 2 * mde < 0.999)
    small = sample_size_proportions(baseline, mde)
    large = sample_size_proportions(baseline, 2 * mde)
    assert large.n_exact < small.n_exact
    back = mde_proportions(baseline, small.n_per_arm)
    assert 0 < back.mde <= mde * (1 + 1e-9)  # rounding n up can only make the detectable effect smaller
