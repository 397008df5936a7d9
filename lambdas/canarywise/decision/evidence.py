"""The tests behind a decision, each turned into a `MetricFinding` that carries its numbers.

- hard limit: an exact one-sample test of the canary's value against an absolute limit, at a level split over
  every look of the horizon;
- harm: one-sided anytime-valid test "is the canary worse?" (mixture SPRT, alternative by direction);
- non-inferiority: one-sided anytime-valid test "is the canary no worse than the margin?";
- two-sided: the anytime-valid test and confidence sequence of the difference (A/B primary, reports);
- data quality: sample-ratio mismatch over the stages (anytime-valid), and missing or late data.

The mixing variance τ² of every mixture test is fixed by the spec alone (see `mixing_tau2`), never by the
data, because the anytime-valid guarantee holds for a mixture chosen before the first look.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

from scipy.special import bdtr, bdtrc, ndtri, stdtr

from canarywise.decision.context import EvaluationContext
from canarywise.decision.estimates import StratifiedEstimate, arm_value, stratified_difference
from canarywise.decision.models import SRM_FINDING, MetricFinding, ProportionAggregate, Variant, Verdict
from canarywise.spec import Direction, Metric, MetricKind, RolloutSpec
from canarywise.stats.multiple import adjust_pvalues
from canarywise.stats.sequential import mixing_variance, msprt_normal
from canarywise.stats.srm import sequential_srm_test

__all__ = [
    "HARD_LIMIT_ALPHA",
    "HARD_LIMIT_MIN_UNITS",
    "LATE_AFTER_INTERVALS",
    "bh_adjust",
    "duration",
    "format_value",
    "freshness_findings",
    "hard_limit_finding",
    "hard_limit_level",
    "metric_mde",
    "mixing_tau2",
    "sequential_finding",
    "srm_finding",
    "tau2_for",
]

# A hard limit is judged once the canary has this many units in the stage: one failed request out of three is
# not a 33% error rate. The CloudWatch alarm on the same limit is the fast path; this is the backstop.
HARD_LIMIT_MIN_UNITS = 100
# The chance, over the whole horizon, that the backstop fires on a canary that is exactly at its limit. Split
# evenly over every look of the horizon (a union bound), so it holds however often the check runs. Outside
# the alpha budget of the harm tests: it answers another question (is the canary above an absolute line?),
# and at 0.1% it adds at most that to the false-rollback rate of a candidate at the limit, far less to one
# below it. (A bare "observed rate > limit" fired on 0.8-3.4% of healthy canaries at a 0.3-0.5% baseline
# against a 2% limit: make bench, hard-limit table.)
HARD_LIMIT_ALPHA = 0.001
# Data is late when a metric has had no datapoint for more than this many check intervals.
LATE_AFTER_INTERVALS = 2


@lru_cache(maxsize=256)
def mixing_tau2(mde: float, alpha: float, power: float, *, two_sided: bool = False) -> float:
    """The mixing variance τ² for a test at level `alpha` planned to detect `mde` with `power`.

    Notes
    -----
    ``mixing_variance`` wants the variance of the estimate at the horizon. The spec fixes a horizon in time,
    not in traffic, and a forecast from observed traffic would make τ² move with the data from look to look
    (the mixture martingale, and so the guarantee, needs τ² fixed before the first look). So we take the
    variance the spec's own sample-size plan targets at its horizon: the one at which a fixed-horizon z-test
    of level α has power 1 − β at the MDE,

        V_h = (MDE / (z_{1−α} + z_{1−β}))²   (z_{1−α/2} for a two-sided test),

    which depends on α, power and the MDE only. Traffic above plan makes the test decide earlier, traffic
    below plan later; validity never depends on it.
    """
    z_alpha = ndtri(1.0 - alpha / 2.0) if two_sided else ndtri(1.0 - alpha)
    z_sum = float(z_alpha + ndtri(power))
    return mixing_variance(mde, (mde / z_sum) ** 2, alpha)


def metric_mde(ctx: EvaluationContext | RolloutSpec, metric: Metric) -> float:
    """The metric's minimum detectable effect, or the spec's default (`ctx` may be the spec itself)."""
    spec = ctx if isinstance(ctx, RolloutSpec) else ctx.spec
    return metric.mde if metric.mde is not None else spec.statistics.mde


def tau2_for(spec: RolloutSpec, metric: Metric, test: str, alpha: float) -> float:
    """The mixing variance the engine uses for `test` ('harm', 'non_inferiority', 'two_sided') of `metric`
    at level `alpha` (benchmarks re-implementing the engine should call this, not re-derive it).

    Each test is planned for the distance between its null and the effect it should find: harm and the
    two-sided test for the metric's MDE; non-inferiority for its margin (a candidate that is exactly as good
    as control sits one margin away from the null "worse by the margin").
    """
    power = spec.statistics.power
    if test == "non_inferiority":
        assert metric.margin is not None, "non-inferiority needs a margin"
        return mixing_tau2(metric.margin, alpha, power)
    return mixing_tau2(metric_mde(spec, metric), alpha, power, two_sided=test == "two_sided")


def _bounded(value: float) -> float | None:
    return value if math.isfinite(value) else None


def format_value(metric: Metric, value: float | None, *, signed: bool = False) -> str:
    """A difference or a value in the metric's units: percentage points for rates, plain numbers for means."""
    if value is None or not math.isfinite(value):
        return "unbounded"
    sign = "+" if signed else ""
    if metric.kind is MetricKind.MEAN:
        return f"{value:{sign}.4g}"
    return f"{value * 100:{sign}.2f} pt" if signed else f"{value * 100:.2f}%"


