"""What a spec's own gates will do at a given traffic: ``canarywise plan --spec``.

`plan_rollout` plays a healthy candidate (every metric at its baseline in both arms) and, for each safety and
guardrail metric, a candidate worse by that metric's MDE, through `canarywise.simulation.rollout` (the
engine's rule, the ladder moved by its decisions), and summarises per stage: how long a healthy candidate
takes to advance (median and 90th percentile), its chance of ending INCONCLUSIVE there, and how soon each
harm is rolled back. It also says, stage by stage, how likely each margin is to be provable by the end of the
stage's maximum duration for a candidate exactly as good as control (`rollout.gate_outlook`).

Example
-------
>>> from canarywise.spec import load_spec
>>> plan = plan_rollout(load_spec("config/mangaassist.yaml"), daily_traffic=300_000, replicates=20,
...                     harm_replicates=10, seed=1)  # doctest: +SKIP
>>> [s.percent for s in plan.stages]  # doctest: +SKIP
[5.0, 25.0, 50.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from canarywise.decision.evidence import metric_mde
from canarywise.simulation.arrays import NEVER
from canarywise.simulation.rollout import (
    INCONCLUSIVE,
    READY,
    ROLLBACK,
    RolloutResult,
    RolloutWorld,
    gate_outlook,
    simulate,
)
from canarywise.spec import RolloutSpec

# A warning when more healthy candidates than this end INCONCLUSIVE in a stage, or a margin's chance of being
# provable by the end of a stage is below MARGIN_CHANCE_WARNING.
INCONCLUSIVE_WARNING = 0.05
MARGIN_CHANCE_WARNING = 0.5


@dataclass(frozen=True)
class MarginOutlook:
    metric: str
    margin: float
    chance: float  # P(non-inferiority bound inside the margin at the stage's maximum), a healthy candidate


@dataclass(frozen=True)
class StagePlan:
    """One stage for a healthy candidate: hours in the stage until it advanced (of those that did)."""

    index: int
    percent: float
    min_hours: float
    max_hours: float
    reached: float  # share of rollouts that reached the stage
    advance_median_hours: float | None
    advance_p90_hours: float | None
    inconclusive: float  # share of all rollouts ending INCONCLUSIVE in this stage
    rolled_back: float  # share of all rollouts rolled back in this stage (false rollbacks)
    margins: tuple[MarginOutlook, ...]


@dataclass(frozen=True)
class HarmPlan:
    """A candidate worse by ``metric``'s MDE (others equal): how soon it is rolled back."""

    metric: str
    baseline: float
    candidate_rate: float
    rolled_back: float
    median_hours: float | None  # None: fewer than half (or 90%) were rolled back before the ladder ended
    p90_hours: float | None


@dataclass(frozen=True)
class RolloutPlan:
    daily_traffic: float
    replicates: int
    harm_replicates: int
    seed: int
    stages: tuple[StagePlan, ...]
    ready: float
    ready_median_hours: float | None
    ready_p90_hours: float | None
    inconclusive: float
    rolled_back: float
    harms: tuple[HarmPlan, ...]
    warnings: tuple[str, ...] = field(default=())


def _quantile(hours: np.ndarray, q: float) -> float | None:
    """The q-quantile (the rank-ceil(q n) value) of ``hours``; None when it is infinite or there are none."""
    if hours.size == 0:
        return None
    value = float(np.sort(hours)[max(math.ceil(q * hours.size) - 1, 0)])
    return value if math.isfinite(value) else None


def _stage_plans(world: RolloutWorld, result: RolloutResult) -> list[StagePlan]:
    spec, tick_hours = world.spec, world.schedule.tick_seconds / 3600
    reached = (result.stage_starts != NEVER).sum(axis=1)  # stages each rollout reached
    end_tick = result.look + 1  # the tick after the final look
    out = []
    for i, stage in enumerate(spec.stages):
        last = i == len(spec.stages) - 1
        if last:
            passed = result.outcome == READY
            ticks = end_tick - result.stage_starts[:, i]
        else:
            passed = result.stage_starts[:, i + 1] != NEVER
            ticks = result.stage_starts[:, i + 1] - result.stage_starts[:, i]
        ended_here = reached == i + 1
        hours = ticks[passed] * tick_hours
        out.append(
            StagePlan(
                index=i,
                percent=stage.percent,
                min_hours=stage.min_duration / 3600,
                max_hours=stage.max_duration / 3600,
                reached=float(np.mean(reached >= i + 1)),
                advance_median_hours=_quantile(hours, 0.5),
                advance_p90_hours=_quantile(hours, 0.9),
                inconclusive=float(np.mean(ended_here & (result.outcome == INCONCLUSIVE))),
                rolled_back=float(np.mean(ended_here & (result.outcome == ROLLBACK))),
                margins=tuple(MarginOutlook(g.metric, g.margin, g.chance) for g in gate_outlook(world, i)),
            )
        )
    return out


