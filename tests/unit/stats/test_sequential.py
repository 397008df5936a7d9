"""Normal-mixture mSPRT: the closed forms against numerical integration of the mixture likelihood ratio
(scipy.integrate.quad), the wrappers against statsmodels/scipy statistics, the mixing variance against a
numerical optimisation (scipy.optimize)."""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.integrate import quad
from scipy.optimize import brentq, minimize_scalar
from scipy.stats import norm, ttest_ind_from_stats
from score_reference import guarded_variance

from canarywise.stats.means import SummaryStats
from canarywise.stats.sequential import (
    always_valid_pvalues,
    mixing_variance,
    msprt_means,
    msprt_normal,
    msprt_proportions,
    running_confidence_sequence,
)


def mixture_lr_by_quad(estimate: float, variance: float, tau2: float, null: float, alternative: str) -> float:
    """Λ = ∫ N(θ̂; θ, V) / N(θ̂; θ0, V) dF(θ), integrated numerically.

    Two-sided: F = N(θ0, τ²). 'greater': θ − θ0 half-normal on (0, ∞), density 2 φ(δ/τ)/τ. 'less': the mirror
    image on (−∞, 0). The likelihood ratio is written as exp(log-density difference) to keep it finite.
    """
    sd, tau = math.sqrt(variance), math.sqrt(tau2)

    def integrand(delta: float) -> float:
        log_ratio = norm.logpdf(estimate, loc=null + delta, scale=sd) - norm.logpdf(
            estimate, loc=null, scale=sd
        )
        weight = norm.pdf(delta, scale=tau) * (1.0 if alternative == "two-sided" else 2.0)
        return math.exp(log_ratio) * weight

    # Split at the integrand's peak so quad sees it (the posterior-like bump can be narrow).
    peak = (estimate - null) * tau2 / (variance + tau2)
    limits = {"two-sided": (-math.inf, math.inf), "greater": (0.0, math.inf), "less": (-math.inf, 0.0)}[
        alternative
    ]
    low, high = limits
    points = [p for p in (peak,) if low < p < high]
    total = 0.0
    edges = [low, *points, high]
    for a, b in itertools.pairwise(edges):
        value, _ = quad(integrand, a, b, epsabs=0, epsrel=1e-12, limit=200)
        total += value
    return total