def duration(seconds: float) -> str:
    """``"1.5 h"``, ``"45 min"``: durations in reasons."""
    return f"{seconds / 3600:.3g} h" if seconds >= 3600 else f"{seconds / 60:.3g} min"


def hard_limit_level(spec: RolloutSpec) -> float:
    """The per-look level of the hard-limit test: `HARD_LIMIT_ALPHA` over the looks in the horizon.

    Example
    -------
    >>> # the shipped spec: a 7-day horizon checked every 5 minutes is 2,016 looks
    >>> round(HARD_LIMIT_ALPHA / 2016, 12)
    4.96e-07
    """
    looks = math.ceil(spec.statistics.horizon / spec.check_interval)
    return HARD_LIMIT_ALPHA / looks


def hard_limit_finding(ctx: EvaluationContext, metric: Metric) -> MetricFinding | None:
    """Is the canary, in the stage in progress, proven beyond `metric.hard_limit`? (None without a limit.)

    A one-sided exact test of H0 "the canary is at the limit or better" at `hard_limit_level`: for a rate,
    the binomial tail at the limit (``scipy.special.bdtrc``/``bdtr``, the same as the Clopper-Pearson bound
    lying past the limit); for a mean, a one-sample t-test (``scipy.special.stdtr``). `pvalue` is that tail,
    `estimate` the canary's observed value. (``scipy.special``, not ``scipy.stats``: the latter adds ~0.8 s
    to the significance check's cold start.)
    """
    if metric.hard_limit is None:
        return None
    limit = metric.hard_limit
    n_control, n_canary = ctx.current_n(metric.name)
    canary = ctx.arm(metric.name, ctx.current.index, Variant.CANARY)
    level = hard_limit_level(ctx.spec)
    what = "mean" if metric.kind is MetricKind.MEAN else "rate"
    lower = metric.direction is Direction.LOWER_IS_BETTER
    test = "t" if metric.kind is MetricKind.MEAN else "binomial"
    method = (
        f"hard limit: exact one-sided {test} test of the canary's {what} in {ctx.stage_name} "
        f"{'above' if lower else 'below'} the limit, at {HARD_LIMIT_ALPHA:g} over the horizon's looks"
    )
    if canary is None or canary.n < HARD_LIMIT_MIN_UNITS:
        return MetricFinding(
            metric.name, None, method, None, None, None, None, n_control, n_canary, limit,
            Verdict.INSUFFICIENT, alpha=level,
        )  # fmt: skip
    if isinstance(canary, ProportionAggregate):
        k, n = canary.successes, canary.n
        # bdtrc(k - 1, n, p) = P(X >= k), bdtr(k, n, p) = P(X <= k) for X ~ Bin(n, p).
        pvalue = float(bdtrc(k - 1, n, limit) if lower else bdtr(k, n, limit))
    else:
        standard_error = canary.sd / math.sqrt(canary.n)
        if standard_error == 0:
            pvalue = 0.0 if (canary.mean > limit if lower else canary.mean < limit) else 1.0
        else:
            t = (canary.mean - limit) / standard_error
            pvalue = float(stdtr(canary.n - 1, -t) if lower else stdtr(canary.n - 1, t))
    verdict = Verdict.HARD_LIMIT_BREACHED if pvalue <= level else Verdict.WITHIN_HARD_LIMIT
    return MetricFinding(
        metric.name, None, method, arm_value(canary), None, None, pvalue, n_control, n_canary, limit, verdict,
        alpha=level,
    )  # fmt: skip


def _harm_alternative(metric: Metric) -> str:
    return "greater" if metric.direction is Direction.LOWER_IS_BETTER else "less"


