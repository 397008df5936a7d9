"""Domain models the data layer returns: experiments, stages, checks, rollbacks, weights.

Times are timezone-aware UTC datetimes; the registry stores them as ISO-8601 strings that sort as text.

Example
-------
>>> Weights(control=95, canary=5).as_dict()
{'control': 95, 'canary': 5}
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from canarywise.spec import RolloutSpec


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"must be timezone-aware (UTC), found {value.isoformat()!r}")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


def to_iso(moment: datetime) -> str:
    """``2026-11-20T10:05:00.000000Z``: fixed width, so registry sort keys sort by time."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_iso(text: str) -> datetime:
    """Inverse of `to_iso` (also accepts any ISO-8601 form with an offset or ``Z``)."""
    return _utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Weights(_Frozen):
    """ALB forward weights in percent; they sum to 100."""

    control: Annotated[int, Field(ge=0, le=100)]
    canary: Annotated[int, Field(ge=0, le=100)]

    @model_validator(mode="after")
    def _sum(self) -> Weights:
        if self.control + self.canary != 100:
            raise ValueError(f"weights must sum to 100, found control {self.control} + canary {self.canary}")
        return self

    @classmethod
    def for_canary_percent(cls, percent: float) -> Weights:
        """Weights that send `percent` (a whole number, as the ALB rule's weights are) to the canary."""
        if percent != int(percent):
            raise ValueError(f"`percent` must be a whole number for ALB weights, found {percent!r}")
        return cls(control=100 - int(percent), canary=int(percent))

    def as_dict(self) -> dict[str, int]:
        return {"control": self.control, "canary": self.canary}


class ExperimentStatus(StrEnum):
    """An experiment's status; it moves only through `canarywise.lifecycle.table.TRANSITIONS`."""

    RUNNING = "RUNNING"
    READY_FOR_APPROVAL = "READY_FOR_APPROVAL"
    APPROVED = "APPROVED"  # taken for promotion; traffic is moving to the candidate
    PROMOTED = "PROMOTED"
    ROLLING_BACK = "ROLLING_BACK"  # taken for rollback; traffic is moving back to the live slot
    ROLLED_BACK = "ROLLED_BACK"
    REJECTED = "REJECTED"

    @property
    def is_live(self) -> bool:
        """The canary still receives traffic (it is watched by the significance check)."""
        return self in {ExperimentStatus.RUNNING, ExperimentStatus.READY_FOR_APPROVAL}

    @property
    def is_over(self) -> bool:
        """Concluded: promoted, rolled back or rejected."""
        return self in {ExperimentStatus.PROMOTED, ExperimentStatus.ROLLED_BACK, ExperimentStatus.REJECTED}


class StageStart(_Frozen):
    """A stage began at `started_at` with these weights in force."""

    stage_index: Annotated[int, Field(ge=0)]
    started_at: UtcDatetime
    weights: Weights


class CheckRecord(_Frozen):
    """One significance check of one experiment: the decision and the numbers behind it."""

    checked_at: UtcDatetime
    stage_index: Annotated[int, Field(ge=-1)]
    decision: str
    reason: str
    harm: bool = False
    # The decision's numbers (per metric: estimate, CI, p-value, n per arm, threshold, method), JSON-ready.
    details: dict[str, Any] = Field(default_factory=dict)


class PauseNote(_Frozen):
    """Who paused a rollout, why and when (the lifecycle's ``pause``; ``resume`` clears it)."""

    by: str
    reason: str
    at: UtcDatetime


class Experiment(_Frozen):
    """A pre-registered hypothesis: the spec as it was when the rollout started, and where it stands."""

    experiment_id: str
    service: str
    candidate: str
    release_id: str
    execution_arn: str | None
    status: ExperimentStatus
    spec: RolloutSpec
    created_at: UtcDatetime
    # >1 when the candidate was rolled back in the last 7 days: its first stage lasts longer this time.
    first_stage_multiplier: float = 1.0
    # Slice findings a person acknowledged (``canarywise resume``): who, why, when, which metric and slice.
    slice_acknowledgements: tuple[dict[str, Any], ...] = ()
    latest_check: CheckRecord | None = None
    # How many decisions were written as the latest (the registry's own order of checks, never their time).
    check_sequence: int = 0
    # The target groups (slots) the experiment compares: the live one at its start and the idle one that
    # holds the candidate. Metrics are read by slot (the ``Variant`` dimension / the target group).
    baseline_slot: str = "control"
    candidate_slot: str = "canary"
    concluded_at: UtcDatetime | None = None
    pvalue: float | None = None
    adjusted_pvalue: float | None = None
    fdr_rejected: bool | None = None
    rollback_failed_at: UtcDatetime | None = None
    paused: PauseNote | None = None  # set while the service is PAUSED: the stage gate holds


class RollbackOutcome(StrEnum):
    ROLLED_BACK = "ROLLED_BACK"  # this call wrote the rollback record
    DUPLICATE = "DUPLICATE"  # someone else already did; nothing recorded, nobody notified twice
    NOTHING_TO_ROLL_BACK = "NOTHING_TO_ROLL_BACK"  # no rollout in progress: traffic untouched
    FAILED = "FAILED"  # weights could not be restored; a failure record says so


class RollbackRecord(_Frozen):
    """A rollback as the registry keeps it (one per experiment; service-level ones have no experiment)."""

    service: str
    rolled_back_at: UtcDatetime
    source: str
    reason: str
    experiment_id: str | None = None
    candidate: str | None = None
    trigger_id: str | None = None
    status: ExperimentStatus | None = None
    actor: str = ""  # who acted: the alarm, the state machine, or the person and their identity


class RollbackFacts(_Frozen):
    """What anti-flapping needs: the service's last rollback and this candidate's recent ones."""

    last_rollback_at: UtcDatetime | None
    candidate_rollbacks_7d: Annotated[int, Field(ge=0)]


class FdrEntry(_Frozen):
    """One concluded experiment in the registry-wide Benjamini-Hochberg correction."""

    experiment_id: str
    tier: str
    q: float
    pvalue: float
    adjusted_pvalue: float
    rejected: bool
