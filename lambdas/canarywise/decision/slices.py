"""Slices (e.g. per intent): which proven regressions roll back, which hold for a person, and the composite.

The harm tests per slice run in `canarywise.decision.safety` (anytime-valid, Benjamini-Hochberg across a
metric's slices). This module decides what a slice found worse does:

- a critical slice rolls back; with a `max_relative_regression` only when the estimated regression is beyond
  it (relative to control's value in the slice) — a smaller, proven one holds like any slice's;
- any other slice (``slice_policy.non_critical_regression: hold``, the default) holds the stage, with the
  slice, the effect and its interval in the reason, until a person acknowledges the finding
  (`SliceAcknowledgement`, written by ``canarywise resume --reason …``) or rolls back; at the stage's
  maximum duration the spec's inconclusive policy applies, as for every hold. ``report`` keeps a note only.

It also computes, for every sliced metric, the severity-weighted composite of the slices' relative effects:
reported in the decision's data and in a slice hold's reason, never deciding anything on its own (a large
improvement in one intent must not buy a regression in another).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from canarywise.decision.acknowledgement import SliceAcknowledgement
from canarywise.decision.context import EvaluationContext
from canarywise.decision.estimates import stratified_difference
from canarywise.decision.evidence import duration, format_value
from canarywise.decision.models import DecisionKind, MetricFinding
from canarywise.spec import Direction, Metric

__all__ = [
    "COMPOSITE_Z",
    "SliceAcknowledgement",
    "SliceOutcome",
    "SliceRegression",
    "acknowledged_notes",
    "composite_text",
    "composites",
    "control_value",
    "relative_text",
    "review_slice_policy",
    "slice_hold",
    "slice_improvements",
]

# The composite's interval: a fixed-sample 95% normal interval (it is reported, never tested or acted on).
COMPOSITE_Z = 1.959963984540054  # scipy.stats.norm.ppf(0.975)


@dataclass(frozen=True, slots=True)
class SliceRegression:
    """A slice proven worse that holds (rather than rolls back): the finding and the reason's text."""

    metric: str
    slice: str
    finding: MetricFinding
    text: str


def relative_text(metric: Metric, estimate: float | None, control_value: float | None) -> str:
    """``"-7.0% relative to 62.00%"``: a difference relative to control's value ('' when undefined).

    Example
    -------
    >>> from canarywise.spec import Metric
    >>> m = Metric(name="task_completion", kind="proportion", role="safety",
    ...            source={"type": "service", "namespace": "M", "metric_name": "T"})
    >>> relative_text(m, -0.0434, 0.62)
    '-7.0% relative to 62.00%'
    """
    if estimate is None or not control_value or not math.isfinite(control_value):
        return ""
    return f"{estimate / control_value * 100:+.1f}% relative to {format_value(metric, control_value)}"


def control_value(ctx: EvaluationContext, metric: Metric, slice_: str | None) -> float | None:
    """Control's rate or mean in `slice_` over the stages used (weighted like the stratified difference)."""
    estimate = stratified_difference(ctx.pairs(metric.name, slice_))
    return estimate.control_value if estimate is not None else None


def _gain_sign(metric: Metric) -> float:
    return 1.0 if metric.direction is Direction.HIGHER_IS_BETTER else -1.0


def composites(ctx: EvaluationContext) -> list[dict[str, Any]]:
    """Per sliced metric, the severity-weighted mean of the slices' relative effects (reported only).

    Notes
    -----
    With ``d_s`` the slice's stage-stratified difference (canary − control), ``c_s`` control's value in the
    slice, ``n_s`` its units (both arms) and ``w_s`` its severity (``slice_severity``, default 1), the
    composite relative *gain* (positive = better, whatever the metric's direction) is

        G = sum(w_s n_s g_s) / sum(w_s n_s),   g_s = ±d_s / c_s,

    with variance ``sum((w_s n_s)² V_s / c_s²) / (sum w_s n_s)²`` (``V_s`` the variance of ``d_s``; the
    control value is treated as known) and a fixed-sample 95% normal interval. Slices without data in both
    arms, or with a control value of 0, are left out.
    """
    out: list[dict[str, Any]] = []
    for metric in ctx.metrics:
        if not metric.slice_dimension:
            continue
        sign = _gain_sign(metric)
        weight_sum = weighted = variance = 0.0
        parts: list[dict[str, Any]] = []
        for slice_ in ctx.slices(metric.name):
            estimate = stratified_difference(ctx.pairs(metric.name, slice_))
            if estimate is None or estimate.control_value == 0 or not math.isfinite(estimate.control_value):
                continue
            gain = sign * estimate.estimate / estimate.control_value
            weight = metric.slice_severity.get(slice_, 1.0) * (estimate.n_control + estimate.n_canary)
            weight_sum += weight
            weighted += weight * gain
            variance += weight**2 * estimate.variance / estimate.control_value**2
            parts.append({"slice": slice_, "relative_gain": gain, "weight": weight})
        if not parts:
            continue
        gain = weighted / weight_sum
        half = COMPOSITE_Z * math.sqrt(variance) / weight_sum
        out.append(
            {
                "metric": metric.name,
                "relative_gain": gain,
                "ci_low": gain - half,
                "ci_high": gain + half,
                "slices": parts,
                "method": "severity x units weighted mean of the slices' relative gains (positive = better); "
                "fixed-sample 95% normal interval; reported, decides nothing",
            }
        )
    return out


