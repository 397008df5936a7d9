"""Planning: how many units per arm a test needs, what it can detect, and how long each stage takes.

Pre-registration starts here: the sample size follows from the baseline, the minimum detectable effect
(MDE), alpha and power, and the stage ladder's durations follow from the daily traffic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import optimize, special

from canarywise.stats._checks import (
    StatsInputError,
    check_alternative,
    check_count,
    check_finite,
    check_positive,
    check_probability,
)

__all__ = [
    "MDEResult",
    "SampleSizeResult",
    "StageDuration",
    "mde_means",
    "mde_proportions",
    "sample_size_means",
    "sample_size_proportions",
    "stage_durations",
]


@dataclass(frozen=True)
class SampleSizeResult:
    """Units needed in each arm.

    Attributes
    ----------
    n_per_arm : int
        ``ceil(n_exact)``.
    n_exact : float
        The formula's value before rounding up.
    diff : float
        The effect planned for (absolute: ``p_treatment - p_control``, or the difference of means).
    alpha, power : float
        Type-I error and power.
    alternative : str
        ``two-sided`` uses ``z_{1-alpha/2}``, ``greater``/``less`` use ``z_{1-alpha}``.
    method : str
        The formula used.
    p_control, p_treatment : float
        The two rates (proportions only; NaN for means).
    """

    n_per_arm: int
    n_exact: float
    diff: float
    alpha: float
    power: float
    alternative: str
    method: str
    p_control: float = math.nan
    p_treatment: float = math.nan


@dataclass(frozen=True)
class MDEResult:
    """The smallest effect a test with ``n_per_arm`` units per arm detects with the given power.

    Attributes
    ----------
    mde : float
        Absolute effect (``p_treatment - p_control`` or a difference of means); negative for a decrease.
    relative_mde : float
        ``mde / baseline`` (NaN for means).
    n_per_arm : int
        Units per arm.
    alpha, power : float
        Type-I error and power.
    alternative, method : str
        As in :class:`SampleSizeResult`.
    p_control, p_treatment : float
        The two rates (proportions only; NaN for means).
    """

    mde: float
    relative_mde: float
    n_per_arm: int
    alpha: float
    power: float
    alternative: str
    method: str
    p_control: float = math.nan
    p_treatment: float = math.nan


@dataclass(frozen=True)
class StageDuration:
    """How long one stage of the ladder must run for its smaller arm to reach ``n_per_arm``.

    Attributes
    ----------
    percent : float
        Canary share of traffic during the stage (the control gets ``100 - percent``).
    units_per_hour : float
        Units per hour reaching the smaller arm (the canary up to 50%).
    hours : float
        ``n_per_arm / units_per_hour``.
    """

    percent: float
    units_per_hour: float
    hours: float


_FLEISS = "two proportions: pooled variance under H0, unpooled under H1 (Fleiss)"
_NORMAL_MEANS = "two means: normal approximation, unequal variances allowed"


def _quantiles(alpha: float, power: float, alternative: str) -> tuple[float, float]:
    """Checked ``alpha``, ``power`` and ``alternative`` as the normal quantiles ``z_{1-a}``, ``z_{1-b}``."""
    check_probability("alpha", alpha)
    check_probability("power", power)
    check_alternative(alternative)
    z_alpha = float(special.ndtri(1 - alpha / 2 if alternative == "two-sided" else 1 - alpha))
    return z_alpha, float(special.ndtri(power))


def _means_plan(
    sd: float, sd_treatment: float | None, alpha: float, power: float, alternative: str
) -> tuple[float, float]:
    """``z_{1-a} + z_{1-b}`` and ``sd² + sd_treatment²`` for the means formulas (``sd`` checked already)."""
    sd_t = sd if sd_treatment is None else check_positive("sd_treatment", sd_treatment)
    z_alpha, z_power = _quantiles(alpha, power, alternative)
    return z_alpha + z_power, sd * sd + sd_t * sd_t


def _n_proportions(p1: float, p2: float, z_a: float, z_b: float) -> float:
    pbar = (p1 + p2) / 2
    spread_h0 = math.sqrt(2 * pbar * (1 - pbar))
    spread_h1 = math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return (z_a * spread_h0 + z_b * spread_h1) ** 2 / (p2 - p1) ** 2


def sample_size_proportions(
    baseline: float,
    mde: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
) -> SampleSizeResult:
    """Units per arm for a two-proportion z-test to detect ``mde`` with the given power.

    Parameters
    ----------
    baseline : float
        Control rate ``p1`` in (0, 1).
    mde : float
        Minimum detectable effect, non-zero: absolute (``p2 = p1 + mde``) or, with ``relative=True``,
        relative (``p2 = p1 * (1 + mde)``). ``p2`` must stay in (0, 1).
    relative : bool
        Read ``mde`` as a relative change.
    alpha, power : float
        Type-I error and power, in (0, 1).
    alternative : {'two-sided', 'greater', 'less'}
        Sidedness of the planned test.

    Returns
    -------
    SampleSizeResult

    Notes
    -----
    The formula (Fleiss, Levin & Paik 2003, section 4.2, without the continuity correction) is

    ``n = (z_{1-a} sqrt(2 pbar (1 - pbar)) + z_{1-b} sqrt(p1 (1 - p1) + p2 (1 - p2)))² / (p2 - p1)²``

    with ``pbar = (p1 + p2) / 2``, ``z_{1-a}`` the ``1 - alpha/2`` (two-sided) or ``1 - alpha`` normal
    quantile and ``z_{1-b}`` the ``power`` quantile, both exact (``scipy.special.ndtri``), and ``n``
    rounded up. Why this one: it mirrors the test canarywise runs. Under H0 the pooled z-test's standard
    error is ``sqrt(2 pbar (1 - pbar) / n)`` (the first term); under H1 the difference's standard error is
    the unpooled ``sqrt((p1 q1 + p2 q2) / n)`` (the second). Formulas with one variance in both places, or
    statsmodels' arcsine effect size (``NormalIndPower`` with ``proportion_effectsize``), differ by a few
    units at 0.78 -> 0.80: 6,510 here, 6,508 arcsine.

    Figures quoted with rounded z values (1.96 and 0.84) are smaller: 6,503 with this formula at 0.78 ->
    0.80, because 0.84 is below the exact 0.8416 power quantile.

    References
    ----------
    Fleiss J. L., Levin B., Paik M. C. (2003). Statistical Methods for Rates and Proportions, 3rd ed.,
    section 4.2.

    Examples
    --------
    >>> sample_size_proportions(0.78, 0.02).n_per_arm
    6510
    """
    check_probability("baseline", baseline)
    check_finite("mde", mde)
    z_a, z_b = _quantiles(alpha, power, alternative)
    p2 = baseline * (1 + mde) if relative else baseline + mde
    if mde == 0 or not 0 < p2 < 1:
        raise StatsInputError(
            f"`mde` must be non-zero and keep the treatment rate in (0, 1), found {mde!r} "
            f"(treatment rate {p2!r})"
        )
    n = _n_proportions(baseline, p2, z_a, z_b)
    return SampleSizeResult(
        n_per_arm=math.ceil(n),
        n_exact=n,
        diff=p2 - baseline,
        alpha=alpha,
        power=power,
        alternative=alternative,
        method=_FLEISS,
        p_control=baseline,
        p_treatment=p2,
    )


def mde_proportions(
    baseline: float,
    n_per_arm: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
    direction: str = "increase",
) -> MDEResult:
    """The smallest change from ``baseline`` that ``n_per_arm`` units per arm detect with ``power``.

    Parameters
    ----------
    baseline : float
        Control rate in (0, 1).
    n_per_arm : int
        Units per arm, >= 1.
    alpha, power, alternative
        As in :func:`sample_size_proportions`.
    direction : {'increase', 'decrease'}
        Solve for a treatment rate above or below the baseline.

    Returns
    -------
    MDEResult

    Notes
    -----
    Solves the :func:`sample_size_proportions` formula for ``p2`` (before rounding) with
    ``scipy.optimize.brentq`` on ``(baseline, 1)`` or ``(0, baseline)``. When even ``p2 = 1`` (or 0) needs
    more units than ``n_per_arm`` there is no such effect and a :class:`StatsInputError` is raised.

    Examples
    --------
    >>> r = mde_proportions(0.78, 6510)
    >>> round(r.mde, 4)
    0.02
    """
    check_probability("baseline", baseline)
    check_count("n_per_arm", n_per_arm, minimum=1)
    z_a, z_b = _quantiles(alpha, power, alternative)
    if direction not in ("increase", "decrease"):
        raise StatsInputError(f"`direction` must be one of ('increase', 'decrease'), found {direction!r}")

    def excess(p2: float) -> float:
        return _n_proportions(baseline, p2, z_a, z_b) - n_per_arm

    # Bracket strictly inside (0, 1): the formula is infinite at p2 == baseline.
    tiny = 1e-12
    near, far = (baseline + tiny, 1 - tiny) if direction == "increase" else (baseline - tiny, tiny)
    if excess(far) > 0:
        raise StatsInputError(
            f"`n_per_arm` is too small to detect any {direction} from {baseline!r} at alpha {alpha!r} and "
            f"power {power!r}, found {n_per_arm!r}"
        )
    p2 = float(optimize.brentq(excess, near, far, xtol=1e-14, rtol=1e-12))
    return MDEResult(
        mde=p2 - baseline,
        relative_mde=(p2 - baseline) / baseline,
        n_per_arm=int(n_per_arm),
        alpha=alpha,
        power=power,
        alternative=alternative,
        method=_FLEISS,
        p_control=baseline,
        p_treatment=p2,
    )


def sample_size_means(
    sd: float,
    mde: float,
    *,
    sd_treatment: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
) -> SampleSizeResult:
    """Units per arm for a two-sample test of means to detect a difference ``mde``.

    Parameters
    ----------
    sd : float
        Standard deviation of the metric in the control arm (> 0).
    mde : float
        Minimum detectable difference of means, non-zero.
    sd_treatment : float, optional
        Treatment standard deviation if expected to differ (default: ``sd``).
    alpha, power, alternative
        As in :func:`sample_size_proportions`.

    Returns
    -------
    SampleSizeResult

    Notes
    -----
    ``n = (z_{1-a} + z_{1-b})² (sd² + sd_treatment²) / mde²``, rounded up: the normal approximation to
    the Welch test with equal arms. At the hundreds of units per arm a canary collects, the t-based answer
    is at most a unit or two larger.

    Examples
    --------
    Detecting a 20 ms latency increase with sd 85 ms:

    >>> sample_size_means(85.0, 20.0).n_per_arm
    284
    """
    check_positive("sd", sd)
    check_finite("mde", mde)
    if mde == 0:
        raise StatsInputError(f"`mde` must be non-zero, found {mde!r}")
    z, variances = _means_plan(sd, sd_treatment, alpha, power, alternative)
    n = z * z * variances / (mde * mde)
    return SampleSizeResult(
        n_per_arm=math.ceil(n),
        n_exact=n,
        diff=float(mde),
        alpha=alpha,
        power=power,
        alternative=alternative,
        method=_NORMAL_MEANS,
    )


def mde_means(
    sd: float,
    n_per_arm: int,
    *,
    sd_treatment: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
) -> MDEResult:
    """The smallest difference of means ``n_per_arm`` units per arm detect with ``power``.

    Notes
    -----
    The :func:`sample_size_means` formula solved for the effect:
    ``mde = (z_{1-a} + z_{1-b}) sqrt((sd² + sd_treatment²) / n)``.

    Examples
    --------
    >>> round(mde_means(85.0, 284).mde, 2)
    19.98
    """
    check_positive("sd", sd)
    check_count("n_per_arm", n_per_arm, minimum=1)
    z, variances = _means_plan(sd, sd_treatment, alpha, power, alternative)
    mde = z * math.sqrt(variances / n_per_arm)
    return MDEResult(
        mde=mde,
        relative_mde=math.nan,
        n_per_arm=int(n_per_arm),
        alpha=alpha,
        power=power,
        alternative=alternative,
        method=_NORMAL_MEANS,
    )


def stage_durations(
    n_per_arm: int, daily_traffic: float, stages: Sequence[float]
) -> tuple[StageDuration, ...]:
    """Hours each stage of a canary ladder needs for both arms to reach ``n_per_arm``.

    Parameters
    ----------
    n_per_arm : int
        Units each arm needs (from :func:`sample_size_proportions` / :func:`sample_size_means`).
    daily_traffic : float
        Units per day entering the experiment, both arms together (> 0).
    stages : sequence of float
        Canary percentages, each in (0, 100), e.g. ``[5, 25, 50]``.

    Returns
    -------
    tuple of StageDuration

    Notes
    -----
    During a stage at ``p`` percent the canary receives ``p/100`` of the traffic and the control the rest,
    so the smaller arm (the canary, up to 50%) sets the pace:
    ``hours = n_per_arm / (daily_traffic / 24 * min(p, 100 - p) / 100)``. Each stage is counted on its
    own, because the engine compares arms within a stage (a ramp must not mix traffic shares). Traffic is
    taken as flat over the day; a real day has peaks, so round stage minimums up to whole days where the
    metric has a daily cycle.

    Examples
    --------
    >>> [round(s.hours, 2) for s in stage_durations(6510, 300_000, [5, 25, 50])]
    [10.42, 2.08, 1.04]
    """
    check_count("n_per_arm", n_per_arm, minimum=1)
    check_positive("daily_traffic", daily_traffic)
    if len(stages) == 0:
        raise StatsInputError(f"`stages` must list at least one canary percentage, found {list(stages)!r}")
    for percent in stages:
        if not (isinstance(percent, int | float) and 0 < percent < 100):
            raise StatsInputError(f"`stages` must be percentages in (0, 100), found {percent!r}")
    durations = []
    for percent in stages:
        per_hour = daily_traffic / 24 * min(percent, 100 - percent) / 100
        durations.append(
            StageDuration(percent=float(percent), units_per_hour=per_hour, hours=n_per_arm / per_hour)
        )
    return tuple(durations)
