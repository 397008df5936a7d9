"""The rollout's steps as the state machines call them: start, stage started, gate, ready, promote.

Each step that moves the lifecycle takes its transition first (`canarywise.runtime.lifecycle.Lifecycle`),
then sets and verifies traffic: a refused transition moves nothing.

The stage gate never computes: it reads the decision the significance check stored, and answers HOLD when
there is none for the stage in progress or when it is stale, so a broken check can only ever stall a rollout,
never advance it.

Example
-------
>>> start_rollout(parse_stage_gate_event(event), service="mangaassist", registry=registry,  # doctest: +SKIP
...               now=now)
{'experiment_id': 'mangaassist-v42-686abaf5b4'}
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from canarywise.data.models import Experiment, ExperimentStatus, to_iso
from canarywise.data.registry import ExperimentNotFoundError, Registry, experiment_id_for
from canarywise.decision.context import stage_in_force, stage_label
from canarywise.decision.models import DecisionKind
from canarywise.errors import CanarywiseError
from canarywise.lifecycle.state import TransitionRefusedError
from canarywise.lifecycle.table import Event, Phase
from canarywise.runtime.events import GateAction, PromoteEvent, ReadyAction, StageStartedAction, StartAction
from canarywise.runtime.lifecycle import Lifecycle
from canarywise.runtime.pause import paused_reason
from canarywise.runtime.rollback import primary_pvalue
from canarywise.spec import RolloutSpec, parse_spec, poll_waits

logger = Logger(child=True)

# A decision older than this many check intervals is stale: the check has stopped running or keeps failing.
STALE_AFTER_INTERVALS = 3
# How `gate` begins a HOLD for want of a fresh decision (the stage gate handler counts these).
NO_DECISION, STALE_DECISION = "no decision yet", "the latest decision"

# The state machine's Choice knows the canary kinds; an A/B verdict maps onto them.
_FOR_STATE_MACHINE = {
    DecisionKind.PROMOTE: DecisionKind.READY_FOR_APPROVAL,  # a person still approves the 100%
    DecisionKind.KEEP_CONTROL: DecisionKind.ROLLBACK,
    DecisionKind.NO_DIFFERENCE: DecisionKind.INCONCLUSIVE,
}


class RolloutRefusedError(CanarywiseError):
    """A rollout may not start now; the subclass says why (its name is the state machine's error name)."""


class CooldownActiveError(RolloutRefusedError):
    """The service was rolled back less than ``anti_flapping.cooldown`` ago."""


class CandidateRejectedError(RolloutRefusedError):
    """The candidate was rolled back ``anti_flapping.max_rollbacks_7d`` times in the last 7 days."""


class RolloutAlreadyRunningError(RolloutRefusedError):
    """Another experiment of this service still has traffic on its canary."""


class RootCauseRequiredError(RolloutRefusedError):
    """The candidate was rolled back and the spec requires a root cause (``anti_flapping.require_root_cause``)
    that the release manifest does not give."""


class WrongSlotError(RolloutRefusedError):
    """The release manifest says the candidate was deployed into the live slot, not the idle one."""


class PromoteRefusedError(CanarywiseError):
    """The experiment cannot be promoted (unknown, not ready, rolled back, ...): traffic untouched."""


class StageMismatchError(CanarywiseError, ValueError):
    """The state machine reported a stage the experiment's spec does not have."""


def start_rollout(
    action: StartAction, *, service: str, registry: Registry, lifecycle: Lifecycle, now: datetime
) -> dict[str, Any]:
    """Register the experiment (the spec as its pre-registered hypothesis) after the anti-flapping checks.

    The ``start`` transition creates the experiment and moves the service from STEADY to ROLLING_OUT in one
    conditional write, so two concurrent starts cannot both succeed. A retry of the same execution returns
    the experiment the first call created.
    """
    spec = parse_spec(action.spec, source="start event spec")  # SpecError names the field and the value
    if spec.service != service:
        raise StageMismatchError(
            f"the spec is for service {spec.service!r}, this function serves {service!r}"
        )
    candidate = action.release.candidate
    experiment_id = experiment_id_for(service, candidate, action.execution_arn)
    try:
        return _started(registry.get_experiment(experiment_id).experiment_id, spec, action)  # a retry
    except ExperimentNotFoundError:
        pass
    state = lifecycle.state(now)
    if state.experiment_id is not None:
        raise RolloutAlreadyRunningError(
            f"experiment {state.experiment_id} is still {state.phase} for {service}; "
            "promote or roll it back first"
        )
    if action.release.slot is not None and action.release.slot != state.idle:
        raise WrongSlotError(
            f"release {action.release.release_id} was deployed into {action.release.slot!r}, but "
            f"{state.live!r} is live and {state.idle!r} is idle: deploy the candidate into {state.idle!r}"
        )
    facts = registry.rollback_facts(service, candidate, now)
    policy = spec.anti_flapping
    if facts.last_rollback_at is not None:
        ends = facts.last_rollback_at + timedelta(seconds=policy.cooldown)
        if now < ends:
            raise CooldownActiveError(
                f"{service} was rolled back at {facts.last_rollback_at.isoformat()}; the cooldown of "
                f"{policy.cooldown} s ends at {ends.isoformat()}"
            )
    if facts.candidate_rollbacks_7d >= policy.max_rollbacks_7d:
        raise CandidateRejectedError(
            f"candidate {candidate!r} was rolled back {facts.candidate_rollbacks_7d} times in the last "
            f"7 days (limit {policy.max_rollbacks_7d}); ship a new candidate"
        )
    if policy.require_root_cause and facts.candidate_rollbacks_7d and not action.release.root_cause:
        raise RootCauseRequiredError(
            f"candidate {candidate!r} was rolled back {facts.candidate_rollbacks_7d} time(s) in the last 7 "
            "days and anti_flapping.require_root_cause is set: add release.root_cause (a link to the "
            "analysis) to the release manifest"
        )
    multiplier = policy.first_stage_multiplier if facts.candidate_rollbacks_7d else 1.0
    item = registry.new_experiment_item(
        spec,
        experiment_id=experiment_id,
        candidate=candidate,
        release_id=action.release.release_id,
        execution_arn=action.execution_arn,
        now=now,
        first_stage_multiplier=multiplier,
        baseline_slot=state.live,
        candidate_slot=state.idle,
    )
    if action.release.root_cause:
        item["root_cause"] = action.release.root_cause  # recorded with the pre-registered hypothesis
    try:
        lifecycle.take(
            Event.START, state=state, experiment_id=experiment_id, new_experiment=item, now=now,
            by=f"canary execution {action.execution_arn.rsplit(':', 1)[-1]}",
        )  # fmt: skip
    except TransitionRefusedError as exc:
        raise RolloutAlreadyRunningError(str(exc)) from exc
    logger.info(
        "experiment started",
        extra={"experiment_id": experiment_id, "first_stage_multiplier": multiplier, "slot": state.idle},
    )
    return _started(experiment_id, spec, action)


def _started(experiment_id: str, spec: RolloutSpec, action: StartAction) -> dict[str, Any]:
    """Start's answer: the experiment, and the state machine's slower waits (`canarywise.spec.poll_waits`)."""
    timing = action.timing.check_interval_seconds if action.timing is not None else None
    return {"experiment_id": experiment_id} | poll_waits(spec, timing)


def record_stage_started(
    action: StageStartedAction, *, registry: Registry, lifecycle: Lifecycle, now: datetime
) -> dict[str, Any]:
    """Take ``stage_started``, set the stage's share live → idle, read it back, record the stage's start.

    A retry of the same stage (the task ran but its answer was lost) finds the stage recorded and only
    checks the rule again. The answer carries the stage's ``deadline`` (`stage_deadline`).
    """
    experiment = registry.get_experiment(action.experiment_id)
    stages = experiment.spec.stages
    if action.stage_index >= len(stages):
        raise StageMismatchError(
            f"stage_index {action.stage_index} is outside the spec's {len(stages)} stages"
        )
    percent = stages[action.stage_index].percent
    if action.weights.canary != percent:
        raise StageMismatchError(
            f"{stage_label(action.stage_index, len(stages))} sends {percent:g}% to the canary, "
            f"found weights {action.weights.as_dict()}"
        )
    recorded = {s.stage_index: s for s in registry.stage_history(action.experiment_id)}
    state = lifecycle.state(now)
    deadline = stage_deadline(experiment, action.stage_index, action.entered_at or now)
    if state.phase is Phase.PAUSED:  # paused after the gate said ADVANCE: the state machine gates again
        return {"experiment_id": action.experiment_id, "stage_index": action.stage_index,
                "paused": _paused(registry, action.experiment_id), "deadline": deadline}  # fmt: skip
    if action.stage_index in recorded and state.forward.get(state.idle) == int(percent):
        lifecycle.settle(state)  # a retry: make sure the rule still says so
        return {
            "experiment_id": action.experiment_id,
            "stage_index": action.stage_index,
            "deadline": deadline,
        }
    state = lifecycle.take(
        Event.STAGE_STARTED,
        state=state,
        experiment_id=action.experiment_id,
        percent=percent,
        now=now,
        by=f"canary state machine, {stage_label(action.stage_index, len(stages))}",
    )
    state = lifecycle.settle(state)
    stage = registry.record_stage_start(action.experiment_id, action.stage_index, state.role_weights(), now)
    return {
        "experiment_id": action.experiment_id,
        "stage_index": stage.stage_index,
        "forward": state.forward,
        "deadline": deadline,
    }


def stage_deadline(experiment: Experiment, stage_index: int, entered_at: datetime) -> str:
    """When the stage reaches its maximum (× ``first_stage_multiplier`` for a first stage after a rollback),
    counted from `entered_at`, as the state machine compares timestamps (RFC 3339, ``Z``, whole seconds).

    The canary state machine keeps it: a gate that keeps failing past it ends the stage by the spec's
    inconclusive policy (fault table, row 1).

    Example
    -------
    >>> stage_deadline(experiment, 0, datetime(2026, 12, 7, 9, 0, tzinfo=UTC))  # doctest: +SKIP
    '2026-12-09T09:00:00Z'
    """
    limit = stage_in_force(experiment.spec, stage_index, experiment.first_stage_multiplier).max_duration
    return (entered_at + timedelta(seconds=limit)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gate(action: GateAction, *, registry: Registry, now: datetime) -> dict[str, str]:
    """The decision for the stage in progress, as stored by the significance check (HOLD when in doubt)."""
    experiment = registry.get_experiment(action.experiment_id)
    if experiment.status in {
        ExperimentStatus.ROLLING_BACK,
        ExperimentStatus.ROLLED_BACK,
        ExperimentStatus.REJECTED,
    }:
        return _answer(DecisionKind.ROLLBACK, f"experiment is already {experiment.status}")
    if experiment.status is not ExperimentStatus.RUNNING:
        return _answer(DecisionKind.HOLD, f"experiment is {experiment.status}; nothing to gate")
    check = experiment.latest_check
    if experiment.paused is not None:  # set and cleared with the lifecycle's pause and resume
        # A pause does not stop the stage's maximum: once the check says INCONCLUSIVE for this stage, the
        # spec's inconclusive policy applies (so a long pause cannot poll every interval until the
        # execution history's quota: fault table, row 7).
        if check is not None and check.stage_index == action.stage_index and check.decision == "INCONCLUSIVE":
            return _answer(DecisionKind.INCONCLUSIVE, f"{paused_reason(experiment.paused)}; {check.reason}")
        return _answer(DecisionKind.HOLD, paused_reason(experiment.paused))
    if check is None:
        return _answer(DecisionKind.HOLD, f"{NO_DECISION}: the significance check has not run")
    if check.stage_index != action.stage_index:
        return _answer(
            DecisionKind.HOLD,
            f"the latest decision is for stage {check.stage_index + 1}, not stage {action.stage_index + 1}",
        )
    limit = timedelta(seconds=STALE_AFTER_INTERVALS * experiment.spec.check_interval)
    if now - check.checked_at > limit:
        return _answer(
            DecisionKind.HOLD,
            f"{STALE_DECISION} ({check.checked_at.isoformat()}) is older than {limit}: "
            "is the significance check running?",
        )
    kind = DecisionKind(check.decision)
    return _answer(_FOR_STATE_MACHINE.get(kind, kind), check.reason)


def _answer(kind: DecisionKind, reason: str) -> dict[str, str]:
    return {"decision": kind.value, "reason": reason}


def mark_ready(action: ReadyAction, *, lifecycle: Lifecycle, now: datetime) -> dict[str, str]:
    """The last stage's gate is met: the experiment waits for a person's approval (traffic unchanged)."""
    state = lifecycle.state(now)
    if state.phase is Phase.PAUSED:  # paused after the last gate passed: the state machine gates again
        reason = _paused(lifecycle.registry, action.experiment_id)
        return {"experiment_id": action.experiment_id, "paused": reason}
    if state.last_event == Event.READY and state.experiment_id == action.experiment_id:
        return {"experiment_id": action.experiment_id, "status": ExperimentStatus.READY_FOR_APPROVAL.value}
    lifecycle.take(
        Event.READY, state=state, experiment_id=action.experiment_id, now=now, by="canary state machine"
    )
    return {"experiment_id": action.experiment_id, "status": ExperimentStatus.READY_FOR_APPROVAL.value}


def _paused(registry: Registry, experiment_id: str) -> str:
    note = registry.get_experiment(experiment_id).paused
    return paused_reason(note) if note else "paused"


def promote(
    event: PromoteEvent, *, registry: Registry, lifecycle: Lifecycle, now: datetime
) -> dict[str, Any]:
    """Approve, move all traffic to the candidate's slot, verify, then promote (the slots swap roles).

    The ``approve`` transition is taken before any weight changes: an experiment that is rolled back,
    held, unknown or already approved is refused with traffic untouched. A retry after a crash finds the
    experiment APPROVED (or PROMOTED) and carries on from there.
    """
    try:
        experiment = registry.get_experiment(event.experiment_id)
    except ExperimentNotFoundError as exc:
        raise PromoteRefusedError(f"promote refused: {exc}; traffic untouched") from exc
    state = lifecycle.state(now)
    if experiment.status is ExperimentStatus.PROMOTED and state.live == experiment.candidate_slot:
        return _promoted(event.experiment_id, registry, state.live, now, fdr=False)
    if experiment.status is not ExperimentStatus.APPROVED:
        try:
            state = lifecycle.take(
                Event.APPROVE,
                state=state,
                experiment_id=event.experiment_id,
                now=now,
                by=event.approved_by,
                experiment_sets={"approved_at": to_iso(now), "approved_by": event.approved_by},
            )
        except TransitionRefusedError as exc:
            raise PromoteRefusedError(f"{exc}; traffic untouched") from exc
    state = lifecycle.settle(state)  # SupersededError when a rollback took over meanwhile
    state = lifecycle.take(
        Event.PROMOTE,
        state=state,
        experiment_id=event.experiment_id,
        now=now,
        by="promote function",
        experiment_sets={"concluded_at": to_iso(now), "pvalue": primary_pvalue(experiment)},
    )
    return _promoted(event.experiment_id, registry, state.live, now, fdr=True)


def _promoted(
    experiment_id: str, registry: Registry, live: str, now: datetime, *, fdr: bool
) -> dict[str, Any]:
    entries = registry.apply_registry_fdr(now) if fdr else ()
    mine = next((entry for entry in entries if entry.experiment_id == experiment_id), None)
    return {
        "experiment_id": experiment_id,
        "status": ExperimentStatus.PROMOTED.value,
        "live": live,
        "pvalue": mine.pvalue if mine else None,
        "adjusted_pvalue": mine.adjusted_pvalue if mine else None,
        "fdr_discovery": mine.rejected if mine else None,
        "registry_experiments_in_fdr": len(entries),
    }
