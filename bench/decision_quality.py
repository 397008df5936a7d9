"""The Monte Carlo: every method on the same simulated rollouts, summarised.

Harm (canary mode): for each scenario, ``replicates`` rollouts of 2,016 looks on the spec's ladder; each
method gives the look at which it would roll back. A/A gives the false-rollback rate; the harmful scenarios
give the power by day 1 and day 7 and the median and 90th percentile of the time to rollback, also as a ratio
to the median of Wald's SPRT told the true effect.

Improvement (A/B mode): a 50/50 test of the primary metric; the time to PROMOTE and whether the interval
reported at that moment covers the true effect.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtri

from bench.engine import (
    EngineHarmTest,
    EnginePromoteTest,
    ab_spec,
    first_decision,
    open_ended_spec,
    proportion_stream,
    single_metric_spec,
)
from bench.methods import (
    NEVER,
    MsprtBoundary,
    first_true,
    fixed_horizon,
    msprt_growthbook,
    naive_z,
    obrien_fleming,
    planned_information,
    planned_look,
    planning_information,
    sprt_expected_information,
    wald_sprt,
)
from bench.scenarios import (
    HORIZON_TICKS,
    TICK_SECONDS,
    IntArray,
    Scenario,
    Schedule,
    Streams,
    difference_estimates,
    fixed_split_schedule,
    ladder_schedule,
    simulate,
)
from canarywise.decision.models import DecisionKind
from canarywise.spec import RolloutSpec

HORIZON_SECONDS = HORIZON_TICKS * TICK_SECONDS
SAFETY_METRIC = "escalation_rate"
SPRT = "Wald's SPRT told the true effect (bound)"
SPRT_SHIPPED = "Wald's SPRT told the true effect, at the shipped spec's alpha share (bound)"
ENGINE_ALONE = "canarywise decide, escalation alone (alpha 0.05)"
ENGINE_SHIPPED = "canarywise decide, shipped spec (escalation's share)"
PRIMARY_METRIC = "task_completion"

HARM_SCENARIOS = (
    Scenario("aa", "A/A: 12% vs 12%", 0.12, 0.12, mde=0.02),
    Scenario("mde", "harm at the MDE: 12% -> 14%", 0.12, 0.14, mde=0.02),
    Scenario("small", "small harm: 10% -> 10.5%", 0.10, 0.105, mde=0.02),
)
AB_SCENARIOS = (
    Scenario("ab_aa", "A/A: 78% vs 78%", 0.78, 0.78, mde=0.02),
    Scenario("ab_mde", "improvement at the MDE: 78% -> 80%", 0.78, 0.80, mde=0.02),
    Scenario("ab_large", "improvement of 1.5 MDE: 78% -> 81%", 0.78, 0.81, mde=0.02),
)
AB_PERCENT = 50.0
# The A/B stage's minimum duration before a PROMOTE: one hour, so that the statistics, not the calendar, set
# the time to decide (a real A/B spec would add a weekly minimum for weekly cycles and novelty effects).
AB_MIN_DURATION = 3600


@dataclass
class MethodResult:
    """One method on one scenario: the look of its first rollback (or PROMOTE) per replicate."""

    method: str
    looks: IntArray
    note: str = ""


@dataclass
class ScenarioResult:
    scenario: Scenario
    replicates: int
    methods: list[MethodResult]
    notes: list[str] = field(default_factory=list)


@dataclass
class AbRow:
    method: str
    looks: IntArray
    covered: np.ndarray  # bool per replicate that promoted: the reported interval covered the truth
    covered_every_look: np.ndarray | None = None


@dataclass
class AbResult:
    scenario: Scenario
    replicates: int
    rows: list[AbRow]


@dataclass
class Agreement:
    """The end-to-end `decide` run against the vectorised path on the same replicates."""

    scenario: str
    spec: str
    replicates: int
    agree: int
    seconds: float
    decide_calls: int
    rollbacks: int

    @property
    def ms_per_call(self) -> float:
        return 1000 * self.seconds / max(self.decide_calls, 1)


@dataclass
class QualityReport:
    harm: list[ScenarioResult]
    ab: list[AbResult]
    agreements: list[Agreement]
    schedule: Schedule
    ab_schedule: Schedule
    engine_alpha: dict[str, float]
    seconds: float


# --- summaries ----------------------------------------------------------------------------------------------


def quantile_hours(looks: IntArray, schedule: Schedule, q: float) -> float:
    """The q-quantile of the time to the event in hours, never = +inf (no interpolation)."""
    hours = np.sort(np.where(looks == NEVER, np.inf, schedule.hours_at(looks)))
    return float(hours[max(math.ceil(q * hours.size) - 1, 0)])


def rate_and_se(hits: np.ndarray) -> tuple[float, float]:
    p = float(np.mean(hits))
    return p, math.sqrt(p * (1 - p) / hits.size)


# --- harm ---------------------------------------------------------------------------------------------------


def _methods_on_chunk(
    streams: Streams,
    scenario: Scenario,
    schedule: Schedule,
    engine_tests: dict[str, EngineHarmTest],
    growthbook: MsprtBoundary,
    alpha: float,
    power: float,
    shipped_alpha: float,
) -> dict[str, IntArray]:
    cumulative = streams.cumulative()
    estimates = difference_estimates(cumulative)
    look = planned_look(schedule, scenario.p_control, scenario.mde, alpha=alpha, power=power)
    need = planned_information(scenario.mde, alpha=alpha, power=power)
    fractions = np.minimum(planning_information(schedule, scenario.p_control)[: look + 1] / need, 1.0)
    sprt_effect = scenario.effect if scenario.effect > 0 else scenario.mde
    out = {name: test.rollback_looks(streams, schedule) for name, test in engine_tests.items()}
    out.update(
        {
            "naive z-test at every look": naive_z(cumulative, alpha=alpha),
            "fixed horizon at the planned n": fixed_horizon(cumulative, look, alpha=alpha),
            "Lan-DeMets O'Brien-Fleming to the planned n": obrien_fleming(estimates, fractions, alpha=alpha),
            "mSPRT, GrowthBook default (N* = 5000)": msprt_growthbook(estimates, growthbook),
            SPRT: wald_sprt(estimates, sprt_effect, alpha=alpha),
            SPRT_SHIPPED: wald_sprt(estimates, sprt_effect, alpha=shipped_alpha),
        }
    )
    return out


def run_harm(
    spec: RolloutSpec,
    *,
    replicates: int,
    e2e_replicates: int,
    rng: np.random.Generator,
    chunk: int = 400,
    log: Callable[[str], None] = print,
) -> tuple[list[ScenarioResult], list[Agreement], dict[str, float]]:
    schedule = ladder_schedule(spec)
    alpha, power = spec.statistics.alpha, spec.statistics.power
    single = single_metric_spec(spec, SAFETY_METRIC, horizon_seconds=HORIZON_SECONDS)
    shipped = open_ended_spec(spec, horizon_seconds=HORIZON_SECONDS)
    engine_tests = {
        ENGINE_ALONE: EngineHarmTest.from_spec(single, SAFETY_METRIC),
        ENGINE_SHIPPED: EngineHarmTest.from_spec(shipped, SAFETY_METRIC),
    }
    engine_alpha = {name: test.alpha for name, test in engine_tests.items()}
    growthbook = MsprtBoundary.tabulate(alpha=alpha, alternative="greater")
    results, agreements = [], []
    for scenario in HARM_SCENARIOS:
        started = time.perf_counter()
        parts: dict[str, list[IntArray]] = {}
        first_chunk: Streams | None = None
        for begin in range(0, replicates, chunk):
            streams = simulate(schedule, scenario, min(chunk, replicates - begin), rng)
            first_chunk = first_chunk or streams
            for name, looks in _methods_on_chunk(
                streams,
                scenario,
                schedule,
                engine_tests,
                growthbook,
                alpha,
                power,
                engine_tests[ENGINE_SHIPPED].alpha,
            ).items():
                parts.setdefault(name, []).append(looks)
        methods = [MethodResult(name, np.concatenate(chunks)) for name, chunks in parts.items()]
        results.append(ScenarioResult(scenario, replicates, methods))
        log(
            f"  harm {scenario.name}: {replicates} rollouts x {len(methods)} methods "
            f"in {time.perf_counter() - started:.1f} s"
        )
        assert first_chunk is not None
        agreements.append(
            _agreement(
                single, schedule, first_chunk, methods[0].looks, scenario, e2e_replicates, "escalation alone"
            )
        )
        log(
            f"  harm {scenario.name}: decide end to end on {e2e_replicates} rollouts: "
            f"{agreements[-1].agree} agree"
        )
    return results, agreements, engine_alpha


def _agreement(
    spec: RolloutSpec,
    schedule: Schedule,
    streams: Streams,
    vectorised: IntArray,
    scenario: Scenario,
    count: int,
    spec_name: str,
) -> Agreement:
    started = time.perf_counter()
    agree = calls = rollbacks = 0
    for row in range(min(count, streams.replicates)):
        look, _ = first_decision(
            spec, schedule, {SAFETY_METRIC: proportion_stream(streams, row)}, [DecisionKind.ROLLBACK]
        )
        agree += int(look == vectorised[row])
        calls += (look + 1) if look != NEVER else schedule.ticks
        rollbacks += int(look != NEVER)
    return Agreement(
        scenario.name,
        spec_name,
        min(count, streams.replicates),
        agree,
        time.perf_counter() - started,
        calls,
        rollbacks,
    )


# --- A/B ----------------------------------------------------------------------------------------------------


def run_ab(
    spec: RolloutSpec,
    *,
    replicates: int,
    e2e_replicates: int,
    rng: np.random.Generator,
    chunk: int = 400,
    log: Callable[[str], None] = print,
) -> tuple[list[AbResult], list[Agreement], Schedule]:
    schedule = fixed_split_schedule(AB_PERCENT)
    abspec = ab_spec(spec, percent=AB_PERCENT, min_duration=AB_MIN_DURATION, horizon_seconds=HORIZON_SECONDS)
    engine = EnginePromoteTest.from_spec(abspec)
    alpha = spec.statistics.alpha
    z_crit = float(ndtri(1 - alpha / 2))
    results, agreements = [], []
    for scenario in AB_SCENARIOS:
        started = time.perf_counter()
        rows: dict[str, list[tuple[IntArray, np.ndarray, np.ndarray | None]]] = {}
        first_chunk: Streams | None = None
        engine_first: IntArray | None = None
        for begin in range(0, replicates, chunk):
            streams = simulate(schedule, scenario, min(chunk, replicates - begin), rng)
            outcome = engine.outcome(streams, schedule, scenario.effect)
            if first_chunk is None:
                first_chunk, engine_first = streams, outcome.look
            hit = outcome.look != NEVER
            covered = (outcome.ci_low <= scenario.effect) & (scenario.effect <= outcome.ci_high)
            rows.setdefault("canarywise decide (A/B mode)", []).append(
                (outcome.look, covered[hit], outcome.covers_every_look)
            )
            # The naive analyst: the same PROMOTE rule with the fixed-sample 95% z interval at every look.
            estimates = difference_estimates(streams.cumulative())
            se = np.sqrt(estimates.variance)
            low, high = estimates.diff - z_crit * se, estimates.diff + z_crit * se
            elapsed = np.arange(schedule.ticks) + 1 >= engine.min_looks
            look = first_true((estimates.variance > 0) & (low > 0) & (estimates.diff >= engine.mde) & elapsed)
            r = np.arange(look.size)
            at = np.where(look == NEVER, 0, look)
            naive_cover = (low[r, at] <= scenario.effect) & (scenario.effect <= high[r, at])
            rows.setdefault("naive 95% z-interval at every look", []).append(
                (look, naive_cover[look != NEVER], None)
            )
        merged = [
            AbRow(
                name,
                np.concatenate([p[0] for p in parts]),
                np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts if p[2] is not None])
                if parts[0][2] is not None
                else None,
            )
            for name, parts in rows.items()
        ]
        results.append(AbResult(scenario, replicates, merged))
        log(f"  A/B {scenario.name}: {replicates} tests in {time.perf_counter() - started:.1f} s")
        assert first_chunk is not None
        assert engine_first is not None
        agreements.append(
            _ab_agreement(abspec, schedule, first_chunk, engine_first, scenario, e2e_replicates)
        )
        log(
            f"  A/B {scenario.name}: decide end to end on {e2e_replicates} tests: "
            f"{agreements[-1].agree} agree"
        )
    return results, agreements, schedule


def _ab_agreement(
    spec: RolloutSpec,
    schedule: Schedule,
    streams: Streams,
    vectorised: IntArray,
    scenario: Scenario,
    count: int,
) -> Agreement:
    started = time.perf_counter()
    agree = calls = promoted = 0
    kinds = [DecisionKind.PROMOTE, DecisionKind.KEEP_CONTROL, DecisionKind.ROLLBACK]
    for row in range(min(count, streams.replicates)):
        look, decision = first_decision(
            spec, schedule, {PRIMARY_METRIC: proportion_stream(streams, row)}, kinds
        )
        is_promote = decision is not None and decision.kind is DecisionKind.PROMOTE
        agree += int((look if is_promote else NEVER) == vectorised[row])
        calls += (look + 1) if look != NEVER else schedule.ticks
        promoted += int(is_promote)
    return Agreement(
        scenario.name,
        "A/B, primary alone",
        min(count, streams.replicates),
        agree,
        time.perf_counter() - started,
        calls,
        promoted,
    )


def wald_bound_hours(scenario: Scenario, schedule: Schedule, alpha: float) -> float:
    """Hours until the expected information (true rates, mean traffic) reaches Wald's approximation."""
    n_control, n_canary = schedule.expected_counts()
    info = 1 / (
        scenario.p_control * (1 - scenario.p_control) / n_control
        + scenario.p_canary * (1 - scenario.p_canary) / n_canary
    )
    need = sprt_expected_information(scenario.effect, alpha=alpha)
    reached = np.flatnonzero(info >= need)
    return float(schedule.hours_at(int(reached[0]))) if reached.size else math.inf


def run_all(
    spec: RolloutSpec,
    *,
    replicates: int,
    ab_replicates: int,
    e2e_replicates: int,
    rng: np.random.Generator,
    log: Callable[[str], None] = print,
) -> QualityReport:
    started = time.perf_counter()
    harm, harm_agree, engine_alpha = run_harm(
        spec, replicates=replicates, e2e_replicates=e2e_replicates, rng=rng, log=log
    )
    ab, ab_agree, ab_schedule = run_ab(
        spec, replicates=ab_replicates, e2e_replicates=e2e_replicates, rng=rng, log=log
    )
    return QualityReport(
        harm,
        ab,
        harm_agree + ab_agree,
        ladder_schedule(spec),
        ab_schedule,
        engine_alpha,
        time.perf_counter() - started,
    )
