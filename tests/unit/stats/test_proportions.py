"""Two-proportion z-test, its intervals, and Fisher's exact test, against statsmodels / scipy / by hand.

References (dev dependencies only, never imported by the package):
- ``statsmodels.stats.proportion.proportions_ztest(count=[x_t, x_c], nobs=[n_t, n_c], alternative=...)``
- ``statsmodels.stats.proportion.confint_proportions_2indep(x_t, n_t, x_c, n_c, method='newcomb'|'wald')``
  and ``compare='ratio', method='log'`` for the lift
- Farrington-Manning's score test at a non-zero margin: the restricted rates maximised numerically with scipy
  (``score_reference``), not statsmodels, whose cubic is wrong there (statsmodels issue #10269)
- ``scipy.stats.hypergeom`` for Fisher's exact test
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from scipy.stats import norm
from score_reference import restricted_rates, score_z_and_variance
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportions_ztest,
)

from canarywise.stats._checks import StatsInputError
from canarywise.stats.proportions import (
    constrained_rates,
    fisher_exact_test,
    normal_pvalue,
    two_proportion_ztest,
)

# The users' worked examples: (x_control, n_control, x_treatment, n_treatment).
ESCALATION = (59400, 495000, 700, 5000)  # canary escalation 12% -> 14%, z ~ 4.33
CONVERSION = (4200, 50000, 4700, 50000)  # chatbot conversion 8.4% -> 9.4%
GUARDRAIL = (49000, 50000, 48600, 50000)  # answer success 98.0% -> 97.2%
RARE = (3, 1000, 11, 1000)  # rare errors, small counts
EXAMPLES = [ESCALATION, CONVERSION, GUARDRAIL, RARE]
SM_ALTERNATIVE = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}
ALTERNATIVES = list(SM_ALTERNATIVE)


@pytest.mark.parametrize("counts", EXAMPLES)
@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_pooled_z_matches_statsmodels(counts: tuple[int, int, int, int], alternative: str) -> None:
    """statsmodels: ``proportions_ztest([x_t, x_c], [n_t, n_c], alternative=...)`` (pooled variance)."""
    x_c, n_c, x_t, n_t = counts
    expected_z, expected_p = proportions_ztest(
        [x_t, x_c], [n_t, n_c], alternative=SM_ALTERNATIVE[alternative]
    )
    result = two_proportion_ztest(x_c, n_c, x_t, n_t, alternative=alternative)
    assert_allclose(result.statistic, expected_z, rtol=1e-12)
    assert_allclose(result.pvalue, expected_p, rtol=1e-10)
    assert_allclose(result.diff, x_t / n_t - x_c / n_c, rtol=1e-12)
    assert result.method == "two-proportion z-test (pooled)"
    assert result.message == ""


def test_escalation_example_by_hand() -> None:
    """Hand derivation: pbar = 60100/500000 = 0.1202, se = sqrt(pbar(1-pbar)(1/495000 + 1/5000)),
    z = (0.14 - 0.12)/se = 4.327, two-sided p = 2 * (1 - Phi(4.327)) = 1.511e-5."""
    pbar = 60100 / 500000
    se = math.sqrt(pbar * (1 - pbar) * (1 / 495000 + 1 / 5000))
    z = 0.02 / se
    result = two_proportion_ztest(*ESCALATION)
    assert_allclose(result.statistic, z, rtol=1e-12)
    assert round(result.statistic, 2) == 4.33
    assert_allclose(result.pvalue, math.erfc(z / math.sqrt(2)), rtol=1e-12)
    assert_allclose(result.lift, 0.14 / 0.12 - 1, rtol=1e-12)


@pytest.mark.parametrize("counts", EXAMPLES)
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.01])
def test_two_sided_intervals_match_statsmodels(counts: tuple[int, int, int, int], alpha: float) -> None:
    """statsmodels: ``confint_proportions_2indep(x_t, n_t, x_c, n_c, method='newcomb'|'wald', alpha=alpha)``
    and ``compare='ratio', method='log'`` (lift = ratio - 1)."""
    x_c, n_c, x_t, n_t = counts
    result = two_proportion_ztest(x_c, n_c, x_t, n_t, alpha=alpha)
    newcombe = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb", alpha=alpha)
    wald = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", alpha=alpha)
    ratio = confint_proportions_2indep(x_t, n_t, x_c, n_c, compare="ratio", method="log", alpha=alpha)
    assert_allclose([result.ci_low, result.ci_high], newcombe, rtol=1e-9)
    assert_allclose([result.wald_ci_low, result.wald_ci_high], wald, rtol=1e-9)
    assert_allclose([result.lift_ci_low, result.lift_ci_high], np.asarray(ratio) - 1, rtol=1e-9)


@pytest.mark.parametrize("counts", EXAMPLES)
def test_one_sided_intervals_are_one_side_of_the_doubled_alpha_interval(
    counts: tuple[int, int, int, int],
) -> None:
    """A one-sided 95% bound is one end of the two-sided 90% interval (statsmodels, alpha=0.10)."""
    x_c, n_c, x_t, n_t = counts
    newcombe = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb", alpha=0.10)
    wald = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", alpha=0.10)
    greater = two_proportion_ztest(x_c, n_c, x_t, n_t, alternative="greater", alpha=0.05)
    less = two_proportion_ztest(x_c, n_c, x_t, n_t, alternative="less", alpha=0.05)
    assert_allclose([greater.ci_low, greater.ci_high], [newcombe[0], 1.0], rtol=1e-9)
    assert_allclose([less.ci_low, less.ci_high], [-1.0, newcombe[1]], rtol=1e-9)
    assert_allclose([greater.wald_ci_low, less.wald_ci_high], wald, rtol=1e-9)
    assert greater.lift_ci_high == math.inf
    assert less.lift_ci_low == -1.0


@pytest.mark.parametrize(
    ("counts", "margin", "alternative"),
    [
        (GUARDRAIL, -0.01, "greater"),  # non-inferiority of a higher-is-better rate: H0 diff <= -1 pp
        (ESCALATION, 0.03, "less"),  # non-inferiority of a lower-is-better rate: H0 diff >= +3 pp
        (CONVERSION, 0.005, "two-sided"),
        (RARE, 0.02, "less"),
    ],
)
def test_margin_matches_farrington_manning(
    counts: tuple[int, int, int, int], margin: float, alternative: str
) -> None:
    """Farrington-Manning's score test: z at the rates that maximise the likelihood under p_t − p_c = margin,
    found numerically by scipy (``score_reference``; statsmodels 0.15 gets these rates wrong for a non-zero
    margin, issue #10269), and the normal tail of ``scipy.stats.norm``."""
    x_c, n_c, x_t, n_t = counts
    z, _ = score_z_and_variance(x_c, n_c, x_t, n_t, margin)
    tail = {"greater": norm.sf(z), "less": norm.cdf(z), "two-sided": 2 * norm.sf(abs(z))}[alternative]
    result = two_proportion_ztest(x_c, n_c, x_t, n_t, margin=margin, alternative=alternative)
    assert_allclose(result.statistic, z, rtol=1e-7)
    assert_allclose(result.pvalue, tail, rtol=1e-6)
    assert result.method == "two-proportion score test (Farrington-Manning)"


@pytest.mark.parametrize(
    ("counts", "margin"),
    [((3, 10, 7, 10), -0.4), ((5, 100, 50, 60), 0.3), ((30, 9500, 1, 500), 0.005), ((0, 1, 1, 1), -0.588)],
)
def test_restricted_rates_maximise_the_likelihood(counts: tuple[int, int, int, int], margin: float) -> None:
    """The closed-form cubic root against a numerical maximisation (scipy). These are cases where
    statsmodels 0.15's cubic (x_c where n_c belongs) is off by 0.01 to 0.18."""
    assert_allclose(constrained_rates(*counts, margin), restricted_rates(*counts, margin), atol=1e-7)


def test_guardrail_passes_non_inferiority() -> None:
    """97.2% vs 98.0% success is no worse than a 1 pp margin (H0 diff <= -0.01 rejected at 0.05)."""
    result = two_proportion_ztest(*GUARDRAIL, margin=-0.01, alternative="greater")
    assert result.pvalue < 0.05
    assert result.ci_low > -0.01


def test_tiny_pvalues_are_not_rounded_to_zero() -> None:
    """p from the survival function: ``2 * scipy.stats.norm.sf(8.3)`` = 1.04e-16, not 0 nor 2.2e-16."""
    assert_allclose(normal_pvalue(8.3, "two-sided"), 2 * stats.norm.sf(8.3), rtol=1e-12)
    assert_allclose(normal_pvalue(-12.0, "less"), stats.norm.cdf(-12.0), rtol=1e-12)
    result = two_proportion_ztest(40000, 500000, 48000, 500000)
    expected_z, _ = proportions_ztest([48000, 40000], [500000, 500000])
    assert_allclose(result.pvalue, 2 * stats.norm.sf(abs(expected_z)), rtol=1e-9)
    assert 0 < result.pvalue < 1e-100


def test_zero_variance_is_a_documented_result() -> None:
    result = two_proportion_ztest(0, 1000, 0, 2000)
    assert math.isnan(result.statistic)
    assert math.isnan(result.pvalue)
    assert result.message.startswith("zero-variance:")
    # The Newcombe interval is still defined. By hand: at 0 successes the Wilson interval is
    # [0, z²/(n + z²)], so low = -(control upper) = -z²/(1000 + z²) and high = z²/(2000 + z²).
    z = stats.norm.ppf(0.975)
    assert_allclose(result.ci_low, -z * z / (1000 + z * z), rtol=1e-9)
    assert_allclose(result.ci_high, z * z / (2000 + z * z), rtol=1e-9)


def test_lift_undefined_when_a_rate_is_zero() -> None:
    result = two_proportion_ztest(0, 1000, 4, 1000, alternative="greater")
    assert math.isnan(result.lift)
    assert math.isnan(result.lift_ci_low)
    assert math.isnan(result.lift_ci_high)
    assert result.message.startswith("lift-undefined:")
    expected_z, expected_p = proportions_ztest([4, 0], [1000, 1000], alternative="larger")
    assert_allclose([result.statistic, result.pvalue], [expected_z, expected_p], rtol=1e-10)


@pytest.mark.parametrize("counts", [RARE, (0, 50, 4, 60), (12, 40, 5, 38), (30, 2000, 52, 2100)])
@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_fisher_matches_hypergeometric_tails(counts: tuple[int, int, int, int], alternative: str) -> None:
    """By hand: given both margins, x_t ~ hypergeom(M=n_t+n_c, n=x_t+x_c, N=n_t);
    greater = P(X >= x_t), less = P(X <= x_t), two-sided = sum of P(X=k) over P(X=k) <= P(X=x_t)
    (the rule R's fisher.test uses, with relative tolerance 1e-7)."""
    x_c, n_c, x_t, n_t = counts
    dist = stats.hypergeom(n_t + n_c, x_t + x_c, n_t)
    support = np.arange(max(0, x_t + x_c - n_c), min(n_t, x_t + x_c) + 1)
    pmf = dist.pmf(support)
    expected = {
        "greater": dist.sf(x_t - 1),
        "less": dist.cdf(x_t),
        "two-sided": pmf[pmf <= dist.pmf(x_t) * (1 + 1e-7)].sum(),
    }[alternative]
    result = fisher_exact_test(x_c, n_c, x_t, n_t, alternative=alternative)
    assert_allclose(result.pvalue, min(1.0, expected), rtol=1e-6)
    odds = math.inf if x_c == 0 else (x_t / (n_t - x_t)) / (x_c / (n_c - x_c))
    assert_allclose(result.statistic, odds, rtol=1e-12)
    assert_allclose(result.diff, x_t / n_t - x_c / n_c, rtol=1e-12)


def test_fisher_direction_follows_the_treatment() -> None:
    """11/1000 canary errors vs 3/1000: 'greater' (canary worse) is significant, 'less' is not."""
    assert fisher_exact_test(*RARE, alternative="greater").pvalue < 0.05
    assert fisher_exact_test(*RARE, alternative="less").pvalue > 0.95


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x_control": 5, "n_control": 4}, "`x_control` must not exceed its number of trials (4), found 5"),
        ({"n_treatment": 0}, "`n_treatment` must be an integer >= 1, found 0"),
        ({"x_treatment": 1.5}, "`x_treatment` must be an integer >= 0, found 1.5"),
        ({"alpha": 1.5}, "`alpha` must be in (0, 1), found 1.5"),
        (
            {"alternative": "larger"},
            "`alternative` must be one of ('two-sided', 'greater', 'less'), found 'larger'",
        ),
        ({"margin": 1.0}, "`margin` must be in (-1, 1), found 1.0"),
        ({"margin": math.nan}, "`margin` must be a finite number, found nan"),
    ],
)
def test_raises(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"x_control": 10, "n_control": 100, "x_treatment": 12, "n_treatment": 100}
    args.update(kwargs)
    with pytest.raises(StatsInputError) as info:
        two_proportion_ztest(**args)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_fisher_raises() -> None:
    with pytest.raises(StatsInputError) as info:
        fisher_exact_test(3, 1000, 11, 10)
    assert str(info.value) == "`x_treatment` must not exceed its number of trials (10), found 11"
