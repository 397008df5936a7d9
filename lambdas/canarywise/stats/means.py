"""Means from sufficient statistics: latency, token cost, order value, CSAT.

The significance check never sees raw events: each arm arrives as ``n``, the sum and the sum of squares
(what CloudWatch's SampleCount, Sum and a squared-value metric give). :class:`SummaryStats` holds them and
:func:`welch_ttest` compares two arms. Only ``scipy.special`` is used, and only inside the functions that
compute: :class:`SummaryStats` is imported by the decision models, which the stage gate, promote and rollback
functions load without scipy (their Lambda bundles do not ship it; ``tests/unit/test_handler_imports.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from canarywise.stats._checks import (
    StatsInputError,
    check_alternative,
    check_count,
    check_finite,
    check_positive,
    check_probability,
)

__all__ = ["MeansResult", "SummaryStats", "t_pvalue", "welch_ttest"]


# The variance is reported as lost to cancellation when Σx² − (Σx)²/n is below this share of Σx²: both sums
# carry a relative rounding error of a few 1e-16, so the variance's relative error would then exceed ~1%.
_CANCELLATION_SHARE: Final = 1e-13


@dataclass(frozen=True)
class SummaryStats:
    """Sufficient statistics of one arm: count, sum and sum of squares, optionally of shifted values.

    Attributes
    ----------
    n : int
        Number of observations.
    sum : float
        Sum of the observations minus `shift`, Σ(x − K).
    sum_squares : float
        Sum of the squared shifted observations, Σ(x − K)².
    shift : float, default 0.0
        The constant K subtracted from every value before summing (any value near the mean).

    Notes
    -----
    ``variance = (sum_squares - sum**2 / n) / (n - 1)`` cancels when the values sit far from K compared with
    their spread: its relative error is about ``1e-16 * (mean - K)**2 / variance``. Shifting by a value near
    the mean (the shifted-data algorithm) removes the problem, and `from_values`, `from_mean_sd` and `+` do it
    (1e9 ± 1 keeps its variance exactly). Sums that arrive unshifted (a service emitting x and x²) cannot be
    repaired after the fact; when the difference is below 1e-13 of ``sum_squares`` (a relative error of the
    variance above ~1%; identical unshifted values land here too), `variance` is NaN, which the tests treat as
    no evidence, rather than a made-up number.
    Send such values on a natural scale (milliseconds, dollars), not as offsets from an epoch.

    Examples
    --------
    >>> arm = SummaryStats.from_mean_sd(1200, 212.4, 85.3)
    >>> round(arm.mean, 6), round(arm.sd, 6)
    (212.4, 85.3)
    >>> (SummaryStats.from_values([1.0, 2.0]) + SummaryStats.from_values([3.0])).mean
    2.0
    >>> SummaryStats.from_values([1e9 - 1, 1e9, 1e9 + 1]).variance
    1.0
    """

    n: int
    sum: float
    sum_squares: float
    shift: float = 0.0

    def __post_init__(self) -> None:
        check_count("n", self.n)
        check_finite("sum", self.sum)
        check_positive("sum_squares", self.sum_squares, allow_zero=True)
        check_finite("shift", self.shift)

    @classmethod
    def from_mean_sd(cls, n: int, mean: float, sd: float) -> SummaryStats:
        """Sufficient statistics from a reported count, mean and sample standard deviation (ddof=1), shifted
        by the mean."""
        check_count("n", n)
        check_finite("mean", mean)
        check_positive("sd", sd, allow_zero=True)
        return cls(n=int(n), sum=0.0, sum_squares=(n - 1) * sd * sd, shift=float(mean))

    @classmethod
    def from_values(cls, values: Iterable[float]) -> SummaryStats:
        """Sufficient statistics of raw observations, shifted by their mean (exactly rounded sums via
        ``math.fsum``)."""
        data = [float(v) for v in values]
        shift = math.fsum(data) / len(data) if data else 0.0
        centred = [v - shift for v in data]
        return cls(len(data), math.fsum(centred), math.fsum(d * d for d in centred), shift)

    def shifted(self, shift: float) -> SummaryStats:
        """The same observations with sums taken about `shift`: Σ(x − K') = Σ(x − K) + n (K − K') and
        Σ(x − K')² = Σ(x − K)² + 2 (K − K') Σ(x − K) + n (K − K')²."""
        d = self.shift - shift
        return SummaryStats(
            self.n, self.sum + self.n * d, self.sum_squares + 2.0 * d * self.sum + self.n * d * d, shift
        )

    def __add__(self, other: SummaryStats) -> SummaryStats:
        """Pool two disjoint sets of observations (e.g. two stages, two 5-minute windows)."""
        if not isinstance(other, SummaryStats):
            return NotImplemented
        other = other if other.shift == self.shift else other.shifted(self.shift)
        return SummaryStats(
            self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares, self.shift
        )

    @property
    def mean(self) -> float:
        """Sample mean (NaN when ``n == 0``)."""
        return self.shift + self.sum / self.n if self.n > 0 else math.nan

    @property
    def variance(self) -> float:
        """Sample variance with ``n - 1`` in the denominator (NaN when ``n < 2``, or when the sums have lost
        it to cancellation: see Notes)."""
        if self.n < 2:
            return math.nan
        if self.sum_squares == 0.0:
            return 0.0  # every value equals the shift
        spread = self.sum_squares - self.sum * self.sum / self.n
        if spread <= _CANCELLATION_SHARE * self.sum_squares:
            return math.nan  # the sums cannot resolve the spread any more (see Notes)
        return spread / (self.n - 1)

    @property
    def sd(self) -> float:
        """Sample standard deviation (NaN when ``n < 2``)."""
        return math.sqrt(self.variance)


@dataclass(frozen=True)
class MeansResult:
    """Outcome of :func:`welch_ttest` (and of the paired t-test).

    Attributes
    ----------
    statistic : float
        The t statistic (NaN with a ``message`` when undefined).
    pvalue : float
        p-value for ``alternative`` (NaN with a ``message`` when undefined; NaN never rejects).
    diff : float
        Estimated difference of means (treatment − control; for a paired test the mean difference).
    ci_low, ci_high : float
        t interval for ``diff`` at level ``1 - alpha``; one-sided alternatives give a one-sided bound with
        an infinite other end.
    df : float
        Degrees of freedom (Welch-Satterthwaite for two arms, ``n - 1`` when paired).
    method, alternative : str
        What was computed, and the alternative hypothesis.
    margin : float
        Value of ``diff`` under H0.
    message : str
        Empty, or ``"<code>: <explanation>"``: ``insufficient-data`` (an arm has fewer than 2
        observations) or ``zero-variance`` (the standard error is 0).
    """

    statistic: float
    pvalue: float
    diff: float
    ci_low: float
    ci_high: float
    df: float
    method: str
    alternative: str
    margin: float
    message: str = ""


def t_pvalue(t: float, df: float, alternative: str) -> float:
    """p-value of a Student-t statistic from the survival function (``scipy.special.stdtr``).

    Examples
    --------
    >>> round(t_pvalue(2.0, 10.0, "greater"), 6)
    0.036694
    """
    from scipy import special  # here, not at module level: see the module docstring

    if alternative == "greater":
        return float(special.stdtr(df, -t))
    if alternative == "less":
        return float(special.stdtr(df, t))
    return float(2.0 * special.stdtr(df, -abs(t)))


def _undefined(
    diff: float, df: float, *, alternative: str, margin: float, method: str, message: str
) -> MeansResult:
    """A result whose statistic, p-value and interval are undefined (NaN), with the coded ``message``."""
    return MeansResult(
        statistic=math.nan,
        pvalue=math.nan,
        diff=diff,
        ci_low=math.nan,
        ci_high=math.nan,
        df=df,
        method=method,
        alternative=alternative,
        margin=margin,
        message=message,
    )


def t_test_result(
    diff: float, se: float, df: float, *, alternative: str, alpha: float, margin: float, method: str
) -> MeansResult:
    """The t statistic, p-value and interval for an estimate ``diff`` with standard error ``se``.

    Shared by the Welch and the paired t-tests; ``se == 0`` gives the documented ``zero-variance`` result.
    """
    if se == 0:
        return _undefined(
            diff,
            df,
            alternative=alternative,
            margin=margin,
            method=method,
            message="zero-variance: the standard error is 0, so the t statistic is undefined",
        )
    from scipy import special  # here, not at module level: see the module docstring

    statistic = (diff - margin) / se
    tail = alpha / 2 if alternative == "two-sided" else alpha
    half = float(special.stdtrit(df, 1 - tail)) * se
    ci_low = -math.inf if alternative == "less" else diff - half
    ci_high = math.inf if alternative == "greater" else diff + half
    return MeansResult(
        statistic=statistic,
        pvalue=t_pvalue(statistic, df, alternative),
        diff=diff,
        ci_low=ci_low,
        ci_high=ci_high,
        df=df,
        method=method,
        alternative=alternative,
        margin=margin,
    )


def insufficient_data(diff: float, *, alternative: str, margin: float, method: str) -> MeansResult:
    """The documented result when an arm has fewer than two observations."""
    return _undefined(
        diff,
        math.nan,
        alternative=alternative,
        margin=margin,
        method=method,
        message="insufficient-data: each arm needs at least 2 observations for a variance",
    )


def welch_ttest(
    control: SummaryStats,
    treatment: SummaryStats,
    *,
    alternative: str = "two-sided",
    alpha: float = 0.05,
    margin: float = 0.0,
) -> MeansResult:
    """Welch's unequal-variance t-test of two means from summary statistics.

    Parameters
    ----------
    control, treatment : SummaryStats
        Per-arm ``n``, sum and sum of squares (build from a mean and sd with
        :meth:`SummaryStats.from_mean_sd`).
    alternative : {'two-sided', 'greater', 'less'}
        H1: ``diff != margin``, ``diff > margin`` or ``diff < margin``.
    alpha : float
        1 - confidence level of the interval.
    margin : float
        ``diff`` under H0 (a non-inferiority margin; 0 for a plain test).

    Returns
    -------
    MeansResult

    Notes
    -----
    ``diff = mean_t - mean_c``, ``se² = s_t²/n_t + s_c²/n_c``, ``t = (diff - margin) / se`` with the
    Welch-Satterthwaite degrees of freedom ``df = se⁴ / ((s_t²/n_t)²/(n_t - 1) + (s_c²/n_c)²/(n_c - 1))``.
    Welch rather than the pooled t because a canary rarely has the spread of the baseline (a slower model
    often has a longer tail too). An arm with ``n < 2`` gives ``message`` ``insufficient-data``; two
    constant arms give ``zero-variance``; in both cases ``statistic`` and ``pvalue`` are NaN.

    References
    ----------
    Welch B. L. (1947). The generalization of "Student's" problem when several different population
    variances are involved. Biometrika 34, 28-35.

    Examples
    --------
    Latency (ms) n, mean, sd per arm:

    >>> control = SummaryStats.from_mean_sd(1200, 212.4, 85.3)
    >>> canary = SummaryStats.from_mean_sd(1150, 219.9, 97.1)
    >>> r = welch_ttest(control, canary)
    >>> round(r.statistic, 4), round(r.df, 1), round(r.pvalue, 4)
    (1.986, 2281.3, 0.0472)
    """
    check_alternative(alternative)
    check_probability("alpha", alpha)
    check_finite("margin", margin)
    if not isinstance(control, SummaryStats) or not isinstance(treatment, SummaryStats):
        raise StatsInputError(
            f"`control` and `treatment` must be SummaryStats, found {type(control).__name__} and "
            f"{type(treatment).__name__}"
        )
    method = "Welch two-sample t-test"
    diff = treatment.mean - control.mean
    if control.n < 2 or treatment.n < 2:
        return insufficient_data(diff, alternative=alternative, margin=float(margin), method=method)
    share_c = control.variance / control.n
    share_t = treatment.variance / treatment.n
    se = math.sqrt(share_c + share_t)
    df = (
        (share_c + share_t) ** 2 / (share_c**2 / (control.n - 1) + share_t**2 / (treatment.n - 1))
        if se > 0
        else math.nan
    )
    return t_test_result(
        diff, se, df, alternative=alternative, alpha=alpha, margin=float(margin), method=method
    )
