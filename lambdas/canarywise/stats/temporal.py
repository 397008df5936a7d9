"""Does an effect hold over time? Heterogeneity across days, opposite-signed days, and decay (novelty).

An A/B test's effect is estimated per time window (a day of the test), each an independent estimate ``d_k``
with variance ``V_k`` (the windows hold disjoint units). Three questions, each its own test:

- **heterogeneity**: Cochran's Q, ``Q = sum w_k (d_k - d̄)²`` with ``w_k = 1/V_k`` and ``d̄`` the
  inverse-variance weighted mean, chi-square with k − 1 degrees of freedom under H0 "one common effect";
- **a day on the other side**: per window, a two-sided z-test of ``d_k = 0``, Holm across the windows
  (family-wise error over the days): a window proven on the opposite side of the overall effect means the
  sign differs across days;
- **decay**: early vs late window (e.g. the first and the second half of the days), H0 "the late effect is
  at least `fraction` of the early one" (in the early effect's direction), ``z = (s·L − f·s·E) /
  sqrt(V_L + f² V_E)`` with s the early effect's sign, one-sided; rejected = the effect faded by more than
  1 − f (a novelty effect wearing off).

These are fixed-sample tests (one look each); see `canarywise.decision.temporal` for how the decision uses
them (a flag only ever holds a promotion back).

Example
-------
>>> result = cochran_q([0.010, 0.012, -0.004], [1e-5, 1e-5, 1e-5])
>>> round(result.statistic, 3), result.df
(15.2, 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.special import chdtrc, ndtr

from canarywise.stats._checks import StatsInputError, check_finite, check_positive, check_probability
from canarywise.stats.multiple import adjust_pvalues

__all__ = ["DecayResult", "HeterogeneityResult", "WindowTests", "cochran_q", "decay_test", "window_tests"]


@dataclass(frozen=True)
class HeterogeneityResult:
    """Cochran's Q across windows: `statistic` Q, `pvalue` (chi-square upper tail), `df` = k − 1, the
    weighted mean effect `pooled` and its variance."""

    statistic: float
    pvalue: float
    df: int
    pooled: float
    pooled_variance: float
    method: str = "Cochran's Q (chi-square, k - 1 df)"


@dataclass(frozen=True)
class WindowTests:
    """Per window, the two-sided z-test of "no effect": `statistic` z, raw `pvalue`, Holm-`adjusted`."""

    statistic: tuple[float, ...]
    pvalue: tuple[float, ...]
    adjusted: tuple[float, ...]
    method: str = "two-sided z per window, Holm across windows"


@dataclass(frozen=True)
class DecayResult:
    """Early vs late: `statistic` z of ``s·late − fraction·s·early``, `pvalue` one-sided (small = decayed),
    `ratio` late/early (nan when the early effect is 0)."""

    statistic: float
    pvalue: float
    ratio: float
    fraction: float
    method: str = "one-sided z: late effect below `fraction` of the early one"


def _check_windows(estimates: Sequence[float], variances: Sequence[float]) -> None:
    if len(estimates) != len(variances):
        raise StatsInputError(
            "`estimates` and `variances` must have the same length, found "
            f"{len(estimates)} and {len(variances)}"
        )
    for i, (d, v) in enumerate(zip(estimates, variances, strict=True)):
        check_finite(f"estimates[{i}]", d)
        check_positive(f"variances[{i}]", v)


def cochran_q(estimates: Sequence[float], variances: Sequence[float]) -> HeterogeneityResult:
    """Cochran's Q test of one common effect across independent window estimates.

    Parameters
    ----------
    estimates, variances : sequence of float
        Each window's effect (treatment − control) and its variance (> 0); at least two windows.

    Notes
    -----
    H0: every window has the same effect; H1: they differ. ``Q = sum w_k (d_k − d̄)²``, ``w_k = 1/V_k``,
    ``d̄ = sum w_k d_k / sum w_k``; under H0 Q ~ chi-square(k − 1) (``scipy.special.chdtrc``).

    References
    ----------
    Cochran, W. G. (1954). The combination of estimates from different experiments. Biometrics 10(1).
    """
    _check_windows(estimates, variances)
    if len(estimates) < 2:
        raise StatsInputError(f"`estimates` needs at least 2 windows, found {len(estimates)}")
    weights = [1.0 / v for v in variances]
    total = math.fsum(weights)
    pooled = math.fsum(w * d for w, d in zip(weights, estimates, strict=True)) / total
    q = math.fsum(w * (d - pooled) ** 2 for w, d in zip(weights, estimates, strict=True))
    df = len(estimates) - 1
    return HeterogeneityResult(q, float(chdtrc(df, q)), df, pooled, 1.0 / total)


def window_tests(estimates: Sequence[float], variances: Sequence[float]) -> WindowTests:
    """Two-sided z-tests of "no effect" in each window, Holm-adjusted across the windows.

    Notes
    -----
    ``z_k = d_k / sqrt(V_k)``, ``p_k = 2 Φ(−|z_k|)``; Holm's step-down keeps the chance of any false claim
    about a window at most the level it is read at.
    """
    _check_windows(estimates, variances)
    if not estimates:
        raise StatsInputError("`estimates` needs at least 1 window, found 0")
    z = [d / math.sqrt(v) for d, v in zip(estimates, variances, strict=True)]
    p = [float(2.0 * ndtr(-abs(value))) for value in z]
    adjusted = adjust_pvalues(p, method="holm").adjusted
    return WindowTests(tuple(z), tuple(p), tuple(adjusted))


def decay_test(
    early: float, early_variance: float, late: float, late_variance: float, *, fraction: float = 0.5
) -> DecayResult:
    """Has the effect decayed below `fraction` of its early size? (One-sided z; small p = decayed.)

    Parameters
    ----------
    early, late : float
        The effect in the early and the late window (treatment − control).
    early_variance, late_variance : float
        Their variances (> 0); the windows are disjoint, hence independent.
    fraction : float, default 0.5
        "Decayed by more than half" is ``fraction=0.5``.

    Notes
    -----
    With s = sign(early) (+1 when 0): H0 ``s·late >= fraction·s·early``, H1 ``s·late < fraction·s·early``;
    ``z = s (late − fraction·early) / sqrt(V_late + fraction² V_early)``, ``p = Φ(z)``.
    """
    check_finite("early", early)
    check_finite("late", late)
    check_positive("early_variance", early_variance)
    check_positive("late_variance", late_variance)
    check_probability("fraction", fraction)
    sign = -1.0 if early < 0 else 1.0
    z = sign * (late - fraction * early) / math.sqrt(late_variance + fraction**2 * early_variance)
    ratio = late / early if early != 0 else math.nan
    return DecayResult(z, float(ndtr(z)), ratio, fraction)
