"""Per-variant sufficient statistics from CloudWatch, stage by stage: the engine's `Observations`.

Each evaluated spec metric becomes GetMetricData queries per stage window, per variant and per slice:

================================  ========================================================================
metric                            queries (statistic → sufficient statistic)
================================  ========================================================================
service, proportion               ``<MetricName>`` SampleCount → n, Sum → successes (a 0/1 value)
service, tail_exceedance          ``<MetricName>`` (a 0/1 exceedance indicator) as a proportion
service, mean                     ``<MetricName>`` SampleCount → n, Sum → sum;
                                  ``<MetricName>Squared`` Sum → sum of squares
ALB ``http_5xx``                  ``AWS/ApplicationELB`` RequestCount Sum → n,
                                  HTTPCode_Target_5XX_Count Sum → successes
new assignments (all metrics)     ``Canarywise`` NewAssignment Sum (dimensions ``Service``, ``Variant``)
                                  → `Observations.assignments`, for the sample-ratio check
================================  ========================================================================

Service metrics carry the dimension ``Variant`` (``control`` | ``canary``) and, for a sliced metric, also
the slice dimension (``canarywise.emit`` emits both dimension sets). ALB metrics carry ``TargetGroup`` and
``LoadBalancer``. Only aggregates cross the wire: the cost of a check does not grow with traffic.

New assignments (see `canarywise.emit.is_new_assignment`) follow the weights in force even when sticky users
return to the variant of their cookie; when the service does not emit them, `Observations.assignments` stays
empty and the engine falls back to counting a metric's units (and says so in the SRM finding).

Example
-------
>>> alb = AlbDimensions("app/alb/1", "targetgroup/control/2", "targetgroup/canary/3")
>>> source = MetricSource(alb)  # doctest: +SKIP
>>> observations = source.observe(spec, stages, now)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from canarywise.data._aws import AwsCallError, client, error_code
from canarywise.decision.context import evaluated_metrics, stage_label
from canarywise.decision.models import (
    Aggregate,
    MeanAggregate,
    ObservationKey,
    Observations,
    ProportionAggregate,
    StageRecord,
    Variant,
)
from canarywise.emit import (
    ASSIGNMENT_METRIC,
    ASSIGNMENT_NAMESPACE,
    SERVICE_DIMENSION,
    SQUARED_SUFFIX,
    VARIANT_DIMENSION,
)
from canarywise.errors import CanarywiseError
from canarywise.spec import AlbSource, Metric, MetricKind, RolloutSpec, ServiceSource

logger = Logger(child=True)

MAX_QUERIES_PER_CALL = 500  # the GetMetricData limit
ALB_NAMESPACE = "AWS/ApplicationELB"
# The key under which new-assignment counts travel with the metrics' queries; never a spec metric name (those
# start with a lowercase letter).
_ASSIGNMENTS = "(new assignments)"


class MetricSourceError(CanarywiseError, RuntimeError):
    """CloudWatch could not be read (throttled, refused, failing): the check must HOLD, never advance."""


@dataclass(frozen=True)
class AlbDimensions:
    """Dimension values of the ALB's CloudWatch metrics (the "full names" at the end of the ARNs)."""

    load_balancer: str
    control_target_group: str
    canary_target_group: str

    def target_group(self, variant: Variant) -> str:
        return self.control_target_group if variant is Variant.CONTROL else self.canary_target_group


@dataclass(frozen=True)
class _Query:
    """One GetMetricData query and where its summed value goes."""

    key: ObservationKey
    field: str  # "n" | "successes" | "sum" | "sum_squares"
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str


@dataclass
class _Window:
    start: datetime
    end: datetime
    period: int
    queries: list[_Query] = field(default_factory=list)


def period_for(window: timedelta) -> int:
    """The datapoint period for a stage window: 1 minute up to a day, 5 minutes up to 15 days, else 1 hour.

    CloudWatch keeps 1-minute datapoints for 15 days and 5-minute ones for 63 days; coarser periods also
    keep the datapoint count of a long stage within one GetMetricData page. The period bounds how stale the
    newest timestamp looks, well under the engine's "late" limit of two check intervals.

    Example
    -------
    >>> period_for(timedelta(hours=4)), period_for(timedelta(days=3)), period_for(timedelta(days=20))
    (60, 300, 3600)
    """
    if window <= timedelta(days=1):
        return 60
    if window <= timedelta(days=15):
        return 300
    return 3600


def _ceil_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


def _assignment_query(spec: RolloutSpec, stage: int, variant: Variant) -> _Query:
    """New assignments to `variant` during `stage` (the emitter's NewAssignment, one 1 per assignment)."""
    dims = ((SERVICE_DIMENSION, spec.service), (VARIANT_DIMENSION, variant.value))
    key = ObservationKey(_ASSIGNMENTS, stage, variant)
    return _Query(key, "n", ASSIGNMENT_NAMESPACE, ASSIGNMENT_METRIC, dims, "Sum")


