"""Issue 10's sequences that involve the state machines, on the local AWS with the SYNTHESIZED ones executing.

Each test provisions the stack from the synthesized template on a fresh moto server, runs the canary and
promote state machines as they are deployed, and answers the stage gate in place of the significance check
(a check record per stage: these tests are about traffic and the lifecycle, not the statistics). Every
assertion reads ELBv2 (``DescribeRules``), the registry's items or the alert topic's subscriber directly.

- (1) an approval of a held, an unknown or a rolled-back experiment fails with a one-line reason, the rule
  untouched;
- (3) a stage's traffic change landing during a rollback: the rule ends naming only the live slot, with one
  rollback record and one alert; a stale stage start replayed afterwards changes nothing;
- (8) after a promotion the next release's first stage sends 95% to the promoted (now live) slot.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import moto.elbv2.models
import pytest
from local_kit import RuleForward, Stack, experiment_item, local_stack, rollback_items

from canarywise.demo.scenarios import SCENARIOS
from canarywise.local.lambda_runtime import LambdaContext

pytestmark = pytest.mark.slow

SPEC = SCENARIOS["healthy"].spec()  # the demo ladder: 5% → 25% → 50%
STAGES = len(SPEC.stages)


@pytest.fixture
def stack() -> Iterator[Stack]:
    yield from local_stack(SPEC)


def _refusal(described: dict[str, Any]) -> str:
    """The one-line reason of a failed promote execution (the function's error message)."""
    assert described["status"] == "FAILED", described
    assert described["error"] == "PromoteRefusedError", described
    message = str(json.loads(described["cause"])["errorMessage"])
    assert "\n" not in message
    return message


def test_approval_of_a_held_unknown_or_rolled_back_experiment_is_refused_with_traffic_untouched(
    stack: Stack,
) -> None:
    execution = stack.start_release("r1")
    experiment_id = stack.state()["experiment_id"]
    held_at = stack.state()
    assert stack.forward() == RuleForward({"blue": 95, "green": 5}, sticky=True)

    # Held: RUNNING at its first stage.
    reason = _refusal(stack.promote({"experiment_id": experiment_id, "approved_by": "e2e"}))
    assert "RUNNING" in reason
    assert "traffic untouched" in reason
    # Unknown.
    reason = _refusal(stack.promote({"experiment_id": "mangaassist-typo"}))
    assert "'mangaassist-typo'" in reason
    assert stack.forward() == RuleForward({"blue": 95, "green": 5}, sticky=True)
    assert stack.state()["version"] == held_at["version"]
    assert experiment_item(stack.aws, stack.deployment, experiment_id)["status"] == "RUNNING"

    stack.roll_back("e2e: complaints")
    rolled_back = stack.state()
    assert stack.forward() == RuleForward({"blue": 100}, sticky=False)

    # Rolled back: a stale approval must not resurrect the candidate.
    reason = _refusal(stack.promote({"experiment_id": experiment_id, "approved_by": "e2e"}))
    assert "ROLLED_BACK" in reason
    assert stack.forward() == RuleForward({"blue": 100}, sticky=False)
    assert stack.state()["version"] == rolled_back["version"]
    assert stack.state()["live"] == "blue"
    assert experiment_item(stack.aws, stack.deployment, experiment_id)["status"] == "ROLLED_BACK"
    stack.pacer.close()  # let the held gate go: the execution, stopped by the rollback, moves nothing
    stack.wait_ended(execution)
    assert stack.forward() == RuleForward({"blue": 100}, sticky=False)
    assert len(rollback_items(stack.aws, stack.deployment, experiment_id)) == 2  # record + history
    assert stack.alerts.subjects() == ["canarywise: mangaassist r1 rolled back"]


def _forward_in(actions: list[dict[str, Any]], target_groups: dict[str, str]) -> dict[str, int]:
    slot_of = {arn: slot for slot, arn in target_groups.items()}
    (action,) = actions
    return {slot_of[g["TargetGroupArn"]]: int(g["Weight"]) for g in action["ForwardConfig"]["TargetGroups"]}


def test_stage_change_landing_during_a_rollback_leaves_only_the_live_slot(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stage 2 has taken its transition and its ModifyRule is on the wire when a person rolls back: the
    rollback completes first, then the stage's stale 75/25 lands. The stage's read-back sees the newer
    version and puts the live-only forward back."""
    deployment = stack.deployment
    rollback_env = deployment.function("rollback").environment
    writes: list[dict[str, int]] = []
    original = moto.elbv2.models.ELBv2Backend.modify_rule

    def rollback_in_flight() -> None:
        # The rollback handler runs here, inside the stage gate's ModifyRule (local mode runs one function
        # at a time, so this is how two Lambdas overlap): its environment is the stage gate's plus the
        # rollback's own variables, which agree on every shared name.
        shared = set(rollback_env) & set(os.environ)
        assert all(
            os.environ[name] == rollback_env[name] for name in shared if name != "AWS_LAMBDA_FUNCTION_NAME"
        )
        from canarywise.handlers.rollback import handler

        with monkeypatch.context() as env:
            for name, value in rollback_env.items():
                env.setenv(name, value)
            result = handler(
                {"source": "cli", "reason": "e2e: pulled during stage 2", "actor": "e2e"},
                LambdaContext(function_name=deployment.function("rollback").name, invoked_function_arn=""),
            )
        assert result["outcome"] == "ROLLED_BACK", result

    def modify_rule(self: Any, rule_arn: str, conditions: Any, actions: list[dict[str, Any]]) -> Any:
        forward = _forward_in(actions, deployment.target_groups)
        if forward.get("green") == 25 and not writes.count(forward):
            rollback_in_flight()  # before the stage's write reaches the rule
        writes.append(forward)
        return original(self, rule_arn, conditions, actions)

    monkeypatch.setattr(moto.elbv2.models.ELBv2Backend, "modify_rule", modify_rule)
    execution = stack.start_release("r1")
    experiment_id = stack.state()["experiment_id"]
    stack.answer_gate(execution, experiment_id, 0, "ADVANCE")  # stage 2 starts, and the race with it
    stack.wait_ended(execution)

    # The order on the wire: stage 1, the rollback's live-only, the stale stage 2, live-only put back.
    assert writes == [{"blue": 95, "green": 5}, {"blue": 100}, {"blue": 75, "green": 25}, {"blue": 100}]
    assert stack.forward() == RuleForward({"blue": 100}, sticky=False)
    state = stack.state()
    assert (state["phase"], state["live"], state["forward"]) == ("STEADY", "blue", {"blue": 100})
    assert experiment_item(stack.aws, deployment, experiment_id)["status"] == "ROLLED_BACK"
    assert len(rollback_items(stack.aws, deployment, experiment_id)) == 2  # one record + its history item
    assert stack.alerts.subjects() == ["canarywise: mangaassist r1 rolled back"]

    # A stale stage start replayed afterwards (a retried invocation) is refused and moves nothing.
    errored, payload = stack.invoke_stage_gate(
        {
            "action": "stage_started",
            "experiment_id": experiment_id,
            "stage_index": 2,
            "weights": {"control": 50, "canary": 50},
        }
    )
    assert errored
    assert payload["errorType"] == "TransitionRefusedError"
    assert stack.forward() == RuleForward({"blue": 100}, sticky=False)
    assert stack.state()["version"] == state["version"]
    assert len(rollback_items(stack.aws, deployment, experiment_id)) == 2
    assert stack.alerts.subjects() == ["canarywise: mangaassist r1 rolled back"]


def test_after_a_promotion_the_next_release_starts_from_the_promoted_slot(stack: Stack) -> None:
    first = stack.start_release("r1")
    r1 = stack.state()["experiment_id"]
    stack.run_to_approval(first, r1, STAGES)
    assert stack.status(first) == "SUCCEEDED"
    assert stack.promote({"experiment_id": r1, "approved_by": "e2e"})["status"] == "SUCCEEDED"

    assert stack.forward() == RuleForward({"green": 100}, sticky=False)
    state = stack.state()
    assert (state["phase"], state["live"], state["idle"]) == ("STEADY", "green", "blue")
    assert experiment_item(stack.aws, stack.deployment, r1)["status"] == "PROMOTED"
    # A second approval of the same experiment changes nothing.
    assert stack.promote({"experiment_id": r1})["status"] in {"SUCCEEDED", "FAILED"}
    assert stack.forward() == RuleForward({"green": 100}, sticky=False)

    # A release manifest that deployed the candidate into the live slot is refused before any traffic moves.
    wrong = stack.start_release("r2-into-live", slot="green")
    described = stack.wait_ended(wrong)
    assert (described["status"], described["error"]) == ("FAILED", "WrongSlotError")
    assert stack.forward() == RuleForward({"green": 100}, sticky=False)

    second = stack.start_release("r2", slot="blue")
    assert stack.status(second) == "RUNNING"
    assert stack.forward() == RuleForward({"green": 95, "blue": 5}, sticky=True)
    r2 = experiment_item(stack.aws, stack.deployment, stack.state()["experiment_id"])
    assert (r2["candidate"], r2["baseline_slot"], r2["candidate_slot"]) == ("r2", "green", "blue")
