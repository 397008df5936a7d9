"""Multiple testing: adjusted p-values across secondary metrics, slices, and the registry's experiments.

Benjamini-Hochberg (BH) controls the false discovery rate for independent or positively dependent tests,
Benjamini-Yekutieli (BY) under any dependence; Holm and Bonferroni control the family-wise error rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from canarywise.stats._checks import StatsInputError, check_probability

__all__ = ["METHODS", "MultipleTestingResult", "adjust_pvalues"]

METHODS: Final = ("bh", "by", "holm", "bonferroni")


@dataclass(frozen=True)
class MultipleTestingResult:
    """Outcome of :func:`adjust_pvalues`, in the order of the input p-values.

    Attributes
    ----------
    adjusted : tuple of float
        Adjusted p-values (BH/BY: the q-values of ``scipy.stats.false_discovery_control``).
    rejected : tuple of bool
        ``adjusted <= alpha``.
    method : str
        One of ``bh``, ``by``, ``holm``, ``bonferroni``.
    """

    adjusted: tuple[float, ...]
    rejected: tuple[bool, ...]
    method: str


def _holm(pvalues: Sequence[float]) -> list[float]:
    # Hand-written: scipy has no Holm, and statsmodels is not in the Lambda bundle.
    # Step-down: the i-th smallest p (0-based) is multiplied by m - i, then made monotone non-decreasing.
    m = len(pvalues)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def adjust_pvalues(
    pvalues: Sequence[float], *, method: str = "bh", alpha: float = 0.05
) -> MultipleTestingResult:
    """Adjust p-values for multiple testing and flag the rejected hypotheses.

    Parameters
    ----------
    pvalues : sequence of float
        Raw p-values in [0, 1]; NaN is not allowed (drop undefined tests first).
    method : {'bh', 'by', 'holm', 'bonferroni'}
        Benjamini-Hochberg, Benjamini-Yekutieli, Holm step-down, Bonferroni.
    alpha : float
        FDR level q (BH, BY) or family-wise level (Holm, Bonferroni).

    Returns
    -------
    MultipleTestingResult

    Notes
    -----
    BH: ``q_(i) = min_{j >= i} min(1, m p_(j) / j)``; BY multiplies by ``c(m) = sum_{k<=m} 1/k``
    (``scipy.stats.false_discovery_control``). Holm: ``min(1, max_{j <= i} (m - j + 1) p_(j))``.
    Bonferroni: ``min(1, m p)``. A hypothesis is rejected when its adjusted p-value is ``<= alpha``, which
    is the same set as the step-up / step-down procedures reject.

    References
    ----------
    Benjamini Y., Hochberg Y. (1995). Controlling the false discovery rate. JRSS B 57, 289-300.
    Benjamini Y., Yekutieli D. (2001). The control of the false discovery rate in multiple testing under
    dependency. Annals of Statistics 29, 1165-1188.
    Holm S. (1979). A simple sequentially rejective multiple test procedure. Scand. J. Statist. 6, 65-70.

    Examples
    --------
    >>> r = adjust_pvalues([0.041, 0.001, 0.216])
    >>> [round(q, 4) for q in r.adjusted], r.rejected
    ([0.0615, 0.003, 0.216], (False, True, False))
    """
    if method not in METHODS:
        raise StatsInputError(f"`method` must be one of {METHODS}, found {method!r}")
    check_probability("alpha", alpha)
    values = [float(p) for p in pvalues]
    for p in values:
        if not (math.isfinite(p) and 0 <= p <= 1):
            raise StatsInputError(f"`pvalues` must all be in [0, 1], found {p!r}")
    if not values:
        return MultipleTestingResult(adjusted=(), rejected=(), method=method)

    if method in ("bh", "by"):
        # Imported here: scipy.stats costs ~0.5 s at a Lambda cold start.
        from scipy import stats

        adjusted = [float(q) for q in stats.false_discovery_control(values, method=method)]
    elif method == "holm":
        adjusted = _holm(values)
    else:
        adjusted = [min(1.0, len(values) * p) for p in values]
    return MultipleTestingResult(
        adjusted=tuple(adjusted), rejected=tuple(q <= alpha for q in adjusted), method=method
    )
