"""Decision quality at rare events and under repeated looks (issue 15).

Three questions, each answered for the rule before and the rule now on the same simulated streams:

- **false ADVANCE at the margin**: the error rate's gate (non-inferiority at its 0.5 pt margin, anytime-valid
  at the spec's alpha, the stage's minimum duration and units per arm) for a canary whose error rate sits
  exactly at the margin (baseline + 0.5 pt), in a first stage at 5% with every minimum synth accepts. A
  rollout advances at the first look where the gate is met, unless the harm test has rolled it back before.
  The gate alone ("non-inferiority proven at some look") is reported too. Before: the stage variance at the
  Agresti-Caffo adjusted observed rates. Now: the larger of that and the variance at the null
  (Farrington-Manning restricted rates), ``decision.estimates.stage_difference``.
- **false ROLLBACK by the harm test at rare baselines** (A/A, the shipped ladder at its minimum durations,
  7 days, the error rate's harm test alone at the spec's alpha): the same two variances.
- **time-uniform coverage** of ``stats.sequential.msprt_proportions``'s confidence sequence (the one public
  sequence whose variance is estimated from counts; ``msprt_normal`` takes the variance as given and
  ``msprt_means`` the Welch variance): the true difference inside the sequence at every look of the shipped
  ladder, at 0.1% to 50% baselines. Before: the variance at the observed rates. Now: the variance at each
  candidate null (the sequence inverts the score test).
- **the sample-ratio check under continuous monitoring**: a healthy 95/5 split held for 7 days (HOLDs over
  the horizon), and the time to catch new assignments arriving at 4.8% instead of 5%. Before: Pearson's
  chi-square at every look, p < srm_pvalue. Now: ``stats.srm.sequential_srm_test`` (a mixture of the exact
  binomial likelihood ratios, anytime-valid), p <= srm_pvalue.

Everything is vectorised over rollouts with the engine's own pieces (``tau2_for``, ``harm_alpha``, the
mixture p-value of ``msprt_normal`` as ``canarywise.simulation.arrays.mixture_pvalue``);
``check_against_library`` compares the vectorised p-values with the library functions on a sample of looks,
and ``replay`` runs the first rollouts of the gate cells through ``decide`` itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.special import chdtrc

from bench.engine import MetricStream, first_decision, within_stage_cumulative
from bench.methods import NEVER, first_true
from bench.scenarios import (
    FloatArray,
    IntArray,
    Schedule,
    Streams,
    fixed_split_schedule,
    ladder_schedule,
)
from canarywise.decision.evidence import mixing_tau2, tau2_for
from canarywise.decision.models import DecisionKind, Variant
from canarywise.decision.safety import harm_alpha
from canarywise.simulation.arrays import mixture_pvalue, restricted_rates, srm_holds, stage_variance
from canarywise.spec import RolloutSpec, parse_spec
from canarywise.stats.sequential import msprt_proportions

BoolArray = npt.NDArray[np.bool_]

BASELINES = (0.001, 0.003, 0.01)
MIN_HOURS = (0.5, 1.0, 4.0)
MIN_UNITS = (100, 1000)
MARGIN = 0.005  # the error rate's margin in the shipped spec
FIRST_STAGE_MAX_HOURS = 48.0
COVERAGE_BASELINES = (0.001, 0.003, 0.01, 0.12, 0.5)
SRM_SHARE, SRM_MISMATCH = 0.05, 0.048
RULES = ("before", "now")
ALL_RULES = (
    "before",
    "null",
    "now",
)  # 'null': the variance at the null alone, to show why 'now' is the larger


# --- the stage variance of each rule -----------------------------------------------------------------------


def rule_variance(
    xc: FloatArray, nc: FloatArray, xt: FloatArray, nt: FloatArray, null: float, rule: str
) -> FloatArray:
    """One stage's variance of p̂_t − p̂_c for a test at ``null`` (0 where an arm has no unit): 'before' at the
    Agresti-Caffo adjusted observed rates; 'null' at the restricted rates alone; 'now' the larger of the two
    (``simulation.arrays.stage_variance``, the engine's ``decision.estimates.stage_difference``)."""
    if rule == "null":
        rc, rt = restricted_rates(xc, nc, xt, nt, null)
        with np.errstate(divide="ignore", invalid="ignore"):
            variance = rc * (1 - rc) / nc + rt * (1 - rt) / nt
    else:
        variance = stage_variance(xc, nc, xt, nt, null if rule == "now" else None)
    return np.asarray(np.where((nc > 0) & (nt > 0), variance, 0.0), dtype=np.float64)


def _arrays(streams: Streams) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    return streams.n_control, streams.x_control, streams.n_canary, streams.x_canary


def _draw(
    schedule: Schedule, baseline: float, canary_rate: float, replicates: int, rng: np.random.Generator
) -> Streams:
    sessions = rng.poisson(schedule.expected_sessions, (replicates, schedule.ticks))
    n_t = rng.binomial(sessions, schedule.shares)
    n_c = sessions - n_t
    return Streams(n_c, rng.binomial(n_c, baseline), n_t, rng.binomial(n_t, canary_rate))


def _stratified_z(
    within: Streams, schedule: Schedule, null: float, rule: str
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """(z at ``null``, variance, valid) of the stage-stratified difference after every look."""
    shape = within.n_control.shape
    weight_sum, weighted = np.zeros(shape), np.zeros(shape)
    looks = np.arange(schedule.ticks)
    ends = [*schedule.stage_starts[1:], schedule.ticks]
    for start, end in zip(schedule.stage_starts, ends, strict=True):
        index = np.minimum(looks, end - 1)
        active = looks >= start
        nc, xc = (within.n_control[:, index].astype(float), within.x_control[:, index].astype(float))
        nt, xt = (within.n_canary[:, index].astype(float), within.x_canary[:, index].astype(float))
        variance = rule_variance(xc, nc, xt, nt, null, rule)
        ok = active & (variance > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(ok, 1.0 / variance, 0.0)
            weighted += np.where(ok, weight * (xt / nt - xc / nc), 0.0)
        weight_sum += weight
    valid = weight_sum > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(valid, 1.0 / weight_sum, 1.0)
        z = np.where(valid, (weighted / np.where(valid, weight_sum, 1.0) - null) / np.sqrt(variance), 0.0)
    return z, variance, valid


# --- false ADVANCE at the margin ----------------------------------------------------------------------------


def gate_spec(spec: RolloutSpec, *, min_hours: float, min_units: int) -> RolloutSpec:
    """The error rate alone (no hard limit: the backstop answers another question), one stage at the first
    stage's share, the given minimum duration and units per arm, 48 h maximum."""
    data = spec.model_dump(mode="json")
    (error_rate,) = [m for m in data["metrics"] if m["name"] == "error_rate"]
    data["metrics"] = [{**error_rate, "hard_limit": None}]
    data["stages"] = [
        {
            "percent": data["stages"][0]["percent"],
            "min_duration": round(min_hours * 3600),
            "max_duration": round(FIRST_STAGE_MAX_HOURS * 3600),
        }
    ]
    data["statistics"]["min_samples_per_arm"] = min_units
    return parse_spec(data, source="rare-event benchmark spec")


@dataclass(frozen=True)
class GateCell:
    baseline: float
    min_hours: float
    min_units: int
    replicates: int
    advanced: dict[str, float]  # rule -> share of rollouts advanced
    proven: dict[str, float]  # rule -> share with non-inferiority proven at some look of the stage
    agree: tuple[int, int] = (0, 0)  # rollouts replayed through decide, of which the same decision and look


def _gate_looks(
    spec: RolloutSpec, streams: Streams, schedule: Schedule, rule: str
) -> tuple[IntArray, IntArray, BoolArray]:
    """First ADVANCE look (NEVER if none before a rollback or the maximum), first ROLLBACK look, NI proven."""
    metric = spec.metrics[0]
    alpha = spec.statistics.alpha
    assert metric.margin is not None
    cumulative = streams.cumulative()
    z_ni, v_ni, ok_ni = _stratified_z(cumulative, schedule, metric.margin, rule)
    tau2_ni = tau2_for(spec, metric, "non_inferiority", alpha)
    proven = ok_ni & (mixture_pvalue(z_ni, tau2_ni / v_ni, "less") <= alpha)
    a_harm = harm_alpha(spec, metric)
    z_h, v_h, ok_h = _stratified_z(cumulative, schedule, 0.0, rule)
    harm = ok_h & (mixture_pvalue(z_h, tau2_for(spec, metric, "harm", a_harm) / v_h, "greater") <= a_harm)
    elapsed_ok = np.arange(schedule.ticks) + 1 >= spec.stages[0].min_duration // spec.check_interval
    units_ok = np.minimum(cumulative.n_control, cumulative.n_canary) >= spec.statistics.min_samples_per_arm
    advance = first_true(proven & elapsed_ok & units_ok)
    rollback = first_true(harm)
    advance = np.where((rollback != NEVER) & (rollback <= advance), NEVER, advance)
    return advance, rollback, proven.any(axis=1)


def run_gate(
    spec: RolloutSpec, replicates: int, rng: np.random.Generator, *, replays: int, chunk: int = 2000
) -> list[GateCell]:
    """Every (baseline, minimum duration, units per arm) cell, both rules on the same streams."""
    cells = []
    for baseline in BASELINES:
        for min_hours in MIN_HOURS:
            for min_units in MIN_UNITS:
                cell_spec = gate_spec(spec, min_hours=min_hours, min_units=min_units)
                ticks = round(FIRST_STAGE_MAX_HOURS * 3600 / cell_spec.check_interval)
                schedule = fixed_split_schedule(cell_spec.stages[0].percent, horizon_ticks=ticks)
                advanced = dict.fromkeys(RULES, 0)
                proven = dict.fromkeys(RULES, 0)
                agree = seen = 0
                for start in range(0, replicates, chunk):
                    size = min(chunk, replicates - start)
                    streams = _draw(schedule, baseline, baseline + MARGIN, size, rng)
                    for rule in RULES:
                        advance, rollback, ever = _gate_looks(cell_spec, streams, schedule, rule)
                        advanced[rule] += int((advance != NEVER).sum())
                        proven[rule] += int(ever.sum())
                        if rule == "now" and start == 0:
                            for row in range(min(replays, size)):
                                seen += 1
                                agree += int(_replay(cell_spec, schedule, streams, row, advance, rollback))
                cells.append(
                    GateCell(
                        baseline, min_hours, min_units, replicates,
                        {r: advanced[r] / replicates for r in RULES},
                        {r: proven[r] / replicates for r in RULES},
                        (agree, seen),
                    )
                )  # fmt: skip
    return cells


def _replay(
    spec: RolloutSpec,
    schedule: Schedule,
    streams: Streams,
    row: int,
    advance: IntArray,
    rollback: IntArray,
) -> bool:
    """``decide`` look by look on one rollout: the gate met (READY_FOR_APPROVAL: its only stage is the last),
    ROLLBACK or INCONCLUSIVE first, at the same look as the vectorised rule."""
    stream = MetricStream(
        n={Variant.CONTROL: streams.n_control[row], Variant.CANARY: streams.n_canary[row]},
        events={
            Variant.CONTROL: streams.x_control[row].astype(np.float64),
            Variant.CANARY: streams.x_canary[row].astype(np.float64),
        },
    )
    # the gate's one stage is the last: meeting it is READY_FOR_APPROVAL
    met = DecisionKind.READY_FOR_APPROVAL
    kinds = (met, DecisionKind.ROLLBACK, DecisionKind.INCONCLUSIVE)
    look, decision = first_decision(spec, schedule, {spec.metrics[0].name: stream}, kinds)
    if advance[row] != NEVER:
        return decision is not None and decision.kind is met and look == advance[row]
    if rollback[row] != NEVER:
        return decision is not None and decision.kind is DecisionKind.ROLLBACK and look == rollback[row]
    return decision is None or decision.kind is DecisionKind.INCONCLUSIVE


# --- false ROLLBACK by the harm test at rare baselines (A/A) ------------------------------------------------


@dataclass(frozen=True)
class HarmRow:
    baseline: float
    replicates: int
    alpha: float
    rolled_back: dict[str, float]


def run_harm(
    spec: RolloutSpec, replicates: int, rng: np.random.Generator, *, chunk: int = 1000
) -> list[HarmRow]:
    data = spec.model_dump(mode="json")
    data["metrics"] = [{**m, "hard_limit": None} for m in data["metrics"] if m["name"] == "error_rate"]
    single = parse_spec(data, source="rare-event benchmark spec")
    metric = single.metrics[0]
    alpha = harm_alpha(single, metric)
    tau2 = tau2_for(single, metric, "harm", alpha)
    schedule = ladder_schedule(single)
    rows = []
    for baseline in BASELINES:
        hits = dict.fromkeys(ALL_RULES, 0)
        for start in range(0, replicates, chunk):
            size = min(chunk, replicates - start)
            within = within_stage_cumulative(_draw(schedule, baseline, baseline, size, rng), schedule)
            for rule in ALL_RULES:
                z, variance, valid = _stratified_z(within, schedule, 0.0, rule)
                rejected = valid & (mixture_pvalue(z, tau2 / variance, "greater") <= alpha)
                hits[rule] += int(rejected.any(axis=1).sum())
        rows.append(HarmRow(baseline, replicates, alpha, {r: hits[r] / replicates for r in ALL_RULES}))
    return rows


# --- time-uniform coverage of msprt_proportions -------------------------------------------------------------


@dataclass(frozen=True)
class CoverageRow:
    baseline: float
    difference: float
    replicates: int
    covered: dict[str, float]


def coverage_tau2(alpha: float, power: float) -> float:
    """The two-sided sequence's τ², planned for a 0.5 pt difference (``decision.evidence.mixing_tau2``)."""
    return mixing_tau2(MARGIN, alpha, power, two_sided=True)


def _sequence_misses(
    cumulative: Streams, difference: float, tau2: float, alpha: float, rule: str
) -> BoolArray:
    """Whether the two-sided sequence excludes the true difference at some look. The sequence excludes θ
    exactly where the test at null = θ rejects (``msprt_proportions`` Notes), so this is that test:
    'before' with the variance at the observed rates, 'null' at θ alone, 'now' the larger of the variance at θ
    and the Agresti-Caffo one."""
    nc, xc = cumulative.n_control.astype(float), cumulative.x_control.astype(float)
    nt, xt = cumulative.n_canary.astype(float), cumulative.x_canary.astype(float)
    ok = (nc > 0) & (nt > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pc, pt = xc / nc, xt / nt
        if rule == "before":  # msprt_proportions before: the observed rates, unadjusted
            variance = pc * (1 - pc) / nc + pt * (1 - pt) / nt
        else:
            variance = rule_variance(xc, nc, xt, nt, difference, rule)
        valid = ok & (variance > 0)
        v = np.where(valid, variance, 1.0)
        z = (pt - pc - difference) / np.sqrt(v)
    return np.asarray((valid & (mixture_pvalue(z, tau2 / v, "two-sided") <= alpha)).any(axis=1))


def run_coverage(
    spec: RolloutSpec, replicates: int, rng: np.random.Generator, *, chunk: int = 1000
) -> list[CoverageRow]:
    alpha = spec.statistics.alpha
    tau2 = coverage_tau2(alpha, spec.statistics.power)
    schedule = ladder_schedule(spec)
    rows = []
    for baseline in COVERAGE_BASELINES:
        for difference in (0.0, MARGIN):
            missed = dict.fromkeys(ALL_RULES, 0)
            for start in range(0, replicates, chunk):
                size = min(chunk, replicates - start)
                streams = _draw(schedule, baseline, baseline + difference, size, rng)
                cumulative = streams.cumulative()
                for rule in ALL_RULES:
                    missed[rule] += int(_sequence_misses(cumulative, difference, tau2, alpha, rule).sum())
                if start == 0:
                    check_against_library(cumulative, difference, tau2, alpha, rng)
            rows.append(
                CoverageRow(
                    baseline, difference, replicates, {r: 1 - missed[r] / replicates for r in ALL_RULES}
                )
            )
    return rows


def check_against_library(
    cumulative: Streams,
    difference: float,
    tau2: float,
    alpha: float,
    rng: np.random.Generator,
    samples: int = 20,
) -> None:
    """The vectorised 'now' test agrees with ``msprt_proportions(..., null=difference)`` on sampled looks."""
    rows = rng.integers(0, cumulative.n_control.shape[0], samples)
    looks = rng.integers(0, cumulative.n_control.shape[1], samples)
    for row, look in zip(rows, looks, strict=True):
        one = Streams(*(a[row : row + 1, look : look + 1] for a in _arrays(cumulative)))
        vectorised = bool(_sequence_misses(one, difference, tau2, alpha, "now")[0])
        counts = [int(a[row, look]) for a in _arrays(cumulative)]
        if min(counts[0], counts[2]) == 0:
            continue
        result = msprt_proportions(
            counts[1], counts[0], counts[3], counts[2], tau2=tau2, alpha=alpha, null=difference
        )
        if vectorised != (result.pvalue <= alpha):
            raise AssertionError(f"vectorised coverage disagrees with msprt_proportions at {counts}")


# --- the sample-ratio check under continuous monitoring -----------------------------------------------------


@dataclass(frozen=True)
class SrmRow:
    label: str
    share: float  # the canary's share of new assignments
    replicates: int
    held: dict[str, float]  # rule -> share of rollouts with at least one HOLD within 7 days
    median_hours: dict[str, float]  # rule -> median hours to the first HOLD (inf: not reached)
    within_24h: dict[str, float]


def _srm_holds(n_c: FloatArray, n_t: FloatArray, weight: float, level: float, rule: str) -> BoolArray:
    """HOLD at each look: 'before' Pearson's chi-square < level; 'now' the sequential test's p <= level."""
    total = n_c + n_t
    if rule == "before":
        expected_t = total * weight
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = (n_t - expected_t) ** 2 * (1 / expected_t + 1 / (total - expected_t))
            return np.asarray((total > 0) & (chdtrc(1, stat) < level))
    shape = n_t.shape
    holds = srm_holds(n_t.reshape(-1, 1), total.reshape(-1, 1), np.array([weight]), level)
    return holds.reshape(shape)


def run_srm(
    spec: RolloutSpec, replicates: int, rng: np.random.Generator, *, chunk: int = 500
) -> list[SrmRow]:
    """A 95/5 split held 7 days at the shipped traffic, new assignments = sessions."""
    level = spec.statistics.srm_pvalue
    schedule = fixed_split_schedule(100 * SRM_SHARE)
    rows = []
    for label, share in (
        ("healthy: 5% of new assignments", SRM_SHARE),
        ("mismatch: 4.8% instead of 5%", SRM_MISMATCH),
    ):
        first = {r: np.full(replicates, NEVER) for r in RULES}
        for start in range(0, replicates, chunk):
            size = min(chunk, replicates - start)
            sessions = rng.poisson(schedule.expected_sessions, (size, schedule.ticks))
            n_t = np.cumsum(rng.binomial(sessions, share), axis=1).astype(float)
            n_c = np.cumsum(sessions, axis=1) - n_t
            for rule in RULES:
                first[rule][start : start + size] = first_true(_srm_holds(n_c, n_t, SRM_SHARE, level, rule))
        hours = {r: np.where(first[r] == NEVER, np.inf, schedule.hours_at(first[r])) for r in RULES}
        rows.append(
            SrmRow(
                label, share, replicates,
                {r: float(np.mean(first[r] != NEVER)) for r in RULES},
                {r: float(np.median(hours[r])) for r in RULES},
                {r: float(np.mean(hours[r] <= 24.0)) for r in RULES},
            )
        )  # fmt: skip
    return rows


# --- all of it ----------------------------------------------------------------------------------------------


@dataclass
class RareEventReport:
    gate: list[GateCell]
    harm: list[HarmRow]
    coverage: list[CoverageRow]
    srm: list[SrmRow]
    alpha: float
    srm_level: float
    seconds: dict[str, float] = field(default_factory=dict)


def run_rare_events(
    spec: RolloutSpec,
    *,
    replicates: int,
    harm_replicates: int,
    coverage_replicates: int,
    srm_replicates: int,
    replays: int,
    rng: np.random.Generator,
    log: Callable[[str], None] = print,
) -> RareEventReport:
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    gate = run_gate(spec, replicates, rng, replays=replays)
    seconds["gate"] = time.perf_counter() - started
    log(f"  rare events: false ADVANCE, {len(gate)} cells x {replicates} rollouts in {seconds['gate']:.1f} s")
    started = time.perf_counter()
    harm = run_harm(spec, harm_replicates, rng)
    seconds["harm"] = time.perf_counter() - started
    log(f"  rare events: A/A harm tests, {harm_replicates} rollouts per baseline in {seconds['harm']:.1f} s")
    started = time.perf_counter()
    coverage = run_coverage(spec, coverage_replicates, rng)
    seconds["coverage"] = time.perf_counter() - started
    log(f"  rare events: coverage, {coverage_replicates} rollouts per row in {seconds['coverage']:.1f} s")
    started = time.perf_counter()
    srm = run_srm(spec, srm_replicates, rng)
    seconds["srm"] = time.perf_counter() - started
    log(f"  rare events: SRM, {srm_replicates} rollouts per row in {seconds['srm']:.1f} s")
    return RareEventReport(
        gate, harm, coverage, srm, spec.statistics.alpha, spec.statistics.srm_pvalue, seconds
    )
