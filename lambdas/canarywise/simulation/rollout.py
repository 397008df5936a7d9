"""Rollouts of a spec played tick by tick, vectorised over the rollouts, the ladder moved by the engine's
decisions: its safety and guardrail metrics (a sliced one split by its slices), each at a baseline rate.

The engine's rule is re-written in numpy from its own pieces: the alpha share of each test
(``decision.safety.harm_alpha``), the mixing variances (``decision.evidence.tau2_for``), the stage-stratified
estimate with the variance of each test (`arrays.stage_variance`: at 0 for harm, at the margin for
non-inferiority), the always-valid p-value of ``stats.sequential.msprt_normal`` (`arrays.mixture_pvalue`),
Benjamini-Hochberg across the slices (a critical slice proven worse rolls back, another one holds), the
hard-limit backstop (its exact binomial test at
``decision.evidence.hard_limit_level``), the anytime-valid sample-ratio check (`arrays.srm_holds`), and the
canary gate's precedence (ROLLBACK, then HOLD, then ADVANCE, then INCONCLUSIVE at the maximum duration).
``make bench`` (``bench/shipped.py``) replays simulated rollouts through ``decide`` itself and reports whether
its decisions are the same at every look.

Example
-------
>>> from canarywise.spec import load_spec
>>> world = RolloutWorld(load_spec("config/mangaassist.yaml"), daily_sessions=300_000)
>>> [s.metric for s in world.series][:2], world.overall
(['escalation_rate', 'error_rate'], 5)
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from canarywise.decision.context import evaluated_metrics
from canarywise.decision.evidence import hard_limit_level, tau2_for
from canarywise.decision.models import DecisionKind, Variant
from canarywise.decision.safety import harm_alpha
from canarywise.errors import CanarywiseError
from canarywise.simulation.arrays import (
    NEVER,
    bh_rejections,
    exact_breach,
    mixture_pvalue,
    srm_holds,
    stage_variance,
)
from canarywise.simulation.traffic import (
    DAILY_SESSIONS,
    HORIZON_TICKS,
    FloatArray,
    IntArray,
    ladder_schedule,
)
from canarywise.spec import Direction, MetricKind, MetricRole, RolloutSpec

# Per-look decision codes (the DecisionKind values a canary's look can take).
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
class RolloutResult:
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


class SimulationInputError(CanarywiseError, ValueError):
    """The spec or the rates given cannot be simulated; the message names the metric."""


class RolloutWorld:
    """A spec's safety and guardrail metrics as tested series, the rate each arm has, and the traffic.

    Parameters
    ----------
    spec : RolloutSpec
    baselines : mapping, optional
        Control rate per metric name; a metric not in it takes its spec ``baseline``. Every safety and
        guardrail metric needs one. Other entries (e.g. ``(mean, sd)`` of a mean metric) are kept for callers.
    canary_rates : mapping, optional
        The candidate's true rate per metric name (default: its baseline, a candidate exactly as good).
    slice_shares : mapping, optional
        The sliced metric's slices and each one's share of the units (default: its critical slices and
        "other", equal shares).
    daily_sessions : float
        Units a day entering the experiment, both arms together.
    horizon_ticks : int
        Ticks simulated at most (default 7 days of 5-minute checks).
    """

    def __init__(
        self,
        spec: RolloutSpec,
        *,
        baselines: Mapping[str, float | tuple[float, float]] | None = None,
        canary_rates: Mapping[str, float] | None = None,
        slice_shares: Mapping[str, float] | None = None,
        daily_sessions: float = DAILY_SESSIONS,
        horizon_ticks: int = HORIZON_TICKS,
    ) -> None:
        self.spec = spec
        self.schedule = ladder_schedule(spec, daily_sessions=daily_sessions, horizon_ticks=horizon_ticks)
        self.baselines: dict[str, float | tuple[float, float]] = dict(baselines or {})
        rates = canary_rates or {}
        veto = [m for m in evaluated_metrics(spec) if m.role in (MetricRole.SAFETY, MetricRole.GUARDRAIL)]
        self.veto = veto
        self.series: list[Series] = []
        for metric in veto:
            if metric.kind is MetricKind.MEAN or metric.direction is not Direction.LOWER_IS_BETTER:
                raise SimulationInputError(
                    f"metric {metric.name!r}: the simulation models lower-is-better rates, not a "
                    f"{metric.kind.value} {metric.direction.value} safety/guardrail metric"
                )
            base = self.baselines.setdefault(metric.name, metric.baseline or math.nan)
            if not isinstance(base, float) or not 0 < base < 1:
                raise SimulationInputError(
                    f"metric {metric.name!r} needs a baseline rate in (0, 1) (its `baseline` in the spec), "
                    f"found {base!r}"
                )
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
        self.slice_shares: dict[str, float] = {}
        if self.sliced is not None:
            self.slice_shares = dict(slice_shares or _equal_shares([*self.sliced.critical_slices, "other"]))
            s = self.series[[x.metric for x in self.series].index(self.sliced.name)]
            for name in self.slice_shares:
                self.series.append(Series(s.metric, name, s.baseline, s.canary_rate, s.alpha, s.tau2_harm,
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


def _equal_shares(names: list[str]) -> dict[str, float]:
    return dict.fromkeys(names, 1.0 / len(names))


def _stage_weights(
    nc: FloatArray, xc: FloatArray, nt: FloatArray, xt: FloatArray, null: FloatArray | float
) -> tuple[FloatArray, FloatArray]:
    """One stage's inverse-variance weight and weight x difference per series (0 without data in an arm):
    ``stage_difference`` with the variance of a test at ``null`` (`arrays.stage_variance`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (nc > 0) & (nt > 0)
        weight = np.where(ok, 1.0 / stage_variance(xc, nc, xt, nt, null), 0.0)
        return weight, np.where(ok, weight * (xt / nt - xc / nc), 0.0)


def simulate(
    world: RolloutWorld, replicates: int, rng: np.random.Generator, *, label: str, record: int = 0
) -> RolloutResult:
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
    intent_shares = np.array(list(world.slice_shares.values()))
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
        {"n": np.zeros((sched.ticks, 2, 1 + len(world.slice_shares)), dtype=np.int64),
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
            if spec.slice_policy.non_critical_regression == "hold":
                # a regression proven in a slice that is not critical holds (nobody acknowledges it here)
                hold |= (slice_reject & ~world.critical).any(axis=1)

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
    return RolloutResult(
        label, outcome, look_of, causes, stage_starts, time.perf_counter() - started,
        [dict(rec, stage_starts=stage_starts[i]) for i, rec in enumerate(recorded)],
    )  # fmt: skip


@dataclass(frozen=True)
class GateOutlook:
    """One margin of the first stage's gate at the end of its maximum duration, at mean traffic: the distance
    from the estimate to the non-inferiority confidence-sequence bound, against the margin."""

    metric: str
    margin: float
    radius: float
    chance: float  # P(the bound is inside the margin at that look) for a candidate exactly as good


def gate_outlook(world: RolloutWorld, stage_index: int = 0) -> list[GateOutlook]:
    """How far each margin is from being provable by the end of stage ``stage_index``'s maximum duration, the
    stages before it run for their minimum durations (normal approximation, one look, mean traffic)."""
    from scipy.special import ndtr

    from canarywise.stats.sequential import msprt_normal

    tick, start = world.spec.check_interval, 0
    parts = []  # (expected sessions, canary share) of each stage that counts
    for i, stage in enumerate(world.spec.stages[: stage_index + 1]):
        ticks = (stage.max_duration if i == stage_index else stage.min_duration) // tick
        parts.append(
            (float(world.schedule.expected_sessions[start : start + ticks].sum()), stage.percent / 100)
        )
        start += ticks
    out = []
    for s in world.series[: world.overall]:
        if s.margin is None or s.tau2_ni is None:
            continue
        p = s.baseline
        each = [p * (1 - p) * (1 / (n * share) + 1 / (n * (1 - share))) for n, share in parts]
        variance = each[0] if len(each) == 1 else 1.0 / sum(1.0 / v for v in each)  # stratified
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
