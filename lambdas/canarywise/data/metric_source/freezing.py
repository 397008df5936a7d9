"""Frozen stages: a closed stage's data read once more after its end, then kept instead of read again.

A closed stage's sums stop changing once CloudWatch has all its datapoints. A stage is frozen at the first
check at least `freeze_after` after its end whose reading of it is complete (`why_not_frozen` says what is
still missing); the registry keeps the `FrozenStage` and every later check reads only the stage in progress
and the probe.

Example
-------
>>> why_not_frozen(spec, window, now, observations, read)  # doctest: +SKIP
'ended 5 min ago; frozen 15 min after its end'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:g} min"
