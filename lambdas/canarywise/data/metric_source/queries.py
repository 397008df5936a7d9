"""The GetMetricData queries that read a spec metric: one per sufficient statistic, variant and slice.

A service metric is read from the slot that plays the variant (its ``Variant`` dimension, plus the slice
dimension for a slice); an ALB metric from the slot's target group (`AlbDimensions`); new assignments from
the emitter's ``NewAssignment`` count. See the table in `canarywise.data.metric_source`.

Example
-------
>>> from canarywise.decision.models import ObservationKey, Variant
>>> metric = spec.metric("escalation_rate")  # doctest: +SKIP
>>> key = ObservationKey("escalation_rate", 0, Variant.CANARY)
>>> [q.stat for q in metric_queries(metric, key, alb=None, slots=FIXED_SLOTS)]  # doctest: +SKIP
['SampleCount', 'Sum']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from canarywise.decision.models import ObservationKey, Variant
from canarywise.emit import (
    ASSIGNMENT_METRIC,
    ASSIGNMENT_NAMESPACE,
    SERVICE_DIMENSION,
    SQUARED_SUFFIX,
    VARIANT_DIMENSION,
)
from canarywise.errors import CanarywiseError
from canarywise.spec import AlbSource, Metric, MetricKind, RolloutSpec, ServiceSource

ALB_NAMESPACE = "AWS/ApplicationELB"
# The key under which new-assignment counts travel with the metrics' queries; never a spec metric name (those
# start with a lowercase letter).
ASSIGNMENTS = "(new assignments)"


class MetricSourceError(CanarywiseError, RuntimeError):
    """CloudWatch could not be read (throttled, refused, failing): the check must HOLD, never advance."""


@dataclass(frozen=True)
class AlbDimensions:
    """Dimension values of the ALB's CloudWatch metrics (the "full names" at the end of the ARNs).

    `target_groups` maps each slot (the service's two target groups, which take turns being live) to its
    ``TargetGroup`` dimension value.
    """

    load_balancer: str
    target_groups: Mapping[str, str]

    def target_group(self, slot: str) -> str:
        if slot not in self.target_groups:
            raise MetricSourceError(
                f"no ALB target group for slot {slot!r}; slots: {sorted(self.target_groups)}"
            )
        return self.target_groups[slot]


# Role → slot before blue/green roles: the fixed control and canary groups (and experiments stored then).
FIXED_SLOTS: Mapping[Variant, str] = {Variant.CONTROL: "control", Variant.CANARY: "canary"}


@dataclass(frozen=True)
class Query:
    """One GetMetricData query and where its summed value goes."""

    key: ObservationKey
    field: str  # "n" | "successes" | "sum" | "sum_squares"
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str
    # A minute (60) for a stage's unit count that also gives freshness (`windows.stage_windows`); None: the
    # window's period.
    period: int | None = None


def metric_queries(
    metric: Metric, key: ObservationKey, *, alb: AlbDimensions | None, slots: Mapping[Variant, str]
) -> list[Query]:
    """The queries of `metric` for `key` (its stage, variant and slice), read from the slot that plays the
    variant in `slots`."""
    source = metric.source
    if isinstance(source, AlbSource):
        if key.slice is not None:
            return []
        if alb is None:
            raise MetricSourceError(
                f"metric {metric.name!r} reads the ALB's metrics but no ALB dimensions were configured"
            )
        alb_dims = (
            ("LoadBalancer", alb.load_balancer),
            ("TargetGroup", alb.target_group(slots[key.variant])),
        )
        return [
            Query(key, "n", ALB_NAMESPACE, "RequestCount", alb_dims, "Sum"),
            Query(key, "successes", ALB_NAMESPACE, "HTTPCode_Target_5XX_Count", alb_dims, "Sum"),
        ]
    assert isinstance(source, ServiceSource)  # the spec's validator guarantees a source
    dims: tuple[tuple[str, str], ...] = ((VARIANT_DIMENSION, slots[key.variant]),)
    if key.slice is not None and metric.slice_dimension:
        dims += ((metric.slice_dimension, key.slice),)
    ns, name = source.namespace, source.metric_name
    if metric.kind is MetricKind.MEAN:
        return [
            Query(key, "n", ns, name, dims, "SampleCount"),
            Query(key, "sum", ns, name, dims, "Sum"),
            Query(key, "sum_squares", ns, name + SQUARED_SUFFIX, dims, "Sum"),
        ]
    return [
        Query(key, "n", ns, name, dims, "SampleCount"),
        Query(key, "successes", ns, name, dims, "Sum"),
    ]


def assignment_query(spec: RolloutSpec, stage: int, variant: Variant, slot: str) -> Query:
    """New assignments to `variant` during `stage` (the emitter's NewAssignment, one 1 per assignment)."""
    dims = ((SERVICE_DIMENSION, spec.service), (VARIANT_DIMENSION, slot))
    key = ObservationKey(ASSIGNMENTS, stage, variant)
    return Query(key, "n", ASSIGNMENT_NAMESPACE, ASSIGNMENT_METRIC, dims, "Sum")
