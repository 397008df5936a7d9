"""Paired comparisons: both models answer the same examples, so each example is its own control.

Pairing removes the example-to-example variation, so a paired comparison needs far fewer examples than a
split test. Binary outcomes (correct / not) use McNemar's test on the discordant pairs, with the Agresti-Min
interval for the difference of the matched rates; continuous ones (a score, latency, cost) the paired t-test
on the per-example differences. These are fixed-sample tests, looked at once: ``canarywise test paired``
runs them on a golden set before release.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from scipy import special

from canarywise.stats._checks import (
    StatsInputError,
    check_alternative,
    check_count,
    check_finite,
    check_probability,
)
from canarywise.stats.means import MeansResult, SummaryStats, insufficient_data, t_test_result

__all__ = ["McNemarResult", "matched_difference_interval", "mcnemar_test", "paired_ttest"]


@dataclass(frozen=True)
class McNemarResult:
    """Outcome of :func:`mcnemar_test`.

    Attributes
    ----------
    statistic : float
        Exact test: ``c``, the discordant pairs won by the treatment. Chi-square test: the McNemar
        chi-square statistic (NaN with a ``message`` when there is no discordant pair).
    pvalue : float
        p-value for ``alternative``.
    diff : float
        ``(c - b) / n_pairs`` when ``n_pairs`` is given (treatment − control success rate), else NaN.
    method, alternative : str
        What was computed, and the alternative hypothesis.
    message : str
        Empty, or ``"no-discordant-pairs: ..."``.
    """

    statistic: float
    pvalue: float
    diff: float
    method: str
    alternative: str
    message: str = ""


def mcnemar_test(
    b: int,
    c: int,
    *,
    exact: bool = True,
    correction: bool = True,
    alternative: str = "two-sided",
    n_pairs: int | None = None,
) -> McNemarResult:
    """McNemar's test from the discordant counts of a paired binary outcome.

    Parameters
    ----------
    b : int
        Pairs where the control succeeded and the treatment failed.
    c : int
        Pairs where the treatment succeeded and the control failed.
    exact : bool
        Exact binomial test on the discordant pairs (default; right for small ``b + c``). Otherwise the
        chi-square approximation.
    correction : bool
        Continuity correction of the chi-square form (ignored when ``exact``).
    alternative : {'two-sided', 'greater', 'less'}
        H1 on the treatment's success rate versus the control's. One-sided alternatives need
        ``exact=True`` (the chi-square statistic has no sign).
    n_pairs : int, optional
        Total pairs, to report the difference of success rates.

    Returns
    -------
    McNemarResult

    Notes
    -----
    H0: ``P(treatment wins a discordant pair) = 1/2``, i.e. equal success rates. Only discordant pairs
    carry information. Exact: ``c ~ Binomial(b + c, 1/2)`` (``scipy.stats.binomtest``; 'greater' is
    H1 ``c`` large). Chi-square: ``(|b - c| - 1)² / (b + c)`` with the correction (as R's
    ``mcnemar.test``, also when ``b == c``), ``(b - c)² / (b + c)`` without, on 1 df. With no discordant
    pair the exact p-value is 1 (the only possible outcome) and the chi-square statistic is undefined
    (NaN, ``message`` ``no-discordant-pairs``).

    References
    ----------
    McNemar Q. (1947). Note on the sampling error of the difference between correlated proportions or
    percentages. Psychometrika 12, 153-157.

    Examples
    --------
    A golden set of 2,000 examples: 41 answered right only by the current model, 68 only by the candidate:

    >>> r = mcnemar_test(41, 68, n_pairs=2000)
    >>> round(r.pvalue, 4), r.diff
    (0.0124, 0.0135)
    """
    check_count("b", b)
    check_count("c", c)
    check_alternative(alternative)
    if n_pairs is not None:
        check_count("n_pairs", n_pairs, minimum=1)
        if b + c > n_pairs:
            raise StatsInputError(f"`n_pairs` must be at least b + c = {b + c}, found {n_pairs!r}")
    if not exact and alternative != "two-sided":
        raise StatsInputError(
            "`alternative` must be 'two-sided' for the chi-square form (use exact=True), "
            f"found {alternative!r}"
        )
    diff = (c - b) / n_pairs if n_pairs else math.nan
    discordant = b + c
    if exact:
        method = "McNemar exact (binomial)"
        if discordant == 0:
            return McNemarResult(
                0.0, 1.0, diff, method, alternative, "no-discordant-pairs: nothing to compare"
            )
        # Imported here: scipy.stats costs ~0.5 s at a Lambda cold start.
        from scipy import stats

        pvalue = float(stats.binomtest(c, discordant, 0.5, alternative=alternative).pvalue)
        return McNemarResult(float(c), pvalue, diff, method, alternative)
    method = "McNemar chi-square" + (" (continuity-corrected)" if correction else "")
    if discordant == 0:
        return McNemarResult(
            math.nan, math.nan, diff, method, alternative, "no-discordant-pairs: the statistic is 0/0"
        )
    # As R's mcnemar.test and statsmodels: (|b - c| - 1)², even when b == c.
    gap = abs(b - c) - 1.0 if correction else float(abs(b - c))
    statistic = gap * gap / discordant
    # The chi-square survival function (scipy.special.chdtrc), so tiny p-values stay tiny.
    return McNemarResult(statistic, float(special.chdtrc(1, statistic)), diff, method, alternative)


def paired_ttest(
    differences: SummaryStats,
    *,
    alternative: str = "two-sided",
    alpha: float = 0.05,
    null: float = 0.0,
) -> MeansResult:
    """Paired t-test from the sufficient statistics of the per-pair differences (treatment − control).

    Parameters
    ----------
    differences : SummaryStats
        ``n``, sum and sum of squares of ``treatment_i - control_i`` over the pairs.
    alternative : {'two-sided', 'greater', 'less'}
        H1: mean difference ``!=``, ``>`` or ``<`` ``null``.
    alpha : float
        1 - confidence level of the interval.
    null : float
        Mean difference under H0 (a margin).

    Returns
    -------
    MeansResult
        ``diff`` is the mean difference, ``df = n - 1``, ``margin`` holds ``null``.

    Notes
    -----
    ``t = (mean_d - null) / (sd_d / sqrt(n))`` on ``n - 1`` df: a one-sample t-test of the differences.
    Fewer than 2 pairs give ``insufficient-data``, constant differences ``zero-variance`` (both NaN
    statistic and p-value, with ``message``).

    Examples
    --------
    >>> d = SummaryStats.from_values([3.0, -1.0, 4.0, 2.0, 5.0, 1.0])
    >>> r = paired_ttest(d)
    >>> round(r.statistic, 4), r.df
    (2.6458, 5.0)
    """
    if not isinstance(differences, SummaryStats):
        raise StatsInputError(f"`differences` must be SummaryStats, found {type(differences).__name__}")
    check_alternative(alternative)
    check_probability("alpha", alpha)
    check_finite("null", null)
    method = "paired t-test"
    if differences.n < 2:
        result = insufficient_data(
            differences.mean, alternative=alternative, margin=float(null), method=method
        )
        return dataclasses.replace(
            result, message="insufficient-data: at least 2 pairs are needed for a variance"
        )
    se = math.sqrt(differences.variance / differences.n)
    return t_test_result(
        differences.mean,
        se,
        float(differences.n - 1),
        alternative=alternative,
        alpha=alpha,
        margin=float(null),
        method=method,
    )


def matched_difference_interval(b: int, c: int, n_pairs: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """Confidence interval for the difference of matched success rates (treatment − control).

    Parameters
    ----------
    b, c : int
        Discordant pairs: control only succeeded (``b``), treatment only succeeded (``c``).
    n_pairs : int
        All pairs (>= ``b + c``, >= 1).
    alpha : float
        1 − confidence level (two-sided).

    Returns
    -------
    (float, float)
        The interval's ends, within [−1, 1].

    Notes
    -----
    Agresti & Min's adjusted Wald interval: add 1/2 to each of the four cells of the paired table, then
    ``d = (c - b) / (n + 2)`` and ``V = ((b + c + 1) - (c - b)² / (n + 2)) / (n + 2)²``, the interval
    ``d ± z_{1-α/2} sqrt(V)``. The plain Wald interval (no adding) collapses to a point when there is no
    discordant pair and covers badly near 0 and 1; the adjusted one covers close to the nominal level
    down to small n.

    References
    ----------
    Agresti A., Min Y. (2005). Simple improved confidence intervals for comparing matched proportions.
    Statistics in Medicine 24, 729-740.

    Examples
    --------
    >>> low, high = matched_difference_interval(60, 30, 1000)
    >>> round(low, 4), round(high, 4)
    (-0.0485, -0.0114)
    """
    check_count("b", b)
    check_count("c", c)
    check_count("n_pairs", n_pairs, minimum=1)
    check_probability("alpha", alpha)
    if b + c > n_pairs:
        raise StatsInputError(f"`n_pairs` must be at least b + c = {b + c}, found {n_pairs!r}")
    total = n_pairs + 2.0
    diff = (c - b) / total
    variance = ((b + c + 1.0) - (c - b) ** 2 / total) / (total * total)
    half = float(special.ndtri(1.0 - alpha / 2.0)) * math.sqrt(variance)
    return max(-1.0, diff - half), min(1.0, diff + half)
