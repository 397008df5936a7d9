"""The offline gate: is the candidate's drop on the same golden set real?

Both models answered the same examples, so the comparison is paired: exact McNemar on the discordant
examples for outcomes (with the Agresti-Min interval of the accuracy difference), the paired t-test on the
per-example differences for scores. The whole set is tested at ``alpha``; the slices (intents, classes) are
tested too, with Benjamini-Hochberg across them. A regression is *proven* when the whole set or a slice shows
a drop that is significant (two-sided, the slices after BH): the one thing a release pipeline gates on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from canarywise.data.golden_set import GoldenSet, PairedExample
from canarywise.stats.means import SummaryStats
from canarywise.stats.multiple import adjust_pvalues
from canarywise.stats.paired import matched_difference_interval, mcnemar_test, paired_ttest

__all__ = ["OfflineComparison", "PairedGroup", "compare_golden_set"]

REGRESSION = "regression"
IMPROVEMENT = "improvement"
NO_PROVEN_DIFFERENCE = "none proven"


@dataclass(frozen=True)
class PairedGroup:
    """The paired test of one group of examples (the whole set, or one slice).

    Attributes
    ----------
    name : str
        ``"all"`` (every example) or the slice's name.
    n : int
        Examples in the group.
    current, candidate : float
        Accuracy (outcomes) or mean score of each model.
    diff, ci_low, ci_high : float
        candidate − current and its (1 − alpha) two-sided interval.
    pvalue : float
        Two-sided p-value of the paired test (NaN when the test is undefined, e.g. constant differences).
    adjusted : float
        The BH-adjusted p-value across slices (for the whole set: the p-value itself).
    verdict : str
        ``regression`` / ``improvement`` when ``adjusted <= alpha``, else ``none proven``.
    method : str
    current_only, candidate_only : int
        Outcomes: the discordant examples (right only for the current / only for the candidate); 0 for scores.
    message : str
        Empty, or why the test says nothing (``zero-variance: ...``).
    """

    name: str
    n: int
    current: float
    candidate: float
    diff: float
    ci_low: float
    ci_high: float
    pvalue: float
    adjusted: float
    verdict: str
    method: str
    current_only: int = 0
    candidate_only: int = 0
    message: str = ""


@dataclass(frozen=True)
class OfflineComparison:
    """The whole set and its slices; ``regression_proven`` is what the exit code reports."""

    kind: str
    alpha: float
    overall: PairedGroup
    slices: tuple[PairedGroup, ...]

    @property
    def regression_proven(self) -> bool:
        return any(g.verdict == REGRESSION for g in (self.overall, *self.slices))


def _verdict(diff: float, adjusted: float, alpha: float) -> str:
    if math.isnan(adjusted) or adjusted > alpha:
        return NO_PROVEN_DIFFERENCE
    return REGRESSION if diff < 0 else IMPROVEMENT


def _test_group(name: str, examples: list[PairedExample], kind: str, alpha: float) -> PairedGroup:
    n = len(examples)
    current = math.fsum(e.current for e in examples) / n
    candidate = math.fsum(e.candidate for e in examples) / n
    if kind == "outcome":
        b = sum(1 for e in examples if e.current == 1.0 and e.candidate == 0.0)
        c = sum(1 for e in examples if e.current == 0.0 and e.candidate == 1.0)
        r = mcnemar_test(b, c, n_pairs=n)
        low, high = matched_difference_interval(b, c, n, alpha=alpha)
        return PairedGroup(
            name, n, current, candidate, r.diff, low, high, r.pvalue, r.pvalue, "", r.method, b, c, r.message
        )
    t = paired_ttest(SummaryStats.from_values(e.candidate - e.current for e in examples), alpha=alpha)
    return PairedGroup(
        name,
        n,
        current,
        candidate,
        t.diff,
        t.ci_low,
        t.ci_high,
        t.pvalue,
        t.pvalue,
        "",
        t.method,
        message=t.message,
    )


def compare_golden_set(golden: GoldenSet, *, alpha: float = 0.05) -> OfflineComparison:
    """Paired comparison of the candidate with the current model on a golden set.

    Parameters
    ----------
    golden : GoldenSet
        From `canarywise.data.golden_set.read_golden_set`.
    alpha : float
        Level of the whole-set test, the FDR level q across slices, and 1 − the intervals' confidence.

    Returns
    -------
    OfflineComparison
        The slices are listed only when there are two or more (one slice is the whole set).

    Notes
    -----
    H0 for each group: the candidate's accuracy (mean score) equals the current model's. The verdict of a
    slice uses its BH-adjusted p-value (``scipy.stats.false_discovery_control``); a slice whose test is
    undefined enters BH with p = 1 (it can reject nothing) and keeps NaN as its own p-value.

    Example
    -------
    >>> from canarywise.data.golden_set import read_golden_set
    >>> result = compare_golden_set(read_golden_set("config/golden/intent-golden-set.csv"))
    >>> result.overall.current, result.overall.candidate, result.regression_proven
    (0.91, 0.88, True)
    """
    examples = list(golden.examples)
    overall = _test_group("all", examples, golden.kind, alpha)
    overall = _with_adjusted(overall, overall.pvalue, alpha)
    names = golden.slices
    if len(names) < 2:
        return OfflineComparison(golden.kind, alpha, overall, ())
    groups = [_test_group(s, [e for e in examples if e.slice == s], golden.kind, alpha) for s in names]
    raw = [1.0 if math.isnan(g.pvalue) else g.pvalue for g in groups]
    adjusted = adjust_pvalues(raw, method="bh", alpha=alpha).adjusted
    slices = tuple(_with_adjusted(g, q, alpha) for g, q in zip(groups, adjusted, strict=True))
    return OfflineComparison(golden.kind, alpha, overall, slices)


def _with_adjusted(group: PairedGroup, adjusted: float, alpha: float) -> PairedGroup:
    return replace(group, adjusted=adjusted, verdict=_verdict(group.diff, adjusted, alpha))
