"""Rolling a candidate back: take the experiment, stop its execution, put every user on the live slot,
read the rule back, and only then record the rollback once and tell people once.

The order, as the lifecycle table has it (`canarywise.lifecycle.table`):

1. ``roll_back`` — a conditional write: the experiment moves to ROLLING_BACK and the service's version
   moves on, so any stage, approval or promotion holding the old version changes nothing from here on.
   Concurrent triggers (the composite alarm's Lambda action and its SNS copy, the state machine, a person)
   race for it: exactly one takes it. A call that finds the experiment ROLLING_BACK (its taker crashed, or
   is still busy) helps finish; one that finds it ROLLED_BACK is a duplicate.
2. stop that experiment's execution (not every execution: an old id must not orphan a live rollout).
3. set the rule to a forward naming only the live slot — sticky users cannot reach the candidate, whatever
   cookie they hold — and read it back (`Lifecycle.settle`).
4. ``rolled_back`` — the ``ROLLBACK`` record and the history item in the same conditional write: exactly
   one call writes them, and only that call alerts and rejects the pending approval.

With nothing running, a rollback refuses ("nothing to roll back"); ``--force`` (a person, on purpose)
returns all traffic to the live slot and records that.

Example
-------
>>> result = roll_back(parse_rollback_event({"source": "cli", "reason": "complaints"}),  # doctest: +SKIP
...                    service="mangaassist", registry=registry, lifecycle=lifecycle,
...                    executions=executions, alerts=alerts, now=now)
>>> result.outcome  # doctest: +SKIP
'ROLLED_BACK'
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from canarywise.data.executions import AlertTopic, CanaryExecutions
from canarywise.data.models import Experiment, ExperimentStatus, RollbackOutcome, RollbackRecord, to_iso
from canarywise.data.registry import ExperimentNotFoundError, Registry
from canarywise.data.traffic import TrafficError
from canarywise.errors import CanarywiseError
from canarywise.lifecycle.state import ServiceState, TransitionRefusedError
from canarywise.lifecycle.table import Event
from canarywise.runtime.events import RollbackRequest
from canarywise.runtime.lifecycle import Lifecycle, SupersededError

logger = Logger(child=True)

# How often a rollback re-reads the state and tries again when a concurrent stage start moved the version.
_CLAIM_ATTEMPTS = 5


class Approvals(Protocol):
    def reject(self, summary: str) -> bool: ...


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
    live: str | None = None  # the slot all traffic is on afterwards
    approval_rejected: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "experiment_ids": list(self.experiment_ids),
            "stopped_executions": list(self.stopped_executions),
            "candidate_rollbacks_7d": self.candidate_rollbacks_7d,
            "candidate_rejected": self.candidate_rejected,
            "notified": self.notified,
            "live": self.live,
            "approval_rejected": self.approval_rejected,
        }


def roll_back(
    request: RollbackRequest,
    *,
    service: str,
    registry: Registry,
    lifecycle: Lifecycle,
    executions: CanaryExecutions,
    alerts: AlertTopic,
    now: datetime,
    approvals: Approvals | None = None,
) -> RollbackResult:
    """Carry out one rollback request (see the module docstring for the order and the guarantees).

    Raises
    ------
    RollbackRefusedError
        When the request names an experiment that does not exist or was promoted: nothing moved.
    RollbackFailedError
        When the rule could not be set to the live slot (or did not read back so); a ``ROLLBACK_FAILED``
        record and an alert say so first, the experiment stays ROLLING_BACK (a retry completes it).
    """
    if not request.act:
        logger.info("event asks for no rollback", extra={"reason": request.reason})
        return RollbackResult(outcome="IGNORED", reason=request.reason)
    state = lifecycle.state(now)
    experiment = _target(request, state, registry)
    if experiment is None:
        if request.force:
            return _force_live(request, service, registry, lifecycle, alerts, state, now)
        return _nothing(request, service, lifecycle, state)
    if experiment.status in {ExperimentStatus.ROLLED_BACK, ExperimentStatus.REJECTED}:
        return _duplicate(request, experiment, ())
    if experiment.status is ExperimentStatus.PROMOTED:
        raise RollbackRefusedError(
            f"rollback refused: experiment {experiment.experiment_id} was promoted ({experiment.candidate} "
            f"is live); release the previous version as a new candidate instead"
        )
    if experiment.status is not ExperimentStatus.ROLLING_BACK:
        state, experiment = _take(request, experiment, state, lifecycle, registry, now)
        if experiment.status is not ExperimentStatus.ROLLING_BACK:
            return _duplicate(request, experiment, ())
    stopped = _stop(request, experiment, executions)
    try:
        state = _settle(lifecycle, state)
    except (TrafficError, SupersededError) as exc:
        _report_failure(request, service, registry, alerts, now, experiment, exc)
        raise RollbackFailedError(
            f"rollback of {service} FAILED: the rule does not send everything to the live slot ({exc}); "
            "the failure is recorded and alerted; re-run `canarywise rollback` or fix the rule by hand"
        ) from exc
    if not _complete(request, service, experiment, registry, lifecycle, state, now):
        return _duplicate(request, experiment, stopped)
    return _announce(request, service, experiment, registry, alerts, approvals, state, stopped, now)


class RollbackRefusedError(CanarywiseError, ValueError):
    """The rollback request cannot apply (unknown or promoted experiment): nothing moved."""


def _target(request: RollbackRequest, state: ServiceState, registry: Registry) -> Experiment | None:
    """The experiment the request is about: the one it names (checked first), else the one in progress."""
    if request.experiment_id:
        try:
            return registry.get_experiment(request.experiment_id)
        except ExperimentNotFoundError as exc:
            raise RollbackRefusedError(f"rollback refused: {exc}; nothing moved") from exc
    if state.experiment_id is None:
        return None
    return registry.get_experiment(state.experiment_id)


def _take(
    request: RollbackRequest,
    experiment: Experiment,
    state: ServiceState,
    lifecycle: Lifecycle,
    registry: Registry,
    now: datetime,
) -> tuple[ServiceState, Experiment]:
    """Take ``roll_back`` for `experiment` from `state`, re-reading both only when the transition is refused
    (a concurrent stage start moved the version on, or another call took the rollback)."""
    for _ in range(_CLAIM_ATTEMPTS):
        try:
            state = lifecycle.take(
                Event.ROLL_BACK,
                state=state,
                experiment_id=experiment.experiment_id,
                now=now,
                by=_who(request),
                experiment_sets={
                    "rollback_requested_at": to_iso(now),
                    "rollback_reason": request.reason[:1000],
                },
            )
            # The transaction set exactly this status: no need to read the experiment (and its spec) again.
            return state, experiment.model_copy(update={"status": ExperimentStatus.ROLLING_BACK})
        except TransitionRefusedError as exc:
            experiment = registry.get_experiment(experiment.experiment_id)
            state = lifecycle.state(now)
            if not experiment.status.is_live and experiment.status is not ExperimentStatus.APPROVED:
                logger.info("rollback taken by another call", extra={"refused": str(exc)})
                return state, experiment
    raise RollbackFailedError(f"could not take the rollback of {experiment.experiment_id}: it kept moving")


def _stop(request: RollbackRequest, experiment: Experiment, executions: CanaryExecutions) -> tuple[str, ...]:
    # The state machine that asked for this rollback fails by itself right after; stopping it would turn a
    # clear "Failed" into "Aborted". An execution that ended ("aws.states") has nothing left to stop.
    arn = experiment.execution_arn
    if arn is None or request.source in {"state_machine", "aws.states"}:
        return ()
    return (arn,) if executions.stop(arn, cause=request.reason) else ()


def _settle(lifecycle: Lifecycle, state: ServiceState) -> ServiceState:
    """Set and verify the live-only forward; a newer ROLLING_BACK state (a helper's) is as good."""
    try:
        return lifecycle.settle(state)
    except SupersededError:
        newest = lifecycle.state(state.updated_at)
        if newest.forward == {newest.live: 100}:
            return newest
        raise


def _complete(
    request: RollbackRequest,
    service: str,
    experiment: Experiment,
    registry: Registry,
    lifecycle: Lifecycle,
    state: ServiceState,
    now: datetime,
) -> bool:
    """Take ``rolled_back`` with the one record; False when another call completed it first."""
    record = RollbackRecord(
        service=service,
        rolled_back_at=now,
        source=request.source,
        reason=request.reason,
        experiment_id=experiment.experiment_id,
        candidate=experiment.candidate,
        trigger_id=request.trigger_id,
        status=request.status,
        actor=_who(request),
    )
    for _ in range(_CLAIM_ATTEMPTS):
        try:
            lifecycle.take(
                Event.ROLLED_BACK,
                state=state,
                experiment_id=experiment.experiment_id,
                now=now,
                by=_who(request),
                final_status=request.status,
                experiment_sets={
                    "concluded_at": to_iso(now),
                    "rolled_back_at": to_iso(now),
                    "rollback_reason": request.reason[:1000],
                    "pvalue": primary_pvalue(experiment),
                },
                rollback=record,
            )
            return True
        except TransitionRefusedError:
            current = registry.get_experiment(experiment.experiment_id)
            if current.status is not ExperimentStatus.ROLLING_BACK:
                return False
            state = lifecycle.state(now)  # the version moved (a helper's settle); try again
    return False


def _announce(
    request: RollbackRequest,
    service: str,
    experiment: Experiment,
    registry: Registry,
    alerts: AlertTopic,
    approvals: Approvals | None,
    state: ServiceState,
    stopped: tuple[str, ...],
    now: datetime,
) -> RollbackResult:
    facts = registry.rollback_facts(service, experiment.candidate, now)
    rejected = facts.candidate_rollbacks_7d >= experiment.spec.anti_flapping.max_rollbacks_7d
    approval_rejected = _reject_approval(approvals, f"rolled back: {request.reason}")
    result = RollbackResult(
        outcome=RollbackOutcome.ROLLED_BACK.value,
        reason=request.reason,
        experiment_ids=(experiment.experiment_id,),
        stopped_executions=stopped,
        candidate_rollbacks_7d=facts.candidate_rollbacks_7d,
        candidate_rejected=rejected,
        live=state.live,
        approval_rejected=approval_rejected,
    )
    cooldown = timedelta(seconds=experiment.spec.anti_flapping.cooldown)
    message = result.to_dict() | {
        "service": service,
        "source": request.source,
        "actor": _who(request),
        "candidate": experiment.candidate,
        "forward": state.forward,
        "rolled_back_at": now.isoformat(),
        "next_rollout_not_before": (now + cooldown).isoformat(),
    }
    verb = "REJECTED" if rejected else "rolled back"
    return replace(
        result, notified=_publish(alerts, f"canarywise: {service} {experiment.candidate} {verb}", message)
    )


def _force_live(
    request: RollbackRequest,
    service: str,
    registry: Registry,
    lifecycle: Lifecycle,
    alerts: AlertTopic,
    state: ServiceState,
    now: datetime,
) -> RollbackResult:
    """A person's ``rollback --force`` with nothing running: all traffic to the live slot, recorded."""
    state = lifecycle.settle(lifecycle.take(Event.FORCE_LIVE, state=state, now=now, by=_who(request)))
    registry.record_forced_rollback(
        RollbackRecord(
            service=service,
            rolled_back_at=now,
            source=request.source,
            reason=request.reason,
            actor=_who(request),
        )
    )
    result = RollbackResult(
        outcome=RollbackOutcome.ROLLED_BACK.value,
        reason=f"forced: all traffic on the live slot {state.live!r} ({request.reason})",
        live=state.live,
    )
    message = result.to_dict() | {"service": service, "actor": _who(request), "forward": state.forward}
    return replace(
        result, notified=_publish(alerts, f"canarywise: {service} forced to {state.live}", message)
    )


def _nothing(
    request: RollbackRequest, service: str, lifecycle: Lifecycle, state: ServiceState
) -> RollbackResult:
    """No rollout in progress: move nothing. A repeat of the trigger that just rolled back (the alarm's
    SNS copy, a flap ALARM → OK → ALARM) is a duplicate; anything else is "nothing to roll back". Either
    way the rule is compared with the registry and a difference is reported, not "fixed" (``--force``)."""
    outcome = (
        RollbackOutcome.DUPLICATE
        if state.last_event == Event.ROLLED_BACK
        else RollbackOutcome.NOTHING_TO_ROLL_BACK
    )
    reason = f"nothing to roll back: no rollout of {service} is in progress; all traffic is on {state.live!r}"
    drift = lifecycle.drift(state)
    if drift:
        reason += f"; but {drift}: `canarywise rollback --force` restores it"
    logger.info("nothing to roll back", extra={"outcome": outcome.value, "trigger": request.reason})
    return RollbackResult(outcome=outcome.value, reason=f"{reason} ({request.reason})", live=state.live)


def _duplicate(request: RollbackRequest, experiment: Experiment, stopped: tuple[str, ...]) -> RollbackResult:
    logger.info("rollback already recorded: duplicate trigger", extra={"reason": request.reason})
    return RollbackResult(
        outcome=RollbackOutcome.DUPLICATE.value,
        reason=request.reason,
        experiment_ids=(experiment.experiment_id,),
        stopped_executions=stopped,
    )


def _who(request: RollbackRequest) -> str:
    return f"{request.source}" + (f" ({request.actor})" if request.actor else "")


def _publish(alerts: AlertTopic, subject: str, message: dict[str, Any]) -> bool:
    try:
        alerts.publish(subject.replace("  ", " "), message)
    except Exception:  # the rollback itself is done and recorded; a lost e-mail must not undo that
        logger.exception("rollback notification failed")
        return False
    return True


def _reject_approval(approvals: Approvals | None, summary: str) -> bool:
    if approvals is None:
        return False
    try:
        return approvals.reject(summary)
    except Exception:  # the promote transition refuses a rolled-back experiment anyway; say it, go on
        logger.exception("could not reject the pending approval")
        return False


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
    alerts: AlertTopic,
    now: datetime,
    experiment: Experiment,
    error: Exception,
) -> None:
    """The rule could not be set: record and alert, each step on its own."""
    logger.error("ROLLBACK FAILED: rule not restored", extra={"error": str(error)})
    steps = (
        (
            "record failure",
            lambda: registry.record_rollback_failure(
                service=service,
                experiment_ids=[experiment.experiment_id],
                now=now,
                source=request.source,
                reason=request.reason,
                error=str(error),
            ),
        ),
        (
            "alert",
            lambda: alerts.publish(
                f"canarywise: ROLLBACK FAILED for {service}: traffic not restored",
                {
                    "service": service,
                    "reason": request.reason,
                    "error": str(error),
                    "experiment_ids": [experiment.experiment_id],
                    "action": "set the listener rule to forward only to the live target group by hand",
                },
            ),
        ),
    )
    for name, step in steps:
        try:
            step()
        except Exception:  # keep going: each remaining step still helps the person who must act
            logger.exception("step after a failed rollback also failed", extra={"step": name})
