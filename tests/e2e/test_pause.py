"""Issue 16: a pause holds the ladder until a person resumes — on the local AWS with the SYNTHESIZED canary
state machine executing and the warning composite alarm's action as the template wires it.

One rollout: a pause landing between the gate's ADVANCE and the next stage's start holds that start
(traffic unchanged) until resumed; the warning composite goes into ALARM (the stage gate found no fresh
decision 3 intervals running) and its Lambda action pauses; the significance check's ADVANCE does not move
the ladder; a person resumes → the next stage. A rollback while paused puts everyone on the live slot.
Every assertion reads the rule (DescribeRules) or the registry's items directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from local_kit import RuleForward, Stack, experiment_item, local_stack

from canarywise.demo.scenarios import SCENARIOS
from canarywise.local.alarms import ALARM, OK, AlarmEvaluator
from canarywise.local.clock import STAGE_GATE_HANDLER
from canarywise.runtime.pause import pause, resume

pytestmark = pytest.mark.slow

SPEC = SCENARIOS["healthy"].spec()  # the demo ladder: 5% → 25% → 50%
PREFIX = f"canarywise-{SPEC.service}"


@pytest.fixture
def stack() -> Iterator[Stack]:
    yield from local_stack(SPEC)


def _warning_fires(stack: Stack) -> list[dict[str, Any]]:
    """The warning composite going into ALARM because ``stale-decision`` did: CloudWatch invokes each Lambda
    of its actions (as the template gives them) with the alarm event; their answers."""
    (warning,) = [c for c in stack.deployment.composites if c.name == f"{PREFIX}-warning"]
    states = {f"{PREFIX}-stale-decision": ALARM}
    assert warning.holds(states)
    event = AlarmEvaluator.lambda_event(
        {"AlarmName": warning.name, "AlarmArn": warning.arn, "AlarmRule": warning.rule},
        ALARM,
        OK,
        f"{PREFIX}-stale-decision is ALARM",
        datetime.now(UTC),
    )
    functions = [arn for arn in warning.actions if ":function:" in arn]
    assert functions == [stack.deployment.function("stage_gate").arn]
    lambdas = stack.aws.client("lambda")
    return [
        json.loads(lambdas.invoke(FunctionName=f, Payload=json.dumps(event))["Payload"].read())
        for f in functions
    ]


def test_a_pause_holds_the_ladder_until_a_person_resumes(stack: Stack) -> None:
    execution = stack.start_release("r1")
    experiment_id = stack.state()["experiment_id"]
    assert stack.forward() == RuleForward({"blue": 95, "green": 5}, sticky=True)

    # A pause that lands after the gate said ADVANCE, before stage 2 starts: the start finds it paused and
    # waits (traffic unchanged) until a person resumes, then stage 2 starts.
    starts: list[str] = []

    def pause_before_stage_2(handler: str, event: Any) -> None:
        if handler != STAGE_GATE_HANDLER or event.get("action") != "stage_started":
            return
        starts.append(stack.state()["phase"])
        if len(starts) == 1:
            pause(SPEC.service, stack.registry, by="bob", reason="a look first", now=datetime.now(UTC))
        elif len(starts) == 3:
            assert stack.forward() == RuleForward({"blue": 95, "green": 5}, sticky=True)
            resume(SPEC.service, stack.registry, by="bob", reason="fine", now=datetime.now(UTC))

    # Appended: the parked gate's invocation is iterating the hooks (an insert before it would run it twice).
    stack.aws.runtime.before_invoke.append(pause_before_stage_2)
    stack.answer_gate(execution, experiment_id, 0, "ADVANCE")
    stack.aws.runtime.before_invoke.remove(pause_before_stage_2)
    assert starts == ["ROLLING_OUT", "PAUSED", "PAUSED"]  # the third resumed before it ran
    assert stack.forward() == RuleForward({"blue": 75, "green": 25}, sticky=True)

    # The warning alarm pauses; the significance check's ADVANCE then holds at stage 2.
    (answer,) = _warning_fires(stack)
    assert answer["outcome"] == "PAUSED", answer
    paused = stack.state()
    assert (paused["phase"], paused["updated_by"]) == ("PAUSED", f"alarm {PREFIX}-warning")
    stack.answer_gate(execution, experiment_id, 1, "ADVANCE")
    assert stack.status(execution) == "RUNNING"
    assert stack.forward() == RuleForward({"blue": 75, "green": 25}, sticky=True)
    assert stack.state()["version"] == paused["version"]

    resume(SPEC.service, stack.registry, by="alice", reason="the check is back", now=datetime.now(UTC))
    stack.answer_gate(execution, experiment_id, 1, "ADVANCE")
    assert stack.forward() == RuleForward({"blue": 50, "green": 50}, sticky=True)

    # Paused again, then rolled back: everyone on the live slot, the execution stopped.
    pause(SPEC.service, stack.registry, by="carol", reason="complaints", now=datetime.now(UTC))
    assert stack.roll_back("e2e: it is real")["outcome"] == "ROLLED_BACK"
    assert stack.forward() == RuleForward({"blue": 100}, sticky=False)
    assert experiment_item(stack.aws, stack.deployment, experiment_id)["status"] == "ROLLED_BACK"
    stack.pacer.close()
    assert stack.wait_ended(execution)["status"] == "ABORTED"
