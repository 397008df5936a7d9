"""What can stop a rollout, shared by canary and A/B mode: hard limits, proven harm, untrustworthy data.

The false-rollback rate of the whole rollout stays at most the spec's alpha: every test that can trigger a
rollback is anytime-valid (any number of looks), and alpha is split over them (Bonferroni) — each safety or
guardrail metric gets alpha/K; a sliced metric spends half of its share on the overall test and half on its
slices, with Benjamini-Hochberg across the slices (under the global null BH rejects anything with
probability at most its level; the slices are disjoint, hence independent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from canarywise.decision.context import EvaluationContext, decisive_metrics, evaluated_metrics
from canarywise.decision.evidence import (
    bh_adjust,
    format_value,
    freshness_findings,
    hard_limit_finding,
    sequential_finding,
    srm_finding,
)
from canarywise.decision.models import DecisionKind, MetricFinding, Verdict
from canarywise.decision.slices import SliceRegression, control_value, relative_text
from canarywise.spec import Direction, Metric, MetricRole, RolloutSpec

__all__ = ["SafetyReview", "TrustReview", "harm_alpha", "review_safety", "review_trust", "stop_or_hold"]


@dataclass(slots=True)
class SafetyReview:
    findings: list[MetricFinding] = field(default_factory=list)
    rollback_reasons: list[str] = field(default_factory=list)
    # proven regressions in slices that do not roll back (slice_policy "report": a note each)
    notes: list[str] = field(default_factory=list)
    # the same regressions under slice_policy "hold": the stage holds on them (`slices.slice_hold`)
    slice_regressions: list[SliceRegression] = field(default_factory=list)


@dataclass(slots=True)
class TrustReview:
    findings: list[MetricFinding] = field(default_factory=list)
    hold_reasons: list[str] = field(default_factory=list)


def _worse_word(metric: Metric) -> str:
    return "higher" if metric.direction is Direction.LOWER_IS_BETTER else "lower"


def harm_reason(metric: Metric, finding: MetricFinding, budget: str, *, relative: str = "") -> str:
    where = f" in slice {finding.slice!r}" if finding.slice else ""
    bound = finding.ci_low if metric.direction is Direction.LOWER_IS_BETTER else finding.ci_high
    p = finding.adjusted_pvalue if finding.adjusted_pvalue is not None else finding.pvalue
    p_name = "BH-adjusted always-valid p" if finding.adjusted_pvalue is not None else "always-valid p"
    relative = f", {relative}" if relative else ""
    return (
        f"{metric.name}{where} is worse on the canary: canary − control "
        f"{format_value(metric, finding.estimate, signed=True)}{relative} (confidence-sequence bound "
        f"{format_value(metric, bound, signed=True)}), {p_name} {p:.2g} <= {finding.alpha:.3g} ({budget})"
    )


def harm_alpha(spec: RolloutSpec, metric: Metric) -> float:
    """The level of `metric`'s overall harm test: the spec's alpha split over the safety/guardrail metrics,
    halved for a sliced metric (whose slice family, under BH, gets the other half)."""
    veto = [m for m in evaluated_metrics(spec) if m.role in (MetricRole.SAFETY, MetricRole.GUARDRAIL)]
    share = spec.statistics.alpha / len(veto) if veto else spec.statistics.alpha
    return share / 2 if metric.slice_dimension else share


def review_safety(ctx: EvaluationContext) -> SafetyReview:
    """Hard limits and one-sided anytime-valid harm tests on every safety and guardrail metric."""
    review = SafetyReview()
    veto = ctx.of_role(MetricRole.SAFETY, MetricRole.GUARDRAIL)
    alpha = ctx.spec.statistics.alpha
    budget = f"alpha {alpha:g} shared by {len(veto)} safety/guardrail metric(s)"
    for metric in veto:
        limit = hard_limit_finding(ctx, metric)
        if limit is not None:
            review.findings.append(limit)
            if limit.verdict is Verdict.HARD_LIMIT_BREACHED:
                review.rollback_reasons.append(
                    f"{metric.name} breached its hard limit: the canary's value in "
                    f"{ctx.stage_name} is {format_value(metric, limit.estimate)} ({_worse_word(metric)} "
                    f"than the limit {format_value(metric, metric.hard_limit)}, {limit.n_canary} units; "
                    f"p = {limit.pvalue:.2g} <= {limit.alpha:.2g})"
                )
        overall_alpha = harm_alpha(ctx.spec, metric)
        finding = sequential_finding(ctx, metric, "harm", alpha=overall_alpha)
        review.findings.append(finding)
        if finding.verdict is Verdict.HARM:
            review.rollback_reasons.append(harm_reason(metric, finding, budget))
        if metric.slice_dimension:
            _review_slices(ctx, metric, harm_alpha(ctx.spec, metric), budget, review)
    return review


def _review_slices(
    ctx: EvaluationContext, metric: Metric, q: float, budget: str, review: SafetyReview
) -> None:
    findings = [sequential_finding(ctx, metric, "harm", alpha=q, slice_=s) for s in ctx.slices(metric.name)]
    adjusted, rejected = bh_adjust(findings, q)
    for finding, reject in zip(adjusted, rejected, strict=True):
        if finding.verdict is Verdict.HARM and not reject:
            # BH decides for the slice family: a raw rejection BH does not confirm is no finding of harm. (The
            # converse cannot happen: an adjusted p-value is never below the raw one.)
            finding = _set_verdict(finding, Verdict.NO_HARM_PROVEN)
        review.findings.append(finding)
        if not reject:
            continue
        assert finding.slice is not None
        base = control_value(ctx, metric, finding.slice)
        reason = harm_reason(
            metric,
            finding,
            f"BH across {len(findings)} slices of {metric.slice_dimension}, {budget}",
            relative=relative_text(metric, finding.estimate, base),
        )
        if finding.slice in metric.critical_slices:
            limit = metric.relative_limit(finding.slice)
            regression = abs(finding.estimate or 0.0) / base if base else math.inf
            if limit is None or regression > limit:
                beyond = "" if limit is None else f" (beyond its max_relative_regression {limit:.0%})"
                review.rollback_reasons.append(f"critical slice regression{beyond}: {reason}")
                continue
            reason += f" (within the critical slice's max_relative_regression {limit:.0%})"
        if ctx.spec.slice_policy.non_critical_regression == "hold":
            review.slice_regressions.append(SliceRegression(metric.name, finding.slice, finding, reason))
        else:
            review.notes.append(f"slice regression (not a critical slice, does not block): {reason}")


def _set_verdict(finding: MetricFinding, verdict: Verdict) -> MetricFinding:
    return MetricFinding(
        finding.metric, finding.slice, finding.method, finding.estimate, finding.ci_low, finding.ci_high,
        finding.pvalue, finding.n_control, finding.n_canary, finding.threshold, verdict, finding.alpha,
        finding.adjusted_pvalue,
    )  # fmt: skip


def review_trust(ctx: EvaluationContext) -> TrustReview:
    """Sample-ratio mismatch, and missing or late data for the metrics that can move the rollout forward
    (`decisive_metrics`)."""
    review = TrustReview()
    srm = srm_finding(ctx)
    if srm is not None:
        review.findings.append(srm)
        if srm.verdict is Verdict.SRM:
            off = (srm.estimate or 0.0) * 100
            review.hold_reasons.append(
                f"sample ratio mismatch: the canary's share is {off:+.2f} pt off the weights in force "
                f"({srm.n_control} control vs {srm.n_canary} canary units), anytime-valid p {srm.pvalue:.2g} "
                f"<= {srm.threshold:g}; the comparison cannot be trusted"
            )
    for finding in freshness_findings(ctx, decisive_metrics(ctx.spec)):
        review.findings.append(finding)
        where = f" (slice {finding.slice!r})" if finding.slice else ""
        review.hold_reasons.append(f"{finding.metric}{where}: {finding.method}")
    return review


def stop_or_hold(
    ctx: EvaluationContext, safety: SafetyReview, trust: TrustReview, max_reason: str
) -> tuple[DecisionKind, list[str]] | None:
    """The first two steps of every mode's precedence, or None when neither applies.

    ROLLBACK on a hard limit or proven harm, even when the data is otherwise in doubt (a rollback only reduces
    exposure); else HOLD on a sample-ratio mismatch or missing/late data, which becomes INCONCLUSIVE (with
    `max_reason` first) at the stage's maximum duration, so the spec's policy applies instead of a wait
    without end.
    """
    if safety.rollback_reasons:
        return DecisionKind.ROLLBACK, [*safety.rollback_reasons, *(f"also: {r}" for r in trust.hold_reasons)]
    if trust.hold_reasons:
        if ctx.stage_elapsed >= ctx.stage.max_duration:
            return DecisionKind.INCONCLUSIVE, [max_reason, *trust.hold_reasons]
        return DecisionKind.HOLD, list(trust.hold_reasons)
    return None
