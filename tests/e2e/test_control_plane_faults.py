"""Fault table row 1 on the local AWS with the SYNTHESIZED canary state machine executing: a stage gate that
keeps failing (a throttled registry read) holds the stage before its maximum, and past it the spec's
inconclusive policy ends the stage with its own reason, never as harm.

The gate is made to fail inside the stage gate function (the handler runs in this process); moto's Step
Functions retries it as the synthesized ``Retry`` says (its 2, 4, 8 s backoff is not slept here). Every
assertion reads ELBv2, the registry's items, the execution's history or the alert topic's subscriber.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from local_kit import RuleForward, Stack, local_stack, rollback_items
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

from canarywise.demo.scenarios import SCENARIOS
from canarywise.spec import HISTORY_EVENTS_PER_POLL
from canarywise.spec.ladder import UNAVAILABLE_POLL_INTERVALS

pytestmark = pytest.mark.slow

# Patched by name once the local runtime imported the handler under its function's environment (importing it
# here first would build its Powertools metrics without their namespace).
GATE = "canarywise.handlers.stage_gate.gate"
SPEC = SCENARIOS["healthy"].spec()  # the demo ladder 5% → 25% → 50%, inconclusive_policy: rollback
# The synthesized gate task: one attempt and 3 retries (tests/infrastructure/test_stack.py asserts them).
ATTEMPTS_PER_POLL = 4


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setattr(retrier_decl, "time", SimpleNamespace(sleep=lambda seconds: None))
    yield from local_stack(SPEC)


def _throttled(*args: Any, **kwargs: Any) -> Any:
    raise ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"}}, "GetItem"
    )


def _poll_failing(stack: Stack, execution: str) -> None:
    """Let one gate poll run with every attempt failing; wait until the next poll (or the end)."""
    for _ in range(ATTEMPTS_PER_POLL):  # the pacer holds every gate invocation, retries included
        stack.pacer.release()
        stack.pacer.wait_parked(lambda: stack.status(execution) != "RUNNING")


def _entered(stack: Stack, execution: str) -> list[str]:
    events = stack.sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def test_a_failing_gate_holds_before_the_stages_maximum_and_ends_by_the_policy_after_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = stack.start_release("r1")
    experiment_id = stack.state()["experiment_id"]

    # Stage 1, its maximum (12 h) far ahead: a failing gate holds, back to the stage's wait.
    monkeypatch.setattr(GATE, _throttled)
    _poll_failing(stack, execution)
    assert stack.status(execution) == "RUNNING"
    assert stack.forward() == RuleForward({"blue": 95, "green": 5}, sticky=True)
    entered = _entered(stack, execution)
    assert entered[-4:] == [
        "Stage 1 (5%): gate unavailable",
        "Stage 1 (5%): past its maximum?",
        "Stage 1 (5%): wait after the failure",
        "Stage 1 (5%): gate",
    ]
    # Fault table row 7: a failed poll writes less history than the 3 polls its longer wait stands for.
    events = stack.sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    gates = [
        i
        for i, e in enumerate(events)
        if e.get("stateEnteredEventDetails", {}).get("name") == "Stage 1 (5%): gate"
    ]
    failed_poll = gates[-1] - gates[-2]
    assert HISTORY_EVENTS_PER_POLL < failed_poll <= UNAVAILABLE_POLL_INTERVALS * HISTORY_EVENTS_PER_POLL
    assert rollback_items(stack.aws, stack.deployment, experiment_id) == []

    # The gate works again: stage 1 advances. Stage 2 starts with its maximum already behind it (as if the
    # control plane had been down for 12 h) and its gate fails.
    import canarywise.runtime.rollout as rollout

    monkeypatch.setattr(GATE, rollout.gate)
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    monkeypatch.setattr(rollout, "stage_deadline", lambda *args: past)
    stack.answer_gate(execution, experiment_id, 0, "ADVANCE")
    assert stack.forward() == RuleForward({"blue": 75, "green": 25}, sticky=True)
    monkeypatch.setattr(GATE, _throttled)
    _poll_failing(stack, execution)

    described = stack.wait_ended(execution)
    assert (described["status"], described["error"]) == ("FAILED", "CanaryRolledBack")
    assert "Stage 2 (25%): unavailable past its maximum" in _entered(stack, execution)
    assert stack.forward() == RuleForward({"blue": 100}, sticky=False)
    items = rollback_items(stack.aws, stack.deployment, experiment_id)
    assert sorted(item["sk"].split("#")[0] for item in items) == ["ROLLBACK", "ROLLBACK"]  # record, history
    reason = json.loads(next(item["record"] for item in items if item["sk"] == "ROLLBACK"))["reason"]
    assert reason.startswith(
        f"control plane unavailable past the stage maximum ({past}): the gate of stage 2 of 3 kept failing"
    )
    assert "(a control-plane fault, not harm)" in reason
    assert len(stack.alerts.subjects()) == 1
    assert stack.state()["phase"] == "STEADY"
