"""Metrics that are reported but decide nothing: secondary metrics (Benjamini-Hochberg across them) and, in
canary mode, the primary metric."""

from __future__ import annotations

from collections.abc import Sequence

from canarywise.decision.context import EvaluationContext
from canarywise.decision.evidence import bh_adjust, sequential_finding
from canarywise.decision.models import MetricFinding
from canarywise.spec import Metric

__all__ = ["report"]


def report(
    ctx: EvaluationContext, secondary: Sequence[Metric], others: Sequence[Metric] = ()
) -> list[MetricFinding]:
    """Two-sided anytime-valid findings (verdict REPORTED): BH-adjusted across `secondary` at the spec's
    alpha, and for a sliced secondary metric per slice (BH across its slices); `others` (e.g. the primary
    metric of a canary) unadjusted."""
    alpha = ctx.spec.statistics.alpha
    adjusted, _ = bh_adjust([sequential_finding(ctx, m, "two_sided", alpha=alpha) for m in secondary], alpha)
    for metric in secondary:
        if metric.slice_dimension:  # per slice too, BH across the metric's slices (its own family)
            per_slice = [
                sequential_finding(ctx, metric, "two_sided", alpha=alpha, slice_=s)
                for s in ctx.slices(metric.name)
            ]
            adjusted += bh_adjust(per_slice, alpha)[0]
    return adjusted + [sequential_finding(ctx, m, "two_sided", alpha=alpha) for m in others]
