"""Rolling a candidate back: weights 100/0 first, then stop the rollout, record it once, tell people.

The order is the point. Users leave the candidate before anything else can fail; the state machine is stopped
before the record is written, so a crash between the two is repaired by the retry (a recorded rollback makes
later calls duplicates, and a duplicate would not stop the execution again). Every step is safe to repeat,
and the record is one conditional DynamoDB transaction, so concurrent and repeated triggers (the composite
alarm's Lambda action and its SNS message, the state machine, a person) produce exactly one rollback record
and one notification.

Example
-------
>>> result = roll_back(parse_rollback_event({"source": "cli", "reason": "complaints"}),  # doctest: +SKIP
...                    service="mangaassist", registry=registry, traffic=traffic,
...                    executions=executions, alerts=alerts, now=now)
>>> result.outcome  # doctest: +SKIP
'ROLLED_BACK'
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from canarywise.data.executions import AlertTopic, CanaryExecutions
from canarywise.data.models import ALL_CONTROL, Experiment, RollbackOutcome, RollbackRecord
from canarywise.data.registry import InvalidTransitionError, Registry
from canarywise.data.traffic import TrafficError, TrafficSplit
from canarywise.errors import CanarywiseError
from canarywise.runtime.events import RollbackRequest

logger = Logger(child=True)


class RollbackFailedError(CanarywiseError, RuntimeError):
    """The weights could not be set to 100/0: users may still reach the candidate. Act now."""


@dataclass(frozen=True)
class RollbackResult:
    """What a rollback call did (the handler returns it as JSON)."""

    outcome: str  # a RollbackOutcome value, or "IGNORED" for an event that asks for no rollback
    reason: str
    experiment_ids: tuple[str, ...] = ()
    stopped_executions: tuple[str, ...] = ()
    candidate_rollbacks_7d: int | None = None
    candidate_rejected: bool = False
    notified: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "experiment_ids": list(self.experiment_ids),
            "stopped_executions": list(self.stopped_executions),
            "candidate_rollbacks_7d": self.candidate_rollbacks_7d,
            "candidate_rejected": self.candidate_rejected,
            "notified": self.notified,
        }


def roll_back(
    request: RollbackRequest,
    *,
    service: str,
    registry: Registry,
    traffic: TrafficSplit,
    executions: CanaryExecutions,
    alerts: AlertTopic,
    now: datetime,
) -> RollbackResult:
    """Carry out one rollback request (see the module docstring for the order and the guarantees).

    Raises
    ------
    RollbackFailedError
        When the weights could not be restored after retries; a ``ROLLBACK_FAILED`` record and an alert say
        so first, the experiment keeps its status (a retry can still complete the rollback).
    """
    if not request.act:
        logger.info("event asks for no rollback", extra={"reason": request.reason})
        return RollbackResult(outcome="IGNORED", reason=request.reason)
    # A local clock read, not a registry call: it orders this call against concurrent ones (see `_record`).
    began = registry.clock()

    # Weights before anything else, even before reading the registry: a registry outage must not keep users
    # on a bad candidate.
    try:
        traffic.set_weights(ALL_CONTROL)
    except TrafficError as exc:
        _report_failure(request, service, registry, executions, alerts, now, exc)
        raise RollbackFailedError(
            f"rollback of {service} FAILED: weights are not 100/0 ({exc}); the failure is recorded "
            "and alerted; fix the listener rule by hand or re-run `canarywise rollback`"
        ) from exc

    targets = _targets(request, service, registry)
    # The state machine that asked for this rollback fails by itself right after; stopping it would turn a
    # clear "Failed" into "Aborted".
    spare = next((e.execution_arn for e in targets if request.source == "state_machine"), None)
    stopped = executions.stop_running(cause=request.reason, spare=spare)

    recorded = _record(request, service, targets, registry, now, began)
    if not recorded:
        logger.info("rollback already recorded: duplicate trigger", extra={"reason": request.reason})
        return RollbackResult(
            outcome=RollbackOutcome.DUPLICATE.value,
            reason=request.reason,
            experiment_ids=tuple(e.experiment_id for e in targets),
            stopped_executions=stopped,
        )

    candidate = targets[0].candidate if targets else None
    rollbacks_7d, rejected = None, False
    if targets:
        facts = registry.rollback_facts(service, targets[0].candidate, now)
        rollbacks_7d = facts.candidate_rollbacks_7d
        rejected = rollbacks_7d >= targets[0].spec.anti_flapping.max_rollbacks_7d
    result = RollbackResult(
        outcome=RollbackOutcome.ROLLED_BACK.value,
        reason=request.reason,
        experiment_ids=tuple(e.experiment_id for e in targets),
        stopped_executions=stopped,
        candidate_rollbacks_7d=rollbacks_7d,
        candidate_rejected=rejected,
    )
    message = result.to_dict() | {
        "service": service,
        "source": request.source,
        "candidate": candidate,
        "weights": ALL_CONTROL.as_dict(),
        "rolled_back_at": now.isoformat(),
    }
    if targets:
        cooldown = timedelta(seconds=targets[0].spec.anti_flapping.cooldown)
        message["next_rollout_not_before"] = (now + cooldown).isoformat()
    verb = "REJECTED" if rejected else "rolled back"
    try:
        alerts.publish(f"canarywise: {service} {candidate or ''} {verb}".replace("  ", " "), message)
        notified = True
    except Exception:  # the rollback itself is done and recorded; a lost e-mail must not undo that
        logger.exception("rollback notification failed")
        notified = False
    return replace(result, notified=notified)


def _targets(request: RollbackRequest, service: str, registry: Registry) -> tuple[Experiment, ...]:
    if request.experiment_id:
        return (registry.get_experiment(request.experiment_id),)
    return registry.list_running(service)


def _record(
    request: RollbackRequest,
    service: str,
    targets: tuple[Experiment, ...],
    registry: Registry,
    now: datetime,
    began: float,
) -> bool:
    """True when this call wrote the rollback; False when the trigger or the rollback was seen before.

    Experiments make the write conditional on their status. With nothing running, a concurrent trigger may
    have concluded the experiment between this call's weight change and its registry read; the
    service-level record is then a duplicate if any rollback was written since this call `began`.
    """

    def record(experiment: Experiment | None, claim_trigger: bool, note: str = "") -> RollbackRecord:
        return RollbackRecord(
            service=service,
            rolled_back_at=now,
            source=request.source,
            reason=request.reason + note,
            experiment_id=experiment.experiment_id if experiment else None,
            candidate=experiment.candidate if experiment else None,
            trigger_id=request.trigger_id if claim_trigger else None,
            status=request.status if experiment else None,
        )

    if not targets:
        return registry.record_rollback(record(None, claim_trigger=True), began=began)
    recorded = False
    for position, experiment in enumerate(targets):
        # The trigger is claimed with the first experiment: a second delivery of the same alarm stops there.
        claim = position == 0
        try:
            wrote = registry.record_rollback(record(experiment, claim), pvalue=primary_pvalue(experiment))
        except InvalidTransitionError:
            # An explicit rollback of an experiment that already ended (e.g. promoted): the weights are
            # 100/0 now; keep a service-level record that says which experiment it concerned.
            note = f" (experiment {experiment.experiment_id} was already {experiment.status})"
            wrote = registry.record_rollback(record(None, claim, note), began=began)
        if claim and not wrote:
            return False
        recorded = recorded or wrote
    return recorded


def primary_pvalue(experiment: Experiment) -> float | None:
    """The latest check's p-value of the pre-registered primary metric (over all traffic), if any."""
    check = experiment.latest_check
    if check is None:
        return None
    value = check.details.get("primary_pvalue")
    return float(value) if value is not None else None


