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
    alpha; `others` (e.g. the primary metric of a canary) unadjusted."""
    alpha = ctx.spec.statistics.alpha
    adjusted, _ = bh_adjust([sequential_finding(ctx, m, "two_sided", alpha=alpha) for m in secondary], alpha)
    return adjusted + [sequential_finding(ctx, m, "two_sided", alpha=alpha) for m in others]
