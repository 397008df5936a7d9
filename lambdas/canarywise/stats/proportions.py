"""Two independent proportions: the pooled z-test, its intervals, and Fisher's exact test.

Rates such as escalations per session, thumbs-down per answer or 5xx per request are compared with
:func:`two_proportion_ztest`; rare events and small counts with :func:`fisher_exact_test`. The z-test needs
only ``scipy.special`` (fast to import in a Lambda); Fisher's test imports ``scipy.stats`` when called.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special

from canarywise.stats._checks import (
    StatsInputError,
    check_alternative,
    check_arms,
    check_finite,
    check_probability,
)

__all__ = [
    "FisherResult",
    "ProportionsResult",
    "constrained_rates",
    "difference_variance",
    "fisher_exact_test",
    "normal_pvalue",
    "score_variance",
    "two_proportion_ztest",
]


@dataclass(frozen=True)
class ProportionsResult:
    """Outcome of :func:`two_proportion_ztest`; every difference is treatment − control.

    Attributes
    ----------
    statistic : float
        The z statistic (NaN with a ``message`` when it is undefined).
    pvalue : float
        The p-value for ``alternative`` (NaN with a ``message`` when undefined; NaN never rejects).
    diff : float
        ``rate_treatment - rate_control``.
    ci_low, ci_high : float
        Newcombe hybrid score interval for ``diff`` at level ``1 - alpha``. A one-sided ``alternative``
        gives a one-sided bound; the open end is the natural limit (-1 or 1).
    method, alternative : str
        What was computed, and the alternative hypothesis.
    margin : float
        The difference under H0 (0 for a plain test, a non-inferiority margin otherwise).
    rate_control, rate_treatment : float
        Observed proportions.
    wald_ci_low, wald_ci_high : float
        Wald (unpooled normal) interval for ``diff``, same level and sidedness.
    lift, lift_ci_low, lift_ci_high : float
        Relative lift ``rate_treatment / rate_control - 1`` with a log-ratio (Katz delta-method) interval;
        NaN when a rate is 0.
    message : str
        Empty, or ``"<code>: <explanation>"`` when part of the result is undefined
        (codes ``zero-variance``, ``lift-undefined``).
    """

    statistic: float
    pvalue: float
    diff: float
    ci_low: float
    ci_high: float
    method: str
    alternative: str
    margin: float
    rate_control: float
    rate_treatment: float
    wald_ci_low: float
    wald_ci_high: float
    lift: float
    lift_ci_low: float
    lift_ci_high: float
    message: str = ""


@dataclass(frozen=True)
class FisherResult:
    """Outcome of :func:`fisher_exact_test`.

    Attributes
    ----------
    statistic : float
        The sample odds ratio ``(x_t / (n_t - x_t)) / (x_c / (n_c - x_c))`` (as scipy reports it; may be
        0 or inf).
    pvalue : float
        Exact conditional p-value for ``alternative``.
    diff : float
        ``rate_treatment - rate_control``.
    method, alternative : str
        What was computed, and the alternative hypothesis.
    rate_control, rate_treatment : float
        Observed proportions.
    """

    statistic: float
    pvalue: float
    diff: float
    method: str
    alternative: str
    rate_control: float
    rate_treatment: float


def normal_pvalue(z: float, alternative: str) -> float:
    """p-value of a standard-normal statistic, from the survival function so tiny p-values stay tiny.

    Examples
    --------
    >>> f"{normal_pvalue(8.3, 'two-sided'):.3g}"
    '1.04e-16'
    """
    if alternative == "greater":
        return float(special.ndtr(-z))
    if alternative == "less":
        return float(special.ndtr(z))
    return float(2.0 * special.ndtr(-abs(z)))


def _z_quantile(alpha: float, alternative: str) -> float:
    """The normal quantile of a (1 - alpha) interval: two-sided or one-sided."""
    tail = alpha / 2 if alternative == "two-sided" else alpha
    return float(-special.ndtri(tail))


def _wilson(x: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for one proportion (Wilson 1927)."""
    centre = (x + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(x * (n - x) / n + z * z / 4)
    return max(0.0, centre - half), min(1.0, centre + half)


def _newcombe(x_c: int, n_c: int, x_t: int, n_t: int, z: float) -> tuple[float, float]:
    """Newcombe (1998) method 10: hybrid score interval for p_t - p_c from the two Wilson intervals."""
    p_c, p_t = x_c / n_c, x_t / n_t
    low_c, high_c = _wilson(x_c, n_c, z)
    low_t, high_t = _wilson(x_t, n_t, z)
    diff = p_t - p_c
    low = diff - math.sqrt((p_t - low_t) ** 2 + (high_c - p_c) ** 2)
    high = diff + math.sqrt((high_t - p_t) ** 2 + (p_c - low_c) ** 2)
    # Mathematically within [-1, 1]; clipped because rounding can step a last bit outside at 0/n vs n/n.
    return max(-1.0, low), min(1.0, high)


def constrained_rates(x_c: int, n_c: int, x_t: int, n_t: int, margin: float) -> tuple[float, float]:
    """Maximum-likelihood rates (control, treatment) under H0: p_t - p_c = margin (``margin`` in (-1, 1)).

    With ``margin == 0`` this is the pooled rate for both arms, so the score test is the classic pooled z.
    Otherwise it is the closed-form root of the likelihood cubic of Farrington & Manning (1990) /
    Miettinen & Nurminen (1985, appendix). Written by hand because scipy has no such test and statsmodels
    is not part of the Lambda bundle. The cubic is the score equation of the restricted log-likelihood
    ``x_t log(p + m) + (n_t − x_t) log(1 − p − m) + x_c log p + (n_c − x_c) log(1 − p)`` in p = p_c; its
    linear coefficient has ``n_c · m`` where statsmodels 0.15's ``score_test_proportions_2indep`` has
    ``x_c · m`` (statsmodels issue #10269: its restricted rates do not maximise the likelihood when the margin
    is not 0; the tests check ours against a numerical maximisation with scipy).
    """
    if margin == 0:
        pooled = (x_c + x_t) / (n_c + n_t)
        return pooled, pooled
    n, x = n_c + n_t, x_c + x_t
    a3 = n
    a2 = (n_t + 2 * n_c) * margin - n - x
    a1 = (n_c * margin - n - 2 * x_c) * margin + x  # n_c: statsmodels 0.15 has x_c here (#10269)
    a0 = x_c * margin * (1 - margin)
    v = (a2 / (3 * a3)) ** 3 - a1 * a2 / (6 * a3**2) + a0 / (2 * a3)
    u = math.copysign(math.sqrt(max(0.0, (a2 / (3 * a3)) ** 2 - a1 / (3 * a3))), v)
    ratio = 0.0 if u == 0 else max(-1.0, min(1.0, v / u**3))  # clip rounding just outside [-1, 1]
    w = (math.pi + math.acos(ratio)) / 3
    rate_c = min(1.0, max(0.0, 2 * u * math.cos(w) - a2 / (3 * a3)))
    rate_t = min(1.0, max(0.0, rate_c + margin))
    return rate_c, rate_t


def score_variance(x_c: int, n_c: int, x_t: int, n_t: int, null: float) -> float:
    """The variance of p̂_t − p̂_c under H0: p_t − p_c = `null`, at the restricted maximum-likelihood rates.

    ``p̃_c(1 − p̃_c)/n_c + p̃_t(1 − p̃_t)/n_t`` with ``(p̃_c, p̃_t) = constrained_rates(...)``: the variance of
    Farrington & Manning's (1990) score test (statsmodels' ``score_test_proportions_2indep`` with
    ``correction=False``). Unlike the variance at the observed rates it does not collapse when an arm has
    no events: 0/300 canary errors tested at a margin of 0.5 pt are judged with the variance of a canary
    at the margin, not with zero. Trusted inputs (counts already checked by the caller).

    Example
    -------
    >>> round(score_variance(0, 5000, 0, 300, 0.005) * 1e6, 3)  # ~ 0.005 x 0.995 / 300 on the canary's side
    16.583
    """
    rate_c, rate_t = constrained_rates(x_c, n_c, x_t, n_t, null)
    return rate_c * (1.0 - rate_c) / n_c + rate_t * (1.0 - rate_t) / n_t


def difference_variance(x_c: int, n_c: int, x_t: int, n_t: int, null: float) -> float:
    """The variance the anytime-valid tests use for p̂_t − p̂_c when they test p_t − p_c = `null`.

    The larger of `score_variance` (at the rates maximising the likelihood under H0) and the Agresti-Caffo
    variance at the observed rates, ``p(1 − p)/n`` with ``p = (x + 1)/(n + 2)`` per arm.

    Notes
    -----
    A rare event makes the normal approximation lopsided, and each variance guards one side. A test that
    rejects when the canary has *few* events (non-inferiority) is anti-conservative with the observed rates:
    a canary with no event yet has almost no variance on its side, and a 5% canary at 0.3% errors proved a
    0.5 pt margin at some look in 13% of rollouts at the margin (make bench, rare events); at the null, the
    canary's side is that of a canary at the margin. A test that rejects when the canary has *many* events
    (harm) is anti-conservative at the null: the pooled variance ignores that the canary's own count is
    what spread out, and Poisson's right tail is heavier than the normal one (an A/A harm test at 0.1%
    errors rolled back 9.5% of rollouts, against 0% with the observed rates). The larger of the two is
    conservative on both sides; at common rates the two agree to a few percent and it costs nothing.

    Example
    -------
    >>> round(difference_variance(30, 9500, 0, 500, 0.005) * 1e6, 2)  # no canary event: the null's side
    16.19
    """
    adjusted_c, adjusted_t = (x_c + 1) / (n_c + 2), (x_t + 1) / (n_t + 2)
    observed = adjusted_c * (1.0 - adjusted_c) / n_c + adjusted_t * (1.0 - adjusted_t) / n_t
    return max(observed, score_variance(x_c, n_c, x_t, n_t, null))


def two_proportion_ztest(
    x_control: int,
    n_control: int,
    x_treatment: int,
    n_treatment: int,
    *,
    alternative: str = "two-sided",
    alpha: float = 0.05,
    margin: float = 0.0,
) -> ProportionsResult:
    """Two-proportion z-test (pooled / score statistic) with Newcombe, Wald and relative-lift intervals.

    Parameters
    ----------
    x_control, n_control : int
        Successes (events) and trials in the control arm.
    x_treatment, n_treatment : int
        Successes and trials in the treatment (canary) arm.
    alternative : {'two-sided', 'greater', 'less'}
        H1: ``diff != margin``, ``diff > margin`` or ``diff < margin``.
    alpha : float
        1 - confidence level of the intervals.
    margin : float
        Difference under H0, in (-1, 1). Non-inferiority of a lower-is-better rate (escalations): H0
        ``diff >= margin`` with ``margin > 0`` and ``alternative='less'``.

    Returns
    -------
    ProportionsResult

    Notes
    -----
    ``diff = p_t - p_c``. With ``margin == 0`` the statistic is the pooled z,
    ``z = diff / sqrt(pbar (1 - pbar) (1/n_c + 1/n_t))``, ``pbar = (x_c + x_t) / (n_c + n_t)``, the same as
    ``statsmodels.stats.proportion.proportions_ztest``. With a non-zero margin the pooled rate is not the
    MLE under H0, so the variance uses the rates constrained to ``p_t - p_c = margin`` (Farrington-Manning
    score test, statsmodels ``test_proportions_2indep(method='score', correction=False)``); at margin 0
    the two coincide. p-values come from the normal survival function (``ndtr(-|z|)``), so very small
    p-values are not rounded to 0. The interval for ``diff`` is Newcombe's hybrid score interval (method
    10), which keeps its coverage for rare events where the Wald interval does not; the Wald interval is
    reported alongside. The lift interval is ``exp(log(p_t/p_c) ± z se) - 1`` with the delta-method
    ``se² = 1/x_t - 1/n_t + 1/x_c - 1/n_c`` (Katz et al. 1978).

    When both arms are all failures or all successes the pooled variance is 0: ``statistic`` and
    ``pvalue`` are NaN and ``message`` starts with ``zero-variance``; the intervals are still given.

    References
    ----------
    Newcombe R. G. (1998). Interval estimation for the difference between independent proportions:
    comparison of eleven methods. Statistics in Medicine 17, 873-890.
    Farrington C. P., Manning G. (1990). Test statistics and sample size formulae for comparative binomial
    trials with null hypothesis of non-zero risk difference or non-unity relative risk. Statistics in
    Medicine 9, 1447-1454.

    Examples
    --------
    Escalations per session, control 59,400/495,000 (12%) vs canary 700/5,000 (14%):

    >>> r = two_proportion_ztest(59400, 495000, 700, 5000)
    >>> round(r.statistic, 2), f"{r.pvalue:.2e}", round(r.diff, 4)
    (4.33, '1.51e-05', 0.02)
    """
    check_arms(x_control, n_control, x_treatment, n_treatment)
    check_alternative(alternative)
    check_probability("alpha", alpha)
    check_finite("margin", margin)
    if not -1 < margin < 1:
        raise StatsInputError(f"`margin` must be in (-1, 1), found {margin!r}")

    p_c, p_t = x_control / n_control, x_treatment / n_treatment
    diff = p_t - p_c
    rate_c0, rate_t0 = constrained_rates(x_control, n_control, x_treatment, n_treatment, margin)
    variance = rate_c0 * (1 - rate_c0) / n_control + rate_t0 * (1 - rate_t0) / n_treatment
    message = ""
    if variance > 0:
        statistic = (diff - margin) / math.sqrt(variance)
        pvalue = normal_pvalue(statistic, alternative)
    else:
        statistic = pvalue = math.nan
        message = "zero-variance: both arms are all failures or all successes; the test is undefined"

    z = _z_quantile(alpha, alternative)
    low, high = _newcombe(x_control, n_control, x_treatment, n_treatment, z)
    se_wald = math.sqrt(p_c * (1 - p_c) / n_control + p_t * (1 - p_t) / n_treatment)
    wald_low, wald_high = diff - z * se_wald, diff + z * se_wald

    has_lift = x_control > 0 and x_treatment > 0
    if has_lift:
        log_ratio = math.log(p_t / p_c)
        se_log = math.sqrt(1 / x_treatment - 1 / n_treatment + 1 / x_control - 1 / n_control)
        lift = p_t / p_c - 1
        lift_low, lift_high = math.expm1(log_ratio - z * se_log), math.expm1(log_ratio + z * se_log)
    else:
        lift = lift_low = lift_high = math.nan
        message = message or "lift-undefined: a rate is 0, so the ratio has no finite log-scale interval"

    # A one-sided alternative gets a one-sided interval; the other end is the parameter's natural limit.
    if alternative == "greater":
        high = wald_high = 1.0
        lift_high = math.inf if has_lift else math.nan
    elif alternative == "less":
        low = wald_low = -1.0
        lift_low = -1.0 if has_lift else math.nan

    method = (
        "two-proportion z-test (pooled)" if margin == 0 else "two-proportion score test (Farrington-Manning)"
    )
    return ProportionsResult(
        statistic=statistic,
        pvalue=pvalue,
        diff=diff,
        ci_low=low,
        ci_high=high,
        method=method,
        alternative=alternative,
        margin=float(margin),
        rate_control=p_c,
        rate_treatment=p_t,
        wald_ci_low=wald_low,
        wald_ci_high=wald_high,
        lift=lift,
        lift_ci_low=lift_low,
        lift_ci_high=lift_high,
        message=message,
    )


def fisher_exact_test(
    x_control: int,
    n_control: int,
    x_treatment: int,
    n_treatment: int,
    *,
    alternative: str = "two-sided",
) -> FisherResult:
    """Fisher's exact test of two proportions, for rare events and small counts.

    Parameters
    ----------
    x_control, n_control, x_treatment, n_treatment : int
        Successes and trials per arm.
    alternative : {'two-sided', 'greater', 'less'}
        H1: the treatment rate is different from / greater than / less than the control rate.

    Returns
    -------
    FisherResult

    Notes
    -----
    H0: ``p_t == p_c``. The table passed to ``scipy.stats.fisher_exact`` is
    ``[[x_t, n_t - x_t], [x_c, n_c - x_c]]`` so that its odds ratio is treatment over control and
    ``alternative='greater'`` means the treatment rate is higher. The p-value conditions on both margins
    (hypergeometric), so it is exact, and conservative, at any sample size.

    Examples
    --------
    3 errors in 1,000 control requests vs 11 in 1,000 canary requests:

    >>> r = fisher_exact_test(3, 1000, 11, 1000, alternative="greater")
    >>> round(r.pvalue, 4)
    0.0283
    """
    check_arms(x_control, n_control, x_treatment, n_treatment)
    check_alternative(alternative)
    # Imported here: scipy.stats costs ~0.5 s at Lambda cold start, and only this test needs it.
    from scipy import stats

    table = [[x_treatment, n_treatment - x_treatment], [x_control, n_control - x_control]]
    result = stats.fisher_exact(table, alternative=alternative)
    p_c, p_t = x_control / n_control, x_treatment / n_treatment
    return FisherResult(
        statistic=float(result.statistic),
        pvalue=float(result.pvalue),
        diff=p_t - p_c,
        method="Fisher exact test",
        alternative=alternative,
        rate_control=p_c,
        rate_treatment=p_t,
    )