def _report_failure(
    request: RollbackRequest,
    service: str,
    registry: Registry,
    executions: CanaryExecutions,
    alerts: AlertTopic,
    now: datetime,
    error: TrafficError,
) -> None:
    """Weights could not be set: still stop the rollout, then record and alert, each step on its own."""
    logger.error("ROLLBACK FAILED: weights not restored", extra={"error": str(error)})
    try:
        targets = _targets(request, service, registry)
    except Exception:
        logger.exception("could not read the experiments concerned")
        targets = ()
    steps = (
        ("stop executions", lambda: executions.stop_running(cause=f"rollback failed: {request.reason}")),
        (
            "record failure",
            lambda: registry.record_rollback_failure(
                service=service,
                experiment_ids=[e.experiment_id for e in targets],
                now=now,
                source=request.source,
                reason=request.reason,
                error=str(error),
            ),
        ),
        (
            "alert",
            lambda: alerts.publish(
                f"canarywise: ROLLBACK FAILED for {service}: weights not restored",
                {
                    "service": service,
                    "reason": request.reason,
                    "error": str(error),
                    "experiment_ids": [e.experiment_id for e in targets],
                    "action": "set the listener rule to control 100 / canary 0 by hand",
                },
            ),
        ),
    )
    for name, step in steps:
        try:
            step()
        except Exception:  # keep going: each remaining step still helps the person who must act
            logger.exception("step after a failed rollback also failed", extra={"step": name})
