"""canarywise's own decision engine on the benchmark's streams: end to end through ``decide``, and vectorised.

``decide`` costs about a millisecond a call, and a week of 5-minute looks is 2,016 calls per simulated
rollout: thousands of rollouts per scenario would take hours. So there are two paths:

- **end to end** (`first_decision`): for one replicate, build the real ``Observations`` and ``StageRecord``
  history at every look and call ``canarywise.decision.engine.decide``; stop at the first decision of the
  kinds asked for. Run on a subset of replicates.
- **vectorised** (`EngineHarmTest`, `EnginePromoteTest`): the same computation on all replicates and looks at
  once, built from the engine's own pieces: its alpha share per metric (``decision.safety.harm_alpha``),
  its mixing variance (``decision.evidence.tau2_for``), its stage-stratified estimate (the
  inverse-variance weighting of ``decision.estimates.stratified_difference`` with its variances, the larger
  of the Agresti-Caffo one and the one at the test's null, re-written with numpy), and the rejection region
  of ``stats.sequential.msprt_normal`` (tabulated
  from the function itself, ``bench.methods.MsprtBoundary``).

``bench.decision_quality`` runs both on the same subset and reports whether they agree look for look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from bench.methods import NEVER, MsprtBoundary, first_true
from bench.scenarios import FloatArray, IntArray, Schedule, Streams
from canarywise.decision.engine import decide
from canarywise.decision.evidence import metric_mde, tau2_for
from canarywise.decision.models import (
    Aggregate,
    Decision,
    DecisionKind,
    MeanAggregate,
    Observations,
    ProportionAggregate,
    StageRecord,
    Variant,
)
from canarywise.decision.safety import harm_alpha
from canarywise.simulation.arrays import stage_variance
from canarywise.spec import MetricRole, RolloutSpec, parse_spec

BoolArray = np.ndarray
# The simulated rollout starts at 10:00 UTC on a Monday (matches bench.scenarios.START_HOUR).
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


# --- the specs the benchmark runs ---------------------------------------------------------------------------


def single_metric_spec(spec: RolloutSpec, metric: str, *, horizon_seconds: int) -> RolloutSpec:
    """``spec`` with only ``metric`` (no slices), its last stage kept open to the horizon.

    The harm test of one safety metric, alone, gets the spec's whole alpha: this isolates the efficiency of
    the sequential test from the split of alpha across metrics (measured separately on the full spec).
    """
    data = spec.model_dump(mode="json")
    data["metrics"] = [
        {**m, "slice_dimension": None, "critical_slices": []} for m in data["metrics"] if m["name"] == metric
    ]
    data["stages"][-1]["max_duration"] = max(data["stages"][-1]["max_duration"], horizon_seconds)
    return parse_spec(data, source="benchmark spec")


def open_ended_spec(spec: RolloutSpec, *, horizon_seconds: int) -> RolloutSpec:
    """``spec`` as is, its last stage kept open to the horizon (so every look tests, none is INCONCLUSIVE)."""
    data = spec.model_dump(mode="json")
    data["stages"][-1]["max_duration"] = max(data["stages"][-1]["max_duration"], horizon_seconds)
    return parse_spec(data, source="benchmark spec")


def ab_spec(spec: RolloutSpec, *, percent: float, min_duration: int, horizon_seconds: int) -> RolloutSpec:
    """An A/B test of ``spec``'s primary metric alone: one stage at ``percent`` for the whole horizon."""
    data = spec.model_dump(mode="json")
    data["mode"] = "ab"
    data["metrics"] = [m for m in data["metrics"] if m["role"] == MetricRole.PRIMARY.value]
    data["stages"] = [{"percent": percent, "min_duration": min_duration, "max_duration": horizon_seconds}]
    data["statistics"]["horizon"] = horizon_seconds
    return parse_spec(data, source="benchmark A/B spec")


# --- streams shaped the way the engine reads them: per stage, per variant -----------------------------------


def within_stage_cumulative(streams: Streams, schedule: Schedule) -> Streams:
    """Running totals that restart at every stage: what the engine's per-stage aggregates hold per look."""
    out = []
    for per_tick in (streams.n_control, streams.x_control, streams.n_canary, streams.x_canary):
        running = np.cumsum(per_tick, axis=1)
        before = np.zeros_like(running)
        for start in schedule.stage_starts[1:]:
            before[:, start:] = running[:, start - 1 : start]
        out.append(running - before)
    return Streams(*out)


def _stage_bounds(schedule: Schedule) -> list[tuple[int, int]]:
    ends = [*schedule.stage_starts[1:], schedule.ticks]
    return list(zip(schedule.stage_starts, ends, strict=True))


