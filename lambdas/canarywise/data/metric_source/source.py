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

Service metrics carry the dimension ``Variant`` = the slot (target group) that served them, e.g. ``blue`` |
``green``; `MetricSource.for_slots` says which slot plays control (live) and which canary (the candidate)
for an experiment. For a sliced metric they also carry the slice dimension (``canarywise.emit`` emits both
dimension sets). ALB metrics carry ``TargetGroup`` and ``LoadBalancer``. Only aggregates cross the wire:
the cost of a check does not grow with traffic.

New assignments (see `canarywise.emit.is_new_assignment`) follow the weights in force even when sticky users
return to the variant of their cookie; when the service does not emit them, `Observations.assignments` stays
empty and the engine falls back to counting a metric's units (and says so in the SRM finding).

Every stage window is read as **one datapoint per query**: the period is the whole window (see
`whole_window`), so a check re-reading a two-day stage asks for the same few hundred datapoints as one reading
a ten-minute stage, far below GetMetricData's 100,800 datapoints per call. Freshness comes from a separate
probe: the ``n`` query of each variant of each metric whose freshness the engine judges (safety and guardrail
metrics, and the primary one in A/B mode) over the last hour (at least three check intervals) at one minute,
which gives the newest datapoint's minute (see `Observations.latest`).

A closed stage's sums stop changing once CloudWatch has all its datapoints, so they are read once more and
then *frozen* (`MetricSource.read`, `FrozenStage`): the registry keeps them and every later check reads only
the stage in progress and the probe. A stage is frozen at the first check at least `freeze_after` (15
minutes) after its end whose reading of it is complete: every query answered ``Complete``, every decisive
metric with data in both variants in the stage, and each of them with a newer datapoint than the stage's end
in the probe (the pipeline has delivered past the stage). Until then it is read fresh at every check.

