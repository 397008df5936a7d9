"""Stage windows: what of each stage one datapoint per query can cover, and the freshness probe.

Every stage window is read as one datapoint per query: its period is the whole window (`whole_window`), on
the resolution CloudWatch still keeps for its age (`resolution_at`). Stage boundaries fall on whole minutes.
The probe reads the ``n`` query of each decisive metric per variant a minute at a time over the last hour (at
least past the engine's "late" limit): the newest minute with data. When the stage in progress covers the
probe's range, those same queries of the stage are read a minute at a time instead (`Window.fresh_from`)
and there is no probe request.

Example
-------
>>> windows = stage_windows(  # doctest: +SKIP
...     spec, stages, now, skip=set(), slices={}, alb=None, slots=FIXED_SLOTS
... )
>>> [(w.stage, w.closed) for w in windows]  # doctest: +SKIP
[(0, True), (1, False), (-1, False)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from canarywise.data.metric_source.queries import (
    AlbDimensions,
    Query,
    assignment_query,
    metric_queries,
)
from canarywise.decision.context import decisive_metrics, evaluated_metrics
from canarywise.decision.evidence import LATE_AFTER_INTERVALS
from canarywise.decision.models import ObservationKey, StageRecord, Variant
from canarywise.spec import RolloutSpec

# The freshness probe reads at least this far back at one-minute resolution (and always past the engine's
# "late" limit, so that a metric it finds nothing for is late for sure).
FRESHNESS_PROBE = timedelta(hours=1)


@dataclass
class Window:
    """One GetMetricData time range and its queries: a stage's whole window, or the freshness probe."""

    start: datetime
    end: datetime
    period: int
    queries: list[Query] = field(default_factory=list)
    probe: bool = False  # the freshness probe: its values give the newest minute only, never sums
    stage: int = -1  # the stage read (-1: the probe)
    closed: bool = False  # the stage has ended (a later stage began)
    # The stage in progress read a minute at a time for freshness (its minute queries): the newest minute
    # counts from here on, as the probe it replaces would have seen it.
    fresh_from: datetime | None = None

    @property
    def points_per_query(self) -> int:
        """The most datapoints one query at the window's period returns (one per period, the last partial)."""
        return math.ceil((self.end - self.start).total_seconds() / self.period)

    def points(self, query: Query) -> int:
        """The most datapoints `query` returns in this window (at its own period, if it has one)."""
        return math.ceil((self.end - self.start).total_seconds() / (query.period or self.period))

    @property
    def freshness(self) -> tuple[datetime, set[str]] | None:
        """Where freshness comes from in this window: (since when, the metrics), or None."""
        if self.probe:
            return self.start, {q.key.metric for q in self.queries}
        if self.fresh_from is not None:
            return self.fresh_from, {q.key.metric for q in self.queries if q.period}
        return None


@dataclass
class Sums:
    """What the windows' queries returned, summed."""

    sums: dict[tuple[ObservationKey, str], float] = field(default_factory=dict)
    newest: dict[tuple[str, Variant], datetime] = field(default_factory=dict)  # the probe's newest minute
    incomplete: set[int] = field(default_factory=set)  # stages with a query not answered in full


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


def stage_windows(
    spec: RolloutSpec,
    stages: Sequence[StageRecord],
    now: datetime,
    *,
    skip: set[int],
    slices: Mapping[str, tuple[str, ...]],
    alb: AlbDimensions | None,
    slots: Mapping[Variant, str],
) -> list[Window]:
    """One whole-window read per stage (but the closed stages in `skip`), then the freshness probe; a sliced
    metric is read in the values `slices` gives for it too."""
    ordered = sorted(stages, key=lambda s: s.index)
    if not ordered:
        return []
    metrics = evaluated_metrics(spec)
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
        window = Window(
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
                    window.queries.extend(metric_queries(metric, key, alb=alb, slots=slots))
        window.queries.extend(
            assignment_query(spec, stage.index, variant, slots[variant]) for variant in Variant
        )
        windows.append(window)
    probe = probe_window(spec, ordered[0].started_at, now, alb=alb, slots=slots)
    current = windows[-1] if windows and not windows[-1].closed else None
    if current is not None and _carries_freshness(current, probe, now):
        # The stage in progress covers the probe's hour: its unit counts of the metrics the probe reads,
        # a minute at a time, give the same newest minute (and the same sums), for no extra metrics.
        probed = {(q.key.metric, q.key.variant) for q in probe.queries}
        current.queries = [
            replace(q, period=60) if (q.key.metric, q.key.variant) in probed and q.field == "n"
            and q.key.slice is None else q
            for q in current.queries
        ]  # fmt: skip
        current.fresh_from = probe.start
    else:
        windows.append(probe)
    return windows


def _carries_freshness(window: Window, probe: Window, now: datetime) -> bool:
    """Whether the stage in progress can stand in for the probe: it starts no later than the probe, is kept at
    a minute's resolution, and ends where the probe does (a check on a whole minute, as scheduled)."""
    return (
        window.start <= probe.start
        and resolution_at(window.start, now) == 60
        and window.end == probe.end
        and window.period % 60 == 0
    )


def probe_window(
    spec: RolloutSpec,
    first_start: datetime,
    now: datetime,
    *,
    alb: AlbDimensions | None,
    slots: Mapping[Variant, str],
) -> Window:
    """The units per variant of each metric the engine judges for freshness (`decisive_metrics`) over
    the last hour, a datapoint a minute: the newest minute.

    It reaches back at least past the engine's "late" limit (plus a check interval), so that a metric with
    nothing in it is late whatever its older data says; never before the experiment began.
    """
    late = timedelta(seconds=(LATE_AFTER_INTERVALS + 1) * spec.check_interval)
    start = max(_floor(now, 60) - max(FRESHNESS_PROBE, late), _ceil(first_start, 60))
    window = Window(start=start, end=now, period=60, probe=True)
    for metric in decisive_metrics(spec):
        for variant in Variant:
            queries = metric_queries(metric, ObservationKey(metric.name, -1, variant), alb=alb, slots=slots)
            window.queries.extend(q for q in queries if q.field == "n")
    return window