@dataclass(frozen=True)
class StratifiedArrays:
    """The engine's stage-stratified estimate after every look, shape (R, T)."""

    estimate: FloatArray
    variance: FloatArray
    z: FloatArray


def stratified_estimates(within: Streams, schedule: Schedule, null: float | None = None) -> StratifiedArrays:
    """``decision.estimates.stratified_difference(pairs, null)`` over the stages started by each look,
    vectorised.

    Stage s contributes from its first look on; after it ends, with its final totals. Within a stage the
    difference is canary - control with `stage_variance`; stages combine by inverse variance.
    """
    shape = within.n_control.shape
    weight_sum = np.zeros(shape)
    weighted = np.zeros(shape)
    looks = np.arange(schedule.ticks)
    for start, end in _stage_bounds(schedule):
        index = np.minimum(looks, end - 1)
        active = looks >= start
        n_c = within.n_control[:, index].astype(np.float64)
        x_c = within.x_control[:, index].astype(np.float64)
        n_t = within.n_canary[:, index].astype(np.float64)
        x_t = within.x_canary[:, index].astype(np.float64)
        ok = active & (n_c > 0) & (n_t > 0)
        variance = stage_variance(x_c, n_c, x_t, n_t, null)
        with np.errstate(divide="ignore", invalid="ignore"):
            diff = x_t / n_t - x_c / n_c
            weight = np.where(ok, 1.0 / variance, 0.0)
        weight_sum += weight
        weighted += np.where(ok, weight * diff, 0.0)
    has = weight_sum > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.where(has, weighted / weight_sum, 0.0)
        variance = np.where(has, 1.0 / weight_sum, 0.0)
        z = np.where(has, estimate / np.sqrt(variance), 0.0)
    return StratifiedArrays(estimate, variance, z)


@dataclass(frozen=True)
class EngineHarmTest:
    """The engine's overall harm test of one proportion metric (lower is better), on every look at once."""

    metric: str
    alpha: float
    tau2: float
    boundary: MsprtBoundary = field(repr=False)

    @classmethod
    def from_spec(cls, spec: RolloutSpec, metric: str) -> EngineHarmTest:
        alpha = harm_alpha(spec, spec.metric(metric))
        tau2 = tau2_for(spec, spec.metric(metric), "harm", alpha)
        return cls(metric, alpha, tau2, MsprtBoundary.tabulate(alpha=alpha, alternative="greater"))

    def rejects(self, strat: StratifiedArrays) -> BoolArray:
        valid = strat.variance > 0
        ratio = np.where(valid, self.tau2 / np.where(valid, strat.variance, 1.0), 1.0)
        return valid & (strat.z >= self.boundary(ratio))

    def rollback_looks(self, streams: Streams, schedule: Schedule) -> IntArray:
        return first_true(
            self.rejects(stratified_estimates(within_stage_cumulative(streams, schedule), schedule, 0.0))
        )


@dataclass(frozen=True)
class PromoteOutcome:
    look: IntArray  # first PROMOTE look, NEVER if none
    ci_low: FloatArray  # the reported confidence sequence at that look (nan if never)
    ci_high: FloatArray
    covers_every_look: BoolArray  # the sequence covered the true effect at every look of the horizon


@dataclass(frozen=True)
class EnginePromoteTest:
    """The engine's A/B rule for a higher-is-better primary metric in one stage: PROMOTE at the first look
    where the two-sided confidence sequence lies above 0, the estimate is at least the MDE, the stage has run
    its minimum duration and each arm has the minimum sample."""

    alpha: float
    tau2: float
    mde: float
    min_looks: int
    min_samples: int
    boundary: MsprtBoundary = field(repr=False)

    @classmethod
    def from_spec(cls, spec: RolloutSpec) -> EnginePromoteTest:
        (primary,) = [m for m in spec.metrics if m.role is MetricRole.PRIMARY]
        alpha = spec.statistics.alpha
        return cls(
            alpha,
            tau2_for(spec, primary, "two_sided", alpha),
            metric_mde(spec, primary),
            spec.stages[0].min_duration // spec.check_interval,
            spec.statistics.min_samples_per_arm,
            MsprtBoundary.tabulate(alpha=alpha, alternative="two-sided"),
        )

    def outcome(self, streams: Streams, schedule: Schedule, true_effect: float) -> PromoteOutcome:
        within = within_stage_cumulative(streams, schedule)
        strat = stratified_estimates(within, schedule)
        valid = strat.variance > 0
        ratio = np.where(valid, self.tau2 / np.where(valid, strat.variance, 1.0), 1.0)
        radius = np.where(valid, self.boundary(ratio) * np.sqrt(strat.variance), np.inf)
        low, high = strat.estimate - radius, strat.estimate + radius
        elapsed_ok = np.arange(schedule.ticks) + 1 >= self.min_looks
        samples_ok = np.minimum(within.n_control, within.n_canary) >= self.min_samples
        promote = valid & (low > 0) & (strat.estimate >= self.mde) & elapsed_ok & samples_ok
        look = first_true(promote)
        rows = np.arange(look.size)
        at = np.where(look == NEVER, 0, look)
        hit = look != NEVER
        covers = ((low <= true_effect) & (true_effect <= high)) | ~valid
        return PromoteOutcome(
            look,
            np.where(hit, low[rows, at], np.nan),
            np.where(hit, high[rows, at], np.nan),
            covers.all(axis=1),
        )