CASES = [
    # estimate, variance, tau2, null
    (0.02, 0.005**2, 0.01**2, 0.0),
    (0.004, 0.003**2, 0.01**2, 0.0),
    (-0.01, 0.004**2, 0.02**2, 0.0),
    (1.3, 0.25, 4.0, 0.5),
    (25.0, 40.0, 300.0, 10.0),
    (0.0, 1.0, 1.0, 0.0),
]


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize(("estimate", "variance", "tau2", "null"), CASES)
def test_pvalue_is_inverse_mixture_lr_by_quad(
    estimate: float, variance: float, tau2: float, null: float, alternative: str
) -> None:
    result = msprt_normal(estimate, variance, tau2=tau2, alternative=alternative, null=null)
    lr = mixture_lr_by_quad(estimate, variance, tau2, null, alternative)
    assert_allclose(result.pvalue, min(1.0, 1.0 / lr), rtol=1e-8)
    assert_allclose(result.statistic, (estimate - null) / math.sqrt(variance), rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
@pytest.mark.parametrize(("estimate", "variance", "tau2", "null"), CASES)
def test_confidence_sequence_ends_are_where_the_mixture_lr_reaches_one_over_alpha(
    estimate: float, variance: float, tau2: float, null: float, alpha: float
) -> None:
    two = msprt_normal(estimate, variance, tau2=tau2, alpha=alpha)
    for end in (two.ci_low, two.ci_high):
        assert_allclose(mixture_lr_by_quad(estimate, variance, tau2, end, "two-sided"), 1 / alpha, rtol=1e-7)
    greater = msprt_normal(estimate, variance, tau2=tau2, alpha=alpha, alternative="greater")
    assert greater.ci_high == math.inf
    assert_allclose(
        mixture_lr_by_quad(estimate, variance, tau2, greater.ci_low, "greater"), 1 / alpha, rtol=1e-7
    )
    less = msprt_normal(estimate, variance, tau2=tau2, alpha=alpha, alternative="less")
    assert less.ci_low == -math.inf
    assert_allclose(mixture_lr_by_quad(estimate, variance, tau2, less.ci_high, "less"), 1 / alpha, rtol=1e-7)


def test_two_sided_sequence_matches_the_published_closed_form() -> None:
    """Johari et al. / Howard et al. (normal mixture): θ̂ ± sqrt(V(V+τ²)/τ² (2 log(1/α) + log((V+τ²)/V)))."""
    estimate, variance, tau2, alpha = 0.013, 2.5e-5, 1e-4, 0.05
    radius = math.sqrt(variance * (variance + tau2) / tau2 * (2 * math.log(20) + math.log(5)))
    result = msprt_normal(estimate, variance, tau2=tau2, alpha=alpha)
    assert_allclose([result.ci_low, result.ci_high], [estimate - radius, estimate + radius], rtol=1e-12)


def test_one_sided_test_is_not_the_two_sided_test_at_twice_alpha() -> None:
    """The half-normal mixture puts its mass on one side: more evidence for an effect in that direction than
    the symmetric mixture gives, but less than twice as much (which "two-sided at 2α" would be)."""
    two = msprt_normal(0.015, 0.005**2, tau2=0.01**2)
    greater = msprt_normal(0.015, 0.005**2, tau2=0.01**2, alternative="greater")
    assert two.pvalue / 2 < greater.pvalue < two.pvalue


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("null", [-0.02, 0.0, 0.006, 0.01, 0.03])
def test_reject_exactly_when_null_is_outside_the_sequence(alternative: str, null: float) -> None:
    r = msprt_normal(0.012, 0.004**2, tau2=0.01**2, alternative=alternative, null=null)
    assert (r.pvalue <= 0.05) == (not (r.ci_low < null < r.ci_high))


@pytest.mark.parametrize(
    ("counts", "null", "alternative"),
    [
        ((59400, 495000, 700, 5000), 0.0, "greater"),  # escalation harm: the pooled z
        ((30, 9500, 1, 500), 0.005, "less"),  # error-rate non-inferiority at a 0.5 pt margin, rare events
        ((30, 9500, 0, 500), 0.005, "less"),  # no canary event yet
        ((49000, 50000, 48600, 50000), -0.02, "greater"),
        ((120, 1000, 150, 1000), 0.01, "two-sided"),
    ],
)
def test_proportions_use_the_variance_at_the_null_or_observed(
    counts: tuple[int, int, int, int], null: float, alternative: str
) -> None:
    """The variance is the larger of Farrington-Manning's at `null` (restricted rates maximised by scipy) and
    the Agresti-Caffo one at the observed rates (``score_reference.guarded_variance``); the p-value is 1/Λ of
    the normal mixture (integrated by quad) with it."""
    tau2 = 0.005**2
    result = msprt_proportions(*counts, tau2=tau2, alternative=alternative, null=null)
    variance = guarded_variance(*counts, null)
    x_c, n_c, x_t, n_t = counts
    assert_allclose(result.statistic, (x_t / n_t - x_c / n_c - null) / math.sqrt(variance), rtol=1e-9)
    assert_allclose(result.diff, x_t / n_t - x_c / n_c, rtol=1e-12)
    lr = mixture_lr_by_quad(result.diff, variance, tau2, null, alternative)
    assert_allclose(result.pvalue, min(1.0, 1 / lr), rtol=1e-7)
    assert "variance at the null" in result.method


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_proportions_sequence_inverts_the_score_test(alternative: str) -> None:
    """The sequence's finite ends are where the test at that null has p = alpha (its variance taken at that
    null: ``score_reference.guarded_variance``), and a null just inside is not rejected."""
    counts, tau2 = (30, 9500, 1, 500), 0.005**2
    result = msprt_proportions(*counts, tau2=tau2, alternative=alternative)
    ends = [e for e in (result.ci_low, result.ci_high) if -1 < e < 1]
    assert len(ends) == (2 if alternative == "two-sided" else 1)
    for end in ends:
        variance = guarded_variance(*counts, end)
        assert_allclose(
            1 / mixture_lr_by_quad(result.diff, variance, tau2, end, alternative), 0.05, rtol=1e-6
        )
        inside = end + (1e-6 if end < result.diff else -1e-6)
        assert msprt_proportions(*counts, tau2=tau2, alternative=alternative, null=inside).pvalue > 0.05


def test_no_canary_event_does_not_prove_a_margin() -> None:
    """30/9500 control errors, 0/300 canary: with the observed rates the canary's variance is 0 and
    non-inferiority at 0.5 pt looks proven (z = (−0.00316 − 0.005)/sqrt(0.00316·0.99684/9500) = −14); at the
    null (a canary at p̃_c + 0.005) it is not."""
    result = msprt_proportions(30, 9500, 0, 300, tau2=0.005**2, alternative="less", null=0.005)
    assert result.pvalue > 0.05
    assert result.ci_high > 0.005


def test_proportions_non_inferiority_with_a_margin() -> None:
    """Guardrail pass 49000/50000 vs 48600/50000 (rates of success; worse is lower): H0 diff <= -0.02
    is tested with alternative 'greater' and null = -margin; the CI lower end must lie above -0.02."""
    result = msprt_proportions(49000, 50000, 48600, 50000, tau2=0.005**2, alternative="greater", null=-0.02)
    assert result.pvalue < 0.05
    assert result.ci_low > -0.02
    assert_allclose(result.diff, 0.972 - 0.98, rtol=1e-12)


def test_means_wrapper_uses_the_welch_statistic() -> None:
    """z equals scipy's Welch t statistic: ttest_ind_from_stats(219.9, 97.1, 1150, 212.4, 85.3, 1200,
    equal_var=False) (same estimate and same variance s_t²/n_t + s_c²/n_c)."""
    control = SummaryStats.from_mean_sd(1200, 212.4, 85.3)
    treatment = SummaryStats.from_mean_sd(1150, 219.9, 97.1)
    result = msprt_means(control, treatment, tau2=10.0**2)
    welch = ttest_ind_from_stats(219.9, 97.1, 1150, 212.4, 85.3, 1200, equal_var=False)
    assert_allclose(result.statistic, welch.statistic, rtol=1e-9)
    assert_allclose(result.diff, 7.5, rtol=1e-9)
    variance = 97.1**2 / 1150 + 85.3**2 / 1200
    assert_allclose(
        result.pvalue, min(1, 1 / mixture_lr_by_quad(7.5, variance, 100.0, 0.0, "two-sided")), rtol=1e-7
    )
    assert "difference of means" in result.method


def test_zero_variance_is_no_evidence_not_a_crash() -> None:
    # no event in either arm: the Agresti-Caffo part keeps the variance positive, and z = 0 is no evidence
    result = msprt_proportions(0, 1000, 0, 50, tau2=1e-4, alternative="greater")
    assert result.pvalue == 1.0
    assert result.statistic == 0.0
    assert -1.0 < result.ci_low < 0.0
    assert result.ci_high == 1.0
    at_margin = msprt_proportions(0, 1000, 0, 50, tau2=1e-4, alternative="less", null=0.005)
    assert 0.05 < at_margin.pvalue <= 1.0
    same = SummaryStats.from_values([3.0, 3.0, 3.0])
    assert msprt_means(same, same, tau2=1.0).pvalue == 1.0


def _width_at(tau2: float, variance: float, alpha: float) -> float:
    """Two-sided half-width of the normal-mixture sequence at variance V (Howard et al. 2021, eq. for the
    normal mixture boundary), written out here independently of the module."""
    return math.sqrt(
        variance * (variance + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log1p(tau2 / variance))
    )


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.1])
def test_mixing_variance_minimises_the_width_at_the_horizon(alpha: float) -> None:
    """A study sized for 80 % power (MDE = (z_{1-α/2} + z_0.8) √V_h): the horizon case. τ² minimises the
    sequence's half-width at V_h (scipy.optimize.minimize_scalar over log τ²), equivalently maximises the
    power at the horizon, P(|Z| >= c) with Z ~ N(MDE/√V_h, 1)."""
    variance_h = 2.5e-5
    mde = (norm.isf(alpha / 2) + norm.isf(0.2)) * math.sqrt(variance_h)
    chosen = mixing_variance(mde, variance_h, alpha)

    best = minimize_scalar(
        lambda log_tau2: _width_at(math.exp(log_tau2), variance_h, alpha),
        bracket=(math.log(variance_h), math.log(100 * variance_h)),
        tol=1e-12,
    )
    assert_allclose(chosen, math.exp(best.x), rtol=1e-4)

    def power(log_tau2: float) -> float:
        c = _width_at(math.exp(log_tau2), variance_h, alpha) / math.sqrt(variance_h)
        shift = mde / math.sqrt(variance_h)
        return float(norm.sf(c - shift) + norm.cdf(-c - shift))

    best_power = minimize_scalar(
        lambda x: -power(x), bracket=(math.log(variance_h), math.log(100 * variance_h))
    )
    assert_allclose(chosen, math.exp(best_power.x), rtol=1e-3)
    for factor in (0.8, 1.25):
        assert (
            msprt_normal(0.0, variance_h, tau2=chosen * factor, alpha=alpha).ci_high
            > msprt_normal(0.0, variance_h, tau2=chosen, alpha=alpha).ci_high
        )


