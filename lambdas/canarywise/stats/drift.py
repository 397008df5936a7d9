"""Drift: has the mix of categories (intents) or the distribution of a metric really moved?

Used by the drift monitor against a rolling baseline window, and for slices during a rollout. At production
volumes both tests detect differences far too small to matter, so read the effect columns (shares, the KS
distance) before the p-value.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from canarywise.stats._checks import StatsInputError, check_alternative, check_count

__all__ = ["CategoryMixResult", "KSResult", "category_mix_test", "ks_test"]


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
