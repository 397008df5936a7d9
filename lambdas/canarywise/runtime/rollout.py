"""The rollout's steps as the state machines call them: start, stage started, gate, ready, promote.

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

from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from canarywise.data.models import ALL_CANARY, ExperimentStatus
from canarywise.data.registry import Registry
from canarywise.data.traffic import TrafficSplit
from canarywise.decision.context import stage_label
from canarywise.decision.models import DecisionKind
from canarywise.errors import CanarywiseError
from canarywise.runtime.events import GateAction, PromoteEvent, ReadyAction, StageStartedAction, StartAction
from canarywise.runtime.rollback import primary_pvalue
from canarywise.spec import parse_spec

logger = Logger(child=True)

# A decision older than this many check intervals is stale: the check has stopped running or keeps failing.
STALE_AFTER_INTERVALS = 3

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


class StageMismatchError(CanarywiseError, ValueError):
    """The state machine reported a stage the experiment's spec does not have."""


def start_rollout(action: StartAction, *, service: str, registry: Registry, now: datetime) -> dict[str, str]:
    """Register the experiment (the spec as its pre-registered hypothesis) after the anti-flapping checks.

    A retry of the same execution returns the experiment the first call created.
    """
    spec = parse_spec(action.spec, source="start event spec")  # SpecError names the field and the value
    if spec.service != service:
        raise StageMismatchError(
            f"the spec is for service {spec.service!r}, this function serves {service!r}"
        )
    candidate = action.release.candidate
    for live in registry.list_running(service):
        if live.execution_arn == action.execution_arn:
            return {"experiment_id": live.experiment_id}
        raise RolloutAlreadyRunningError(
            f"experiment {live.experiment_id} ({live.candidate}) is still {live.status} for {service}; "
            "promote or roll it back first"
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
    multiplier = policy.first_stage_multiplier if facts.candidate_rollbacks_7d else 1.0
    experiment = registry.create_experiment(
        spec,
        candidate=candidate,
        release_id=action.release.release_id,
        execution_arn=action.execution_arn,
        now=now,
        first_stage_multiplier=multiplier,
    )
    logger.info(
        "experiment started",
        extra={"experiment_id": experiment.experiment_id, "first_stage_multiplier": multiplier},
    )
    return {"experiment_id": experiment.experiment_id}


def record_stage_started(action: StageStartedAction, *, registry: Registry, now: datetime) -> dict[str, Any]:
    """Record the stage's start and the weights the state machine just set."""
    experiment = registry.get_experiment(action.experiment_id)
    stages = experiment.spec.stages
    if action.stage_index >= len(stages):
        raise StageMismatchError(
            f"stage_index {action.stage_index} is outside the spec's {len(stages)} stages"
        )
    if action.weights.canary != stages[action.stage_index].percent:
        raise StageMismatchError(
            f"{stage_label(action.stage_index, len(stages))} sends {stages[action.stage_index].percent:g}% "
            "to the canary, "
            f"found weights {action.weights.as_dict()}"
        )
    stage = registry.record_stage_start(action.experiment_id, action.stage_index, action.weights, now)
    return {"experiment_id": action.experiment_id, "stage_index": stage.stage_index}


def gate(action: GateAction, *, registry: Registry, now: datetime) -> dict[str, str]:
    """The decision for the stage in progress, as stored by the significance check (HOLD when in doubt)."""
    experiment = registry.get_experiment(action.experiment_id)
    if experiment.status in {ExperimentStatus.ROLLED_BACK, ExperimentStatus.REJECTED}:
        return _answer(DecisionKind.ROLLBACK, f"experiment is already {experiment.status}")
    if experiment.status is not ExperimentStatus.RUNNING:
        return _answer(DecisionKind.HOLD, f"experiment is {experiment.status}; nothing to gate")
    check = experiment.latest_check
    if check is None:
        return _answer(DecisionKind.HOLD, "no decision yet: the significance check has not run")
    if check.stage_index != action.stage_index:
        return _answer(
            DecisionKind.HOLD,
            f"the latest decision is for stage {check.stage_index + 1}, not stage {action.stage_index + 1}",
        )
    limit = timedelta(seconds=STALE_AFTER_INTERVALS * experiment.spec.check_interval)
    if now - check.checked_at > limit:
        return _answer(
            DecisionKind.HOLD,
            f"the latest decision ({check.checked_at.isoformat()}) is older than {limit}: "
            "is the significance check running?",
        )
    kind = DecisionKind(check.decision)
    return _answer(_FOR_STATE_MACHINE.get(kind, kind), check.reason)


def _answer(kind: DecisionKind, reason: str) -> dict[str, str]:
    return {"decision": kind.value, "reason": reason}


def mark_ready(action: ReadyAction, *, registry: Registry, now: datetime) -> dict[str, str]:
    """The last stage's gate is met: the experiment waits for a person's approval."""
    registry.mark_ready_for_approval(action.experiment_id, now)
    return {"experiment_id": action.experiment_id, "status": ExperimentStatus.READY_FOR_APPROVAL.value}


def promote(
    event: PromoteEvent, *, registry: Registry, traffic: TrafficSplit, now: datetime
) -> dict[str, Any]:
    """100% to the candidate, conclude the experiment, and re-run BH across the registry's 12 months."""
    experiment = registry.get_experiment(event.experiment_id)
    if experiment.status not in {ExperimentStatus.READY_FOR_APPROVAL, ExperimentStatus.PROMOTED}:
        # Checked before touching traffic: a rolled-back candidate must never get 100%.
        raise StageMismatchError(
            f"experiment {event.experiment_id} is {experiment.status}; only an approved experiment "
            f"(READY_FOR_APPROVAL) can be promoted"
        )
    traffic.set_weights(ALL_CANARY)
    registry.conclude_promoted(event.experiment_id, now, pvalue=primary_pvalue(experiment))
    fdr = registry.apply_registry_fdr(now)
    mine = next((entry for entry in fdr if entry.experiment_id == event.experiment_id), None)
    return {
        "experiment_id": event.experiment_id,
        "status": ExperimentStatus.PROMOTED.value,
        "weights": ALL_CANARY.as_dict(),
        "pvalue": mine.pvalue if mine else None,
        "adjusted_pvalue": mine.adjusted_pvalue if mine else None,
        "fdr_discovery": mine.rejected if mine else None,
        "registry_experiments_in_fdr": len(fdr),
    }
