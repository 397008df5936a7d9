"""The shadow gate: may the candidate, which has only answered copies of live requests, meet real users?

Each look gets the paired aggregates since the shadow phase started (per metric, overall and per slice) and
returns a `Decision`:

- REJECTED: harm proven on a veto metric over all requests, by an anytime-valid one-sided test at
  ``alpha / (number of veto metrics)`` (Bonferroni: the candidate is rejected on the first veto metric that
  proves harm, so the false-reject rate over all of them stays <= alpha). Acted on at any look, with any
  amount of data: rejecting moves no traffic.
- HOLD: a veto metric has no paired data or none lately (the service stopped mirroring?), a slice of a veto
  metric shows harm after Benjamini-Hochberg across its slices (a regression in one intent blocks the ladder
  but a person decides), or the phase reached its maximum duration without a gate.
- READY_FOR_CANARY: at least ``min_pairs`` pairs and ``min_duration`` behind, every veto metric proven
  non-inferior within its margin (each at ``alpha``: all must pass, an intersection-union test needs no
  correction), and the pre-registered quality hypothesis shown when the spec has one.
- CONTINUE otherwise.

Binary metrics (proportion, tail_exceedance) arrive as the four cells of `PairedCells` (which side had the
outcome 1); their harm test is the exact `sequential_mcnemar`, their non-inferiority test the paired mSPRT on
the per-request difference with the margin as the null. Numeric metrics (mean) arrive as the n / sum / sum
of squares of the per-request difference plus each side's own values; both tests are the paired mSPRT. The
mixing variance is the metric's margin squared (its ``mde`` squared for the quality metric): the mixture is
centred on the effects the spec says matter (`canarywise.stats.sequential.mixing_variance`, Notes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from canarywise.decision.models import Decision, DecisionKind, MetricFinding, Verdict
from canarywise.spec import Direction, Metric, RolloutSpec, ShadowPhase
from canarywise.stats.means import SummaryStats
from canarywise.stats.multiple import adjust_pvalues
from canarywise.stats.paired_sequential import PairedCells, paired_msprt, sequential_mcnemar
from canarywise.stats.sequential import SequentialResult

__all__ = ["SHADOW_STAGE", "PairedNumeric", "ShadowObservations", "decide_shadow"]

# The stage index a shadow decision is stored under: before the ladder's first stage (0).
SHADOW_STAGE = -1


@dataclass(frozen=True)
class PairedNumeric:
    """A numeric metric on paired requests: the per-request difference (candidate − current) and each side."""

    differences: SummaryStats
    current: SummaryStats
    candidate: SummaryStats

    @property
    def n(self) -> int:
        return self.differences.n


PairedAggregate = PairedCells | PairedNumeric


@dataclass(frozen=True)
class ShadowObservations:
    """Paired aggregates since the phase started, per (metric, slice) (slice None = all requests), and per
    metric the time of its newest datapoint."""

    aggregates: Mapping[tuple[str, str | None], PairedAggregate]
    latest: Mapping[str, datetime] = field(default_factory=dict)

    def slices(self, metric: str) -> list[str]:
        return sorted(s for m, s in self.aggregates if m == metric and s is not None)


def _worse_side(metric: Metric) -> str:
    """The alternative under which the candidate is worse: its difference is larger for lower-is-better."""
    return "greater" if metric.direction is Direction.LOWER_IS_BETTER else "less"


def _better_side(metric: Metric) -> str:
    return "less" if metric.direction is Direction.LOWER_IS_BETTER else "greater"


def _differences(agg: PairedAggregate) -> SummaryStats:
    return agg.differences() if isinstance(agg, PairedCells) else agg.differences


def _harm(metric: Metric, agg: PairedAggregate, alpha: float) -> SequentialResult:
    if isinstance(agg, PairedCells):
        return sequential_mcnemar(
            agg.current_only, agg.candidate_only, alpha=alpha, alternative=_worse_side(metric)
        )
    assert metric.margin is not None
    return paired_msprt(agg.differences, tau2=metric.margin**2, alpha=alpha, alternative=_worse_side(metric))


def _non_inferiority(metric: Metric, agg: PairedAggregate, alpha: float) -> SequentialResult:
    assert metric.margin is not None  # the spec requires a margin on every veto metric
    worse_by_margin = metric.margin if metric.direction is Direction.LOWER_IS_BETTER else -metric.margin
    return paired_msprt(
        _differences(agg),
        tau2=metric.margin**2,
        alpha=alpha,
        alternative=_better_side(metric),
        null=worse_by_margin,
    )


def _quality(metric: Metric, agg: PairedAggregate, alpha: float, mde: float) -> SequentialResult:
    if isinstance(agg, PairedCells):
        return sequential_mcnemar(
            agg.current_only, agg.candidate_only, alpha=alpha, alternative=_better_side(metric)
        )
    return paired_msprt(agg.differences, tau2=mde**2, alpha=alpha, alternative=_better_side(metric))


def _finding(
    metric: str,
    slice_: str | None,
    agg: PairedAggregate,
    r: SequentialResult,
    verdict: Verdict,
    alpha: float,
    threshold: float | None,
    adjusted: float | None = None,
) -> MetricFinding:
    def bound(value: float) -> float | None:
        return value if math.isfinite(value) else None

    diff = _differences(agg).mean
    n = agg.n
    return MetricFinding(
        metric=metric,
        slice=slice_,
        method=r.method,
        estimate=diff if math.isfinite(diff) else None,
        ci_low=bound(r.ci_low),
        ci_high=bound(r.ci_high),
        pvalue=r.pvalue,
        n_control=n,
        n_canary=n,
        threshold=threshold,
        verdict=verdict,
        alpha=alpha,
        adjusted_pvalue=adjusted,
    )


def _elapsed(started_at: datetime, now: datetime) -> float:
    return (now - started_at).total_seconds()


def decide_shadow(
    spec: RolloutSpec, started_at: datetime, observations: ShadowObservations, now: datetime
) -> Decision:
    """The shadow gate's decision at one look.

    Parameters
    ----------
    spec : RolloutSpec
        Must have a ``shadow`` phase.
    started_at, now : datetime
        When the shadow phase started, and this look (timezone-aware).
    observations : ShadowObservations
        Paired aggregates since `started_at`.

    Returns
    -------
    Decision
        Stage index `SHADOW_STAGE`; one finding per test (harm and non-inferiority per veto metric, quality,
        slice harm with its BH-adjusted p-value), each with its estimate (candidate − current), confidence
        sequence, always-valid p-value, pairs and threshold.

    Example
    -------
    >>> from datetime import UTC, datetime, timedelta
    >>> from canarywise.spec import load_spec
    >>> spec = load_spec("lambdas/canarywise/demo/specs/mangaassist-shadow.yaml")
    >>> t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    >>> obs = ShadowObservations({("guardrail_pass_rate", None): PairedCells(9650, 150, 70, 130)})
    >>> decide_shadow(spec, t0, obs, t0 + timedelta(hours=2)).kind
    <DecisionKind.REJECTED: 'REJECTED'>
    """
    shadow = spec.shadow
    if shadow is None:
        raise ValueError(f"spec {spec.service!r} has no shadow phase")
    alpha = spec.statistics.alpha
    harm_alpha = alpha / len(shadow.veto)
    findings: list[MetricFinding] = []
    rejected: list[str] = []
    blocked: list[str] = []
    not_yet: list[str] = []
    for name in shadow.veto:
        metric = spec.metric(name)
        agg = observations.aggregates.get((name, None))
        if agg is None or agg.n == 0:
            blocked.append(f"{name}: no paired data yet")
            continue
        harm = _harm(metric, agg, harm_alpha)
        harmed = harm.pvalue <= harm_alpha
        findings.append(
            _finding(
                name, None, agg, harm, Verdict.HARM if harmed else Verdict.NO_HARM_PROVEN, harm_alpha, 0.0
            )
        )
        if harmed:
            rejected.append(
                f"{name}: harm proven, {_describe(metric, agg)} (always-valid p {_p(harm.pvalue)})"
            )
        ni = _non_inferiority(metric, agg, alpha)
        shown = ni.pvalue <= alpha
        verdict = Verdict.NON_INFERIOR if shown else Verdict.NOT_YET_NON_INFERIOR
        findings.append(_finding(name, None, agg, ni, verdict, alpha, metric.margin))
        if not shown:
            not_yet.append(f"{name} not yet shown within its margin {metric.margin:g}")
        blocked += _slice_harm(metric, observations, alpha, findings)
        blocked += _freshness(spec, name, observations, now)
    if shadow.quality:
        not_yet += _quality_hypothesis(spec, shadow, observations, alpha, findings)
    kind, reasons = _rule(shadow, observations, started_at, now, rejected, blocked, not_yet)
    return Decision(kind, tuple(reasons), tuple(findings), SHADOW_STAGE, now)


def _rule(
    shadow: ShadowPhase,
    observations: ShadowObservations,
    started_at: datetime,
    now: datetime,
    rejected: list[str],
    blocked: list[str],
    not_yet: list[str],
) -> tuple[DecisionKind, list[str]]:
    if rejected:
        return DecisionKind.REJECTED, [*rejected, "the candidate never reached a user"]
    if blocked:
        return DecisionKind.HOLD, blocked
    pairs = min(observations.aggregates[(name, None)].n for name in shadow.veto)
    elapsed = _elapsed(started_at, now)
    waiting = []
    if pairs < shadow.min_pairs:
        waiting.append(f"{pairs:,} paired requests of the {shadow.min_pairs:,} required")
    if elapsed < shadow.min_duration:
        waiting.append(f"{elapsed / 3600:.1f} h of the {shadow.min_duration / 3600:g} h minimum")
    if not waiting and not not_yet:
        return DecisionKind.READY_FOR_CANARY, [
            f"non-inferior on every veto metric ({', '.join(shadow.veto)}) over {pairs:,} paired requests"
            + (f", {shadow.quality} better" if shadow.quality else "")
        ]
    if elapsed >= shadow.max_duration:
        return DecisionKind.HOLD, [
            f"the shadow phase reached its maximum {shadow.max_duration / 3600:g} h without a gate: "
            + "; ".join(waiting + not_yet)
        ]
    return DecisionKind.CONTINUE, waiting + not_yet


def _p(pvalue: float) -> str:
    return f"{pvalue:.2g}" if pvalue > 0 else "< 1e-300"


def _describe(metric: Metric, agg: PairedAggregate) -> str:
    if isinstance(agg, PairedCells):
        return f"{agg.current_rate:.2%} -> {agg.candidate_rate:.2%} on {agg.n:,} shared requests"
    return f"{agg.current.mean:.4g} -> {agg.candidate.mean:.4g} on {agg.n:,} shared requests"


def _slice_harm(
    metric: Metric, observations: ShadowObservations, alpha: float, findings: list[MetricFinding]
) -> list[str]:
    names = [s for s in observations.slices(metric.name) if observations.aggregates[(metric.name, s)].n > 0]
    if len(names) < 2:
        return []
    aggs = [observations.aggregates[(metric.name, s)] for s in names]
    results = [_harm(metric, agg, alpha) for agg in aggs]
    adjusted = adjust_pvalues([r.pvalue for r in results], method="bh", alpha=alpha).adjusted
    blocked = []
    for s, agg, r, q in zip(names, aggs, results, adjusted, strict=True):
        harmed = q <= alpha
        verdict = Verdict.HARM if harmed else Verdict.NO_HARM_PROVEN
        findings.append(_finding(metric.name, s, agg, r, verdict, alpha, 0.0, adjusted=q))
        if harmed:
            blocked.append(
                f"{metric.name} in slice {s}: harm proven after BH (q {q:.2g}), {_describe(metric, agg)}"
            )
    return blocked


def _freshness(spec: RolloutSpec, name: str, observations: ShadowObservations, now: datetime) -> list[str]:
    latest = observations.latest.get(name)
    if latest is None:
        return []
    age = _elapsed(latest, now)
    if age > 2 * spec.check_interval:
        return [f"{name}: no paired data for {age / 60:.0f} min (is the service still mirroring requests?)"]
    return []


def _quality_hypothesis(
    spec: RolloutSpec,
    shadow: ShadowPhase,
    observations: ShadowObservations,
    alpha: float,
    findings: list[MetricFinding],
) -> list[str]:
    assert shadow.quality is not None
    metric = spec.metric(shadow.quality)
    agg = observations.aggregates.get((metric.name, None))
    if agg is None or agg.n == 0:
        return [f"{metric.name} (the quality hypothesis): no paired data yet"]
    mde = metric.mde or spec.statistics.mde
    r = _quality(metric, agg, alpha, mde)
    shown = r.pvalue <= alpha
    verdict = Verdict.IMPROVEMENT if shown else Verdict.NOT_YET_IMPROVEMENT
    findings.append(_finding(metric.name, None, agg, r, verdict, alpha, mde))
    return [] if shown else [f"{metric.name} (the quality hypothesis) not yet shown better"]
