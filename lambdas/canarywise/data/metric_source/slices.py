"""Slices: which values of a metric's slice dimension (e.g. intents) a check reads, and the rest pooled.

The values are those CloudWatch lists for the metric with both its ``Variant`` and its slice dimension.
Past the metric's ``max_slices`` the check reads its critical slices, then the busiest (`busiest_slices`),
and pools the others as one `OTHER_SLICE`: the metric's overall sums minus those of the slices read
(`with_other_slice`).

Example
-------
>>> from canarywise.decision.models import ObservationKey, Variant
>>> key = ObservationKey("intent_csat", 0, Variant.CANARY)
>>> sums = {(key, "n"): 100.0, (key._replace(slice="refund"), "n"): 60.0}
>>> with_other_slice(sums, {"intent_csat": ("refund",)})[(key._replace(slice=OTHER_SLICE), "n")]
40.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from canarywise.data.metric_source.queries import AlbDimensions, Query, metric_queries
from canarywise.data.metric_source.windows import Window, whole_window
from canarywise.decision.models import ObservationKey, Variant
from canarywise.emit import VARIANT_DIMENSION
from canarywise.spec import Metric, ServiceSource

# The slice that pools a capped metric's slice values not read (see `Metric.max_slices`).
OTHER_SLICE = "(other)"
# Runs a window's queries: each with its values, their timestamps and whether its answer is complete.
Run = Callable[[Window], Iterable[tuple[Query, list[float], list[datetime], bool]]]


def listed_slice_values(client: Any, source: ServiceSource, dimension: str) -> set[str]:
    """The values of `dimension` that `source`'s metric is listed with (ListMetrics), beside ``Variant``."""
    wanted = {VARIANT_DIMENSION, dimension}
    values: set[str] = set()
    for page in client.get_paginator("list_metrics").paginate(
        Namespace=source.namespace,
        MetricName=source.metric_name,
        Dimensions=[{"Name": VARIANT_DIMENSION}, {"Name": dimension}],
    ):
        for found in page.get("Metrics", []):
            dims = {d["Name"]: d["Value"] for d in found.get("Dimensions", [])}
            if set(dims) == wanted:
                values.add(dims[dimension])
    return values


def busiest_slices(
    metric: Metric,
    values: Sequence[str],
    start: datetime,
    now: datetime,
    *,
    alb: AlbDimensions | None,
    slots: Mapping[Variant, str],
    run: Run,
) -> tuple[str, ...]:
    """`metric.max_slices` of `values`: the critical slices, then the others with the most units over the
    experiment so far (both variants; ties by name). One unit count per value and variant: past the cap a
    check asks for 2 x (number of values) more metrics."""
    bounds = whole_window(start, now, now)
    if bounds is None:  # not a whole minute yet: no volume to rank by
        return tuple(sorted(set(metric.critical_slices) & set(values)))
    window = Window(start=bounds[0], end=bounds[1], period=int((bounds[1] - bounds[0]).total_seconds()))
    for value in values:
        for variant in Variant:
            key = ObservationKey(metric.name, -1, variant, value)
            window.queries.extend(
                q for q in metric_queries(metric, key, alb=alb, slots=slots) if q.field == "n"
            )
    units: dict[str, float] = dict.fromkeys(values, 0.0)
    for query, found, _, _ in run(window):
        units[query.key.slice or ""] += math.fsum(found)
    critical = [v for v in values if v in metric.critical_slices]
    others = sorted((v for v in values if v not in metric.critical_slices), key=lambda v: (-units[v], v))
    return tuple(sorted([*critical, *others][: metric.max_slices]))


def with_other_slice(
    sums: dict[tuple[ObservationKey, str], float], capped: Mapping[str, tuple[str, ...]]
) -> dict[tuple[ObservationKey, str], float]:
    """`sums` and, for each metric whose slices were capped (`capped`: metric → the slices read), the
    `OTHER_SLICE` pooling the slices not read: the metric's overall sums minus those of the slices read (units
    without a slice value too)."""
    pooled = dict(sums)
    for (key, name), total in sums.items():
        chosen = capped.get(key.metric)
        if chosen is None or key.slice is not None:
            continue
        read = math.fsum(sums.get((key._replace(slice=value), name), 0.0) for value in chosen)
        pooled[(key._replace(slice=OTHER_SLICE), name)] = total - read
    return pooled