def sequential_finding(
    ctx: EvaluationContext,
    metric: Metric,
    test: str,
    *,
    alpha: float,
    slice_: str | None = None,
    estimate: StratifiedEstimate | None = None,
) -> MetricFinding:
    """One anytime-valid test of `metric` on the stage-stratified difference.

    Parameters
    ----------
    test : {'harm', 'non_inferiority', 'two_sided'}
        'harm': H0 "the canary is no worse" (diff <= 0 when lower is better), rejected -> HARM.
        'non_inferiority': H0 "the canary is worse by the margin or more", rejected -> NON_INFERIOR.
        'two_sided': H0 diff = 0, with the two-sided confidence sequence; the verdict is REPORTED (the
        caller interprets it).
    alpha : float
        The level this test is run at (a share of the spec's alpha where several tests can trigger one
        action).
    estimate : StratifiedEstimate, optional
        Reuse an estimate already computed for this metric and slice, with the variance this test needs
        (``stratified_difference(pairs, null)``: at the test's null for 'harm' and 'non_inferiority').
    """
    lower_is_better = metric.direction is Direction.LOWER_IS_BETTER
    if test == "harm":
        alternative, null, label = _harm_alternative(metric), 0.0, "harm"
    elif test == "non_inferiority":
        assert metric.margin is not None, "non-inferiority needs a margin"
        margin = metric.margin
        alternative, null = ("less", margin) if lower_is_better else ("greater", -margin)
        label = "non-inferiority"
    else:
        alternative, null, label = "two-sided", 0.0, "difference"
    if estimate is None:
        # a one-sided test is judged with the variance under its null; the two-sided interval with the one
        # at the observed rates (it is read at every value, not only at 0)
        at = None if test == "two_sided" else null
        estimate = stratified_difference(ctx.pairs(metric.name, slice_), at)
    if estimate is None:
        n_control, n_canary = ctx.current_n(metric.name, slice_)
        return MetricFinding(
            metric.name, slice_, f"{label}: no stage with data in both arms yet", None, None, None, None,
            n_control, n_canary, null, Verdict.INSUFFICIENT, alpha,
        )  # fmt: skip
    tau2 = tau2_for(ctx.spec, metric, test, alpha)
    result = msprt_normal(
        estimate.estimate, estimate.variance, tau2=tau2, alpha=alpha, alternative=alternative, null=null
    )
    rejected = result.pvalue <= alpha
    if test == "harm":
        verdict = Verdict.HARM if rejected else Verdict.NO_HARM_PROVEN
    elif test == "non_inferiority":
        verdict = Verdict.NON_INFERIOR if rejected else Verdict.NOT_YET_NON_INFERIOR
    else:
        verdict = Verdict.REPORTED
    stages = "1 stage" if estimate.strata == 1 else f"{estimate.strata} stages, inverse-variance weighted"
    return MetricFinding(
        metric=metric.name,
        slice=slice_,
        method=f"{label}: {result.method}, canary − control within stages ({stages})",
        estimate=estimate.estimate,
        ci_low=_bounded(result.ci_low),
        ci_high=_bounded(result.ci_high),
        pvalue=result.pvalue,
        n_control=estimate.n_control,
        n_canary=estimate.n_canary,
        threshold=null,
        verdict=verdict,
        alpha=alpha,
    )


def bh_adjust(findings: Sequence[MetricFinding], q: float) -> tuple[list[MetricFinding], list[bool]]:
    """Benjamini-Hochberg across `findings` (those with a p-value): adjusted p-values filled in, and which
    are rejected at `q`. Findings without a p-value are returned unchanged and never rejected."""
    tested = [i for i, f in enumerate(findings) if f.pvalue is not None]
    out = list(findings)
    rejected = [False] * len(findings)
    if not tested:
        return out, rejected
    result = adjust_pvalues([findings[i].pvalue or 0.0 for i in tested], method="bh", alpha=q)
    for i, adjusted, reject in zip(tested, result.adjusted, result.rejected, strict=True):
        out[i] = _with_adjusted(findings[i], adjusted)
        rejected[i] = reject
    return out, rejected


def _with_adjusted(finding: MetricFinding, adjusted: float) -> MetricFinding:
    return MetricFinding(
        finding.metric, finding.slice, finding.method + "; BH-adjusted", finding.estimate, finding.ci_low,
        finding.ci_high, finding.pvalue, finding.n_control, finding.n_canary, finding.threshold,
        finding.verdict, finding.alpha, adjusted,
    )  # fmt: skip


