"""One simulated A/A rollout of every metric the shipped spec evaluates, shaped for ``decide``.

The escalation rate is split by intent (its ``slice_dimension``), with the spec's critical slices among the
intents; every other metric is a proportion or, for CSAT, a mean. The baselines are what a shopping assistant
like MangaAssist sees; the canary is identical to the control (A/A), so every rollback is a false one.
"""

from __future__ import annotations

import numpy as np

from bench.engine import MetricStream
from bench.scenarios import FloatArray, Schedule
from canarywise.decision.engine import evaluated_metrics
from canarywise.decision.models import Variant
from canarywise.spec import MetricKind, RolloutSpec

# Per-session rates (proportions) and, for CSAT, (mean, sd) of a 1-5 rating.
BASELINES: dict[str, float | tuple[float, float]] = {
    "escalation_rate": 0.12,
    "error_rate": 0.003,
    "slow_response_rate": 0.02,
    "hallucination_rate": 0.03,
    "safety_filter_rate": 0.01,
    "task_completion": 0.78,
    "csat": (4.2, 1.0),
    "recommendation_ctr": 0.10,
}
# Share of sessions per intent (the escalation rate's slices); the spec's critical slices are among them.
INTENTS = {"order_status": 0.30, "returns": 0.15, "product_search": 0.35, "other": 0.20}


def simulate_all_metrics(
    spec: RolloutSpec,
    schedule: Schedule,
    baselines: dict[str, float | tuple[float, float]],
    rng: np.random.Generator,
) -> dict[str, MetricStream]:
    """Per-tick streams of every evaluated metric of ``spec`` for one A/A rollout."""
    sessions = rng.poisson(schedule.expected_sessions)
    n = {Variant.CANARY: rng.binomial(sessions, schedule.shares)}
    n[Variant.CONTROL] = sessions - n[Variant.CANARY]
    out: dict[str, MetricStream] = {}
    for metric in evaluated_metrics(spec):
        base = baselines[metric.name]
        if metric.kind is MetricKind.MEAN:
            assert isinstance(base, tuple)
            out[metric.name] = _mean_stream(n, *base, rng)
        elif metric.slice_dimension:
            assert isinstance(base, float)
            out[metric.name] = _sliced_stream(n, base, rng)
        else:
            assert isinstance(base, float)
            out[metric.name] = MetricStream(
                n=n, events={v: rng.binomial(n[v], base).astype(np.float64) for v in Variant}
            )
    return out


def _sliced_stream(n: dict[Variant, np.ndarray], rate: float, rng: np.random.Generator) -> MetricStream:
    shares = np.array(list(INTENTS.values()))
    per_slice: dict[str, MetricStream] = {}
    counts = {v: rng.multinomial(n[v], shares) for v in Variant}  # (ticks, intents)
    for i, name in enumerate(INTENTS):
        slice_n = {v: counts[v][:, i] for v in Variant}
        per_slice[name] = MetricStream(
            n=slice_n, events={v: rng.binomial(slice_n[v], rate).astype(np.float64) for v in Variant}
        )
    events: dict[Variant, FloatArray] = {
        v: np.sum([s.events[v] for s in per_slice.values()], axis=0) for v in Variant
    }
    return MetricStream(n=n, events=events, slices=per_slice)


def _mean_stream(
    n: dict[Variant, np.ndarray], mean: float, sd: float, rng: np.random.Generator
) -> MetricStream:
    # Normal ratings, drawn through their sufficient statistics: the sum is normal, and the within-tick sum of
    # squared deviations is sd**2 times a chi-square with n - 1 degrees of freedom, independent of the sum.
    sums: dict[Variant, FloatArray] = {}
    squares: dict[Variant, FloatArray] = {}
    for v in Variant:
        count = n[v].astype(np.float64)
        total = rng.normal(count * mean, sd * np.sqrt(count))
        spread = sd**2 * rng.chisquare(np.maximum(count - 1, 1)) * (count > 1)
        sums[v] = total
        with np.errstate(divide="ignore", invalid="ignore"):
            squares[v] = np.where(count > 0, spread + total**2 / count, 0.0)
    return MetricStream(n=n, events=sums, squares=squares)
