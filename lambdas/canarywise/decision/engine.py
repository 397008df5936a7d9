"""`decide`: rollout spec + stage history + per-variant aggregates + now -> a `Decision` with its numbers.

Pure and fast: no boto3, no environment, no I/O, no ``scipy.stats`` import on the hot path (the SRM check and
Benjamini-Hochberg import it lazily the first time they run). The significance-check Lambda calls `decide` for
every running experiment at every five-minute look; the stage gate only reads the stored result.

The rule, in order (see ``docs/decision-rule.md`` and the module docs of `canarywise.decision.canary` and
`canarywise.decision.ab`):

- ROLLBACK: a hard limit breached, or harm proven by an anytime-valid one-sided test on a safety/guardrail
  metric (overall or in a critical slice). Acted on even with imperfect data, because a rollback only ever
  reduces exposure.
- HOLD: sample-ratio mismatch against the weights in force during each stage, or missing or late data; or
  a regression proven in a slice that is not critical, until a person acknowledges it (`decision.slices`).
- canary: ADVANCE / READY_FOR_APPROVAL once non-inferiority is proven for every margin, the stage's minimum
  duration has passed and each arm has the minimum sample; A/B: PROMOTE / KEEP_CONTROL / NO_DIFFERENCE on the
  pre-registered primary metric.
- INCONCLUSIVE at the stage's maximum duration; otherwise CONTINUE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from canarywise.decision.ab import decide_ab
from canarywise.decision.acknowledgement import SliceAcknowledgement
from canarywise.decision.canary import decide_canary
from canarywise.decision.context import EvaluationContext, evaluated_metrics
from canarywise.decision.models import Decision, DecisionKind, Observations, StageRecord
from canarywise.spec import RolloutSpec

__all__ = ["decide", "evaluated_metrics"]


def decide(
    spec: RolloutSpec,
    stages: Sequence[StageRecord],
    observations: Observations,
    now: datetime,
    *,
    first_stage_multiplier: float = 1.0,
    acknowledged: Sequence[SliceAcknowledgement] = (),
    temporal_marks: Sequence[Mapping[str, Any]] = (),
) -> Decision:
    """The decision for one experiment at one look.

    Parameters
    ----------
    spec : RolloutSpec
        The experiment's pre-registered spec (mode, stages, metrics, statistics).
    stages : sequence of StageRecord
        The stages started so far with the weights in force; the one with the highest index is in progress.
    observations : Observations
        Per (metric, stage, variant, slice) aggregates over each stage's window, per metric the time since
        which it has had no datapoint, and optionally the new assignments for the sample-ratio check.
    now : datetime
        The time of this look (timezone-aware; the scheduled event's time, so a simulation can replay time).
    first_stage_multiplier : float, default 1.0
        Anti-flapping: after a rollback pass ``spec.anti_flapping.first_stage_multiplier`` to stretch the
        first stage's minimum and maximum durations.
    acknowledged : sequence of SliceAcknowledgement, default ()
        Slice findings a person acknowledged (``canarywise resume``): a regression proven in such a slice
        no longer holds the stage (it is still reported; a critical slice's rollback cannot be acknowledged).
    temporal_marks : sequence of mapping, default ()
        A/B mode: the day marks of the previous look (``decision.temporal.marks_from(check.details)``), for
        the effect per day and its decay (`canarywise.decision.temporal`).

    Returns
    -------
    Decision
        `kind`, human-readable `reasons`, the `findings` (one per test, with estimate, CI, p-value, n per arm,
        threshold, method, verdict), the stage index and `now`. With no stage started yet: HOLD, stage -1.

    Raises
    ------
    DecisionInputError
        A stage index outside the spec, a naive `now`, or aggregates of the wrong kind for a metric.

    Example
    -------
    >>> from datetime import UTC, datetime, timedelta
    >>> from canarywise.decision.models import ProportionAggregate, Variant
    >>> from canarywise.spec import load_spec
    >>> spec = load_spec("config/mangaassist.yaml")
    >>> start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    >>> now = start + timedelta(hours=2)
    >>> stage = StageRecord(0, 5.0, {"control": 95, "canary": 5}, start)
    >>> obs = Observations.build(
    ...     {
    ...         ("escalation_rate", 0, "control", None): ProportionAggregate(95_000, 11_400),
    ...         ("escalation_rate", 0, "canary", None): ProportionAggregate(5_000, 700),
    ...     },
    ...     latest={"escalation_rate": now},
    ... )
    >>> decide(spec, [stage], obs, now).kind
    <DecisionKind.ROLLBACK: 'ROLLBACK'>
    """
    if not stages:
        return Decision(DecisionKind.HOLD, ("no stage has started yet",), (), -1, now)
    ctx = EvaluationContext.build(
        spec,
        stages,
        observations,
        now,
        first_stage_multiplier=first_stage_multiplier,
        acknowledged=acknowledged,
        temporal_marks=temporal_marks,
    )
    return decide_ab(ctx) if spec.mode == "ab" else decide_canary(ctx)
