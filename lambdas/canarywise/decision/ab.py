"""A/B mode: did the pre-registered primary metric really improve, by how much, and is it worth it?

Precedence:

1. ROLLBACK on a breached hard limit or proven harm on a safety/guardrail metric: guardrails veto, at once.
2. HOLD on a sample-ratio mismatch or missing/late data (INCONCLUSIVE at the stage's maximum duration), then
   on a regression proven in a slice that does not roll back, until a person acknowledges it.
3. KEEP_CONTROL when the primary metric is proven worse (the two-sided confidence sequence lies entirely on
   the worse side of 0).
4. PROMOTE when the primary metric is proven better (the sequence lies entirely on the better side of 0), its
   estimate is at least the minimum worthwhile effect (``metric.mde``), the stage has run its minimum
   duration (weekly cycles, novelty) and each arm has `min_samples_per_arm` units — unless the temporal check
   (`canarywise.decision.temporal`) flags the effect's sign differing across days or its decay, which holds
   it (``temporal.hold_promote``).
5. NO_DIFFERENCE after the spec's horizon when the sequence lies inside ±mde: whatever the effect is, it is
   smaller than anything worth shipping.
6. INCONCLUSIVE at the stage's maximum duration; otherwise CONTINUE.

The primary test is two-sided at the full alpha (one pre-registered metric, one hypothesis); the decision
reads the sign from the confidence sequence, which also gives the lift's interval directly. Secondary metrics
are reported with Benjamini-Hochberg across them and decide nothing.
"""

from __future__ import annotations

from canarywise.decision.context import EvaluationContext
from canarywise.decision.estimates import stratified_difference
from canarywise.decision.evidence import duration, format_value, metric_mde, sequential_finding
from canarywise.decision.models import Decision, DecisionKind, MetricFinding, Verdict
from canarywise.decision.safety import review_safety, review_trust, stop_or_hold
from canarywise.decision.secondary import report
from canarywise.decision.slices import review_slice_policy
from canarywise.decision.temporal import review_temporal
from canarywise.spec import Direction, Metric, MetricRole

__all__ = ["decide_ab"]


def _primary_verdict(metric: Metric, finding: MetricFinding, mde: float) -> Verdict:
    if finding.ci_low is None or finding.ci_high is None or finding.estimate is None:
        return Verdict.INSUFFICIENT
    # Orient so that "gain" > 0 means better, whatever the metric's direction.
    sign = 1.0 if metric.direction is Direction.HIGHER_IS_BETTER else -1.0
    gain, gain_low = sign * finding.estimate, min(sign * finding.ci_low, sign * finding.ci_high)
    gain_high = max(sign * finding.ci_low, sign * finding.ci_high)
    if gain_high < 0:
        return Verdict.HARM
    if gain_low > 0:
        return Verdict.IMPROVEMENT if gain >= mde else Verdict.IMPROVEMENT_BELOW_MDE
    if -mde < gain_low and gain_high < mde:
        return Verdict.EQUIVALENT
    return Verdict.NOT_YET_IMPROVEMENT


def _effect(metric: Metric, finding: MetricFinding, control_value: float | None, alpha: float) -> str:
    relative = ""
    if control_value and finding.estimate is not None:
        relative = f" (relative {finding.estimate / control_value * 100:+.1f}% over control "
        relative += f"{format_value(metric, control_value)})"
    return (
        f"{format_value(metric, finding.estimate, signed=True)}{relative}, {(1 - alpha) * 100:g}% confidence "
        f"sequence [{format_value(metric, finding.ci_low, signed=True)}, "
        f"{format_value(metric, finding.ci_high, signed=True)}], always-valid p {finding.pvalue:.2g}"
    )