def test_mixing_variance_makes_detection_of_the_mde_earliest_when_the_horizon_is_long() -> None:
    """MDE = 8 √V_h (the horizon is far past where the MDE shows up): τ² maximises the variance V* (the
    earliest moment) at which an estimate equal to the MDE reaches Λ = 1/α; found here with brentq inside
    minimize_scalar on the two-sided Λ written out independently."""
    alpha, variance_h = 0.05, 1e-4
    mde = 8 * math.sqrt(variance_h)

    def crossing_variance(log_tau2: float) -> float:
        tau2 = math.exp(log_tau2)

        def log_lr(variance: float) -> float:
            return -0.5 * math.log1p(tau2 / variance) + tau2 * mde**2 / (2 * variance * (variance + tau2))

        return float(brentq(lambda v: log_lr(v) - math.log(1 / alpha), mde**2 / 100, mde**2 * 10))

    best = minimize_scalar(
        lambda x: -crossing_variance(x), bracket=(math.log(mde**2 / 10), math.log(mde**2)), tol=1e-12
    )
    chosen = mixing_variance(mde, variance_h, alpha)
    assert_allclose(chosen, math.exp(best.x), rtol=1e-4)
    assert crossing_variance(math.log(chosen)) > variance_h  # detected before the horizon, as the case says
    assert_allclose(mixing_variance(-mde, variance_h, alpha), chosen, rtol=1e-15)