class MetricSource:
    """Reads the spec's metrics from CloudWatch into `Observations`.

    Parameters
    ----------
    alb : AlbDimensions or None
        Needed when the spec has an ALB ``http_5xx`` metric.
    boto3_client : optional
        A CloudWatch client; one is created when omitted.
    max_queries_per_call : int
        Queries per GetMetricData request (CloudWatch allows 500).
    """

    def __init__(
        self,
        alb: AlbDimensions | None = None,
        *,
        boto3_client: Any = None,
        max_queries_per_call: int = MAX_QUERIES_PER_CALL,
    ) -> None:
        if not 1 <= max_queries_per_call <= MAX_QUERIES_PER_CALL:
            raise ValueError(
                f"`max_queries_per_call` must be in [1, {MAX_QUERIES_PER_CALL}], "
                f"found {max_queries_per_call!r}"
            )
        self.alb = alb
        self._client = boto3_client if boto3_client is not None else client("cloudwatch")
        self._max_queries = max_queries_per_call
        self.calls = 0  # GetMetricData requests made (cost is per metric queried, not per call)

    def observe(self, spec: RolloutSpec, stages: Sequence[StageRecord], now: datetime) -> Observations:
        """Sufficient statistics per metric, stage, variant and slice, from each stage's start to its end
        (the next stage's start) or to `now`; plus the newest datapoint time per metric.

        Raises
        ------
        MetricSourceError
            When CloudWatch refuses or fails a call (including throttling, after boto3's own retries).
        """
        try:
            windows = self._windows(spec, stages, now)
            sums: dict[tuple[ObservationKey, str], float] = {}
            latest: dict[str, datetime] = {}
            for window in windows:
                for query, values, timestamps in self._run(window):
                    if not values:
                        continue
                    slot = (query.key, query.field)
                    sums[slot] = sums.get(slot, 0.0) + math.fsum(values)
                    if query.key.metric == _ASSIGNMENTS:
                        continue
                    newest = max(timestamps).astimezone(UTC)
                    if query.key.metric not in latest or newest > latest[query.key.metric]:
                        latest[query.key.metric] = newest
        except AwsCallError as exc:
            raise MetricSourceError(f"CloudWatch read failed: {error_code(exc)}: {exc}") from exc
        assignments = {
            (key.stage, key.variant): round(total)
            for (key, _), total in sums.items()
            if key.metric == _ASSIGNMENTS
        }
        return Observations(
            aggregates=dict(self._aggregates(spec, sums)), latest=latest, assignments=assignments
        )

    # --- queries -----------------------------------------------------------------------------------------
    def _windows(self, spec: RolloutSpec, stages: Sequence[StageRecord], now: datetime) -> list[_Window]:
        ordered = sorted(stages, key=lambda s: s.index)
        slices = {m.name: self._slice_values(m) for m in evaluated_metrics(spec) if m.slice_dimension}
        windows = []
        for position, stage in enumerate(ordered):
            # Whole minutes from the stage's start (CloudWatch stores minutes), so a window never mixes in the
            # minute before the weights changed.
            start = _ceil_minute(stage.started_at)
            end = ordered[position + 1].started_at if position + 1 < len(ordered) else now
            end = _ceil_minute(end) if position + 1 < len(ordered) else end
            if end <= start:
                continue
            window = _Window(start=start, end=end, period=period_for(end - start))
            for metric in evaluated_metrics(spec):
                for variant in Variant:
                    for slice_value in (None, *slices.get(metric.name, ())):
                        key = ObservationKey(metric.name, stage.index, variant, slice_value)
                        window.queries.extend(self._queries(metric, key))
            window.queries.extend(_assignment_query(spec, stage.index, variant) for variant in Variant)
            windows.append(window)
        return windows

    def _queries(self, metric: Metric, key: ObservationKey) -> list[_Query]:
        source = metric.source
        if isinstance(source, AlbSource):
            if key.slice is not None:
                return []
            if self.alb is None:
                raise MetricSourceError(
                    f"metric {metric.name!r} reads the ALB's metrics but no ALB dimensions were configured"
                )
            alb_dims = (
                ("LoadBalancer", self.alb.load_balancer),
                ("TargetGroup", self.alb.target_group(key.variant)),
            )
            return [
                _Query(key, "n", ALB_NAMESPACE, "RequestCount", alb_dims, "Sum"),
                _Query(key, "successes", ALB_NAMESPACE, "HTTPCode_Target_5XX_Count", alb_dims, "Sum"),
            ]
        assert isinstance(source, ServiceSource)  # the spec's validator guarantees a source
        dims: tuple[tuple[str, str], ...] = ((VARIANT_DIMENSION, key.variant.value),)
        if key.slice is not None and metric.slice_dimension:
            dims += ((metric.slice_dimension, key.slice),)
        ns, name = source.namespace, source.metric_name
        if metric.kind is MetricKind.MEAN:
            return [
                _Query(key, "n", ns, name, dims, "SampleCount"),
                _Query(key, "sum", ns, name, dims, "Sum"),
                _Query(key, "sum_squares", ns, name + SQUARED_SUFFIX, dims, "Sum"),
            ]
        return [
            _Query(key, "n", ns, name, dims, "SampleCount"),
            _Query(key, "successes", ns, name, dims, "Sum"),
        ]

    def _slice_values(self, metric: Metric) -> tuple[str, ...]:
        """The slice values (e.g. intents) that have a metric, found with ListMetrics."""
        source = metric.source
        if not isinstance(source, ServiceSource) or not metric.slice_dimension:
            return ()
        wanted = {VARIANT_DIMENSION, metric.slice_dimension}
        values: set[str] = set()
        for page in self._client.get_paginator("list_metrics").paginate(
            Namespace=source.namespace,
            MetricName=source.metric_name,
            Dimensions=[{"Name": VARIANT_DIMENSION}, {"Name": metric.slice_dimension}],
        ):
            for found in page.get("Metrics", []):
                dims = {d["Name"]: d["Value"] for d in found.get("Dimensions", [])}
                if set(dims) == wanted:
                    values.add(dims[metric.slice_dimension])
        return tuple(sorted(values))

    def _run(self, window: _Window) -> Iterator[tuple[_Query, list[float], list[datetime]]]:
        for offset in range(0, len(window.queries), self._max_queries):
            batch = window.queries[offset : offset + self._max_queries]
            request = [
                {
                    "Id": f"q{i}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": q.namespace,
                            "MetricName": q.metric_name,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in q.dimensions],
                        },
                        "Period": window.period,
                        "Stat": q.stat,
                    },
                    "ReturnData": True,
                }
                for i, q in enumerate(batch)
            ]
            values: dict[str, list[float]] = {f"q{i}": [] for i in range(len(batch))}
            timestamps: dict[str, list[datetime]] = {f"q{i}": [] for i in range(len(batch))}
            kwargs: dict[str, Any] = {
                "MetricDataQueries": request,
                "StartTime": window.start,
                "EndTime": window.end,
                "ScanBy": "TimestampAscending",
            }
            while True:
                response = self._client.get_metric_data(**kwargs)
                self.calls += 1
                for result in response.get("MetricDataResults", []):
                    if result.get("StatusCode") not in {"Complete", "PartialData"}:
                        raise MetricSourceError(
                            f"CloudWatch returned {result.get('StatusCode')} for query {result['Id']} "
                            f"({batch[int(result['Id'][1:])].metric_name}): {result.get('Messages')}"
                        )
                    values[result["Id"]].extend(float(v) for v in result.get("Values", []))
                    timestamps[result["Id"]].extend(result.get("Timestamps", []))
                token = response.get("NextToken")
                if not token:
                    break
                kwargs["NextToken"] = token
            for i, query in enumerate(batch):
                yield query, values[f"q{i}"], timestamps[f"q{i}"]

    # --- aggregates --------------------------------------------------------------------------------------
    def _aggregates(
        self, spec: RolloutSpec, sums: dict[tuple[ObservationKey, str], float]
    ) -> Iterator[tuple[ObservationKey, Aggregate]]:
        kinds = {m.name: m.kind for m in spec.metrics}
        keys = {key for key, _ in sums if key.metric != _ASSIGNMENTS}
        for key in sorted(keys, key=lambda k: (k.metric, k.stage, k.variant.value, k.slice or "")):
            n = sums.get((key, "n"))
            if n is None or n <= 0:
                continue  # no units: the engine sees the cell as missing (HOLD), not as zero
            if kinds[key.metric] is MetricKind.MEAN:
                if (key, "sum") not in sums or (key, "sum_squares") not in sums:
                    logger.warning("mean metric without its sum or sum of squares", extra={"key": key})
                    continue
                yield key, MeanAggregate(round(n), sums[(key, "sum")], sums[(key, "sum_squares")])
            else:
                # The ALB publishes no 5XX datapoint for a minute without errors: absent means zero.
                successes = round(sums.get((key, "successes"), 0.0))
                if successes > n:
                    where = f"{key.variant}, {stage_label(key.stage, len(spec.stages))}"
                    raise MetricSourceError(
                        f"metric {key.metric!r} ({where}) has more successes ({successes}) than units "
                        f"({n:g}): is it emitted as a 0/1 value?"
                    )
                yield key, ProportionAggregate(n=round(n), successes=successes)