def decide_ab(ctx: EvaluationContext) -> Decision:
    (primary,) = ctx.of_role(MetricRole.PRIMARY)  # the spec guarantees exactly one in mode 'ab'
    alpha = ctx.spec.statistics.alpha
    mde = metric_mde(ctx, primary)
    safety = review_safety(ctx)
    trust = review_trust(ctx)
    estimate = stratified_difference(ctx.pairs(primary.name))
    finding = sequential_finding(ctx, primary, "two_sided", alpha=alpha, estimate=estimate)
    verdict = _primary_verdict(primary, finding, mde)
    temporal = review_temporal(ctx, primary, ctx.temporal_marks)
    finding = MetricFinding(
        finding.metric, None, f"primary, {finding.method}", finding.estimate, finding.ci_low, finding.ci_high,
        finding.pvalue, finding.n_control, finding.n_canary, mde, verdict, alpha,
    )  # fmt: skip
    findings = (*safety.findings, *trust.findings, finding, *report(ctx, ctx.of_role(MetricRole.SECONDARY)))
    at_max = ctx.stage_elapsed >= ctx.stage.max_duration
    max_reason = f"{ctx.stage_name} reached its maximum duration ({duration(ctx.stage.max_duration)})"
    control_value = estimate.control_value if estimate is not None else None
    effect = (
        _effect(primary, finding, control_value, alpha) if finding.pvalue is not None else "no estimate yet"
    )
    n_control, n_canary = ctx.current_n(primary.name)
    minimum = ctx.spec.statistics.min_samples_per_arm
    ready = [
        *(
            [f"minimum duration: {duration(ctx.stage_elapsed)} of {duration(ctx.stage.min_duration)}"]
            if ctx.stage_elapsed < ctx.stage.min_duration
            else []
        ),
        *(
            [f"{primary.name}: {n_control} control / {n_canary} candidate units, needs {minimum} per arm"]
            if min(n_control, n_canary) < minimum
            else []
        ),
    ]
    worthwhile = f"minimum worthwhile effect {format_value(primary, mde, signed=True)}"

    slices = review_slice_policy(ctx, safety.slice_regressions, findings)
    stopped = stop_or_hold(ctx, safety, trust, max_reason) or slices.stopped
    if stopped is not None:
        kind, reasons = stopped
    elif verdict is Verdict.HARM:
        kind, reasons = DecisionKind.KEEP_CONTROL, [f"{primary.name} is worse on the candidate: {effect}"]
    elif verdict is Verdict.IMPROVEMENT and not ready and temporal.flags and ctx.spec.temporal.hold_promote:
        kind = DecisionKind.INCONCLUSIVE if at_max else DecisionKind.HOLD
        reasons = [
            *([max_reason] if at_max else []),
            *(f"the temporal check holds PROMOTE: {flag}" for flag in temporal.flags),
            f"{primary.name} improved over the whole test: {effect}; {worthwhile}",
        ]
    elif verdict is Verdict.IMPROVEMENT and not ready:
        kind, reasons = DecisionKind.PROMOTE, [f"{primary.name} improved: {effect}; {worthwhile}"]
    elif verdict is Verdict.EQUIVALENT and ctx.experiment_elapsed >= ctx.spec.statistics.horizon:
        kind = DecisionKind.NO_DIFFERENCE
        reasons = [f"no worthwhile difference in {primary.name} after the horizon: {effect}; {worthwhile}"]
    elif at_max:
        kind, reasons = DecisionKind.INCONCLUSIVE, [max_reason, f"{primary.name}: {effect}; {worthwhile}"]
    else:
        kind = DecisionKind.CONTINUE
        status = {
            Verdict.IMPROVEMENT: "improvement shown",
            Verdict.IMPROVEMENT_BELOW_MDE: "better, but not by the minimum worthwhile effect",
            Verdict.EQUIVALENT: "within ±mde, horizon not reached",
        }.get(verdict, "not yet conclusive")
        reasons = [f"collecting evidence: {primary.name} {status}: {effect}; {worthwhile}", *ready]
    notes = (*safety.notes, *slices.notes)
    held = any(r.startswith("the temporal check holds PROMOTE") for r in reasons)
    if not held:
        notes += tuple(f"temporal check (reported): {flag}" for flag in temporal.flags)
    summaries = slices.summaries | {"temporal": temporal.summary}
    return Decision(kind, (*reasons, *notes), findings, ctx.current.index, ctx.now, summaries)
