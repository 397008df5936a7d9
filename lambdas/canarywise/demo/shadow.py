"""The demo's shadow phase: the candidate answers copies of live requests before any user is sent to it.

Every five simulated minutes the service (simulated) sends each request to both models, serves the current
model's answer and reports the pair the way `canarywise.emit.PairedMetrics` does (one log line per request
becomes CloudWatch sums; the simulation puts those sums for the tick). Then the shadow gate looks
(`canarywise.runtime.shadow.check_shadow`, the same code a scheduled check runs) and the registry keeps the
decision. The phase ends at READY_FOR_CANARY (the ladder may start), REJECTED (the release ends; the ALB's
forward action was never touched), or after the phase's maximum duration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from canarywise.data.metric_source.paired import PairedSource, shadow_metrics
from canarywise.decision.models import DecisionKind
from canarywise.emit import PAIR_CELLS, PAIR_VALUES, SHADOW_VARIANT, SQUARED_SUFFIX, VARIANT_DIMENSION
from canarywise.runtime.shadow import check_shadow
from canarywise.spec import ServiceSource

if TYPE_CHECKING:
    from canarywise.demo.local_run import LocalRun, RunResult

__all__ = ["Cells", "PairedMean", "ShadowBehaviour", "ShadowOutcome", "run_shadow_phase"]

TICK = timedelta(minutes=5)


@dataclass(frozen=True)
class Cells:
    """A binary metric on paired requests: probabilities of (both, current only, candidate only, neither)."""

    both: float
    current_only: float
    candidate_only: float
    neither: float

    @property
    def probabilities(self) -> tuple[float, float, float, float]:
        return (self.both, self.current_only, self.candidate_only, self.neither)


@dataclass(frozen=True)
class PairedMean:
    """A numeric metric on paired requests: the current model's value and the candidate's difference."""

    current: float
    current_sd: float
    diff: float
    diff_sd: float


@dataclass(frozen=True)
class ShadowBehaviour:
    """What the two models do on the same requests, per shadow metric, and how many pairs a tick brings."""

    metrics: Mapping[str, Cells | PairedMean]
    pairs_per_tick: int = 2000


@dataclass(frozen=True)
class ShadowOutcome:
    decision: str
    reason: str
    hours: float
    looks: int
    forward_before: dict[str, int]
    forward_after: dict[str, int]


def _stats(values: Any) -> dict[str, float]:
    values = np.asarray(values, dtype=float)
    return {
        "SampleCount": float(values.size),
        "Sum": float(values.sum()),
        "Minimum": float(values.min()),
        "Maximum": float(values.max()),
    }


def _tick_data(run: LocalRun, behaviour: ShadowBehaviour, stamp: datetime, rng: np.random.Generator) -> None:
    pairs = behaviour.pairs_per_tick
    intents = run.scenario.traffic.intents
    for metric in shadow_metrics(run.spec):
        assert isinstance(metric.source, ServiceSource)
        model = behaviour.metrics[metric.name]
        name = metric.source.metric_name
        slices: list[tuple[list[dict[str, str]], int]] = [
            ([{"Name": VARIANT_DIMENSION, "Value": SHADOW_VARIANT}], pairs)
        ]
        if metric.slice_dimension:
            split = rng.multinomial(pairs, list(intents.values()))
            slices += [
                (
                    [
                        {"Name": VARIANT_DIMENSION, "Value": SHADOW_VARIANT},
                        {"Name": metric.slice_dimension, "Value": intent},
                    ],
                    int(k),
                )
                for intent, k in zip(intents, split, strict=True)
                if k
            ]
        data: list[dict[str, Any]] = []
        for dims, n in slices:
            if isinstance(model, Cells):
                counts = rng.multinomial(n, model.probabilities)
                for cell, count in zip(PAIR_CELLS, counts, strict=True):
                    cell_stats = {
                        "SampleCount": float(n),
                        "Sum": float(count),
                        "Minimum": 0.0 if count < n else 1.0,
                        "Maximum": 1.0 if count else 0.0,
                    }
                    data.append(
                        {
                            "MetricName": name + cell,
                            "Dimensions": dims,
                            "Timestamp": stamp,
                            "StatisticValues": cell_stats,
                        }
                    )
            else:
                current = rng.normal(model.current, model.current_sd, n)
                diff = rng.normal(model.diff, model.diff_sd, n)
                for suffix, series in zip(PAIR_VALUES, (diff, current, current + diff), strict=True):
                    for extra, values in (("", series), (SQUARED_SUFFIX, series * series)):
                        data.append(
                            {
                                "MetricName": name + suffix + extra,
                                "Dimensions": dims,
                                "Timestamp": stamp,
                                "StatisticValues": _stats(values),
                            }
                        )
        for offset in range(0, len(data), 1000):
            run.cloudwatch.put_metric_data(
                Namespace=metric.source.namespace, MetricData=data[offset : offset + 1000]
            )


def run_shadow_phase(
    run: LocalRun, behaviour: ShadowBehaviour, *, seed: int, candidate: str
) -> ShadowOutcome:
    """Play the shadow phase on the local AWS until the gate ends it (or its maximum duration)."""
    spec = run.spec
    assert spec.shadow is not None
    rng = np.random.default_rng([seed, 12])
    shadow_id = f"{spec.service}-shadow-{candidate}-{int(run.clock.now().timestamp())}"
    started = run.clock.now()
    run.registry.start_shadow(shadow_id, spec, candidate=candidate, started_at=started)
    run.event(f"shadow phase started: {shadow_id} (users get the current model's answers only)")
    forward_before = dict(run.split.current())
    source = PairedSource(run.cloudwatch)
    looks = 0
    decision = None
    while run.clock.now() - started < timedelta(seconds=spec.shadow.max_duration) + TICK:
        stamp = run.clock.now() + timedelta(seconds=30)
        _tick_data(run, behaviour, stamp, rng)
        now = run.clock.move_to(run.clock.now() + TICK)
        decision = check_shadow(shadow_id=shadow_id, now=now, registry=run.registry, source=source)
        looks += 1
        if decision.kind in (DecisionKind.READY_FOR_CANARY, DecisionKind.REJECTED):
            break
    assert decision is not None
    hours = (run.clock.now() - started).total_seconds() / 3600
    run.event(f"shadow gate: {decision.kind.value}: {decision.reason}")
    return ShadowOutcome(
        decision.kind.value, decision.reason, hours, looks, forward_before, dict(run.split.current())
    )


def rejected_result(run: LocalRun, outcome: ShadowOutcome, expected: str) -> RunResult:
    """The `RunResult` of a release that ended in its shadow phase: REJECTED (or held) with no user moved."""
    from canarywise.demo.local_run import (
        RunResult,
    )  # here: local_run imports the scenarios, which import this

    moved = outcome.forward_after != outcome.forward_before
    return RunResult(
        scenario=run.scenario.name,
        expected=expected,
        outcome="TRAFFIC MOVED" if moved else outcome.decision,
        experiment_id=None,
        decision=outcome.decision,
        reason=outcome.reason,
        decision_hours=outcome.hours,
        simulated_hours=run.clock.hours,
        ticks=outcome.looks,
        wall_seconds=0.0,
        events=run.events,
    )