def test_always_valid_pvalues_and_running_sequence() -> None:
    assert always_valid_pvalues([0.9, 0.2, 0.5, 0.01, 0.3]).tolist() == [0.9, 0.2, 0.2, 0.01, 0.01]
    low, high = running_confidence_sequence([-3.0, -1.0, -2.0, 0.5], [3.0, 2.0, 2.5, 1.0])
    assert low.tolist() == [-3.0, -1.0, -1.0, 0.5]
    assert high.tolist() == [3.0, 2.0, 2.0, 1.0]
    assert np.all(np.diff(high - low) <= 0)


def _raises(message: str) -> Any:
    return pytest.raises(ValueError, match=f"^{re.escape(message)}$")


def test_raises() -> None:
    with _raises("`variance` must be > 0, found 0.0"):
        msprt_normal(0.1, 0.0, tau2=1.0)
    with _raises("`tau2` must be > 0, found -1.0"):
        msprt_normal(0.1, 1.0, tau2=-1.0)
    with _raises("`alpha` must be in (0, 1), found 1.5"):
        msprt_normal(0.1, 1.0, tau2=1.0, alpha=1.5)
    with _raises("`alternative` must be one of ('two-sided', 'greater', 'less'), found 'larger'"):
        msprt_normal(0.1, 1.0, tau2=1.0, alternative="larger")
    with _raises("`estimate` must be a finite number, found nan"):
        msprt_normal(math.nan, 1.0, tau2=1.0)
    with _raises("`null` must be a finite number, found inf"):
        msprt_normal(0.1, 1.0, tau2=1.0, null=math.inf)
    with _raises("`n_control` must be an integer >= 1, found 0"):
        msprt_proportions(0, 0, 1, 10, tau2=1.0)
    with _raises("`x_treatment` must not exceed its number of trials (10), found 11"):
        msprt_proportions(0, 10, 11, 10, tau2=1.0)
    with _raises("`tau2` must be > 0, found 0.0"):
        msprt_proportions(0, 10, 0, 10, tau2=0.0)  # checked even when the data carry no evidence
    with _raises("`null` must be in (-1, 1) for a difference of proportions, found 1.0"):
        msprt_proportions(0, 10, 0, 10, tau2=1.0, null=1.0)
    with _raises("`treatment.n` must be an integer >= 2, found 1"):
        msprt_means(SummaryStats.from_values([1.0, 2.0]), SummaryStats.from_values([1.0]), tau2=1.0)
    with _raises("`mde` must be non-zero, found 0.0"):
        mixing_variance(0.0, 1.0)
    with _raises("`variance_at_horizon` must be > 0, found -1.0"):
        mixing_variance(0.1, -1.0)
    with _raises("`pvalues` must be a 1-D sequence of numbers in [0, 1], found [0.5, 1.5]"):
        always_valid_pvalues([0.5, 1.5])
