"""The issue-16 demo scenarios played through the engine without the local AWS: the simulator's ticks summed
into per-stage aggregates, `decide` called once an hour with the day marks carried from look to look, as
the significance check does. (The whole stack runs them in tests/e2e; this is the lean check of the
statistics on the scenario's own traffic.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from canarywise.decision.engine import decide
from canarywise.decision.models import (
    Decision,
    DecisionKind,
    MeanAggregate,
    Observations,
    ProportionAggregate,
    StageRecord,
    Variant,
)
from canarywise.decision.temporal import marks_from
from canarywise.demo.scenarios import SCENARIOS
from canarywise.demo.simulator import TICK_SECONDS, AlbNames, TrafficSimulator
from canarywise.spec import MetricKind

START = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # a Monday


def play_ab(name: str, hours: int, *, seed: int = 7) -> list[Decision]:
    """The single-stage A/B scenario `name` for `hours`: its decisions, one per simulated hour."""
    scenario = SCENARIOS[name]
    spec = scenario.spec()
    alb = AlbNames("app/demo/1", {"blue": "targetgroup/blue/2", "green": "targetgroup/green/3"})
    simulator = TrafficSimulator(scenario, spec, seed=seed, alb=alb, live="blue")
    percent = spec.stages[0].percent
    forward = {"blue": round(100 - percent), "green": round(percent)}
    stage = StageRecord(0, percent, {Variant.CONTROL: 100 - percent, Variant.CANARY: percent}, START)
    sums: dict[tuple[str, str], list[float]] = {}
    decisions: list[Decision] = []
    per_hour = 3600 // TICK_SECONDS
    for k in range(hours * per_hour):
        now = START + timedelta(seconds=(k + 1) * TICK_SECONDS)
        tick = simulator.tick(now - timedelta(seconds=TICK_SECONDS), forward=forward, live="blue",
                              hours_in=k / per_hour)  # fmt: skip
        for slot, variant in (("blue", "control"), ("green", "canary")):
            arm = tick.arms[slot]
            for name, units in arm.n.items():
                total = sums.setdefault((name, variant), [0.0, 0.0, 0.0])
                total[0] += units
                total[1] += arm.events.get(name, 0.0)
                total[2] += arm.sum_squares.get(name, 0.0)
        if (k + 1) % per_hour:
            continue
        aggregates: dict[Any, Any] = {}
        for metric in spec.metrics:
            for variant in ("control", "canary"):
                n, events, squares = sums[(metric.name, variant)]
                aggregates[(metric.name, 0, variant, None)] = (
                    MeanAggregate(round(n), events, squares)
                    if metric.kind is MetricKind.MEAN
                    else ProportionAggregate(round(n), round(events))
                )
        observations = Observations.build(aggregates, latest={m.name: now for m in spec.metrics})
        marks = marks_from(decisions[-1].to_dict()) if decisions else []
        decisions.append(decide(spec, [stage], observations, now, temporal_marks=marks))
    return decisions


def test_novelty_is_flagged_and_its_promotion_held() -> None:
    decisions = play_ab("novelty", 4 * 24 + 2)
    last = decisions[-1]
    temporal = last.summaries["temporal"]
    days = [w for w in temporal["windows"] if w["complete"]]
    assert [w["weekday"] for w in days] == ["Mon", "Tue", "Wed", "Thu"]
    # the scenario: +1.5 pt on days 1-2, +0.1 pt on days 3-4 (200,000 users a day per arm)
    assert 0.010 < days[0]["estimate"] < 0.020
    assert abs(days[3]["estimate"]) < 0.005
    assert temporal["decay"]["early_days"] == [1, 2]
    assert temporal["decay"]["late_days"] == [3, 4]
    assert temporal["decay"]["pvalue"] < temporal["level"]
    # the whole test's lift is proven and above the minimum worthwhile half point, yet PROMOTE is held
    assert last.finding("conversion").verdict.value == "improvement"
    assert last.kind is DecisionKind.HOLD
    assert last.reasons[0].startswith("the temporal check holds PROMOTE: conversion's effect decays")
    assert not any(d.kind is DecisionKind.PROMOTE for d in decisions)
