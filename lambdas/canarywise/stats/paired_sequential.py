"""Anytime-valid paired tests for shadow mode: both models answer every request, the check looks every 5 min.

Shadow mode reports, per request, the outcome of the current model and of the candidate on the *same*
request. Two tests, both safe to look at after every request:

- `sequential_mcnemar`: for a binary outcome, McNemar's discordant pairs as a sequential test. Among the
  requests where exactly one model succeeded, the candidate's share is 1/2 under H0; a beta mixture of the
  binomial likelihood ratio over that share is a nonnegative martingale under H0, exact at every sample size
  (no normal approximation).
- `paired_msprt`: for a numeric value (latency, tokens, cost) or a binary outcome's difference with a margin,
  the mixture SPRT (`canarywise.stats.sequential.msprt_normal`) on the mean per-request difference with the
  paired variance. Asymptotic, like every mSPRT with an estimated variance.

Pairing removes the request-to-request variation: the variance of the mean difference is
``Var(candidate − current) / n``, far below the unpaired ``Var(candidate)/n + Var(current)/n`` when the two
answers to a request are correlated (make bench: the gain from pairing as a ratio of requests needed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from scipy.special import betainc, betaln

from canarywise.stats._checks import (
    StatsInputError,
    check_alternative,
    check_count,
    check_positive,
    check_probability,
)
from canarywise.stats.means import SummaryStats
from canarywise.stats.sequential import SequentialResult, msprt_normal

__all__ = ["DEFAULT_CONCENTRATION", "PairedCells", "paired_msprt", "sequential_mcnemar"]

# Beta(a, a) mixing over the candidate's share of the discordant pairs: a = 10 puts the prior's standard
# deviation at 1/sqrt(4 (2a + 1)) = 0.109, i.e. on splits of 39/61 and beyond: the discordant splits of the
# regressions shadow mode exists for (98.0% -> 97.2% with ~3% discordant requests is a 37/63 split).
DEFAULT_CONCENTRATION: Final = 10.0
_LOG2: Final = math.log(2.0)


@dataclass(frozen=True)
class PairedCells:
    """The four cells of a binary outcome on paired requests (what `canarywise.emit` records per request).

    Attributes
    ----------
    both, current_only, candidate_only, neither : int
        Requests where both models succeeded, only the current one, only the candidate, neither.

    Example
    -------
    >>> cells = PairedCells(both=9650, current_only=150, candidate_only=70, neither=130)
    >>> cells.n, cells.current_rate, round(cells.diff, 4)
    (10000, 0.98, -0.008)
    """

    both: int
    current_only: int
    candidate_only: int
    neither: int

    def __post_init__(self) -> None:
        for name in ("both", "current_only", "candidate_only", "neither"):
            check_count(name, getattr(self, name))

    def __add__(self, other: PairedCells) -> PairedCells:
        return PairedCells(
            self.both + other.both,
            self.current_only + other.current_only,
            self.candidate_only + other.candidate_only,
            self.neither + other.neither,
        )

    @property
    def n(self) -> int:
        return self.both + self.current_only + self.candidate_only + self.neither

    @property
    def current_rate(self) -> float:
        return (self.both + self.current_only) / self.n if self.n else math.nan

    @property
    def candidate_rate(self) -> float:
        return (self.both + self.candidate_only) / self.n if self.n else math.nan

    @property
    def diff(self) -> float:
        """candidate rate − current rate."""
        return (self.candidate_only - self.current_only) / self.n if self.n else math.nan

    def differences(self) -> SummaryStats:
        """Sufficient statistics of the per-request difference candidate − current (each −1, 0 or +1)."""
        discordant = self.current_only + self.candidate_only
        return SummaryStats(self.n, float(self.candidate_only - self.current_only), float(discordant))


def sequential_mcnemar(
    current_only: int,
    candidate_only: int,
    *,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    concentration: float = DEFAULT_CONCENTRATION,
) -> SequentialResult:
    """McNemar's test as an anytime-valid sequential test on the discordant pairs.

    Parameters
    ----------
    current_only, candidate_only : int
        Requests so far where only the current model / only the candidate succeeded (``b`` and ``c``).
    alpha : float
        Type-I error over every look.
    alternative : {'two-sided', 'greater', 'less'}
        H1 on the candidate's success rate versus the current model's: ``'less'`` is "the candidate is
        worse" (harm, for a higher-is-better outcome), ``'greater'`` "the candidate is better".
    concentration : float
        ``a`` of the Beta(a, a) mixing distribution over the candidate's share of discordant pairs (> 0).

    Returns
    -------
    SequentialResult
        ``statistic`` = ``c``, ``pvalue`` the always-valid p-value ``min(1, 1/Λ)``, ``diff`` the candidate's
        share of the discordant pairs ``c / (b + c)`` (NaN with none) and ``null`` its value under H0, 1/2.
        No confidence sequence (``ci_low``/``ci_high`` are −inf/inf): `paired_msprt` on the cells'
        differences gives one for the difference of the rates.

    Notes
    -----
    Given the discordant pairs, ``c ~ Binomial(b + c, π)`` with π = P(the candidate wins a discordant pair);
    H0: π = 1/2 (equal success rates). Concordant requests leave the likelihood ratio unchanged, so it is a
    martingale in the requests too, and Ville's inequality bounds P(ever Λ >= 1/alpha) by alpha. With
    m = b + c and π ~ Beta(a, a)::

        Λ = 2^m · B(c + a, b + a) / B(a, a)                             (two-sided)
        Λ_less = 2 · 2^m · B(c + a, b + a) · I_{1/2}(c + a, b + a) / B(a, a)   (π ~ Beta(a, a) on [0, 1/2])
        Λ_greater: the same with I_{1/2}(b + a, c + a)

    (I the regularized incomplete beta function). Each component ratio of π1 < 1/2 against 1/2 has
    expectation ``2(π π1 + (1 − π)(1 − π1)) <= 1`` under any π >= 1/2, so the one-sided mixture is a
    supermartingale on the whole composite null and the bound still holds. Exact: no normal approximation.

    References
    ----------
    Robbins H. (1970). Statistical methods related to the law of the iterated logarithm. Ann. Math. Statist.
    41, 1397-1409. Ville J. (1939). Étude critique de la notion de collectif.

    Example
    -------
    >>> r = sequential_mcnemar(150, 70, alternative="less")  # 98.0% -> 97.2% on 10,000 requests
    >>> r.pvalue < 0.05
    True
    """
    b = check_count("current_only", current_only)
    c = check_count("candidate_only", candidate_only)
    alpha = check_probability("alpha", alpha)
    check_alternative(alternative)
    a = check_positive("concentration", concentration)
    m = b + c
    log_lr = m * _LOG2 + float(betaln(c + a, b + a) - betaln(a, a))
    if alternative != "two-sided":
        x, y = (c + a, b + a) if alternative == "less" else (b + a, c + a)
        tail = float(betainc(x, y, 0.5))
        log_lr = _LOG2 + log_lr + (math.log(tail) if tail > 0 else -math.inf)
    pvalue = 1.0 if log_lr <= 0 else min(1.0, math.exp(-log_lr))
    share = c / m if m else math.nan
    method = f"sequential McNemar, Beta({a:g}, {a:g}) mixture on the discordant pairs"
    return SequentialResult(float(c), pvalue, share, -math.inf, math.inf, method, alternative, 0.5)


def paired_msprt(
    differences: SummaryStats,
    *,
    tau2: float,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    null: float = 0.0,
) -> SequentialResult:
    """Anytime-valid test and confidence sequence for the mean per-request difference (candidate − current).

    Parameters
    ----------
    differences : SummaryStats
        n, sum and sum of squares of the per-request differences.
    tau2, alpha, alternative, null
        As in `canarywise.stats.sequential.msprt_normal`: ``null`` is the difference under H0 (0 for harm, the
        margin for non-inferiority); ``'greater'`` tests H0: mean difference <= null.

    Returns
    -------
    SequentialResult
        With "no evidence yet" (p = 1, an infinite sequence) for fewer than 2 pairs or a zero variance.

    Notes
    -----
    The mixture SPRT with θ̂ = mean difference and V = s_d² / n, s_d² the sample variance of the differences.
    Asymptotically valid (Waudby-Smith et al. 2024): do not decide on a handful of pairs.

    Example
    -------
    >>> d = SummaryStats.from_mean_sd(5000, 75.0, 40.0)  # prompt tokens 120 -> 195 on the same requests
    >>> paired_msprt(d, tau2=10.0**2, alternative="greater").pvalue < 1e-6
    True
    """
    if not isinstance(differences, SummaryStats):
        raise StatsInputError(f"`differences` must be SummaryStats, found {type(differences).__name__}")
    variance = differences.variance
    if differences.n < 2 or not math.isfinite(variance) or variance == 0.0:
        check_positive("tau2", tau2)
        check_probability("alpha", alpha)
        check_alternative(alternative)
        estimate = differences.mean
        what = "mSPRT, paired differences: fewer than 2 pairs or zero variance, no evidence yet"
        return SequentialResult(math.nan, 1.0, estimate, -math.inf, math.inf, what, alternative, null)
    result = msprt_normal(
        differences.mean, variance / differences.n, tau2=tau2, alpha=alpha, alternative=alternative, null=null
    )
    return SequentialResult(
        result.statistic,
        result.pvalue,
        result.diff,
        result.ci_low,
        result.ci_high,
        f"{result.method}, paired differences",
        alternative,
        null,
    )
