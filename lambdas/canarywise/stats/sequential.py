"""Anytime-valid inference for a difference (treatment − control): mixture SPRT and confidence sequences.

A canary is checked every five minutes for days. A fixed-sample test applied at every look rejects a perfectly
good candidate most of the time; the tests here can be looked at after every observation and still keep the
probability of *ever* rejecting a true null at most ``alpha``.

Every function works on an asymptotically normal estimate ``θ̂ ~ N(θ, V)`` of the difference θ, with ``V``
its estimated variance at this look (``V`` shrinks like 1/n as data arrive). The mixture likelihood ratio

    Λ = ∫ φ_V(θ̂ − θ) / φ_V(θ̂ − θ0) dF(θ)

of "the effect is θ, drawn from the mixing distribution F" against "the effect is θ0" is a nonnegative
martingale under H0, so by Ville's inequality ``P(sup_n Λ_n >= 1/alpha) <= alpha``. Hence ``p = min(1, 1/Λ)``
is an always-valid p-value (reject the first time it is <= alpha) and ``{θ0 : Λ(θ0) < 1/alpha}`` is a
confidence sequence: it covers the true θ at every look simultaneously with probability >= 1 − alpha.

For differences of proportions and of means with estimated variances the guarantee is asymptotic (it holds as
the sample sizes grow; Waudby-Smith et al.): do not decide on a handful of observations.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.special import lambertw, log_ndtr

from canarywise.stats._checks import (
    StatsInputError,
    check_alternative,
    check_arms,
    check_finite,
    check_positive,
    check_probability,
)
from canarywise.stats.proportions import difference_variance

__all__ = [
    "SequentialResult",
    "always_valid_pvalues",
    "mixing_variance",
    "msprt_means",
    "msprt_normal",
    "msprt_proportions",
    "running_confidence_sequence",
]

_LOG2: Final = math.log(2.0)


@dataclass(frozen=True)
class SequentialResult:
    """One look of an anytime-valid test of a difference (treatment − control).

    Attributes
    ----------
    statistic : float
        The z-score ``(diff − null) / sqrt(variance)`` at this look (NaN when the variance is zero). The
        mixture likelihood ratio itself is ``1 / pvalue`` whenever ``pvalue < 1``.
    pvalue : float
        This look's always-valid p-value: rejecting the first time it is <= alpha keeps the type-I error
        <= alpha over every look. Take the running minimum (``always_valid_pvalues``) for a monotone series.
    diff : float
        The estimate of the difference at this look.
    ci_low, ci_high : float
        The (1 − alpha) confidence sequence at this look; one end is infinite for a one-sided alternative.
        Intersect the looks (``running_confidence_sequence``) for a sequence that only shrinks.
    method : str
        What was computed; says "zero variance" when the data cannot carry evidence yet.
    alternative : str
        ``'two-sided'``, ``'greater'`` (H0: diff <= null) or ``'less'`` (H0: diff >= null).
    null : float
        The value of the difference under H0 (0 for harm; the margin for non-inferiority).
    """

    statistic: float
    pvalue: float
    diff: float
    ci_low: float
    ci_high: float
    method: str
    alternative: str
    null: float


class _Summary(Protocol):
    """What `msprt_means` reads from `canarywise.stats.means.SummaryStats`."""

    @property
    def n(self) -> int: ...

    @property
    def mean(self) -> float: ...

    @property
    def variance(self) -> float: ...


def _log_mixture_lr(z: float, ratio: float, alternative: str) -> float:
    """log Λ for z = (θ̂ − θ0)/sqrt(V) and ratio = τ²/V (see `msprt_normal` Notes for the derivation)."""
    log_lr = -0.5 * math.log1p(ratio) + ratio * z * z / (2.0 * (1.0 + ratio))
    if alternative == "two-sided":
        return log_lr
    shrink = math.sqrt(ratio / (1.0 + ratio))
    signed = z if alternative == "greater" else -z
    return _LOG2 + log_lr + float(log_ndtr(signed * shrink))


def _two_sided_radius(ratio: float, alpha: float) -> float:
    """Half-width of the two-sided confidence sequence in units of sqrt(V)."""
    return math.sqrt((1.0 + ratio) / ratio * (2.0 * math.log(1.0 / alpha) + math.log1p(ratio)))


def _one_sided_radius(ratio: float, alpha: float) -> float:
    """The u > 0 with log Λ_greater(u) = log(1/alpha), in units of sqrt(V).

    Bracket: at u = 0 the one-sided log Λ is −log(1 + ratio)/2 < log(1/alpha); at the two-sided radius it is
    at least log(1/alpha), because the factor 2Φ(·) is >= 1 for u >= 0. log Λ_greater is increasing in u.
    """
    target = math.log(1.0 / alpha)
    upper = _two_sided_radius(ratio, alpha)
    return float(
        brentq(lambda u: _log_mixture_lr(u, ratio, "greater") - target, 0.0, upper, xtol=1e-14, rtol=1e-14)
    )


def msprt_normal(
    estimate: float,
    variance: float,
    *,
    tau2: float,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    null: float = 0.0,
) -> SequentialResult:
    """Mixture sequential probability ratio test and confidence sequence for a normal estimate.

    Parameters
    ----------
    estimate : float
        The estimate θ̂ of the difference (treatment − control) at this look.
    variance : float
        Its variance V at this look (> 0).
    tau2 : float
        Mixing variance τ² (> 0), in the squared units of the difference; choose it before the experiment with
        `mixing_variance` and keep it fixed for every look.
    alpha : float, default 0.05
        Type-I error over all looks, and 1 − coverage of the confidence sequence.
    alternative : {'two-sided', 'greater', 'less'}
        ``'greater'`` tests H0: diff <= null (harm, when a larger value is worse); ``'less'`` tests
        H0: diff >= null (non-inferiority with ``null`` = margin, when a larger value is worse).
    null : float, default 0.0
        The boundary value θ0 of H0.

    Returns
    -------
    SequentialResult
        ``statistic`` is the z-score, ``pvalue`` the always-valid p-value ``min(1, 1/Λ)``, ``ci_low``/
        ``ci_high`` the confidence sequence at this look.

    Notes
    -----
    Write z = (θ̂ − θ0)/√V and r = τ²/V.

    Two-sided (H0: θ = θ0; mixing θ ~ N(θ0, τ²); Johari et al., Robbins 1970)::

        Λ = sqrt(V / (V + τ²)) · exp(τ² (θ̂ − θ0)² / (2 V (V + τ²)))
        CS = θ̂ ± sqrt(V (V + τ²) / τ² · (2 log(1/α) + log((V + τ²) / V)))

    One-sided ``'greater'`` (H0: θ <= θ0). The mixing distribution is half-normal on the alternative,
    δ = θ − θ0 with density 2 φ(δ/τ)/τ on δ > 0, so the test spends all of alpha on one side instead of being
    the two-sided test at 2α. With the likelihood ratio of θ0 + δ against θ0, exp(δ(θ̂ − θ0)/V − δ²/(2V)),
    and a = 1/V + 1/τ², m = (θ̂ − θ0)/(V a), s² = 1/a, completing the square gives::

        Λ> = (2/τ) ∫_0^∞ exp(δ(θ̂ − θ0)/V − δ²/(2V)) φ(δ/τ) dδ
           = (2 s/τ) exp(m²/(2 s²)) Φ(m/s)
           = 2 Φ(z · sqrt(r/(1 + r))) · Λ_two-sided

    Each component likelihood ratio (δ > 0) is a supermartingale under any θ <= θ0, so their mixture is too,
    and Ville's inequality still bounds the type-I error by alpha over the whole composite null. Λ> increases
    with θ̂ − θ0, so the confidence sequence is a lower bound ``[θ̂ − u*√V, ∞)`` where u* solves
    Λ>(u*) = 1/alpha (found with `scipy.optimize.brentq`; there is no closed form). ``'less'``
    (H0: θ >= θ0) is the mirror image: Λ< = 2 Φ(−z · sqrt(r/(1 + r))) · Λ_two-sided and the sequence is
    ``(−∞, θ̂ + u*√V]``.

    In every case ``pvalue <= alpha`` exactly when ``null`` lies outside the confidence sequence.

    References
    ----------
    .. [1] Johari, R., Koomen, P., Pekelis, L., Walsh, D. (2022). "Always valid inference: continuous
           monitoring of A/B tests." Operations Research 70(3), 1806-1821.
    .. [2] Howard, S. R., Ramdas, A., McAuliffe, J., Sekhon, J. (2021). "Time-uniform, nonparametric,
           nonasymptotic confidence sequences." Annals of Statistics 49(2), 1055-1080.
    .. [3] Waudby-Smith, I., Arbour, D., Sinha, R., Kennedy, E. H., Ramdas, A. (2024). "Time-uniform central
           limit theory and asymptotic confidence sequences." Annals of Statistics 52(6).

    Example
    -------
    >>> r = msprt_normal(0.02, 0.005**2, tau2=0.01**2, alternative="greater")
    >>> r.pvalue < 0.05, r.ci_low > 0
    (True, True)
    """
    estimate = check_finite("estimate", estimate)
    variance = check_positive("variance", variance)
    tau2, alpha, alternative, null = _check_common(tau2, alpha, alternative, null)

    sd = math.sqrt(variance)
    ratio = tau2 / variance
    z = (estimate - null) / sd
    pvalue = min(1.0, math.exp(-_log_mixture_lr(z, ratio, alternative)))
    if alternative == "two-sided":
        radius = _two_sided_radius(ratio, alpha) * sd
        ci_low, ci_high = estimate - radius, estimate + radius
        method = "mSPRT, normal mixture (two-sided)"
    else:
        radius = _one_sided_radius(ratio, alpha) * sd
        if alternative == "greater":
            ci_low, ci_high = estimate - radius, math.inf
        else:
            ci_low, ci_high = -math.inf, estimate + radius
        method = "mSPRT, half-normal mixture (one-sided)"
    return SequentialResult(z, pvalue, estimate, ci_low, ci_high, method, alternative, null)


def _no_evidence(estimate: float, alternative: str, null: float, what: str) -> SequentialResult:
    # A zero variance (no events in either arm yet, or identical values) carries no evidence in this model:
    # a documented "nothing yet" result keeps a caller's loop running instead of crashing it.
    return SequentialResult(
        math.nan,
        1.0,
        estimate,
        -math.inf,
        math.inf,
        f"{what}: zero variance, no evidence yet",
        alternative,
        null,
    )


def msprt_proportions(
    x_control: int,
    n_control: int,
    x_treatment: int,
    n_treatment: int,
    *,
    tau2: float,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    null: float = 0.0,
) -> SequentialResult:
    """Anytime-valid test and confidence sequence for a difference of two proportions (treatment − control).

    Parameters
    ----------
    x_control, n_control, x_treatment, n_treatment : int
        Successes (events) and trials per arm, cumulative up to this look; each ``n`` >= 1.
    tau2, alpha, alternative
        As in `msprt_normal`.
    null : float, default 0.0
        The boundary of H0 on the difference scale (e.g. 0.005 = half a percentage point), in (−1, 1).

    Returns
    -------
    SequentialResult
        ``statistic`` is the z at ``null``; ``ci_low``/``ci_high`` the confidence sequence, within [−1, 1].

    Notes
    -----
    The mixture of `msprt_normal` with θ̂ = p̂_t − p̂_c and a variance that depends on the hypothesis
    tested: V(θ0) = the larger of the variance at the rates maximising the likelihood under
    p_t − p_c = θ0 (Farrington & Manning 1990) and the Agresti-Caffo variance at the observed rates
    (``stats.proportions.difference_variance``). The p-value at ``null`` uses V(null). The confidence
    sequence inverts the same test, ``{θ0 : Λ(θ0; V(θ0)) < 1/alpha}``, its ends found with
    `scipy.optimize.brentq`, so ``pvalue <= alpha`` exactly when ``null`` lies outside it.

    Why: with V at the observed rates a rare event breaks the guarantee. A 5% canary at a 0.3% error rate
    has no events for its first looks; its side of V is then zero and the sequence is far too narrow
    (time-uniform coverage 43-49% instead of 95% on the shipped ladder; make bench). The variance at the
    null alone fixes the side where the canary has too few events but not the other (90% at 0.1%): the
    larger of the two covers at least 97.8% from 0.1% to 1% and is the observed variance at 12-50%.
    Validity is still asymptotic (Waudby-Smith et al. 2024); the unit tests and ``make bench`` measure the
    coverage from 0.1% to 50% baselines.

    Example
    -------
    >>> r = msprt_proportions(59400, 495000, 700, 5000, tau2=0.01**2, alternative="greater")
    >>> r.pvalue < 0.05
    True
    >>> r = msprt_proportions(5, 5000, 0, 300, tau2=0.005**2, alternative="less", null=0.005)
    >>> r.pvalue < 0.05  # no canary events in 300 units does not prove a 0.5 pt margin
    False
    """
    x_control, n_control, x_treatment, n_treatment = check_arms(
        x_control, n_control, x_treatment, n_treatment
    )
    tau2, alpha, alternative, null = _check_common(tau2, alpha, alternative, null)
    if not -1.0 < null < 1.0:
        raise StatsInputError(f"`null` must be in (-1, 1) for a difference of proportions, found {null!r}")
    counts = (x_control, n_control, x_treatment, n_treatment)
    estimate = x_treatment / n_treatment - x_control / n_control
    what = "difference of proportions, variance at the null (score) or observed, the larger"
    variance = difference_variance(*counts, null)  # > 0: the Agresti-Caffo part never vanishes
    at_null = msprt_normal(estimate, variance, tau2=tau2, alpha=alpha, alternative=alternative, null=null)
    target = math.log(1.0 / alpha)

    def excess(theta0: float, side: str) -> float:
        # log Λ(θ0) − log(1/alpha): negative inside the sequence, positive outside
        v = difference_variance(*counts, theta0)
        return _log_mixture_lr((estimate - theta0) / math.sqrt(v), tau2 / v, side) - target

    # A first step of the width the sequence would have with the variance at the null.
    step = max(_two_sided_radius(tau2 / variance, alpha) * math.sqrt(variance), 1e-9)
    ci_low, ci_high = -1.0, 1.0
    if alternative in ("two-sided", "greater"):
        ci_low = _sequence_end(lambda t: excess(t, alternative), estimate, -1.0, step)
    if alternative in ("two-sided", "less"):
        ci_high = _sequence_end(lambda t: excess(t, alternative), estimate, 1.0, step)
    return SequentialResult(
        at_null.statistic,
        at_null.pvalue,
        estimate,
        ci_low,
        ci_high,
        f"{at_null.method}, {what}",
        alternative,
        null,
    )


# How close to ±1 the sequence's ends are searched: the restricted rates are degenerate at ±1 itself.
_EDGE: Final = 1e-12


def _sequence_end(excess: Callable[[float], float], estimate: float, edge: float, step: float) -> float:
    """The θ0 between `estimate` and `edge` (−1 or 1) where `excess` crosses 0, or `edge` if it never does.

    ``excess(estimate) < 0``: at θ0 = θ̂ the z is 0 and log Λ = −log(1 + r)/2 (two-sided) or the same
    plus log 2Φ(0) = 0 (one-sided), below log(1/alpha). The bracket grows from θ̂ by `step` (about the
    half-width, so usually one or two tries) before `scipy.optimize.brentq` closes in.
    """
    limit = edge - math.copysign(_EDGE, edge)
    inner = estimate
    if (limit - estimate) * edge <= 0:
        return edge
    while True:
        outer = estimate + math.copysign(step, edge)
        if (limit - outer) * edge <= 0:
            outer = limit
        if excess(outer) > 0:
            return float(brentq(excess, inner, outer, xtol=1e-14, rtol=1e-10))
        if outer == limit:
            return edge
        inner, step = outer, 2.0 * step


def msprt_means(
    control: _Summary,
    treatment: _Summary,
    *,
    tau2: float,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    null: float = 0.0,
) -> SequentialResult:
    """Anytime-valid test and confidence sequence for a difference of two means (treatment − control).

    Parameters
    ----------
    control, treatment : canarywise.stats.means.SummaryStats
        Cumulative sufficient statistics per arm (n, sum, sum of squares); each ``n`` >= 2.
    tau2, alpha, alternative, null
        As in `msprt_normal`, on the scale of the metric (e.g. milliseconds).

    Returns
    -------
    SequentialResult
        The documented "no evidence" result (``pvalue`` 1, infinite sequence) when both variances are 0.

    Notes
    -----
    ``msprt_normal`` with θ̂ = x̄_t − x̄_c and the Welch variance V = s_c²/n_c + s_t²/n_t. Validity is
    asymptotic in the sample sizes (Waudby-Smith et al. 2024).

    Example
    -------
    >>> from canarywise.stats.means import SummaryStats
    >>> c = SummaryStats.from_mean_sd(1200, 212.4, 85.3)
    >>> t = SummaryStats.from_mean_sd(1150, 219.9, 97.1)
    >>> round(msprt_means(c, t, tau2=10.0**2).diff, 6)
    7.5
    """
    for name, arm in (("control", control), ("treatment", treatment)):
        if arm.n < 2:
            raise StatsInputError(f"`{name}.n` must be an integer >= 2, found {arm.n!r}")
    estimate = treatment.mean - control.mean
    variance = control.variance / control.n + treatment.variance / treatment.n
    return _msprt_difference(
        estimate, variance, "difference of means", tau2=tau2, alpha=alpha, alternative=alternative, null=null
    )


def _msprt_difference(
    estimate: float,
    variance: float,
    what: str,
    *,
    tau2: float,
    alpha: float,
    alternative: str,
    null: float,
) -> SequentialResult:
    """`msprt_normal` on a two-arm difference, named after ``what``; a zero variance gives "no evidence"."""
    if variance == 0.0:
        _check_common(tau2, alpha, alternative, null)
        return _no_evidence(estimate, alternative, null, f"mSPRT, {what}")
    result = msprt_normal(estimate, variance, tau2=tau2, alpha=alpha, alternative=alternative, null=null)
    return dataclasses.replace(result, method=f"{result.method}, {what}")


def _check_common(
    tau2: float, alpha: float, alternative: str, null: float
) -> tuple[float, float, str, float]:
    """The arguments every mSPRT takes, checked in this order and returned as floats."""
    return (
        check_positive("tau2", tau2),
        check_probability("alpha", alpha),
        check_alternative(alternative),
        check_finite("null", null),
    )


def _optimal_ratio(alpha: float) -> float:
    """r* = τ²/V minimising the two-sided boundary at a given V: the root of r − log(1 + r) = 2 log(1/alpha).

    Substituting y = 1 + r gives −y e^(−y) = −alpha²/e, so y = −W₋₁(−alpha²/e) (Lambert W, lower branch).
    """
    return float(-lambertw(-(alpha**2) / math.e, k=-1).real - 1.0)


def mixing_variance(mde: float, variance_at_horizon: float, alpha: float = 0.05) -> float:
    """The mixing variance τ² for `msprt_normal`, chosen from the planned MDE and the horizon.

    Parameters
    ----------
    mde : float
        Minimum detectable effect on the difference scale (its sign is ignored; must not be 0).
    variance_at_horizon : float
        The variance V_h of the estimate at the planned end of the experiment (or stage), e.g.
        ``2 p(1 − p) / n_per_arm`` for proportions with ``n_per_arm`` from the planner.
    alpha : float, default 0.05

    Returns
    -------
    float
        τ² in the squared units of the difference.

    Notes
    -----
    Criterion: make the boundary tightest at the variance V* where a true effect of size MDE is expected to be
    detected, but no later than the horizon. At a given V the two-sided half-width is
    √V · c(r) with c(r)² = (1 + r)/r · (2 log(1/α) + log(1 + r)), r = τ²/V; it is smallest at
    r* = −W₋₁(−α²/e) − 1 (Howard et al. 2021, §3.5: ρ = m / (−W₋₁(−α²/e) − 1)), ≈ 8.21 for α = 0.05.

    * An estimate sitting at the MDE first crosses the boundary at the largest V with MDE² / V = c(τ²/V)²;
      maximising that V over τ² (earliest expected detection) gives V* = MDE² / c(r*)² and τ² = r* V*.
    * If V* < V_h (the MDE is not expected to be detected before the horizon), the best one can do is the
      tightest boundary, hence the most power, at the horizon: τ² = r* V_h.

    So τ² = r* · max(V_h, MDE² / c(r*)²). For an experiment sized for 80 % power at level α (MDE ≈ 2.8 √V_h
    when α = 0.05) the second case applies, and τ² ≈ 8.2 V_h ≈ MDE²: the mixture is centred on the effects
    one planned to detect, as Johari et al. (2022, §4) recommend.

    Example
    -------
    >>> round(mixing_variance(0.02, 5e-5) / 5e-5, 3)  # sized for ~80 % power: the horizon case
    8.212
    """
    mde = check_finite("mde", mde)
    if mde == 0.0:
        raise StatsInputError(f"`mde` must be non-zero, found {mde!r}")
    variance_at_horizon = check_positive("variance_at_horizon", variance_at_horizon)
    alpha = check_probability("alpha", alpha)
    ratio = _optimal_ratio(alpha)
    detection_variance = mde * mde / _two_sided_radius(ratio, alpha) ** 2
    return ratio * max(variance_at_horizon, detection_variance)


def always_valid_pvalues(pvalues: Sequence[float] | npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The running minimum of per-look always-valid p-values: the monotone always-valid p-value series.

    Example
    -------
    >>> always_valid_pvalues([0.9, 0.2, 0.5, 0.01]).tolist()
    [0.9, 0.2, 0.2, 0.01]
    """
    values = np.asarray(pvalues, dtype=np.float64)
    if values.ndim != 1 or not np.all((values >= 0) & (values <= 1)):
        raise StatsInputError(f"`pvalues` must be a 1-D sequence of numbers in [0, 1], found {pvalues!r}")
    return np.minimum.accumulate(values)


def running_confidence_sequence(
    ci_low: Sequence[float] | npt.ArrayLike, ci_high: Sequence[float] | npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The running intersection of per-look confidence sequences: an interval that only shrinks.

    The intersection keeps the time-uniform coverage, since the true value lies in every look's interval on
    the same event of probability >= 1 − alpha.

    Example
    -------
    >>> low, high = running_confidence_sequence([-3.0, -1.0, -2.0], [3.0, 2.0, 2.5])
    >>> low.tolist(), high.tolist()
    ([-3.0, -1.0, -1.0], [3.0, 2.0, 2.0])
    """
    low = np.asarray(ci_low, dtype=np.float64)
    high = np.asarray(ci_high, dtype=np.float64)
    if low.ndim != 1 or low.shape != high.shape:
        raise StatsInputError(
            f"`ci_low` and `ci_high` must be 1-D of one length, found shapes {low.shape} and {high.shape}"
        )
    return np.maximum.accumulate(low), np.minimum.accumulate(high)
