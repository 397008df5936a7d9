"""Drift: has a rate, the mix of categories (intents) or the distribution of a metric really moved?

Used by the drift monitor (`canarywise.runtime.monitor`), which compares the current window with a rolling
baseline (the same hours of the previous weeks): `rate_test` for rates, `category_mix_test` for mixes,
`binned_ks_test` for the binned numeric counts the emit helper records (`ks_test` for raw samples).
`look_alpha` and `sustained` are the monitor's alert rule: a false-alert budget per 30 days spent evenly over
the looks, and a deviation that must hold for several consecutive looks. At production volumes every test
detects differences far too small to matter, so the monitor also asks for a minimum effect (shares, the KS
distance) before a p-value counts.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from canarywise.stats._checks import (
    StatsInputError,
    check_alternative,
    check_count,
    check_positive,
    check_successes,
)

__all__ = [
    "CategoryMixResult",
    "KSResult",
    "RateResult",
    "binned_ks_test",
    "category_mix_test",
    "ks_test",
    "look_alpha",
    "rate_test",
    "sustained",
]

# Looks per 30 days are counted over this many seconds (the budget's unit).
THIRTY_DAYS = 30 * 86400


@dataclass(frozen=True)
class CategoryMixResult:
    """Outcome of :func:`category_mix_test`.

    Attributes
    ----------
    statistic : float
        Pearson chi-square statistic of homogeneity.
    pvalue : float
        Upper-tail chi-square p-value.
    df : int
        ``categories - 1`` (categories empty in both windows are dropped first).
    method : str
        What was computed.
    categories : tuple of str
        The categories tested, in order.
    baseline_shares, current_shares : tuple of float
        Share of each category in each window.
    """

    statistic: float
    pvalue: float
    df: int
    method: str
    categories: tuple[str, ...]
    baseline_shares: tuple[float, ...]
    current_shares: tuple[float, ...]


@dataclass(frozen=True)
class KSResult:
    """Outcome of :func:`ks_test`.

    Attributes
    ----------
    statistic : float
        The KS distance: the largest gap between the two empirical CDFs (signed by scipy's convention for
        one-sided alternatives).
    pvalue : float
        p-value for ``alternative``.
    method, alternative : str
        What was computed, and the alternative hypothesis.
    """

    statistic: float
    pvalue: float
    method: str
    alternative: str


def _as_counts(name: str, counts: Mapping[str, int] | Sequence[int]) -> dict[str, int]:
    items = counts.items() if isinstance(counts, Mapping) else ((str(i), c) for i, c in enumerate(counts))
    return {str(key): check_count(f"{name}[{key!r}]", value) for key, value in items}


def category_mix_test(
    baseline: Mapping[str, int] | Sequence[int],
    current: Mapping[str, int] | Sequence[int],
    *,
    correction: bool = False,
) -> CategoryMixResult:
    """Chi-square test of homogeneity: do two windows share the same category mix?

    Parameters
    ----------
    baseline, current : mapping of category to count, or sequence of counts
        Counts per category. Mappings are aligned by key (a category missing from one window counts 0);
        sequences must be the same length and are aligned by position.
    correction : bool
        Yates' continuity correction, only used with exactly two categories. Off by default: at drift
        volumes it changes nothing but makes the statistic differ from the k-category formula.

    Returns
    -------
    CategoryMixResult

    Notes
    -----
    H0: both windows draw from the same category distribution. The 2 x k table (window x category) is
    passed to ``scipy.stats.chi2_contingency``: ``statistic = sum (O - E)² / E`` with ``E`` from the
    margins, ``df = k - 1``. Categories with no observation in either window carry no information and are
    dropped (their expected count would be 0).

    Examples
    --------
    >>> base = {"order_status": 5200, "recommendation": 3100, "return": 1700}
    >>> now = {"order_status": 5050, "recommendation": 3400, "return": 1550}
    >>> r = category_mix_test(base, now)
    >>> r.df, f"{r.pvalue:.1e}"
    (2, '1.0e-05')
    """
    if (
        not isinstance(baseline, Mapping)
        and not isinstance(current, Mapping)
        and len(baseline) != len(current)
    ):
        raise StatsInputError(
            f"`current` must have one count per category of `baseline` ({len(baseline)}), "
            f"found {list(current)!r}"
        )
    base, now = _as_counts("baseline", baseline), _as_counts("current", current)
    categories = [c for c in dict.fromkeys([*base, *now]) if base.get(c, 0) + now.get(c, 0) > 0]
    base_total, now_total = sum(base.values()), sum(now.values())
    if len(categories) < 2 or base_total == 0 or now_total == 0:
        raise StatsInputError(
            "`baseline` and `current` must each have observations and together at least 2 non-empty "
            f"categories, found {base!r} and {now!r}"
        )
    # Imported here: scipy.stats costs ~0.5 s at a Lambda cold start.
    from scipy import stats

    table = [[base.get(c, 0) for c in categories], [now.get(c, 0) for c in categories]]
    result = stats.chi2_contingency(table, correction=correction)
    return CategoryMixResult(
        statistic=float(result.statistic),
        pvalue=float(result.pvalue),
        df=int(result.dof),
        method="chi-square test of homogeneity",
        categories=tuple(categories),
        baseline_shares=tuple(count / base_total for count in table[0]),
        current_shares=tuple(count / now_total for count in table[1]),
    )


def ks_test(
    baseline: Sequence[float], current: Sequence[float], *, alternative: str = "two-sided"
) -> KSResult:
    """Two-sample Kolmogorov-Smirnov test: do two samples of a numeric metric share one distribution?

    Parameters
    ----------
    baseline, current : sequence of float
        Raw samples (e.g. a sample of per-request latencies or answer lengths from each window), each
        non-empty.
    alternative : {'two-sided', 'greater', 'less'}
        As ``scipy.stats.ks_2samp``: 'greater' is H1 "the CDF of ``baseline`` lies above that of
        ``current`` somewhere" (``current`` tends to larger values), 'less' the reverse.

    Returns
    -------
    KSResult

    Notes
    -----
    H0: both samples come from the same continuous distribution. ``scipy.stats.ks_2samp`` with
    ``method='auto'`` (exact for small samples, asymptotic otherwise). The KS test sees any change of
    shape, not only of the mean, which is what drift monitoring wants; it needs raw samples, so the
    monitor keeps a bounded reservoir sample per window rather than every event.

    Examples
    --------
    >>> r = ks_test([1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0])
    >>> r.statistic, round(r.pvalue, 4)
    (1.0, 0.0079)
    """
    check_alternative(alternative)
    if len(baseline) == 0 or len(current) == 0:
        raise StatsInputError(
            "`baseline` and `current` must each hold at least one value, "
            f"found {len(baseline)} and {len(current)}"
        )
    from scipy import stats

    with warnings.catch_warnings():
        # scipy falls back from the exact to the asymptotic p-value on large one-sided samples, as
        # documented; the warning would only clutter the Lambda log.
        warnings.filterwarnings("ignore", message="ks_2samp: Exact calculation unsuccessful")
        result = stats.ks_2samp(baseline, current, alternative=alternative)
    return KSResult(
        statistic=float(result.statistic),
        pvalue=float(result.pvalue),
        method="two-sample Kolmogorov-Smirnov test",
        alternative=alternative,
    )


@dataclass(frozen=True)
class RateResult:
    """Outcome of :func:`rate_test`.

    Attributes
    ----------
    statistic : float
        Pearson chi-square statistic of the 2 x 2 table (the square of the pooled two-proportion z).
    pvalue : float
        Two-sided p-value (chi-square with 1 df).
    baseline_rate, current_rate : float
        Each window's rate.
    difference : float
        ``current_rate - baseline_rate``.
    method : str
        What was computed.
    """

    statistic: float
    pvalue: float
    baseline_rate: float
    current_rate: float
    difference: float
    method: str


def _events_and_units(events_name: str, events: int, units_name: str, units: int) -> tuple[int, int]:
    n = check_count(units_name, units, minimum=1)
    x = check_count(events_name, events)
    check_successes(events_name, events, units)
    return x, n


def rate_test(baseline_successes: int, baseline_n: int, current_successes: int, current_n: int) -> RateResult:
    """Has a rate (thumbs-down, escalation, out-of-scope) moved between two windows? Two-sided.

    Parameters
    ----------
    baseline_successes, baseline_n : int
        Events and units in the baseline window (``0 <= successes <= n``, ``n >= 1``).
    current_successes, current_n : int
        The same in the current window.

    Returns
    -------
    RateResult

    Notes
    -----
    H0: both windows share one rate. The 2 x 2 table (window x event/no event) goes to
    ``scipy.stats.chi2_contingency(table, correction=False)``; its statistic is the square of the pooled
    two-proportion z, so the p-value is the two-sided pooled z test's. A rate of 0 or 1 in both windows has
    no variance: the result is statistic 0, p-value 1 (nothing moved).

    Examples
    --------
    >>> r = rate_test(600, 10_000, 900, 10_000)
    >>> round(r.difference, 3), f"{r.pvalue:.1e}"
    (0.03, '8.0e-16')
    """
    (x0, n0), (x1, n1) = (
        _events_and_units(f"{window}_successes", events, f"{window}_n", units)
        for window, events, units in (
            ("baseline", baseline_successes, baseline_n),
            ("current", current_successes, current_n),
        )
    )
    rate0, rate1 = x0 / n0, x1 / n1
    method = "chi-square test of two rates (pooled two-proportion z, two-sided)"
    if x0 + x1 in {0, n0 + n1}:
        return RateResult(0.0, 1.0, rate0, rate1, rate1 - rate0, method)
    from scipy import stats

    result = stats.chi2_contingency([[x0, n0 - x0], [x1, n1 - x1]], correction=False)
    return RateResult(float(result.statistic), float(result.pvalue), rate0, rate1, rate1 - rate0, method)


def binned_ks_test(
    baseline: Sequence[int], current: Sequence[int], *, edges: Sequence[float] | None = None
) -> KSResult:
    """Two-sample KS test on binned counts: has the distribution of a numeric metric moved? Two-sided.

    Parameters
    ----------
    baseline, current : sequence of int
        Counts per bin, the same bins in the same order (``canarywise.emit`` records them:
        ``VariantMetrics.histogram``), each window with at least one observation.
    edges : sequence of float, optional
        The bins' inner edges (one fewer than bins), only checked for length and order: the statistic
        depends on the bins' order, not on where their edges lie.

    Returns
    -------
    KSResult
        ``statistic`` is the largest gap between the two empirical CDFs at the bin edges.

    Notes
    -----
    H0: both windows draw from one distribution. ``D = max_k |F_base(k) - F_cur(k)|`` over the cumulative
    shares at the bin edges; the p-value is Smirnov's for two samples as ``scipy.stats.ks_2samp(...,
    method='asymp')`` computes it: ``scipy.stats.kstwo.sf(D, round(n m / (n + m)))``.

    The approximation, stated: the raw values are not kept, only their bins. (1) ``D`` is only looked for at
    the edges, so it is at most the KS distance of the raw values (equal when the largest gap falls on an
    edge); (2) the null distribution assumes continuous data, and binned data are tied, for which the KS
    p-value is conservative. Both err towards *not* alerting; both shrink as the bins get finer. The result
    is exactly ``ks_2samp`` on the samples that put every value of a bin on one point (e.g. its middle).

    Examples
    --------
    >>> r = binned_ks_test([10, 40, 40, 10], [5, 25, 45, 25])
    >>> round(r.statistic, 2), round(r.pvalue, 4)
    (0.2, 0.0314)
    """
    if len(baseline) != len(current) or len(baseline) < 2:
        raise StatsInputError(
            f"`baseline` and `current` must count the same bins (at least 2), found {len(baseline)} and "
            f"{len(current)} bins"
        )
    if edges is not None and (len(edges) != len(baseline) - 1 or any(b <= a for a, b in pairwise(edges))):
        raise StatsInputError(
            f"`edges` must be {len(baseline) - 1} increasing inner edges, found {list(edges)!r}"
        )
    base = [check_count(f"baseline[{i}]", c) for i, c in enumerate(baseline)]
    now = [check_count(f"current[{i}]", c) for i, c in enumerate(current)]
    n, m = sum(base), sum(now)
    if n == 0 or m == 0:
        raise StatsInputError(f"`baseline` and `current` must each count something, found {n} and {m}")
    cum_base = cum_now = 0
    distance = 0.0
    for b, c in zip(base, now, strict=True):
        cum_base, cum_now = cum_base + b, cum_now + c
        distance = max(distance, abs(cum_base / n - cum_now / m))
    from scipy import stats

    pvalue = float(stats.kstwo.sf(distance, round(n * m / (n + m)))) if distance > 0 else 1.0
    return KSResult(
        statistic=distance,
        pvalue=min(1.0, max(0.0, pvalue)),
        method="two-sample Kolmogorov-Smirnov test on binned counts (asymptotic; conservative with bins)",
        alternative="two-sided",
    )


def look_alpha(false_alerts_per_30d: float, interval_seconds: int, tests: int) -> float:
    """The significance level of one test at one look, from a false-alert budget per 30 days.

    Parameters
    ----------
    false_alerts_per_30d : float
        The expected number of false alerts allowed in any 30 days (e.g. 0.1: about one a year), in (0, 1].
    interval_seconds : int
        Seconds between looks.
    tests : int
        Tests at each look (the monitor's rates, mixes and distributions).

    Notes
    -----
    A union bound over calendar time: a false alert at a look needs at least one test to reject, so the
    expected number of false alerts in 30 days is at most ``looks x tests x alpha`` whatever the dependence
    between looks (overlapping baselines) and between tests. Spending it evenly makes the guarantee hold for
    every 30 days of a monitor that runs for months: the alpha-spending idea with a constant rate per unit
    of time instead of a total for one experiment. It is as valid as each look's p-value: counts that vary
    more than binomially (campaigns, outages) break it, which is why the monitor also asks for a minimum
    effect and a sustained deviation.

    Examples
    --------
    >>> f"{look_alpha(0.1, 3600, 3):.2e}"  # hourly looks, three tests
    '4.63e-05'
    """
    budget = check_positive("false_alerts_per_30d", false_alerts_per_30d)
    if budget > 1:
        raise StatsInputError(f"`false_alerts_per_30d` must be in (0, 1], found {false_alerts_per_30d!r}")
    interval = check_count("interval_seconds", interval_seconds, minimum=1)
    count = check_count("tests", tests, minimum=1)
    looks = max(1, THIRTY_DAYS // interval)
    return budget / (looks * count)


def sustained(deviations: Sequence[bool], looks: int) -> bool:
    """True when the last `looks` entries of `deviations` (oldest first) are all deviations.

    Examples
    --------
    >>> sustained([True, False, True, True], 2), sustained([True, False, True], 2)
    (True, False)
    """
    needed = check_count("looks", looks, minimum=1)
    return len(deviations) >= needed and all(deviations[-needed:])