def _assignment_counts(ctx: EvaluationContext) -> tuple[list[tuple[int, int, int]], str]:
    """(stage index, control units, canary units) per recorded stage for the SRM check, and what was counted.

    New assignments per variant when the data layer has them (they follow the weights in force even with
    sticky users); otherwise the units of the first evaluated metric (in spec order) that has data, which
    sticky returning users skew after every ramp.
    """
    assignments = ctx.observations.assignments
    if assignments:
        counts = [
            (
                r.index,
                assignments.get((r.index, Variant.CONTROL), 0),
                assignments.get((r.index, Variant.CANARY), 0),
            )
            for r in ctx.stages
        ]
        return counts, "new assignments per variant"
    for metric in ctx.metrics:
        if any(s is None for (_, _, s) in ctx.cells[metric.name]):
            counts = [(r.index, *_units(ctx, metric.name, r.index)) for r in ctx.stages]
            return counts, (
                f"units of {metric.name} (fallback: no new-assignment counts, so users returning to the "
                "variant of their stickiness cookie can look like a mismatch after a ramp)"
            )
    return [], ""


def _units(ctx: EvaluationContext, metric: str, stage: int) -> tuple[int, int]:
    control = ctx.arm(metric, stage, Variant.CONTROL)
    canary = ctx.arm(metric, stage, Variant.CANARY)
    return (control.n if control else 0, canary.n if canary else 0)


def srm_finding(ctx: EvaluationContext) -> MetricFinding | None:
    """Sample-ratio mismatch against the weights in force during each stage; None without any traffic."""
    by_stage = {r.index: r for r in ctx.stages}
    counts, counted = _assignment_counts(ctx)
    stages = [
        (
            (control, canary),
            (by_stage[index].weights[Variant.CONTROL], by_stage[index].weights[Variant.CANARY]),
        )
        for index, control, canary in counts
        if control + canary > 0
    ]
    if not stages:
        return None
    threshold = ctx.spec.statistics.srm_pvalue
    # anytime-valid: the check looks every few minutes for days, and a chi-square repeated at every look
    # held a healthy 95/5 split within 7 days in 2.9% of rollouts at p < 0.001 (make bench, rare events)
    result = sequential_srm_test(stages, alpha=threshold)
    n_control = sum(obs[0] for obs, _ in stages)
    n_canary = sum(obs[1] for obs, _ in stages)
    # estimate: observed canary share minus the share the weights imply, over the stages
    expected_share = result.expected[1] / (result.expected[0] + result.expected[1])
    observed_share = n_canary / (n_control + n_canary)
    return MetricFinding(
        metric=SRM_FINDING,
        slice=None,
        method=(
            f"{result.method}, counting {counted}; estimate: canary share observed − expected over "
            f"{len(stages)} stage(s)"
        ),
        estimate=observed_share - expected_share,
        ci_low=None,
        ci_high=None,
        pvalue=result.pvalue,
        n_control=n_control,
        n_canary=n_canary,
        threshold=threshold,
        verdict=Verdict.SRM if result.pvalue <= threshold else Verdict.SRM_OK,
    )


def freshness_findings(ctx: EvaluationContext, metrics: Sequence[Metric]) -> list[MetricFinding]:
    """MISSING / LATE findings for `metrics` (and their critical slices); empty when all data is fresh.

    Missing: no datapoint timestamp at all, or no units in an arm of the stage in progress. Late: no datapoint
    for more than `LATE_AFTER_INTERVALS` check intervals (`Observations.latest` is older than that).
    """
    out: list[MetricFinding] = []
    late_after = LATE_AFTER_INTERVALS * ctx.spec.check_interval
    for metric in metrics:
        n_control, n_canary = ctx.current_n(metric.name)
        latest = ctx.observations.latest.get(metric.name)
        if latest is None or n_control == 0 or n_canary == 0:
            detail = "no datapoint at all" if latest is None else f"no units in an arm of {ctx.stage_name}"
            out.append(
                _data_finding(
                    metric, None, f"missing data: {detail}", n_control, n_canary, None, Verdict.MISSING
                )
            )
            continue
        age = (ctx.now - latest).total_seconds()
        if age > late_after:
            out.append(
                _data_finding(
                    metric,
                    None,
                    f"late data: no datapoint since {latest.isoformat()}",
                    n_control,
                    n_canary,
                    age,
                    Verdict.LATE,
                    threshold=float(late_after),
                )
            )
        for slice_ in metric.critical_slices:
            slice_control, slice_canary = ctx.current_n(metric.name, slice_)
            if slice_control == 0 or slice_canary == 0:
                out.append(
                    _data_finding(
                        metric,
                        slice_,
                        f"missing data: critical slice has no units in an arm of {ctx.stage_name}",
                        slice_control,
                        slice_canary,
                        None,
                        Verdict.MISSING,
                    )
                )
    return out


def _data_finding(
    metric: Metric,
    slice_: str | None,
    method: str,
    n_control: int,
    n_canary: int,
    age: float | None,
    verdict: Verdict,
    *,
    threshold: float | None = None,
) -> MetricFinding:
    # estimate: seconds without a datapoint (late data); threshold: the age that counts as late
    return MetricFinding(
        metric.name, slice_, method, age, None, None, None, n_control, n_canary, threshold, verdict
    )
