"""The shipped spec as a team would run it: every metric, the ladder driven by the engine's own decisions.

The rest of the benchmark holds the ladder fixed (each stage at its minimum duration) so every method sees the
same streams. A real rollout only moves on when ``decide`` says ADVANCE (every safety/guardrail metric proven
non-inferior to its margin, the minimum duration run, enough units in the stage, no sample-ratio mismatch),
and with ``inconclusive_policy: rollback`` a stage that reaches its maximum duration without meeting its gate
rolls the candidate back. So a good candidate can be rolled back in three ways: a harm test fires by chance, a
hard limit is breached by chance, or the gate is not met in time. This module measures all three.

``simulate`` plays ``replicates`` rollouts tick by tick (vectorised over the rollouts) of the shipped spec's
safety and guardrail metrics (the escalation rate split by intent), with the engine's rule re-written in
numpy from its own pieces: the alpha share of each test (``decision.safety.harm_alpha``), the mixing
variances (``decision.evidence.tau2_for``), the stage-stratified estimate with the variance of each test
(``bench.engine.stage_variance``: at 0 for harm, at the margin for non-inferiority), the always-valid
p-value of ``stats.sequential.msprt_normal`` (``mixture_pvalue``), Benjamini-Hochberg across the slices, the
hard-limit backstop (its exact binomial test at ``decision.evidence.hard_limit_level``:
``bench.hard_limit.exact_breach``), the anytime-valid sample-ratio check (``srm_holds``), and the canary
gate's precedence (ROLLBACK, then HOLD, then ADVANCE, then INCONCLUSIVE at the maximum duration). ``replay``
feeds the ticks of the first rollouts, as simulated, to ``canarywise.decision.engine.decide`` itself look by
look (with every metric of the spec, the non-blocking ones too) and reports whether its decisions are the same
at every look.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
from scipy.special import log_ndtr, xlogy

from bench.engine import T0, MetricStream, stage_variance
from bench.fullspec import BASELINES, INTENTS, mean_stream
from bench.hard_limit import exact_breach
from bench.methods import NEVER
from bench.scenarios import DAILY_SESSIONS, FloatArray, IntArray, Schedule, ladder_schedule
from canarywise.decision.context import evaluated_metrics
from canarywise.decision.engine import decide
from canarywise.decision.evidence import hard_limit_level, tau2_for
from canarywise.decision.models import (
    Aggregate,
    DecisionKind,
    MeanAggregate,
    Observations,
    ProportionAggregate,
    StageRecord,
    Variant,
)
from canarywise.decision.safety import harm_alpha
from canarywise.spec import Direction, MetricKind, MetricRole, RolloutSpec
from canarywise.stats.srm import srm_log_mixture, srm_mixing_variance

BoolArray = npt.NDArray[np.bool_]

# Per-look decision codes of the vectorised engine (the DecisionKind values it can take in canary mode).
KINDS = (
    DecisionKind.CONTINUE,
    DecisionKind.HOLD,
    DecisionKind.ADVANCE,
    DecisionKind.READY_FOR_APPROVAL,
    DecisionKind.ROLLBACK,
    DecisionKind.INCONCLUSIVE,
)
CONTINUE, HOLD, ADVANCE, READY, ROLLBACK, INCONCLUSIVE = range(len(KINDS))
# Why a rollout was rolled back (bit flags: one look can have several reasons).
CAUSE_HARM, CAUSE_SLICE, CAUSE_HARD_LIMIT = 1, 2, 4
_LOG2 = math.log(2.0)


def mixture_pvalue(z: FloatArray, ratio: FloatArray, alternative: str) -> FloatArray:
    """The always-valid p-value ``min(1, 1/Λ)`` of ``msprt_normal``, vectorised.

    With z = (estimate − null)/√V and r = τ²/V (``msprt_normal`` Notes): log Λ = −log(1 + r)/2 +
    r z²/(2(1 + r)), plus log 2Φ(±z √(r/(1 + r))) for the one-sided half-normal mixture.

    Example
    -------
    >>> round(float(mixture_pvalue(np.array(3.0), np.array(100.0), "greater")), 6)
    0.058448
    """
    log_lr = -0.5 * np.log1p(ratio) + ratio * z * z / (2.0 * (1.0 + ratio))
    if alternative != "two-sided":
        signed = z if alternative == "greater" else -z
        log_lr = log_lr + _LOG2 + log_ndtr(signed * np.sqrt(ratio / (1.0 + ratio)))
    return np.asarray(np.minimum(1.0, np.exp(-log_lr)), dtype=np.float64)


def bh_rejections(pvalues: FloatArray, valid: BoolArray, q: float) -> BoolArray:
    """Benjamini-Hochberg step-up at ``q`` along the last axis, over the ``valid`` entries only.

    Reject every p-value <= k* q / m, k* the largest k with the k-th smallest p-value <= k q / m, m the
    number of valid entries (what ``stats.multiple.adjust_pvalues(method="bh")`` rejects).
    """
    m = valid.sum(axis=-1, keepdims=True)
    ordered = np.sort(np.where(valid, pvalues, np.inf), axis=-1)
    k = np.arange(1, pvalues.shape[-1] + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        passes = (ordered <= k * q / m) & (k <= m)
        k_star = np.where(passes, k, 0).max(axis=-1, keepdims=True)
        return np.asarray(valid & (pvalues <= k_star * q / np.maximum(m, 1)), dtype=np.bool_)


@dataclass(frozen=True)
class Series:
    """One tested series: a safety/guardrail metric overall, or one slice of a sliced one."""

    metric: str
    slice: str | None
    baseline: float
    canary_rate: float
    alpha: float  # the harm test's level (for a slice: BH's q across its family)
    tau2_harm: float
    margin: float | None
    tau2_ni: float | None


@dataclass
class ShippedResult:
    """Per rollout: the final decision, its look, the rollback's causes, the looks at which each stage
    started; and the per-look decisions and ticks of the first rollouts, for ``replay``."""

    label: str
    outcome: IntArray
    look: IntArray
    causes: IntArray
    stage_starts: IntArray  # (replicates, stages), NEVER for a stage not reached
    seconds: float
    recorded: list[dict[str, np.ndarray]] = field(default_factory=list)

    @property
    def replicates(self) -> int:
        return int(self.outcome.size)


class ShippedWorld:
    """The shipped spec's veto metrics as tested series, and the rates each arm has."""

    def __init__(
        self,
        spec: RolloutSpec,
        *,
        baselines: dict[str, float | tuple[float, float]] | None = None,
        canary_rates: dict[str, float] | None = None,
        daily_sessions: float = DAILY_SESSIONS,
    ) -> None:
        self.spec = spec
        self.schedule = ladder_schedule(spec, daily_sessions=daily_sessions)
        self.baselines = {**BASELINES, **(baselines or {})}
        rates = canary_rates or {}
        veto = [m for m in evaluated_metrics(spec) if m.role in (MetricRole.SAFETY, MetricRole.GUARDRAIL)]
        self.series: list[Series] = []
        for metric in veto:
            if metric.kind is MetricKind.MEAN or metric.direction is not Direction.LOWER_IS_BETTER:
                raise ValueError(
                    f"the shipped-spec benchmark models lower-is-better rates, not {metric.name}"
                )
            base = self.baselines[metric.name]
            assert isinstance(base, float)
            alpha = harm_alpha(spec, metric)
            tau2_ni = (
                tau2_for(spec, metric, "non_inferiority", spec.statistics.alpha) if metric.margin else None
            )
            self.series.append(
                Series(metric.name, None, base, rates.get(metric.name, base), alpha,
                       tau2_for(spec, metric, "harm", alpha), metric.margin, tau2_ni)
            )  # fmt: skip
        self.overall = len(self.series)
        self.sliced = next((m for m in veto if m.slice_dimension), None)
        if self.sliced is not None:
            s = self.series[[x.metric for x in self.series].index(self.sliced.name)]
            for intent in INTENTS:
                self.series.append(Series(s.metric, intent, s.baseline, s.canary_rate, s.alpha, s.tau2_harm,
                                          None, None))  # fmt: skip
            self.critical = np.array(
                [x.slice in self.sliced.critical_slices for x in self.series[self.overall :]]
            )
        limits = [(i, m.hard_limit) for i, m in enumerate(veto) if m.hard_limit is not None]
        self.hard_limits = limits
        self.hard_limit_level = hard_limit_level(spec)  # the backstop's exact test, per look
        self.min_ticks = np.array([s.min_duration // spec.check_interval for s in spec.stages])
        self.max_ticks = np.array([s.max_duration // spec.check_interval for s in spec.stages])
        self.shares = np.array([s.percent / 100.0 for s in spec.stages])


def _stage_weights(
    nc: FloatArray, xc: FloatArray, nt: FloatArray, xt: FloatArray, null: FloatArray | float
) -> tuple[FloatArray, FloatArray]:
    """One stage's inverse-variance weight and weight x difference per series (0 without data in an arm):
    ``stage_difference`` with the variance of a test at ``null`` (``bench.engine.stage_variance``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (nc > 0) & (nt > 0)
        weight = np.where(ok, 1.0 / stage_variance(xc, nc, xt, nt, null), 0.0)
        return weight, np.where(ok, weight * (xt / nt - xc / nc), 0.0)


def srm_holds(
    canary: FloatArray, totals: FloatArray, shares: FloatArray, level: float
) -> npt.NDArray[np.bool_]:
    """``decision.evidence.srm_finding``'s verdict per row: ``stats.srm.sequential_srm_test`` p <= level, i.e.
    log Λ >= log(1/level). Λ is computed only where it can reach that: log Λ is at most the sum over stages of
    each stage's largest binomial log-likelihood ratio (the mixture never exceeds the best common tilt, nor
    that the best tilt per stage), X_s log(X_s/(N_s w_s)) + (N_s − X_s) log((N_s − X_s)/(N_s (1 − w_s)))."""
    threshold = math.log(1.0 / level)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = totals * shares
        rest = totals - canary
        bound = xlogy(canary, canary / expected) + xlogy(rest, rest / (totals - expected))
    bound = np.where(totals > 0, bound, 0.0).sum(axis=-1)
    out = np.zeros(canary.shape[0], dtype=np.bool_)
    rows = np.flatnonzero(bound >= threshold)
    if rows.size:
        log_lr = srm_log_mixture(canary[rows].sum(axis=-1), totals[rows], shares, srm_mixing_variance(level))
        out[rows] = log_lr >= threshold
    return out


def simulate(
    world: ShippedWorld, replicates: int, rng: np.random.Generator, *, label: str, record: int = 0
) -> ShippedResult:
    """Play ``replicates`` rollouts of the shipped spec, the ladder moved by the engine's decisions.

    Per rollout only the stage in progress changes from look to look: the closed stages enter the stratified
    estimate and the sample-ratio check through running sums fixed when the stage closed.
    """
    started = time.perf_counter()
    spec, sched, series = world.spec, world.schedule, world.series
    n_series, n_overall = len(series), world.overall
    rate = {
        Variant.CONTROL: np.array([s.baseline for s in series]),
        Variant.CANARY: np.array([s.canary_rate for s in series]),
    }
    alpha = np.array([s.alpha for s in series])
    tau2 = np.array([s.tau2_harm for s in series])
    ni = [j for j, s in enumerate(series) if s.margin is not None]
    margin = np.array([series[j].margin or 0.0 for j in ni])
    tau2_ni = np.array([series[j].tau2_ni or 0.0 for j in ni])
    intent_shares = np.array(list(INTENTS.values()))
    slice_cols = np.arange(n_overall, n_series)
    q = float(alpha[n_overall]) if n_series > n_overall else 0.0
    sliced = world.sliced is not None and world.sliced.name in [s.metric for s in series[:n_overall]]
    sliced_col = [s.metric for s in series[:n_overall]].index(world.sliced.name) if world.sliced else -1
    last_stage = len(spec.stages) - 1

    # The stage in progress: cumulative units and events per series; the closed stages: running sums.
    units = {v: np.zeros((replicates, n_series)) for v in Variant}
    events = {v: np.zeros((replicates, n_series)) for v in Variant}
    closed_w = np.zeros((replicates, n_series))  # harm tests (variance at 0)
    closed_wd = np.zeros((replicates, n_series))
    closed_w_ni = np.zeros((replicates, len(ni)))  # non-inferiority tests (variance at the margin)
    closed_wd_ni = np.zeros((replicates, len(ni)))
    n_stages = len(spec.stages)
    closed_srm_n = np.zeros((replicates, n_stages))  # units per closed stage (first metric)
    closed_srm_x = np.zeros((replicates, n_stages))  # canary units per closed stage
    stage = np.zeros(replicates, dtype=np.int64)
    stage_starts = np.full((replicates, len(spec.stages)), NEVER, dtype=np.int64)
    stage_starts[:, 0] = 0
    outcome = np.full(replicates, NEVER, dtype=np.int64)
    look_of = np.full(replicates, NEVER, dtype=np.int64)
    causes = np.zeros(replicates, dtype=np.int64)
    active = np.arange(replicates)
    recorded = [
        {"n": np.zeros((sched.ticks, 2, 1 + len(INTENTS)), dtype=np.int64),
         "x": np.zeros((sched.ticks, 2, n_series), dtype=np.int64), "kind": np.full(sched.ticks, NEVER)}
        for _ in range(min(record, replicates))
    ]  # fmt: skip

    for k in range(sched.ticks):
        if active.size == 0:
            break
        a = active
        st = stage[a]
        share = world.shares[st]
        sessions = rng.poisson(sched.expected_sessions[k], a.size)
        n_canary = rng.binomial(sessions, share)
        for v, arm_n in ((Variant.CONTROL, sessions - n_canary), (Variant.CANARY, n_canary)):
            tick_units = np.empty((a.size, n_series))
            tick_units[:, :n_overall] = arm_n[:, None]
            tick_events = np.empty((a.size, n_series))
            if sliced:
                split = rng.multinomial(arm_n, intent_shares)  # (active, intents)
                tick_units[:, n_overall:] = split
                tick_events[:, n_overall:] = rng.binomial(split, rate[v][n_overall:])
            for j in range(n_overall):
                tick_events[:, j] = (
                    tick_events[:, n_overall:].sum(axis=1)
                    if j == sliced_col
                    else rng.binomial(arm_n, rate[v][j])
                )
            units[v][a] += tick_units
            events[v][a] += tick_events
            for i, rec in enumerate(recorded):
                if outcome[i] == NEVER:
                    row = int(np.searchsorted(a, i))
                    col = 0 if v is Variant.CONTROL else 1
                    rec["n"][k, col] = np.concatenate([[arm_n[row]], tick_units[row, n_overall:]])
                    rec["x"][k, col] = tick_events[row]

        nc, xc = units[Variant.CONTROL][a], events[Variant.CONTROL][a]
        nt, xt = units[Variant.CANARY][a], events[Variant.CANARY][a]
        weight, weighted = _stage_weights(nc, xc, nt, xt, 0.0)
        w_sum = closed_w[a] + weight
        valid = w_sum > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            estimate = np.where(valid, (closed_wd[a] + weighted) / w_sum, 0.0)
            variance = np.where(valid, 1.0 / w_sum, 1.0)
        sd = np.sqrt(variance)
        weight_ni, weighted_ni = _stage_weights(nc[:, ni], xc[:, ni], nt[:, ni], xt[:, ni], margin)
        w_sum_ni = closed_w_ni[a] + weight_ni
        valid_ni = w_sum_ni > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            estimate_ni = np.where(valid_ni, (closed_wd_ni[a] + weighted_ni) / w_sum_ni, 0.0)
            variance_ni = np.where(valid_ni, 1.0 / w_sum_ni, 1.0)

        # Safety: harm tests (overall; slices with BH; a critical slice blocks) and hard limits.
        p_harm = mixture_pvalue(estimate / sd, tau2 / variance, "greater")
        cause = np.where((valid & (p_harm <= alpha))[:, :n_overall].any(axis=1), CAUSE_HARM, 0)
        if sliced:
            slice_reject = bh_rejections(p_harm[:, slice_cols], valid[:, slice_cols], q)
            cause |= np.where((slice_reject & world.critical).any(axis=1), CAUSE_SLICE, 0)
        for j, limit in world.hard_limits:
            breach = exact_breach(nt[:, j], xt[:, j], limit=limit, level=world.hard_limit_level)
            cause |= np.where(breach, CAUSE_HARD_LIMIT, 0)

        # Trust: sample-ratio mismatch over the stages so far (units of the first metric, anytime-valid),
        # missing data.
        srm_n, srm_x = closed_srm_n[a], closed_srm_x[a]
        rows = np.arange(a.size)
        srm_n[rows, st] += nc[:, 0] + nt[:, 0]
        srm_x[rows, st] += nt[:, 0]
        hold = srm_holds(srm_x, srm_n, world.shares, spec.statistics.srm_pvalue)
        hold |= (nc[:, :n_overall] == 0).any(axis=1) | (nt[:, :n_overall] == 0).any(axis=1)
        if sliced:
            crit = slice_cols[world.critical]
            hold |= (nc[:, crit] == 0).any(axis=1) | (nt[:, crit] == 0).any(axis=1)

        # The gate: minimum duration, enough units, every margin proven (non-inferiority at the full alpha).
        elapsed = k + 1 - stage_starts[a, st]
        p_ni = mixture_pvalue((estimate_ni - margin) / np.sqrt(variance_ni), tau2_ni / variance_ni, "less")
        proven = (valid_ni & (p_ni <= spec.statistics.alpha)).all(axis=1)
        least = np.minimum(nc[:, :n_overall], nt[:, :n_overall]).min(axis=1)
        gate = (elapsed >= world.min_ticks[st]) & (least >= spec.statistics.min_samples_per_arm) & proven
        at_max = elapsed >= world.max_ticks[st]

        kind = np.where(at_max, INCONCLUSIVE, CONTINUE)
        kind = np.where(gate, np.where(st == last_stage, READY, ADVANCE), kind)
        kind = np.where(hold, np.where(at_max, INCONCLUSIVE, HOLD), kind)
        kind = np.where(cause > 0, ROLLBACK, kind)
        for i, rec in enumerate(recorded):
            if outcome[i] == NEVER:
                rec["kind"][k] = kind[int(np.searchsorted(a, i))]

        advance = kind == ADVANCE
        if advance.any():
            moved = a[advance]
            closed_w[moved] += weight[advance]
            closed_wd[moved] += weighted[advance]
            closed_w_ni[moved] += weight_ni[advance]
            closed_wd_ni[moved] += weighted_ni[advance]
            closed_srm_n[moved] = srm_n[advance]
            closed_srm_x[moved] = srm_x[advance]
            for v in Variant:
                units[v][moved] = 0.0
                events[v][moved] = 0.0
            stage[moved] += 1
            stage_starts[moved, stage[moved]] = k + 1
        final = (kind == READY) | (kind == ROLLBACK) | (kind == INCONCLUSIVE)
        outcome[a[final]] = kind[final]
        look_of[a[final]] = k
        causes[a[final]] = cause[final]
        active = a[~final]
    return ShippedResult(
        label, outcome, look_of, causes, stage_starts, time.perf_counter() - started,
        [dict(rec, stage_starts=stage_starts[i]) for i, rec in enumerate(recorded)],
    )  # fmt: skip


# --- replay through `decide` --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replay:
    """The vectorised engine against ``decide`` on the same ticks: rollouts whose decisions agreed at every
    look, the looks compared, and ``decide``'s time per call."""

    rollouts: int
    agree: int
    looks: int
    seconds: float
    first_disagreement: str = ""

    @property
    def ms_per_call(self) -> float:
        return 1000 * self.seconds / max(self.looks, 1)


def _replay_streams(
    world: ShippedWorld, rec: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[str, MetricStream]:
    """Every evaluated metric of the spec as ``MetricStream``: the veto metrics from the recorded ticks, the
    others (which never block a canary) drawn afresh on the same units."""
    units = {Variant.CONTROL: rec["n"][:, 0, 0], Variant.CANARY: rec["n"][:, 1, 0]}
    out: dict[str, MetricStream] = {}
    for j, s in enumerate(world.series[: world.overall]):
        events = {Variant.CONTROL: rec["x"][:, 0, j].astype(np.float64),
                  Variant.CANARY: rec["x"][:, 1, j].astype(np.float64)}  # fmt: skip
        slices = None
        if world.sliced is not None and s.metric == world.sliced.name:
            slices = {
                intent: MetricStream(
                    n={Variant.CONTROL: rec["n"][:, 0, 1 + i], Variant.CANARY: rec["n"][:, 1, 1 + i]},
                    events={
                        Variant.CONTROL: rec["x"][:, 0, world.overall + i].astype(np.float64),
                        Variant.CANARY: rec["x"][:, 1, world.overall + i].astype(np.float64),
                    },
                )
                for i, intent in enumerate(INTENTS)
            }
        out[s.metric] = MetricStream(n=units, events=events, slices=slices)
    for metric in evaluated_metrics(world.spec):
        if metric.name in out:
            continue
        base = world.baselines[metric.name]
        if metric.kind is MetricKind.MEAN:
            assert isinstance(base, tuple)
            out[metric.name] = mean_stream(units, *base, rng)
        else:
            assert isinstance(base, float)
            events = {v: rng.binomial(units[v], base).astype(np.float64) for v in Variant}
            out[metric.name] = MetricStream(n=units, events=events)
    return out


def _observations(
    streams: dict[str, MetricStream], bounds: list[tuple[int, int]], look: int, now: datetime
) -> Observations:
    aggregates: dict[tuple[str, int, Variant | str, str | None], Aggregate] = {}
    for i, (start, end) in enumerate(bounds):
        hi = min(end, look + 1)
        for name, stream in streams.items():
            for v in Variant:
                for slice_, part in ((None, stream), *(stream.slices or {}).items()):
                    total = part.total("events", v, start, hi)
                    count = round(part.total("n", v, start, hi))
                    if part.squares is None:
                        aggregates[(name, i, v, slice_)] = ProportionAggregate(count, round(total))
                    else:
                        squares = part.total("squares", v, start, hi)
                        aggregates[(name, i, v, slice_)] = MeanAggregate(count, total, squares)
    return Observations.build(aggregates, latest=dict.fromkeys(streams, now))


def replay(world: ShippedWorld, result: ShippedResult, rng: np.random.Generator) -> Replay:
    """Call ``decide`` at every look of the recorded rollouts, with the stage history the vectorised engine
    produced, and compare its decision with the vectorised one look by look."""
    started = time.perf_counter()
    agree = looks = 0
    first = ""
    tick = world.schedule.tick_seconds
    for number, rec in enumerate(result.recorded):
        streams = _replay_streams(world, rec, rng)
        starts = [int(s) for s in rec["stage_starts"] if s != NEVER]
        same = True
        for look in range(world.schedule.ticks):
            if rec["kind"][look] == NEVER:
                break
            now = T0 + timedelta(seconds=(look + 1) * tick)
            begun = [s for s in starts if s <= look]
            bounds = list(zip(begun, [*begun[1:], world.schedule.ticks], strict=True))
            records = [
                StageRecord(
                    i, world.spec.stages[i].percent,
                    {Variant.CONTROL: 100.0 - world.spec.stages[i].percent,
                     Variant.CANARY: world.spec.stages[i].percent},
                    T0 + timedelta(seconds=s * tick),
                    T0 + timedelta(seconds=e * tick) if e <= look else None,
                )
                for i, (s, e) in enumerate(bounds)
            ]  # fmt: skip
            decision = decide(world.spec, records, _observations(streams, bounds, look, now), now)
            looks += 1
            expected = KINDS[int(rec["kind"][look])]
            if decision.kind is not expected:
                same = False
                first = first or (
                    f"rollout {number}, look {look}: decide {decision.kind.value}, vectorised "
                    f"{expected.value}: " + "; ".join(decision.reasons)[:300]
                )
                break
        agree += int(same)
    return Replay(len(result.recorded), agree, looks, time.perf_counter() - started, first)


def summary_hours(result: ShippedResult, schedule: Schedule, kind: int, q: float) -> float:
    """The q-quantile (over all rollouts) of the hours to a final decision of ``kind``; inf = not reached."""
    hours = np.where(result.outcome == kind, schedule.hours_at(result.look), np.inf)
    ordered = np.sort(hours)
    return float(ordered[max(math.ceil(q * ordered.size) - 1, 0)])


# --- the report ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateOutlook:
    """One margin of the first stage's gate at the end of its maximum duration, at mean traffic: the distance
    from the estimate to the non-inferiority confidence-sequence bound, against the margin."""

    metric: str
    margin: float
    radius: float
    chance: float  # P(the bound is inside the margin at that look) for a candidate exactly as good


def gate_outlook(world: ShippedWorld) -> list[GateOutlook]:
    """How far each margin is from being provable by the end of stage 1 (normal approximation, one look)."""
    from scipy.special import ndtr

    from canarywise.stats.sequential import msprt_normal

    stage = world.spec.stages[0]
    ticks = stage.max_duration // world.spec.check_interval
    sessions = float(world.schedule.expected_sessions[:ticks].sum())
    share = stage.percent / 100.0
    out = []
    for s in world.series[: world.overall]:
        if s.margin is None or s.tau2_ni is None:
            continue
        p = s.baseline
        variance = p * (1 - p) * (1 / (sessions * share) + 1 / (sessions * (1 - share)))
        bound = msprt_normal(
            0.0,
            variance,
            tau2=s.tau2_ni,
            alpha=world.spec.statistics.alpha,
            alternative="less",
            null=s.margin,
        ).ci_high
        out.append(
            GateOutlook(s.metric, s.margin, bound, float(ndtr((s.margin - bound) / math.sqrt(variance))))
        )
    return out


@dataclass
class ShippedReport:
    results: list[ShippedResult]
    replays: list[Replay]
    outlook: list[GateOutlook]
    schedule: Schedule
    stage_one_hours: float
    stage_one_percent: float


def run_shipped(
    spec: RolloutSpec,
    *,
    replicates: int,
    harm_replicates: int,
    replays: int,
    rng: np.random.Generator,
    log: Callable[[str], None] = print,
) -> ShippedReport:
    """A/A, harm at the MDE on the escalation rate and a canary at twice the error rate's hard limit, the
    shipped spec with its ladder; replays of each."""
    worlds = [
        ("A/A: every metric equal in both arms", ShippedWorld(spec), replicates),
        (
            "harm at the MDE: escalation 12% -> 14% (others equal)",
            ShippedWorld(spec, canary_rates={"escalation_rate": 0.14}),
            harm_replicates,
        ),
        (
            "broken: errors 0.3% -> 4% (others equal)",
            ShippedWorld(spec, canary_rates={"error_rate": 0.04}),
            harm_replicates,
        ),
    ]
    results, checks = [], []
    for label, world, count in worlds:
        result = simulate(world, count, rng, label=label, record=replays)
        log(f"  shipped spec, {label}: {count} rollouts in {result.seconds:.1f} s")
        checks.append(replay(world, result, rng))
        log(f"  shipped spec, {label}: decide replayed on {replays}: {checks[-1].agree} agree")
        results.append(result)
    first = spec.stages[0]
    return ShippedReport(
        results, checks, gate_outlook(worlds[0][1]), worlds[0][1].schedule, first.max_duration / 3600,
        first.percent,
    )  # fmt: skip