# --- end to end: the real `decide`, look by look ------------------------------------------------------------


@dataclass(frozen=True)
class MetricStream:
    """One metric of one replicate, per tick: a proportion (n, events) or a mean (n, sum, sum of squares)
    for each variant, optionally per slice."""

    n: dict[Variant, IntArray]
    events: dict[Variant, FloatArray]  # successes, or the sum of values
    squares: dict[Variant, FloatArray] | None = None  # sum of squares (means only)
    slices: dict[str, MetricStream] | None = None
    _running: dict[str, dict[Variant, FloatArray]] = field(default_factory=dict, repr=False, compare=False)

    def total(self, what: str, variant: Variant, lo: int, hi: int) -> float:
        """Sum of ticks lo..hi-1 of ``n``, ``events`` or ``squares``, from running totals (O(1) per look)."""
        if what not in self._running:
            sources: dict[str, Any] = {"n": self.n, "events": self.events, "squares": self.squares}
            source = sources[what]
            assert source is not None
            self._running[what] = {
                v: np.concatenate([[0.0], np.cumsum(np.asarray(a, dtype=np.float64))])
                for v, a in source.items()
            }
        running = self._running[what][variant]
        return float(running[hi] - running[lo])


def proportion_stream(streams: Streams, row: int) -> MetricStream:
    return MetricStream(
        n={Variant.CONTROL: streams.n_control[row], Variant.CANARY: streams.n_canary[row]},
        events={
            Variant.CONTROL: streams.x_control[row].astype(np.float64),
            Variant.CANARY: streams.x_canary[row].astype(np.float64),
        },
    )


def _stage_records(schedule: Schedule, look: int) -> list[StageRecord]:
    records = []
    for i, (start, end) in enumerate(_stage_bounds(schedule)):
        if start > look:
            break
        percent = schedule.percents[i]
        ended = T0 + timedelta(seconds=end * schedule.tick_seconds) if end <= look else None
        records.append(
            StageRecord(
                i,
                percent,
                {Variant.CONTROL: 100.0 - percent, Variant.CANARY: percent},
                T0 + timedelta(seconds=start * schedule.tick_seconds),
                ended,
            )
        )
    return records


def _aggregate(stream: MetricStream, variant: Variant, lo: int, hi: int) -> Aggregate:
    n = round(stream.total("n", variant, lo, hi))
    total = stream.total("events", variant, lo, hi)
    if stream.squares is None:
        return ProportionAggregate(n, round(total))
    return MeanAggregate(n, total, stream.total("squares", variant, lo, hi))


def observations_at(
    metrics: dict[str, MetricStream], schedule: Schedule, look: int, now: datetime
) -> Observations:
    """What the data layer would hand ``decide`` after ``look``: per-stage aggregates up to now."""
    aggregates: dict[tuple[str, int, Variant | str, str | None], Aggregate] = {}
    for i, (start, end) in enumerate(_stage_bounds(schedule)):
        if start > look:
            break
        hi = min(end, look + 1)
        for name, stream in metrics.items():
            for variant in Variant:
                aggregates[(name, i, variant, None)] = _aggregate(stream, variant, start, hi)
                for slice_, part in (stream.slices or {}).items():
                    aggregates[(name, i, variant, slice_)] = _aggregate(part, variant, start, hi)
    return Observations.build(aggregates, latest=dict.fromkeys(metrics, now))


def first_decision(
    spec: RolloutSpec,
    schedule: Schedule,
    metrics: dict[str, MetricStream],
    kinds: Sequence[DecisionKind],
) -> tuple[int, Decision | None]:
    """Call ``decide`` at every look until it returns one of ``kinds``: (that look, the decision) or
    (NEVER, None)."""
    wanted = set(kinds)
    for look in range(schedule.ticks):
        now = T0 + timedelta(seconds=(look + 1) * schedule.tick_seconds)
        decision = decide(
            spec, _stage_records(schedule, look), observations_at(metrics, schedule, look, now), now
        )
        if decision.kind in wanted:
            return look, decision
    return NEVER, None
