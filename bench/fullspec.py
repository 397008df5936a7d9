"""The world of the shipped spec's metrics: each metric's baseline, the intents the escalation rate is split
by, and a mean metric's per-tick sufficient statistics.

The baselines are what a shopping assistant like MangaAssist sees; the spec's critical slices are among the
intents.
"""

from __future__ import annotations

import numpy as np

from bench.engine import MetricStream
from bench.scenarios import FloatArray
from canarywise.decision.models import Variant

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


def mean_stream(
    n: dict[Variant, np.ndarray], mean: float, sd: float, rng: np.random.Generator
) -> MetricStream:
    """Per-tick count, sum and sum of squares of normal ratings (``mean``, ``sd``) for ``n`` units per tick.

    Example
    -------
    >>> s = mean_stream({v: np.array([100, 100]) for v in Variant}, 4.2, 1.0, np.random.default_rng(1))
    >>> s.n[Variant.CONTROL].tolist(), abs(float(s.events[Variant.CONTROL].sum()) / 200 - 4.2) < 0.3
    ([100, 100], True)
    """
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
