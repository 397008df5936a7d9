"""`MetricSource`: reads a spec's metrics from CloudWatch into the engine's `Observations`, stage by stage.

It plans the windows (`stage_windows`) in the slot each variant plays, runs their queries in as few
GetMetricData calls as CloudWatch's limits allow, sums the answers into aggregates (the `OTHER_SLICE` of a
capped metric included), and hands back which closed stages came from frozen copies and which can be frozen
now (`Reading`). A frozen stage due for a re-read (`due_for_reread`: late datapoints from a slow host) is
read again; when the re-read differs, it is used and frozen in the copy's place (`Reading.late`).

Example
-------
>>> source = MetricSource(alb).for_slots("blue", "green")  # doctest: +SKIP
>>> reading = source.read(spec, stages, now, frozen=registry.frozen_stages(experiment_id))  # doctest: +SKIP
>>> reading.cached, [f.stage for f in reading.to_freeze]  # doctest: +SKIP
((0,), [1])
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from canarywise.data._aws import AwsCallError, client, error_code
from canarywise.data.metric_source.freezing import (
    FrozenStage,
    differences,
    due_for_reread,
    why_not_frozen,
)
from canarywise.data.metric_source.queries import (
    ASSIGNMENTS,
    FIXED_SLOTS,
    AlbDimensions,
    MetricSourceError,
    Query,
)
from canarywise.data.metric_source.slices import (
    OTHER_SLICE,
    busiest_slices,
    listed_slice_values,
    with_other_slice,
)
from canarywise.data.metric_source.windows import Sums, Window, stage_windows
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
from canarywise.spec import Metric, MetricKind, RolloutSpec, ServiceSource

logger = Logger(child=True)

MAX_QUERIES_PER_CALL = 500  # the GetMetricData limits
MAX_DATAPOINTS_PER_CALL = 100_800


def _order(key: ObservationKey) -> tuple[str, int, str, str]:
    """The order in which the source lists aggregates (fresh or frozen, the same)."""
    return key.metric, key.stage, key.variant.value, key.slice or ""


@dataclass(frozen=True)
class Reading:
    """What one check read: the observations, and which closed stages came from frozen copies or may now be
    frozen.

    Attributes
    ----------
    observations
        Exactly what `MetricSource.observe` returns for the same data, frozen stages included.
    cached
        Closed stages taken from the frozen copies handed in (not read from CloudWatch).
    to_freeze
        Closed stages read now whose data is complete: the caller stores them (a re-read that changed a
        frozen stage replaces its copy: `FrozenStage.replaces`).
    not_frozen
        Closed stages read now that are not frozen yet, and why (too recent, data missing or late).
    late
        Frozen stages re-read now (`due_for_reread`) whose data changed since they were frozen: what
        changed. The re-read is what `observations` hold.
    """

    observations: Observations
    cached: tuple[int, ...] = ()
    to_freeze: tuple[FrozenStage, ...] = ()
    not_frozen: Mapping[int, str] = field(default_factory=dict)
    late: Mapping[int, tuple[str, ...]] = field(default_factory=dict)


class MetricSource:
    """Reads the spec's metrics from CloudWatch into `Observations`.

    Parameters
    ----------
    alb : AlbDimensions or None
        Needed when the spec has an ALB ``http_5xx`` metric.
    slots : mapping, optional
        Which slot plays which role (`Variant.CONTROL` the live slot, `Variant.CANARY` the candidate's);
        the service's metrics carry the slot name in their ``Variant`` dimension. Default `FIXED_SLOTS`;
        `for_slots` sets them from an experiment.
    boto3_client : optional
        A CloudWatch client; one is created when omitted.
    max_queries_per_call : int
        Queries per GetMetricData request (CloudWatch allows 500).
    max_datapoints_per_call : int
        Datapoints one request may return before CloudWatch paginates (100,800); a batch holds no more queries
        than fit.
    """

    def __init__(
        self,
        alb: AlbDimensions | None = None,
        *,
        slots: Mapping[Variant, str] = FIXED_SLOTS,
        boto3_client: Any = None,
        max_queries_per_call: int = MAX_QUERIES_PER_CALL,
        max_datapoints_per_call: int = MAX_DATAPOINTS_PER_CALL,
    ) -> None:
        if not 1 <= max_queries_per_call <= MAX_QUERIES_PER_CALL:
            raise ValueError(
                f"`max_queries_per_call` must be in [1, {MAX_QUERIES_PER_CALL}], "
                f"found {max_queries_per_call!r}"
            )
        if not 1 <= max_datapoints_per_call <= MAX_DATAPOINTS_PER_CALL:
            raise ValueError(
                f"`max_datapoints_per_call` must be in [1, {MAX_DATAPOINTS_PER_CALL}], "
                f"found {max_datapoints_per_call!r}"
            )
        self.alb = alb
        self.slots = dict(slots)
        self._client = boto3_client if boto3_client is not None else client("cloudwatch")
        self._max_queries = max_queries_per_call
        self._max_datapoints = max_datapoints_per_call
        self.calls = 0  # GetMetricData requests made (cost is per metric queried, not per call)
        self._pooled: dict[
            str, tuple[str, ...]
        ] = {}  # metric -> the slices read, when capped (see OTHER_SLICE)

    def for_slots(self, baseline: str, candidate: str) -> MetricSource:
        """The same source (client, limits, call count kept apart) reading `baseline` as control and
        `candidate` as canary."""
        source = copy.copy(self)
        source.slots = {Variant.CONTROL: baseline, Variant.CANARY: candidate}
        return source

    def observe(self, spec: RolloutSpec, stages: Sequence[StageRecord], now: datetime) -> Observations:
        """Sufficient statistics per metric, stage, variant and slice, from each stage's start to its end
        (the next stage's start) or to `now`; the new assignments per stage and variant; and per metric with
        data, the time since which it has no datapoint (`Observations.latest`). Every stage is read.

        Raises
        ------
        MetricSourceError
            When CloudWatch refuses or fails a call (including throttling, after boto3's own retries).
        """
        return self.read(spec, stages, now).observations

    def read(
        self,
        spec: RolloutSpec,
        stages: Sequence[StageRecord],
        now: datetime,
        *,
        frozen: Mapping[int, FrozenStage] | None = None,
    ) -> Reading:
        """`observe`, with the closed stages in `frozen` taken from there instead of CloudWatch; and the
        closed stages read now that can be frozen (`Reading.to_freeze`, see `freeze_after`).

        Raises
        ------
        MetricSourceError
            When CloudWatch refuses or fails a call (including throttling, after boto3's own retries).

        Example
        -------
        >>> first = source.read(spec, stages, now)  # doctest: +SKIP
        >>> later = source.read(spec, stages, now + timedelta(minutes=5),  # doctest: +SKIP
        ...                     frozen={f.stage: f for f in first.to_freeze})
        """
        closed = {s.index for s in stages} - {max((s.index for s in stages), default=-1)}
        cached = {i: f for i, f in (frozen or {}).items() if i in closed}
        # Late datapoints (a slow host) may still land in a frozen stage: read it again now and then.
        reread = {i: f for i, f in cached.items() if due_for_reread(spec, f, now)}
        try:
            windows = self._windows(spec, stages, now, skip=set(cached) - set(reread))
            read = self._read_windows(windows)
        except AwsCallError as exc:
            raise MetricSourceError(f"CloudWatch read failed: {error_code(exc)}: {exc}") from exc
        fresh = [cached[i] for i in sorted(cached) if i not in reread]
        observations = self._observations(spec, windows, read, fresh)
        to_freeze, not_frozen, late = [], {}, {}
        for window in (w for w in windows if w.closed):
            why = why_not_frozen(spec, window, now, observations, read)
            part = Observations(
                aggregates={k: a for k, a in observations.aggregates.items() if k.stage == window.stage},
                assignments={k: n for k, n in observations.assignments.items() if k[0] == window.stage},
            )
            stored = reread.get(window.stage)
            if stored is not None:
                changed = [] if why is not None else differences(stored.observations, part)
                if not changed:  # unchanged, or a re-read not final: the frozen copy stands
                    continue
                late[window.stage] = tuple(changed)
                logger.warning(
                    "late data in a frozen stage: the re-read is used and frozen in its place",
                    extra={
                        "stage": window.stage,
                        "frozen_at": stored.frozen_at.isoformat(),
                        "changed": changed,
                    },
                )
                to_freeze.append(
                    FrozenStage(window.stage, window.start, window.end, now, part, replaces=stored.frozen_at)
                )
                continue
            if why is not None:
                not_frozen[window.stage] = why
                continue
            to_freeze.append(FrozenStage(window.stage, window.start, window.end, now, part))
        kept = {i: f for i, f in reread.items() if i not in late}
        if kept:  # the copies stand: the engine adds exactly the numbers it would have without the re-read
            read.sums = {k: v for k, v in read.sums.items() if k[0].stage not in kept}
            observations = self._observations(
                spec, windows, read, [cached[i] for i in sorted(cached) if i not in late]
            )
        return Reading(
            observations,
            tuple(i for i in sorted(cached) if i not in late),
            tuple(to_freeze),
            not_frozen,
            late,
        )

    def _read_windows(self, windows: Sequence[Window]) -> Sums:
        read = Sums()
        for window in windows:
            for query, values, timestamps, complete in self._run(window):
                if not complete:
                    read.incomplete.add(window.stage)
                if not values:
                    continue
                if window.probe or query.period:
                    # The newest minute with data since the probe's start (what the probe would see).
                    since = window.start if window.probe else window.fresh_from
                    recent = [t.astimezone(UTC) for t in timestamps if since and t.astimezone(UTC) >= since]
                    if recent:
                        seen, slot = max(recent), (query.key.metric, query.key.variant)
                        read.newest[slot] = max(seen, read.newest.get(slot, seen))
                    if window.probe:
                        continue
                key = (query.key, query.field)
                read.sums[key] = read.sums.get(key, 0.0) + math.fsum(values)
        return read

    def _observations(
        self, spec: RolloutSpec, windows: Sequence[Window], read: Sums, cached: Sequence[FrozenStage]
    ) -> Observations:
        """The sums read and the frozen stages as one `Observations`, in the order a read of every stage
        gives (so that the engine adds the same numbers in the same order)."""
        aggregates = dict(self._aggregates(spec, read.sums))
        assignments = {
            (key.stage, key.variant): round(total)
            for (key, _), total in read.sums.items()
            if key.metric == ASSIGNMENTS
        }
        for frozen in cached:
            aggregates |= frozen.observations.aggregates
            assignments |= frozen.observations.assignments
        # Per metric, the newest minute the probe saw in either variant; a probed metric with data but
        # nothing in the probe has had no datapoint since the probe's start.
        latest: dict[str, datetime] = {}
        for (metric, _), seen in read.newest.items():
            latest[metric] = max(seen, latest.get(metric, seen))
        with_data = {key.metric for key, _ in read.sums} | {key.metric for key in aggregates}
        freshness = next((f for f in (w.freshness for w in windows) if f is not None), None)
        if freshness is not None:
            since, probed = freshness
            for metric in sorted(probed & with_data):
                latest.setdefault(metric, since)
        variants = list(Variant)
        return Observations(
            aggregates={key: aggregates[key] for key in sorted(aggregates, key=_order)},
            latest=latest,
            assignments={
                k: assignments[k] for k in sorted(assignments, key=lambda k: (k[0], variants.index(k[1])))
            },
        )

    def _windows(
        self, spec: RolloutSpec, stages: Sequence[StageRecord], now: datetime, *, skip: set[int]
    ) -> list[Window]:
        """One whole-window read per stage (but the closed stages in `skip`), then the freshness probe."""
        first = min(stages, key=lambda s: s.index, default=None)
        if first is None:
            return []
        slices = {
            m.name: self._slice_values(m, first.started_at, now)
            for m in evaluated_metrics(spec)
            if m.slice_dimension
        }
        return stage_windows(spec, stages, now, skip=skip, slices=slices, alb=self.alb, slots=self.slots)

    def _slice_values(self, metric: Metric, start: datetime, now: datetime) -> tuple[str, ...]:
        """The slice values (e.g. intents) to read: those with a metric (found with ListMetrics), at most
        `metric.max_slices` of them (see `busiest_slices`)."""
        source = metric.source
        if not isinstance(source, ServiceSource) or not metric.slice_dimension:
            return ()
        values = listed_slice_values(self._client, source, metric.slice_dimension)
        self._pooled.pop(metric.name, None)
        if len(values) <= metric.max_slices:
            return tuple(sorted(values))
        chosen = busiest_slices(
            metric, sorted(values), start, now, alb=self.alb, slots=self.slots, run=self._run
        )
        self._pooled[metric.name] = chosen
        logger.info(
            "slices capped",
            extra={
                "metric": metric.name,
                "slice_values": len(values),
                "read": len(chosen),
                "pooled": OTHER_SLICE,
            },
        )
        return chosen

    def _run(self, window: Window) -> Iterator[tuple[Query, list[float], list[datetime], bool]]:
        """Each query of the window with its values, their timestamps and whether CloudWatch said its answer
        is complete."""
        for batch in self._batches(window):
            request = [
                {
                    "Id": f"q{i}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": q.namespace,
                            "MetricName": q.metric_name,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in q.dimensions],
                        },
                        "Period": q.period or window.period,
                        "Stat": q.stat,
                    },
                    "ReturnData": True,
                }
                for i, q in enumerate(batch)
            ]
            values: dict[str, list[float]] = {f"q{i}": [] for i in range(len(batch))}
            timestamps: dict[str, list[datetime]] = {f"q{i}": [] for i in range(len(batch))}
            status: dict[str, str] = {}  # the last page's status of each query
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
                    status[result["Id"]] = result["StatusCode"]
                    values[result["Id"]].extend(float(v) for v in result.get("Values", []))
                    timestamps[result["Id"]].extend(result.get("Timestamps", []))
                token = response.get("NextToken")
                if not token:
                    break
                kwargs["NextToken"] = token
            for i, query in enumerate(batch):
                yield query, values[f"q{i}"], timestamps[f"q{i}"], status.get(f"q{i}") == "Complete"

    def _batches(self, window: Window) -> Iterator[list[Query]]:
        """The window's queries in order, as many to a request as fit both limits (CloudWatch would
        paginate past the datapoints one)."""
        batch: list[Query] = []
        points = 0
        for query in window.queries:
            more = window.points(query)
            if batch and (len(batch) == self._max_queries or points + more > self._max_datapoints):
                yield batch
                batch, points = [], 0
            batch.append(query)
            points += more
        if batch:
            yield batch

    # --- aggregates --------------------------------------------------------------------------------------
    def _aggregates(
        self, spec: RolloutSpec, sums: dict[tuple[ObservationKey, str], float]
    ) -> Iterator[tuple[ObservationKey, Aggregate]]:
        kinds = {m.name: m.kind for m in spec.metrics}
        sums = with_other_slice(sums, self._pooled)
        keys = {key for key, _ in sums if key.metric != ASSIGNMENTS}
        for key in sorted(keys, key=_order):
            n = sums.get((key, "n"))
            if n is None or n < 0.5:
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
