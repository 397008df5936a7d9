"""Paired tests (shadow mode) against statsmodels / scipy / by hand.

References:
- ``statsmodels.stats.contingency_tables.mcnemar([[a, b], [c, d]], exact=..., correction=...)``
- ``scipy.stats.binom`` tails for the one-sided exact test
- ``scipy.stats.ttest_rel(treatment, control, alternative)`` and its ``confidence_interval``
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from canarywise.stats._checks import StatsInputError
from canarywise.stats.means import SummaryStats
from canarywise.stats.paired import matched_difference_interval, mcnemar_test, paired_ttest

DISCORDANT = [(41, 68), (5, 12), (30, 30), (0, 7), (250, 190)]


@pytest.mark.parametrize(("b", "c"), DISCORDANT)
def test_exact_matches_statsmodels(b: int, c: int) -> None:
    """statsmodels: ``mcnemar([[1000, b], [c, 900]], exact=True).pvalue``."""
    expected = mcnemar([[1000, b], [c, 900]], exact=True)
    result = mcnemar_test(b, c)
    assert_allclose(result.pvalue, expected.pvalue, rtol=1e-9)
    assert result.statistic == c


@pytest.mark.parametrize(("b", "c"), DISCORDANT)
@pytest.mark.parametrize("correction", [True, False])
def test_chi_square_matches_statsmodels(b: int, c: int, correction: bool) -> None:
    """statsmodels: ``mcnemar([[1000, b], [c, 900]], exact=False, correction=correction)``."""
    expected = mcnemar([[1000, b], [c, 900]], exact=False, correction=correction)
    result = mcnemar_test(b, c, exact=False, correction=correction)
    assert_allclose([result.statistic, result.pvalue], [expected.statistic, expected.pvalue], rtol=1e-9)


@pytest.mark.parametrize(("b", "c"), DISCORDANT)
def test_exact_one_sided_by_hand(b: int, c: int) -> None:
    """By hand: c ~ Binomial(b + c, 1/2); greater = P(X >= c), less = P(X <= c)."""
    n = b + c
    assert_allclose(
        mcnemar_test(b, c, alternative="greater").pvalue, stats.binom.sf(c - 1, n, 0.5), rtol=1e-9
    )
    assert_allclose(mcnemar_test(b, c, alternative="less").pvalue, stats.binom.cdf(c, n, 0.5), rtol=1e-9)


def test_diff_and_no_discordant_pairs() -> None:
    assert_allclose(mcnemar_test(41, 68, n_pairs=2000).diff, 27 / 2000, rtol=1e-12)
    exact = mcnemar_test(0, 0)
    assert (exact.pvalue, exact.message.split(":")[0]) == (1.0, "no-discordant-pairs")
    chi = mcnemar_test(0, 0, exact=False)
    assert math.isnan(chi.statistic)
    assert chi.message.startswith("no-discordant-pairs:")


def differences() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(19)
    control = rng.gamma(3.0, 70.0, size=400)  # baseline latency per request
    treatment = control * rng.normal(1.03, 0.08, size=400)  # the candidate on the same requests
    return control, treatment


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_paired_t_matches_scipy(alternative: str, alpha: float) -> None:
    """scipy: ``ttest_rel(treatment, control, alternative)`` and
    ``.confidence_interval(confidence_level=1 - alpha)``."""
    control, treatment = differences()
    expected = stats.ttest_rel(treatment, control, alternative=alternative)
    ci = expected.confidence_interval(confidence_level=1 - alpha)
    d = treatment - control
    result = paired_ttest(
        SummaryStats(n=d.size, sum=float(d.sum()), sum_squares=float((d * d).sum())),
        alternative=alternative,
        alpha=alpha,
    )
    assert_allclose([result.statistic, result.pvalue], [expected.statistic, expected.pvalue], rtol=1e-9)
    assert result.df == d.size - 1
    assert_allclose([result.ci_low, result.ci_high], [ci.low, ci.high], rtol=1e-9)


def test_paired_t_with_null_matches_one_sample_t() -> None:
    """scipy: ``ttest_1samp(d, popmean=5.0, alternative='less')`` (non-inferiority: mean increase < 5 ms)."""
    control, treatment = differences()
    d = treatment - control
    expected = stats.ttest_1samp(d, popmean=5.0, alternative="less")
    result = paired_ttest(SummaryStats.from_values(d), null=5.0, alternative="less")
    assert_allclose([result.statistic, result.pvalue], [expected.statistic, expected.pvalue], rtol=1e-9)


def test_paired_t_degenerate() -> None:
    assert paired_ttest(SummaryStats.from_values([2.0])).message.startswith("insufficient-data:")
    constant = paired_ttest(SummaryStats.from_values([2.0, 2.0, 2.0]))
    assert constant.message.startswith("zero-variance:")
    assert math.isnan(constant.pvalue)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mcnemar_test(-1, 3), "`b` must be an integer >= 0, found -1"),
        (lambda: mcnemar_test(4, 3, n_pairs=5), "`n_pairs` must be at least b + c = 7, found 5"),
        (
            lambda: mcnemar_test(4, 3, exact=False, alternative="greater"),
            "`alternative` must be 'two-sided' for the chi-square form (use exact=True), found 'greater'",
        ),
        (lambda: paired_ttest([1.0, 2.0]), "`differences` must be SummaryStats, found list"),  # type: ignore[arg-type]
        (lambda: paired_ttest(SummaryStats(3, 1.0, 1.0), alpha=1.0), "`alpha` must be in (0, 1), found 1.0"),
    ],
)
def test_raises(call: object, message: str) -> None:
    with pytest.raises(StatsInputError) as info:
        call()  # type: ignore[operator]
    assert str(info.value) == message


@pytest.mark.parametrize(("b", "c", "n"), [(60, 30, 1000), (0, 0, 50), (12, 3, 40), (0, 9, 9)])
def test_matched_interval_is_agresti_min_by_hand(b: int, c: int, n: int) -> None:
    """Agresti & Min (2005), by hand: add 1/2 to each of the four cells, n* = n + 2,
    d = (c - b)/n*, V = ((b + c + 1) - (c - b)²/n*)/n*², d ± z_0.975 sqrt(V) clipped to [-1, 1]."""
    total = n + 2
    d = (c - b) / total
    half = stats.norm.ppf(0.975) * math.sqrt(((b + c + 1) - (c - b) ** 2 / total) / total**2)
    expected = [max(-1.0, d - half), min(1.0, d + half)]
    assert_allclose(matched_difference_interval(b, c, n), expected, rtol=1e-12)


def test_matched_interval_covers_at_the_nominal_level() -> None:
    """Seeded simulation: 2,000 golden sets of 200 examples, true difference −0.03 (discordant rates
    0.07 / 0.04): coverage within 1.5 points of 95% (the plain Wald interval is the one that undercovers)."""
    rng = np.random.default_rng(7)
    cells = rng.multinomial(200, [0.85, 0.07, 0.04, 0.04], size=2000)
    hits = 0
    for _, b, c, _ in cells:
        low, high = matched_difference_interval(int(b), int(c), 200)
        hits += low <= -0.03 <= high
    assert abs(hits / 2000 - 0.95) < 0.015


def test_matched_interval_raises() -> None:
    with pytest.raises(StatsInputError, match=r"`n_pairs` must be at least b \+ c = 10, found 9"):
        matched_difference_interval(4, 6, 9)
