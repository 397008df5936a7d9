"""The shipped spec as a team would run it: every metric, the ladder driven by the engine's own decisions.

The rest of the benchmark holds the ladder fixed (each stage at its minimum duration) so every method sees the
same streams. A real rollout only moves on when ``decide`` says ADVANCE (every safety/guardrail metric proven
non-inferior to its margin, the minimum duration run, enough units in the stage, no sample-ratio mismatch),
and with ``inconclusive_policy: rollback`` a stage that reaches its maximum duration without meeting its gate
rolls the candidate back. So a good candidate can be rolled back in three ways: a harm test fires by chance, a
hard limit is breached by chance, or the gate is not met in time. This module measures all three.

The rollouts are played by ``canarywise.simulation.rollout`` (the engine's rule vectorised, shared with
``canarywise plan``) with ``bench.fullspec``'s baselines and intents. ``replay`` feeds the ticks of the first
rollouts, as simulated, to ``canarywise.decision.engine.decide`` itself look by look (with every metric of the
spec, the non-blocking ones too) and reports whether its decisions are the same at every look.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from bench.engine import T0, MetricStream
from bench.fullspec import BASELINES, INTENTS, mean_stream
from bench.scenarios import DAILY_SESSIONS, Schedule
from canarywise.decision.context import evaluated_metrics
from canarywise.decision.engine import decide
from canarywise.decision.models import (
    Aggregate,
    MeanAggregate,
    Observations,
    ProportionAggregate,
    StageRecord,
    Variant,
)
from canarywise.simulation.arrays import NEVER
from canarywise.simulation.rollout import (
    CAUSE_HARD_LIMIT,
    CAUSE_HARM,
    CAUSE_SLICE,
    INCONCLUSIVE,
    KINDS,
    READY,
    ROLLBACK,
    GateOutlook,
    RolloutResult,
    RolloutWorld,
    gate_outlook,
    simulate,
)
from canarywise.spec import MetricKind, RolloutSpec

# bench.report reads the outcome codes and causes from here.
__all__ = [
    "CAUSE_HARD_LIMIT",
    "CAUSE_HARM",
    "CAUSE_SLICE",
    "INCONCLUSIVE",
    "NEVER",
    "READY",
    "ROLLBACK",
    "Replay",
    "ShippedReport",
    "replay",
    "run_shipped",
    "shipped_world",
    "simulate",
]


def shipped_world(
    spec: RolloutSpec,
    *,
    baselines: dict[str, float] | None = None,
    canary_rates: dict[str, float] | None = None,
    daily_sessions: float = DAILY_SESSIONS,
) -> RolloutWorld:
    """The shipped spec's world: ``bench.fullspec``'s baselines (``baselines`` overrides some) and intents."""
    return RolloutWorld(
        spec,
        baselines={**BASELINES, **(baselines or {})},
        canary_rates=canary_rates,
        slice_shares=INTENTS,
        daily_sessions=daily_sessions,
    )


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
    world: RolloutWorld, rec: dict[str, np.ndarray], rng: np.random.Generator
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
                for i, intent in enumerate(world.slice_shares)
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


def replay(world: RolloutWorld, result: RolloutResult, rng: np.random.Generator) -> Replay:
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


# --- the report ---------------------------------------------------------------------------------------------


@dataclass
class ShippedReport:
    results: list[RolloutResult]
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
        ("A/A: every metric equal in both arms", shipped_world(spec), replicates),
        (
            "harm at the MDE: escalation 12% -> 14% (others equal)",
            shipped_world(spec, canary_rates={"escalation_rate": 0.14}),
            harm_replicates,
        ),
        (
            "broken: errors 0.3% -> 4% (others equal)",
            shipped_world(spec, canary_rates={"error_rate": 0.04}),
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
