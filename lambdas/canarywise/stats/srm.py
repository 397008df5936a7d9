"""Sample-ratio mismatch (SRM): are the arms as large as the traffic split says they should be?

A mismatch means the assignment or the logging is broken (a crashing canary that logs fewer requests, a bot
stuck to one target group), so no effect estimate can be trusted: the engine HOLDs and alerts. The usual
threshold is p < 0.001 (a real SRM is not subtle at canary volumes, and the check runs at every look).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from canarywise.stats._checks import StatsInputError, check_count

__all__ = ["SRMResult", "srm_test", "staged_srm_test"]


@dataclass(frozen=True)
class SRMResult:
    """Outcome of :func:`srm_test` / :func:`staged_srm_test`.

    Attributes
    ----------
    statistic : float
        Pearson chi-square statistic.
    pvalue : float
        Upper-tail chi-square p-value with ``df`` degrees of freedom.
    df : int
        ``arms - 1``.
    method : str
        What was computed.
    observed, expected : tuple of float
        Counts per arm (summed over stages for the staged form) and the counts the weights imply.
    """

    statistic: float
    pvalue: float
    df: int
    method: str
    observed: tuple[float, ...]
    expected: tuple[float, ...]


def _check_stage(observed: Sequence[int], weights: Sequence[float], where: str = "") -> None:
    if len(observed) < 2:
        raise StatsInputError(f"`observed`{where} must have at least 2 arms, found {list(observed)!r}")
    if len(weights) != len(observed):
        raise StatsInputError(
            f"`weights`{where} must have one weight per arm ({len(observed)}), found {list(weights)!r}"
        )
    for count in observed:
        check_count("observed", count)
    if not all(isinstance(w, int | float) and math.isfinite(w) and w > 0 for w in weights):
        raise StatsInputError(f"`weights`{where} must all be finite and > 0, found {list(weights)!r}")


def _expected(observed: Sequence[int], weights: Sequence[float]) -> list[float]:
    total, weight_sum = sum(observed), math.fsum(weights)
    return [total * w / weight_sum for w in weights]


def _chisquare(observed: Sequence[float], expected: Sequence[float], method: str) -> SRMResult:
    # Pearson's statistic written out, with the tail from scipy.special: the significance check runs this for
    # every experiment every five minutes, and scipy.stats.chisquare costs ~1 ms a call plus ~0.5 s of
    # import at a Lambda cold start. The tests compare with scipy.stats.chisquare.
    from scipy.special import chdtrc

    if sum(observed) == 0:
        # No traffic yet: nothing can mismatch. A documented result rather than scipy's 0/0.
        return SRMResult(0.0, 1.0, len(observed) - 1, method, tuple(map(float, observed)), tuple(expected))
    df = len(observed) - 1
    statistic = math.fsum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    return SRMResult(
        statistic=statistic,
        pvalue=float(chdtrc(df, statistic)),
        df=df,
        method=method,
        observed=tuple(float(o) for o in observed),
        expected=tuple(float(e) for e in expected),
    )


def srm_test(observed: Sequence[int], weights: Sequence[float]) -> SRMResult:
    """Chi-square goodness of fit of the arm sizes to the configured traffic weights.

    Parameters
    ----------
    observed : sequence of int
        Units (users, sessions, requests) per arm.
    weights : sequence of float
        Configured traffic weights, same order; any positive scale (95/5 or 0.95/0.05).

    Returns
    -------
    SRMResult

    Notes
    -----
    H0: the arms are a multinomial sample with probabilities ``weights / sum(weights)``.
    ``statistic = sum((O - E)² / E)`` with ``E = total * w / sum(w)``, chi-square with ``arms - 1`` df
    (``scipy.stats.chisquare``). No traffic at all gives statistic 0 and p 1.

    Examples
    --------
    >>> r = srm_test([94700, 5300], [95, 5])
    >>> round(r.statistic, 2), f"{r.pvalue:.1e}"
    (18.95, '1.3e-05')
    """
    _check_stage(observed, weights)
    return _chisquare(list(observed), _expected(observed, weights), "SRM chi-square goodness of fit")


def staged_srm_test(stages: Sequence[tuple[Sequence[int], Sequence[float]]]) -> SRMResult:
    """SRM over a whole ramp, each stage judged against the weights in force during that stage.

    Parameters
    ----------
    stages : sequence of (observed, weights)
        Per stage: units per arm observed while that stage ran, and the weights in force then.

    Returns
    -------
    SRMResult

    Notes
    -----
    Pooling the raw counts of a 5% and a 50% stage and comparing them with one set of weights would flag a
    perfectly healthy ramp. Instead, each stage's expected counts are ``N_s * w_s / sum(w_s)`` and the
    observed and expected counts are summed over stages, ``O_a = sum_s O_sa``, ``E_a = sum_s E_sa``; the
    statistic is ``sum_a (O_a - E_a)² / E_a``.

    Why ``df = arms - 1``: the cells are the arms, and the only constraint is that the observed and
    expected totals agree (``sum_a O_a = sum_a E_a``, because every stage's expectations sum to that
    stage's total). When the weights never change this is exactly :func:`srm_test`. When they do, the
    pooled counts are a sum of multinomials whose variance ``sum_s N_s w_sa (1 - w_sa)`` is at most the
    ``N p_a (1 - p_a)`` the chi-square assumes (the difference of the covariances is
    ``sum_s N_s (w_s - p)(w_s - p)ᵀ``, positive semi-definite), so the test is conservative: it never alarms
    more often than its level on a healthy ramp. The price is that spread of the weights between stages,
    e.g. the variance is overstated by about 9% for equal-sized 5% and 25% stages.

    Examples
    --------
    A 5% stage then a 25% stage, both healthy:

    >>> r = staged_srm_test([([9500, 500], [95, 5]), ([30000, 10000], [75, 25])])
    >>> r.expected, r.pvalue
    ((39500.0, 10500.0), 1.0)
    """
    if len(stages) == 0:
        raise StatsInputError(f"`stages` must hold at least one (observed, weights) pair, found {stages!r}")
    arms = len(stages[0][0])
    observed = [0] * arms
    expected = [0.0] * arms
    for index, (stage_observed, stage_weights) in enumerate(stages):
        _check_stage(stage_observed, stage_weights, where=f" of stage {index}")
        if len(stage_observed) != arms:
            raise StatsInputError(
                f"`observed` of stage {index} must have {arms} arms like stage 0, "
                f"found {list(stage_observed)!r}"
            )
        observed = [o + s for o, s in zip(observed, stage_observed, strict=True)]
        expected = [e + s for e, s in zip(expected, _expected(stage_observed, stage_weights), strict=True)]
    return _chisquare(observed, expected, "SRM chi-square goodness of fit, stage-aware")
