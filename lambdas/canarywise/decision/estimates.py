"""Canary − control, estimated within each stage and combined over stages.

A ramp changes the canary's share of traffic between stages, and stages fall at different times of day. If the
5% stage ran at night (few escalations) and the 50% stage in the afternoon (many), pooling all sessions puts
most of the canary's sessions in the afternoon and most of the control's at night: the pooled canary rate is
higher although the canary is no worse within any stage (Simpson's paradox). Comparing the arms *within* each
stage and combining the per-stage differences removes the time-of-day swing, because both arms of a stage see
the same hours.

Nothing here is a statistical test: it produces the estimate and its variance that the anytime-valid tests in
``canarywise.stats.sequential`` consume. A test of H0 "the difference is θ0" (harm: 0; non-inferiority: the
margin) asks for the variance *at θ0* (``null=θ0``): for rates, at least the variance the data would have if
H0 held (Farrington & Manning's score test), not only the one at the observed rates, which collapses when the
canary has had no event yet and then proves a margin from a handful of units (make bench, rare events).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from canarywise.decision.models import Aggregate, DecisionInputError, MeanAggregate, ProportionAggregate
from canarywise.stats.proportions import difference_variance

__all__ = ["StratifiedEstimate", "arm_value", "stage_difference", "stratified_difference"]


@dataclass(frozen=True, slots=True)
class StratifiedEstimate:
    """The stage-stratified difference canary − control.

    Attributes
    ----------
    estimate : float
        Inverse-variance weighted mean of the per-stage differences, ``sum(d_s / V_s) / sum(1 / V_s)``.
    variance : float
        Its variance, ``1 / sum(1 / V_s)``.
    n_control, n_canary : int
        Units per arm summed over the stages used.
    strata : int
        Number of stages that contributed (a stage needs data in both arms and a positive variance).
    control_value : float
        The control's rate or mean over the stages used, weighted like the differences (for display: the
        base a relative lift refers to).
    """

    estimate: float
    variance: float
    n_control: int
    n_canary: int
    strata: int
    control_value: float


def _proportion_variance(arm: ProportionAggregate) -> float:
    # Agresti-Caffo: one success and one failure added per arm for the variance only. A stratum with no
    # events (0/500 canary errors) would otherwise get variance 0, i.e. infinite weight and a "proven"
    # non-inferiority from 500 requests; with the adjustment 0/500 carries the uncertainty it really has.
    # At the sample sizes where decisions are taken the change is negligible (relative 1/n).
    p = (arm.successes + 1) / (arm.n + 2)
    return p * (1.0 - p) / arm.n


def arm_value(arm: Aggregate) -> float:
    """The arm's rate (proportion) or mean; nan without data."""
    return arm.rate if isinstance(arm, ProportionAggregate) else arm.mean


def stage_difference(
    control: Aggregate, canary: Aggregate, null: float | None = None
) -> tuple[float, float] | None:
    """``(canary − control, its variance)`` within one stage; None when the stage cannot carry evidence.

    Proportions: difference of rates; needs one unit per arm. Its variance ``p_c(1 − p_c)/n_c +
    p_t(1 − p_t)/n_t`` at the Agresti-Caffo adjusted observed rates, and for a test of H0: p_t − p_c = `null`
    the larger of that and the variance at the rates maximising the likelihood under H0
    (``stats.proportions.difference_variance``: each guards one tail of a rare event). Means: difference
    of means with the Welch variance ``s_c²/n_c + s_t²/n_t`` whatever the null; needs two units per arm and
    a positive variance.

    Example
    -------
    >>> d, v = stage_difference(ProportionAggregate(10_000, 1_200), ProportionAggregate(10_000, 1_300))
    >>> round(d, 4)
    0.01
    """
    if isinstance(control, ProportionAggregate) and isinstance(canary, ProportionAggregate):
        if control.n == 0 or canary.n == 0:
            return None
        difference = canary.successes / canary.n - control.successes / control.n
        if null is None:
            return difference, _proportion_variance(control) + _proportion_variance(canary)
        return difference, difference_variance(control.successes, control.n, canary.successes, canary.n, null)
    if isinstance(control, MeanAggregate) and isinstance(canary, MeanAggregate):
        if control.n < 2 or canary.n < 2:
            return None
        variance = control.variance / control.n + canary.variance / canary.n
        if not variance > 0.0:
            return None
        return canary.mean - control.mean, variance
    raise DecisionInputError(
        "control and canary aggregates must be of one kind (both proportions or both means), found "
        f"{type(control).__name__} and {type(canary).__name__}"
    )


def stratified_difference(
    pairs: Iterable[tuple[Aggregate, Aggregate]], null: float | None = None
) -> StratifiedEstimate | None:
    """Combine per-stage ``(control, canary)`` aggregates into one difference; None if no stage has evidence.

    `null`: the difference H0 puts in every stage, for a test (see `stage_difference`); None for the
    variance at the observed rates.

    Notes
    -----
    With ``d_s`` and ``V_s`` the difference and its variance in stage s, the combined estimate is the
    inverse-variance weighted mean ``d = sum(w_s d_s) / sum(w_s)``, ``w_s = 1/V_s``, with variance
    ``V = 1 / sum(w_s)`` (the stages are disjoint sets of units, hence independent). It estimates the
    common within-stage effect; a shift of both arms between stages (time of day, season) cancels in every
    ``d_s``. With one stage it is the ordinary difference. With `null` = θ0 every ``V_s`` is the stage's
    variance under H0, so ``(d − θ0)/sqrt(V)`` is the stratified score statistic (inverse-variance weights,
    as in the Mantel-Haenszel-type combination of Farrington-Manning statistics).

    Example
    -------
    Night stage at 5% (8% escalations in both arms), afternoon stage at 50% (16% in both arms): pooled, the
    canary looks 6 points worse; within stages there is no difference.

    >>> night = (ProportionAggregate(95_000, 7_600), ProportionAggregate(5_000, 400))
    >>> day = (ProportionAggregate(50_000, 8_000), ProportionAggregate(50_000, 8_000))
    >>> round(stratified_difference([night, day]).estimate, 12)
    0.0
    """
    weight_sum = weighted_difference = weighted_control = 0.0
    n_control = n_canary = strata = 0
    for control, canary in pairs:
        stage = stage_difference(control, canary, null)
        if stage is None:
            continue
        difference, variance = stage
        weight = 1.0 / variance
        weight_sum += weight
        weighted_difference += weight * difference
        weighted_control += weight * arm_value(control)
        n_control += control.n
        n_canary += canary.n
        strata += 1
    if strata == 0 or not math.isfinite(weight_sum):
        return None
    return StratifiedEstimate(
        estimate=weighted_difference / weight_sum,
        variance=1.0 / weight_sum,
        n_control=n_control,
        n_canary=n_canary,
        strata=strata,
        control_value=weighted_control / weight_sum,
    )