Example
-------
>>> alb = AlbDimensions("app/alb/1", {"blue": "targetgroup/blue/2", "green": "targetgroup/green/3"})
>>> source = MetricSource(alb)  # doctest: +SKIP
>>> observations = source.observe(spec, stages, now)  # doctest: +SKIP
>>> reading = source.read(spec, stages, now, frozen=registry.frozen_stages(experiment_id))  # doctest: +SKIP
>>> reading.cached, [f.stage for f in reading.to_freeze]  # doctest: +SKIP
((0,), [1])
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from canarywise.data._aws import AwsCallError, client, error_code
from canarywise.decision.context import decisive_metrics, evaluated_metrics, stage_label
from canarywise.decision.evidence import LATE_AFTER_INTERVALS
from canarywise.decision.models import (
    Aggregate,
    DecisionInputError,
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

MAX_QUERIES_PER_CALL = 500  # the GetMetricData limits
MAX_DATAPOINTS_PER_CALL = 100_800
# The freshness probe reads at least this far back at one-minute resolution (and always past the engine's
# "late" limit, so that a metric it finds nothing for is late for sure).
FRESHNESS_PROBE = timedelta(hours=1)
ALB_NAMESPACE = "AWS/ApplicationELB"
# A closed stage is frozen no sooner than this after its end. CloudWatch publishes a datapoint a minute or two
# after its minute (EMF logs, the ALB), and ListMetrics may take up to 15 minutes to list a new metric: a
# slice value first seen in the stage's last minutes (a new intent) is only queried once it is listed.
FREEZE_AFTER = timedelta(minutes=15)
# The slice that pools a capped metric's slice values not read (see `Metric.max_slices`).
OTHER_SLICE = "(other)"
# The key under which new-assignment counts travel with the metrics' queries; never a spec metric name (those
# start with a lowercase letter).
_ASSIGNMENTS = "(new assignments)"


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
    probe: bool = False  # the freshness probe: its values give the newest minute only, never sums
    stage: int = -1  # the stage read (-1: the probe)
    closed: bool = False  # the stage has ended (a later stage began)

    @property
    def points_per_query(self) -> int:
        """The most datapoints one query of this window returns (one per period, the last one partial)."""
        return math.ceil((self.end - self.start).total_seconds() / self.period)


# The resolution CloudWatch still keeps for data of a given age (1-minute datapoints 15 days, 5-minute ones
# 63 days, then hourly for 455 days). A request whose StartTime is older than 15 (63) days must use a period
# that is a multiple of 300 (3600) s, and CloudWatch rounds that StartTime down to the 5-minute (hour) clock.
# The limits are taken an hour early: CloudWatch measures the age when the request arrives, not at `now`.
_RESOLUTION_BY_AGE = ((timedelta(days=15, hours=-1), 60), (timedelta(days=63, hours=-1), 300))
_OLDEST_RESOLUTION = 3600


def resolution_at(start: datetime, now: datetime) -> int:
    """The finest period (seconds) CloudWatch serves for a request starting at `start`, asked at `now`.

    Example
    -------
    >>> from datetime import UTC, datetime, timedelta
    >>> now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    >>> [resolution_at(now - timedelta(days=d), now) for d in (2, 20, 70)]
    [60, 300, 3600]
    """
    age = now - start
    return next((seconds for limit, seconds in _RESOLUTION_BY_AGE if age < limit), _OLDEST_RESOLUTION)


def _floor(moment: datetime, seconds: int) -> datetime:
    epoch = moment.timestamp()
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def _ceil(moment: datetime, seconds: int) -> datetime:
    floor = _floor(moment, seconds)
    return floor if floor == moment else floor + timedelta(seconds=seconds)


def whole_window(start: datetime, end: datetime, now: datetime) -> tuple[datetime, datetime] | None:
    """The part of ``[start, end)`` one datapoint can cover, read at `now`: ``(first, last)``, period
    ``last - first``; None when no whole step of the available resolution fits.

    Both ends are rounded *inward* to the resolution CloudWatch still keeps for `start`'s age (a minute for
    the last 15 days, then 5 minutes, then an hour), so the period is a multiple of it and a window never
    takes in a minute of the stage before or after it (where other weights were in force). The price, for
    windows older than 15 days only: up to one step of data at each end is left out.

    Example
    -------
    >>> from datetime import UTC, datetime, timedelta
    >>> now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    >>> start = datetime(2026, 11, 28, 9, 3, 20, tzinfo=UTC)
    >>> whole_window(start, start + timedelta(hours=4), now)[0].isoformat()
    '2026-11-28T09:04:00+00:00'
    >>> old = datetime(2026, 11, 2, 9, 3, tzinfo=UTC)  # 28 days ago: 5-minute data
    >>> [t.strftime("%H:%M") for t in whole_window(old, old + timedelta(hours=4), now)]
    ['09:05', '13:00']
    """
    step = resolution_at(start, now)
    first, last = _ceil(start, step), _floor(end, step)
    return (first, last) if last > first else None


def freeze_after(spec: RolloutSpec) -> timedelta:
    """How long after its end a closed stage may be frozen: `FREEZE_AFTER`, or longer for a spec whose check
    interval is so long that data older than that is not yet "late" to the engine (one interval past its
    limit, as the freshness probe reaches).

    Example
    -------
    >>> from types import SimpleNamespace
    >>> [freeze_after(SimpleNamespace(check_interval=s)) for s in (300, 3600)]
    [datetime.timedelta(seconds=900), datetime.timedelta(seconds=10800)]
    """
    return max(FREEZE_AFTER, timedelta(seconds=(LATE_AFTER_INTERVALS + 1) * spec.check_interval))


def _order(key: ObservationKey) -> tuple[str, int, str, str]:
    """The order in which the source lists aggregates (fresh or frozen, the same)."""
    return key.metric, key.stage, key.variant.value, key.slice or ""


@dataclass(frozen=True)
class FrozenStage:
    """A closed stage's data as read once its window could no longer change: what later checks use instead
    of CloudWatch (the registry keeps it).

    Attributes
    ----------
    stage
        The stage index.
    start, end
        The window that was read (see `whole_window`).
    frozen_at
        The check that read it.
    observations
        The stage's aggregates and new assignments, nothing else (`latest` stays empty: freshness is always
        read).

    Example
    -------
    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    >>> frozen = FrozenStage(0, t, t + timedelta(hours=4), t + timedelta(hours=5), Observations({}))
    >>> FrozenStage.from_dict(frozen.to_dict()) == frozen
    True
    """

    stage: int
    start: datetime
    end: datetime
    frozen_at: datetime
    observations: Observations

    def __post_init__(self) -> None:
        others = {key.stage for key in self.observations.aggregates} | {
            stage for stage, _ in self.observations.assignments
        }
        if others - {self.stage}:
            raise DecisionInputError(f"frozen stage {self.stage} holds data of stages {sorted(others)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "frozen_at": self.frozen_at.isoformat(),
            "observations": self.observations.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrozenStage:
        """The inverse of `to_dict`; `DecisionInputError` when `data` is malformed."""
        try:
            return cls(
                stage=int(data["stage"]),
                start=datetime.fromisoformat(data["start"]),
                end=datetime.fromisoformat(data["end"]),
                frozen_at=datetime.fromisoformat(data["frozen_at"]),
                observations=Observations.from_dict(data["observations"]),
            )
        except DecisionInputError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise DecisionInputError(f"malformed frozen stage: {exc!r}") from None


@dataclass
class _Sums:
    """What the windows' queries returned, summed."""

    sums: dict[tuple[ObservationKey, str], float] = field(default_factory=dict)
    newest: dict[tuple[str, Variant], datetime] = field(default_factory=dict)  # the probe's newest minute
    incomplete: set[int] = field(default_factory=set)  # stages with a query not answered in full


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
        Closed stages read now whose data is complete: the caller stores them.
    not_frozen
        Closed stages read now that are not frozen yet, and why (too recent, data missing or late).
    """

    observations: Observations
    cached: tuple[int, ...] = ()
    to_freeze: tuple[FrozenStage, ...] = ()
    not_frozen: Mapping[int, str] = field(default_factory=dict)


def _assignment_query(spec: RolloutSpec, stage: int, variant: Variant, slot: str) -> _Query:
    """New assignments to `variant` during `stage` (the emitter's NewAssignment, one 1 per assignment)."""
    dims = ((SERVICE_DIMENSION, spec.service), (VARIANT_DIMENSION, slot))
    key = ObservationKey(_ASSIGNMENTS, stage, variant)
    return _Query(key, "n", ASSIGNMENT_NAMESPACE, ASSIGNMENT_METRIC, dims, "Sum")


class MetricSource:
    """Reads the spec's metrics from CloudWatch into `Observations`.

    Parameters
    ----------
    alb : AlbDimensions or None
        Needed when the spec has an ALB ``http_5xx`` metric.
    slots : mapping, optional
        Which slot plays which role (`Variant.CONTROL` the live slot, `Variant.CANARY` the candidate's);
        the service's metrics carry the slot name in their ``Variant`` dimension. Default `FIXED_SLOTS`;
        `for_experiment` sets them from an experiment.
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
        try:
            windows = self._windows(spec, stages, now, skip=set(cached))
            read = self._read_windows(windows)
        except AwsCallError as exc:
            raise MetricSourceError(f"CloudWatch read failed: {error_code(exc)}: {exc}") from exc
        observations = self._observations(spec, windows, read, [cached[i] for i in sorted(cached)])
        to_freeze, not_frozen = [], {}
        for window in (w for w in windows if w.closed):
            why = self._why_not_frozen(spec, window, now, observations, read)
            if why is not None:
                not_frozen[window.stage] = why
                continue
            part = Observations(
                aggregates={k: a for k, a in observations.aggregates.items() if k.stage == window.stage},
                assignments={k: n for k, n in observations.assignments.items() if k[0] == window.stage},
            )
            to_freeze.append(FrozenStage(window.stage, window.start, window.end, now, part))
        return Reading(observations, tuple(sorted(cached)), tuple(to_freeze), not_frozen)

    def _read_windows(self, windows: Sequence[_Window]) -> _Sums:
        read = _Sums()
        for window in windows:
            for query, values, timestamps, complete in self._run(window):
                if not complete:
                    read.incomplete.add(window.stage)
                if not values:
                    continue
                if window.probe:
                    seen = max(timestamps).astimezone(UTC)
                    slot = (query.key.metric, query.key.variant)
                    read.newest[slot] = max(seen, read.newest.get(slot, seen))
                    continue
                key = (query.key, query.field)
                read.sums[key] = read.sums.get(key, 0.0) + math.fsum(values)
        return read

    def _observations(
        self, spec: RolloutSpec, windows: Sequence[_Window], read: _Sums, cached: Sequence[FrozenStage]
    ) -> Observations:
        """The sums read and the frozen stages as one `Observations`, in the order a read of every stage
        gives (so that the engine adds the same numbers in the same order)."""
        aggregates = dict(self._aggregates(spec, read.sums))
        assignments = {
            (key.stage, key.variant): round(total)
            for (key, _), total in read.sums.items()
            if key.metric == _ASSIGNMENTS
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
        probe = next((w for w in windows if w.probe), None)
        if probe is not None:
            for metric in sorted({q.key.metric for q in probe.queries} & with_data):
                latest.setdefault(metric, probe.start)
        variants = list(Variant)
        return Observations(
            aggregates={key: aggregates[key] for key in sorted(aggregates, key=_order)},
            latest=latest,
            assignments={
                k: assignments[k] for k in sorted(assignments, key=lambda k: (k[0], variants.index(k[1])))
            },
        )

    @staticmethod
    def _why_not_frozen(
        spec: RolloutSpec, window: _Window, now: datetime, observations: Observations, read: _Sums
    ) -> str | None:
        """Why a closed stage's reading is not final yet (None: it is). Missing or late data is never frozen:
        it may still arrive, and a stage read fresh costs only money."""
        wait = freeze_after(spec)
        if now - window.end < wait:
            return f"ended {_minutes(now - window.end)} ago; frozen {_minutes(wait)} after its end"
        if window.stage in read.incomplete:
            return "CloudWatch answered part of its queries with partial data"
        for metric in decisive_metrics(spec):
            for variant in Variant:
                if observations.get(metric.name, window.stage, variant) is None:
                    return f"no {metric.name} data for {variant} in the stage"
                seen = read.newest.get((metric.name, variant))
                if seen is None or seen < window.end:
                    return f"{metric.name} ({variant}) has no datapoint since the stage ended yet"
        return None

    # --- queries -----------------------------------------------------------------------------------------
    def _windows(
        self, spec: RolloutSpec, stages: Sequence[StageRecord], now: datetime, *, skip: set[int]
    ) -> list[_Window]:
        """One whole-window read per stage (but the closed stages in `skip`), then the freshness probe."""
        ordered = sorted(stages, key=lambda s: s.index)
        if not ordered:
            return []
        metrics = evaluated_metrics(spec)
        slices = {
            m.name: self._slice_values(m, ordered[0].started_at, now) for m in metrics if m.slice_dimension
        }
        windows = []
        for position, stage in enumerate(ordered):
            closed = position + 1 < len(ordered)
            if closed and stage.index in skip:
                continue
            # Stage boundaries on whole minutes (CloudWatch stores minutes): the minute in which the weights
            # changed belongs to the stage before. The stage in progress ends at `now`.
            end = _ceil(ordered[position + 1].started_at, 60) if closed else now
            bounds = whole_window(stage.started_at, end, now)
            if bounds is None:
                continue
            start, end = bounds
            window = _Window(
                start=start,
                end=end,
                period=int((end - start).total_seconds()),
                stage=stage.index,
                closed=closed,
            )
            for metric in metrics:
                for variant in Variant:
                    for slice_value in (None, *slices.get(metric.name, ())):
                        key = ObservationKey(metric.name, stage.index, variant, slice_value)
                        window.queries.extend(self._queries(metric, key))
            window.queries.extend(
                _assignment_query(spec, stage.index, variant, self.slots[variant]) for variant in Variant
            )
            windows.append(window)
        windows.append(self._probe(spec, ordered[0].started_at, now))
        return windows

    def _probe(self, spec: RolloutSpec, first_start: datetime, now: datetime) -> _Window:
        """The units per variant of each metric the engine judges for freshness (`decisive_metrics`) over
        the last hour, a datapoint a minute: the newest minute.

        It reaches back at least past the engine's "late" limit (plus a check interval), so that a metric with
        nothing in it is late whatever its older data says; never before the experiment began.
        """
        late = timedelta(seconds=(LATE_AFTER_INTERVALS + 1) * spec.check_interval)
        start = max(_floor(now, 60) - max(FRESHNESS_PROBE, late), _ceil(first_start, 60))
        window = _Window(start=start, end=now, period=60, probe=True)
        for metric in decisive_metrics(spec):
            for variant in Variant:
                queries = self._queries(metric, ObservationKey(metric.name, -1, variant))
                window.queries.extend(q for q in queries if q.field == "n")
        return window

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
                ("TargetGroup", self.alb.target_group(self.slots[key.variant])),
            )
            return [
                _Query(key, "n", ALB_NAMESPACE, "RequestCount", alb_dims, "Sum"),
                _Query(key, "successes", ALB_NAMESPACE, "HTTPCode_Target_5XX_Count", alb_dims, "Sum"),
            ]
        assert isinstance(source, ServiceSource)  # the spec's validator guarantees a source
        dims: tuple[tuple[str, str], ...] = ((VARIANT_DIMENSION, self.slots[key.variant]),)
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

    def _slice_values(self, metric: Metric, start: datetime, now: datetime) -> tuple[str, ...]:
        """The slice values (e.g. intents) to read: those with a metric (found with ListMetrics), at most
        `metric.max_slices` of them (see `_busiest_slices`)."""
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
        self._pooled.pop(metric.name, None)
        if len(values) <= metric.max_slices:
            return tuple(sorted(values))
        chosen = self._busiest_slices(metric, sorted(values), start, now)
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

    def _busiest_slices(
        self, metric: Metric, values: Sequence[str], start: datetime, now: datetime
    ) -> tuple[str, ...]:
        """`metric.max_slices` of `values`: the critical slices, then the others with the most units over the
        experiment so far (both variants; ties by name). One unit count per value and variant: past the cap a
        check asks for 2 x (number of values) more metrics."""
        bounds = whole_window(start, now, now)
        if bounds is None:  # not a whole minute yet: no volume to rank by
            return tuple(sorted(set(metric.critical_slices) & set(values)))
        window = _Window(start=bounds[0], end=bounds[1], period=int((bounds[1] - bounds[0]).total_seconds()))
        for value in values:
            for variant in Variant:
                key = ObservationKey(metric.name, -1, variant, value)
                window.queries.extend(q for q in self._queries(metric, key) if q.field == "n")
        units: dict[str, float] = dict.fromkeys(values, 0.0)
        for query, found, _, _ in self._run(window):
            units[query.key.slice or ""] += math.fsum(found)
        critical = [v for v in values if v in metric.critical_slices]
        others = sorted((v for v in values if v not in metric.critical_slices), key=lambda v: (-units[v], v))
        return tuple(sorted([*critical, *others][: metric.max_slices]))

    def _with_other_slice(
        self, sums: dict[tuple[ObservationKey, str], float]
    ) -> dict[tuple[ObservationKey, str], float]:
        """`sums` and, for each metric whose slices were capped, the `OTHER_SLICE` pooling the slices not
        read: the metric's overall sums minus those of the slices read (units without a slice value too)."""
        pooled = dict(sums)
        for (key, name), total in sums.items():
            chosen = self._pooled.get(key.metric)
            if chosen is None or key.slice is not None:
                continue
            read = math.fsum(sums.get((key._replace(slice=value), name), 0.0) for value in chosen)
            pooled[(key._replace(slice=OTHER_SLICE), name)] = total - read
        return pooled

    def _run(self, window: _Window) -> Iterator[tuple[_Query, list[float], list[datetime], bool]]:
        """Each query of the window with its values, their timestamps and whether CloudWatch said its answer
        is complete."""
        # As many queries as fit both limits (CloudWatch would paginate past the datapoints one).
        size = max(1, min(self._max_queries, self._max_datapoints // window.points_per_query))
        for offset in range(0, len(window.queries), size):
            batch = window.queries[offset : offset + size]
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

    # --- aggregates --------------------------------------------------------------------------------------
    def _aggregates(
        self, spec: RolloutSpec, sums: dict[tuple[ObservationKey, str], float]
    ) -> Iterator[tuple[ObservationKey, Aggregate]]:
        kinds = {m.name: m.kind for m in spec.metrics}
        sums = self._with_other_slice(sums)
        keys = {key for key, _ in sums if key.metric != _ASSIGNMENTS}
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


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:g} min"
