"""Canary mode: is it safe to send more users to the candidate?

Precedence, and why:

1. ROLLBACK on a breached hard limit or proven harm (overall, or in a critical slice). Evidence of harm only
   ever *reduces* exposure, so it is acted on even when other data is late or the sample ratio is off: a
   rollback is always safe, and the harm tests are anytime-valid with alpha shared over them.
2. HOLD on a sample-ratio mismatch or missing/late data: evidence of *safety* increases exposure, so it must
   come from trustworthy, timely data. At the stage's maximum duration this becomes INCONCLUSIVE, so the
   state machine applies the spec's policy instead of waiting forever. Then HOLD on a regression proven in a
   slice that does not roll back, until a person acknowledges it (`canarywise.decision.slices`).
3. ADVANCE (READY_FOR_APPROVAL on the last stage) when every safety/guardrail metric with a margin is proven
   non-inferior (anytime-valid, each at the full alpha: advancing needs *all* of them, an intersection-union
   test; for a rate, with the variance a canary exactly at the margin would have, so that a canary with no
   event yet does not prove a margin), the stage has run its minimum duration and each arm has
   `min_samples_per_arm` units in this stage.
4. INCONCLUSIVE at the stage's maximum duration; otherwise CONTINUE.
"""

from __future__ import annotations

from canarywise.decision.context import EvaluationContext
from canarywise.decision.evidence import duration, format_value, sequential_finding
from canarywise.decision.models import Decision, DecisionKind, MetricFinding, Verdict
from canarywise.decision.safety import review_safety, review_trust, stop_or_hold
from canarywise.decision.secondary import report
from canarywise.decision.slices import review_slice_policy
from canarywise.spec import Direction, MetricRole

__all__ = ["decide_canary"]


def _gate(ctx: EvaluationContext) -> tuple[list[MetricFinding], list[str], list[str]]:
    """Non-inferiority findings, what the stage's gate still lacks, and what it has shown."""
    findings: list[MetricFinding] = []
    lacking: list[str] = []
    shown: list[str] = []
    alpha = ctx.spec.statistics.alpha
    minimum = ctx.spec.statistics.min_samples_per_arm
    if ctx.stage_elapsed < ctx.stage.min_duration:
        lacking.append(
            f"minimum duration: {duration(ctx.stage_elapsed)} of {duration(ctx.stage.min_duration)} in "
            f"{ctx.stage_name}"
        )
    for metric in ctx.of_role(MetricRole.SAFETY, MetricRole.GUARDRAIL):
        n_control, n_canary = ctx.current_n(metric.name)
        if min(n_control, n_canary) < minimum:
            lacking.append(
                f"{metric.name}: {n_control} control / {n_canary} canary units in {ctx.stage_name}, "
                f"needs {minimum} per arm"
            )
        if metric.margin is None:
            continue
        finding = sequential_finding(ctx, metric, "non_inferiority", alpha=alpha)
        findings.append(finding)
        lower = metric.direction is Direction.LOWER_IS_BETTER
        bound = finding.ci_high if lower else finding.ci_low
        text = (
            f"{metric.name} {'upper' if lower else 'lower'} bound {format_value(metric, bound, signed=True)} "
            f"vs margin {format_value(metric, finding.threshold, signed=True)}"
        )
        if finding.verdict is Verdict.NON_INFERIOR:
            shown.append(text)
        else:
            lacking.append(f"non-inferiority not yet shown: {text}")
    return findings, lacking, shown


def decide_canary(ctx: EvaluationContext) -> Decision:
    safety = review_safety(ctx)
    trust = review_trust(ctx)
    gate_findings, lacking, shown = _gate(ctx)
    reported = report(ctx, ctx.of_role(MetricRole.SECONDARY), ctx.of_role(MetricRole.PRIMARY))
    findings = (*safety.findings, *trust.findings, *gate_findings, *reported)
    at_max = ctx.stage_elapsed >= ctx.stage.max_duration
    max_reason = (
        f"{ctx.stage_name} reached its maximum duration ({duration(ctx.stage.max_duration)}) "
        "without meeting its gate; the spec's inconclusive policy applies"
    )

    slices = review_slice_policy(ctx, safety.slice_regressions, reported)
    stopped = stop_or_hold(ctx, safety, trust, max_reason) or slices.stopped
    if stopped is not None:
        kind, reasons = stopped
    elif not lacking:
        kind = DecisionKind.READY_FOR_APPROVAL if ctx.is_last_stage else DecisionKind.ADVANCE
        reasons = [
            f"{ctx.stage_name}: gate met after {duration(ctx.stage_elapsed)}: no harm proven, "
            + ("; ".join(f"non-inferior: {s}" for s in shown) or "no metric with a margin to prove")
        ]
    elif at_max:
        kind, reasons = DecisionKind.INCONCLUSIVE, [max_reason, *lacking]
    else:
        kind, reasons = DecisionKind.CONTINUE, ["collecting evidence: " + "; ".join(lacking)]
    notes = (*safety.notes, *slices.notes)
    return Decision(kind, (*reasons, *notes), findings, ctx.current.index, ctx.now, slices.summaries)
