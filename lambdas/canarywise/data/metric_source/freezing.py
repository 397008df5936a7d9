"""Frozen stages: a closed stage's data read once more after its end, then kept instead of read again.

A closed stage's sums stop changing once CloudWatch has all its datapoints. A stage is frozen at the first
check at least `freeze_after` after its end whose reading of it is complete (`why_not_frozen` says what is
still missing); the registry keeps the `FrozenStage` and every later check reads only the stage in progress
and the probe.

A host that publishes late (a slow or partitioned one) can still add datapoints, with their old timestamps,
after the stage was frozen. So for `REREAD_FOR` after its end a frozen stage is read again about once every
`REREAD_EVERY` (`due_for_reread`); a complete re-read that differs from the copy (`differences`) is used
instead of it and frozen in its place (fault table, row 11).

Example
-------
>>> why_not_frozen(spec, window, now, observations, read)  # doctest: +SKIP
'ended 5 min ago; frozen 15 min after its end'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from canarywise.data.metric_source.windows import Sums, Window
from canarywise.decision.context import decisive_metrics
from canarywise.decision.evidence import LATE_AFTER_INTERVALS
from canarywise.decision.models import DecisionInputError, Observations, Variant
from canarywise.spec import RolloutSpec

# A closed stage is frozen no sooner than this after its end. CloudWatch publishes a datapoint a minute or two
# after its minute (EMF logs, the ALB), and ListMetrics may take up to 15 minutes to list a new metric: a
# slice value first seen in the stage's last minutes (a new intent) is only queried once it is listed.
FREEZE_AFTER = timedelta(minutes=15)
# A frozen stage is read again about once an hour (every 12th check at 5 minutes) for its first day after
# its end: late datapoints from a slow host are seen within the hour, at ~1/12 of a stage read a check.
REREAD_EVERY = timedelta(hours=1)
REREAD_FOR = timedelta(hours=24)


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
    # A re-read that replaces the copy frozen at this time (`due_for_reread`); not stored with the data.
    replaces: datetime | None = field(default=None, compare=False)

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


def why_not_frozen(
    spec: RolloutSpec, window: Window, now: datetime, observations: Observations, read: Sums
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


def due_for_reread(spec: RolloutSpec, frozen: FrozenStage, now: datetime) -> bool:
    """Whether the check at `now` reads frozen stage `frozen` from CloudWatch again: in the stage's first
    `REREAD_FOR` after its end, at one check in every `REREAD_EVERY`, half of it past each whole one
    (counted in check intervals from the stage's end, so no state is kept; the first re-read comes soon
    after the freeze; a check interval of an hour or more re-reads at every check).

    Example
    -------
    >>> from types import SimpleNamespace
    >>> from datetime import UTC, datetime
    >>> end = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    >>> frozen = SimpleNamespace(end=end)
    >>> spec = SimpleNamespace(check_interval=300)
    >>> [m for m in range(0, 24 * 60 + 120, 5) if due_for_reread(spec, frozen, end + timedelta(minutes=m))]
    ... # doctest: +ELLIPSIS
    [30, 90, 150, ..., 1350, 1410]
    """
    since = now - frozen.end
    if not FREEZE_AFTER < since <= REREAD_FOR:
        return False
    every = max(1, round(REREAD_EVERY.total_seconds() / spec.check_interval))
    return int(since.total_seconds() // spec.check_interval) % every == every // 2


def differences(frozen: Observations, reread: Observations) -> list[str]:
    """What a re-read of a frozen stage changed, one entry per cell (aggregate or assignment count), in a
    stable order; empty when they are equal.

    Example
    -------
    >>> old = Observations.build({}, assignments={(0, "canary"): 100})
    >>> differences(old, Observations.build({}, assignments={(0, "canary"): 130}))
    ['new assignments/canary: 100 -> 130']
    """
    changed = []
    for key in sorted(frozen.aggregates.keys() | reread.aggregates.keys(), key=str):
        before, after = frozen.aggregates.get(key), reread.aggregates.get(key)
        if before != after:
            where = "/".join(str(part) for part in (key.metric, key.variant, key.slice) if part is not None)
            changed.append(f"{where}: {before} -> {after}")
    for stage, variant in sorted(frozen.assignments.keys() | reread.assignments.keys(), key=str):
        before_n, after_n = frozen.assignments.get((stage, variant)), reread.assignments.get((stage, variant))
        if before_n != after_n:
            changed.append(f"new assignments/{variant}: {before_n} -> {after_n}")
    return changed


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:g} min"