def composite_text(composite: Mapping[str, Any]) -> str:
    return (
        f"severity-weighted composite of {composite['metric']} across slices "
        f"{composite['relative_gain'] * 100:+.1f}% relative (95% CI {composite['ci_low'] * 100:+.1f}% to "
        f"{composite['ci_high'] * 100:+.1f}%, positive = better; reported, decides nothing)"
    )


def slice_improvements(ctx: EvaluationContext, reported: Iterable[MetricFinding], alpha: float) -> list[str]:
    """The slices of reported (two-sided, BH-adjusted) findings proven *better* on the candidate."""
    by_name = {m.name: m for m in ctx.metrics}
    out: list[str] = []
    for finding in reported:
        metric = by_name.get(finding.metric)
        if metric is None or finding.slice is None or finding.adjusted_pvalue is None:
            continue
        if finding.adjusted_pvalue > alpha or finding.estimate is None:
            continue
        if _gain_sign(metric) * finding.estimate <= 0:
            continue
        relative = relative_text(metric, finding.estimate, control_value(ctx, metric, finding.slice))
        out.append(
            f"{metric.name} in slice {finding.slice!r} better on the candidate: "
            f"{format_value(metric, finding.estimate, signed=True)} ({relative}), confidence sequence "
            f"[{format_value(metric, finding.ci_low, signed=True)}, "
            f"{format_value(metric, finding.ci_high, signed=True)}], BH-adjusted p "
            f"{finding.adjusted_pvalue:.2g}"
        )
    return out


def slice_hold(
    ctx: EvaluationContext,
    regressions: Sequence[SliceRegression],
    acknowledged: Sequence[SliceAcknowledgement],
    improvements: Sequence[str],
    composite: Sequence[Mapping[str, Any]],
) -> tuple[DecisionKind, list[str]] | None:
    """HOLD (INCONCLUSIVE at the stage's maximum) on a slice regression nobody has acknowledged; else None.

    The reason names each regression (slice, effect, interval), the slices proven better (a conflict a person
    weighs) and the composite of the metrics concerned.
    """
    if ctx.spec.slice_policy.non_critical_regression != "hold":
        return None
    done = {(a.metric, a.slice) for a in acknowledged}
    open_ = [r for r in regressions if (r.metric, r.slice) not in done]
    if not open_:
        return None
    metrics = {r.metric for r in open_}
    reasons = [
        f"slice regression holds {ctx.stage_name} until a person acknowledges it "
        f"(canarywise resume --reason …) or rolls back: {r.text}"
        for r in open_
    ]
    reasons += [f"conflicting slice: {text}" for text in improvements]
    reasons += [composite_text(c) for c in composite if c["metric"] in metrics]
    if ctx.stage_elapsed >= ctx.stage.max_duration:
        first = (
            f"{ctx.stage_name} reached its maximum duration ({duration(ctx.stage.max_duration)}) with a "
            "slice regression nobody acknowledged; the spec's inconclusive policy applies"
        )
        return DecisionKind.INCONCLUSIVE, [first, *reasons]
    return DecisionKind.HOLD, reasons


def acknowledged_notes(
    regressions: Sequence[SliceRegression], acknowledged: Sequence[SliceAcknowledgement]
) -> list[str]:
    """A note per regression a person acknowledged (it no longer holds; still shown)."""
    by_key = {(a.metric, a.slice): a for a in acknowledged}
    notes = []
    for regression in regressions:
        ack = by_key.get((regression.metric, regression.slice))
        if ack is not None:
            notes.append(
                f"slice regression acknowledged by {ack.by} at {ack.at.isoformat()} ({ack.reason!r}), not "
                f"holding: {regression.text}"
            )
    return notes


@dataclass(frozen=True, slots=True)
class SliceOutcome:
    """What the slices add to a decision: a hold (or None), notes for the reasons, data for the record."""

    stopped: tuple[DecisionKind, list[str]] | None
    notes: list[str]
    summaries: dict[str, Any]


def review_slice_policy(
    ctx: EvaluationContext, regressions: Sequence[SliceRegression], reported: Iterable[MetricFinding]
) -> SliceOutcome:
    """The slice policy at one look (rollbacks and trust holds, `safety.stop_or_hold`, come first)."""
    composite = composites(ctx)
    improvements = slice_improvements(ctx, reported, ctx.spec.statistics.alpha)
    stopped = slice_hold(ctx, regressions, ctx.acknowledged, improvements, composite)
    summaries: dict[str, Any] = {}
    if composite:
        summaries["composites"] = composite
    if ctx.acknowledged:
        summaries["acknowledged"] = [a.to_dict() for a in ctx.acknowledged]
    return SliceOutcome(stopped, acknowledged_notes(regressions, ctx.acknowledged), summaries)