def _warnings(plan_stages: list[StagePlan], harms: list[HarmPlan], daily_traffic: float) -> list[str]:
    out = []
    for s in plan_stages:
        where = f"stage {s.index + 1} ({s.percent:g}% for at most {s.max_hours:g} h)"
        for m in s.margins:
            if m.chance < MARGIN_CHANCE_WARNING:
                out.append(
                    f"{where}: {m.metric}'s margin {m.margin:g} cannot be proven at "
                    f"{daily_traffic:,.0f} units/day: a candidate exactly as good has a "
                    f"{100 * m.chance:.0f}% chance by the end of the stage (raise max_duration or "
                    "percent, or widen the margin)"
                )
        if s.inconclusive > INCONCLUSIVE_WARNING:
            out.append(
                f"{where}: {100 * s.inconclusive:.1f}% of healthy candidates end INCONCLUSIVE here (the "
                "spec's inconclusive_policy then applies)"
            )
    for h in harms:
        if h.rolled_back < 0.9:
            out.append(
                f"a candidate worse by {h.metric}'s MDE ({100 * h.baseline:.2f}% -> "
                f"{100 * h.candidate_rate:.2f}%) is rolled back in only {100 * h.rolled_back:.0f}% of "
                "rollouts"
            )
    return out


def plan_rollout(
    spec: RolloutSpec,
    *,
    daily_traffic: float,
    baselines: Mapping[str, float] | None = None,
    slice_shares: Mapping[str, float] | None = None,
    replicates: int = 1000,
    harm_replicates: int = 300,
    seed: int = 1,
) -> RolloutPlan:
    """Simulate the spec's ladder at ``daily_traffic`` units a day (both arms): a healthy candidate
    ``replicates`` times, then each safety/guardrail metric at its MDE ``harm_replicates`` times.

    ``baselines`` overrides the spec's ``baseline`` per metric; ``slice_shares`` gives the sliced metric's
    slices (see `RolloutWorld`). Seeded: the same arguments give the same plan.
    """
    rng = np.random.default_rng(seed)
    ticks = sum(s.max_duration // spec.check_interval for s in spec.stages)
    common = {
        "baselines": baselines,
        "slice_shares": slice_shares,
        "daily_sessions": daily_traffic,
        "horizon_ticks": ticks,
    }
    healthy = RolloutWorld(spec, **common)  # type: ignore[arg-type]
    result = simulate(healthy, replicates, rng, label="healthy")
    hours = healthy.schedule.hours_at(result.look)
    stages = _stage_plans(healthy, result)
    harms = []
    for series in healthy.series[: healthy.overall]:
        metric = spec.metric(series.metric)
        worse = series.baseline + metric_mde(spec, metric)
        world = RolloutWorld(spec, canary_rates={metric.name: worse}, **common)  # type: ignore[arg-type]
        harm = simulate(world, harm_replicates, rng, label=f"harm on {metric.name}")
        to_rollback = np.where(harm.outcome == ROLLBACK, world.schedule.hours_at(harm.look), np.inf)
        harms.append(
            HarmPlan(
                metric.name,
                series.baseline,
                worse,
                float(np.mean(harm.outcome == ROLLBACK)),
                _quantile(to_rollback, 0.5),
                _quantile(to_rollback, 0.9),
            )
        )
    ready = result.outcome == READY
    return RolloutPlan(
        daily_traffic=daily_traffic,
        replicates=replicates,
        harm_replicates=harm_replicates,
        seed=seed,
        stages=tuple(stages),
        ready=float(np.mean(ready)),
        ready_median_hours=_quantile(hours[ready], 0.5),
        ready_p90_hours=_quantile(hours[ready], 0.9),
        inconclusive=float(np.mean(result.outcome == INCONCLUSIVE)),
        rolled_back=float(np.mean(result.outcome == ROLLBACK)),
        harms=tuple(harms),
        warnings=tuple(_warnings(stages, harms, daily_traffic)),
    )
