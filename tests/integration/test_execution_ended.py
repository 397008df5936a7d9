"""Fault table row 6: a canary or promote execution that ends FAILED, TIMED_OUT or ABORTED reaches the
rollback function (an EventBridge rule, tests/infrastructure/test_stack.py) and ends in a verified state,
with one alert per incident. Against moto; the rule and the registry read straight from ELBv2 and DynamoDB.

The events are shaped as Step Functions documents its "Execution Status Change" events (the detail carries
DescribeExecution's fields: executionArn, stateMachineArn, name, status, input, error, cause).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_kit import Env, alerts, registry_items, rule_groups, rule_weights, start_rollout

from canarywise.handlers import rollback

CANARY = "arn:aws:states:us-east-1:123456789012:stateMachine:canarywise-mangaassist-canary"
PROMOTE = "arn:aws:states:us-east-1:123456789012:stateMachine:canarywise-mangaassist-promote"


def _ended(
    execution: str, status: str, *, machine: str = CANARY, error: str | None = None, **input_: Any
) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "executionArn": execution,
        "stateMachineArn": machine,
        "name": execution.rsplit(":", 1)[-1],
        "status": status,
        "input": json.dumps(input_ or {"release": {"candidate": "v42", "release_id": "release-42"}}),
    }
    if error is not None:
        detail |= {"error": error, "cause": "the cause"}
    return {
        "version": "0",
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "account": "123456789012",
        "detail": detail,
    }


def _records() -> list[str]:
    return [i["sk"]["S"] for i in registry_items() if i["sk"]["S"].startswith("ROLLBACK")]


def test_an_execution_aborted_with_its_rollout_in_progress_is_rolled_back_once(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    """A person stops the canary execution in the console (or it times out after a year) with the canary at
    5%: the rule returns to the live slot only, one record, one alert. The same event delivered again (and
    the ABORTED that the rollback's own stop would cause) changes nothing and sends nothing."""
    experiment_id, execution = start_rollout(aws, spec_data, context)
    assert rule_weights(aws) == {"control": 95, "canary": 5}

    result = rollback.handler(_ended(execution, "ABORTED"), context)
    assert (result["outcome"], result["experiment_ids"]) == ("ROLLED_BACK", [experiment_id])
    assert result["reason"] == (
        "the canarywise-mangaassist-canary execution release-42 ended ABORTED, with its rollout in progress"
    )
    assert rule_groups(aws) == {"control"}
    assert len(_records()) == 2  # the experiment's ROLLBACK record and the service's history item
    assert len(alerts(aws)) == 1

    again = rollback.handler(_ended(execution, "TIMED_OUT"), context)
    assert again["outcome"] == "IGNORED"
    assert again["reason"].endswith(f"experiment {experiment_id} is ROLLED_BACK, already told")
    assert (len(_records()), alerts(aws), rule_groups(aws)) == (2, [], {"control"})


def test_the_state_machines_own_rollback_ending_sends_no_second_alert(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    """The canary state machine rolled back (its rollback task alerted once) and ended in "Rolled back"
    (FAILED, CanaryRolledBack): the event of that ending sends nothing more."""
    experiment_id, execution = start_rollout(aws, spec_data, context)
    rollback.handler({"source": "state_machine", "experiment_id": experiment_id, "reason": "harm"}, context)
    assert len(alerts(aws)) == 1
    result = rollback.handler(_ended(execution, "FAILED", error="CanaryRolledBack"), context)
    assert result["outcome"] == "IGNORED"
    assert (len(_records()), alerts(aws)) == (2, [])


@pytest.mark.parametrize(
    ("error", "machine", "input_"),
    [
        ("States.Runtime", CANARY, {"release": {"candidate": "v42", "release_id": "r"}}),  # failed at start
        ("CooldownActiveError", CANARY, {"release": {"candidate": "v42", "release_id": "r"}}),
        ("PromoteRefusedError", PROMOTE, {"experiment_id": "from-running"}),
    ],
    ids=["manifest without timing", "cooldown", "promote refused"],
)
def test_an_execution_that_moved_nothing_alerts_once_and_moves_nothing(
    aws: Env, spec_data: dict[str, Any], context: Any, error: str, machine: str, input_: dict[str, Any]
) -> None:
    """A canary execution that failed at its start registered nothing; a promote refused before it moved
    anything left the rollout where it was (here RUNNING at 5%). Either way: one alert naming the execution
    and its error, no rollback record, the rule as it was."""
    experiment_id, _ = start_rollout(aws, spec_data, context)
    if input_.get("experiment_id") == "from-running":
        input_ = {"experiment_id": experiment_id}
    before = rule_weights(aws)
    failed = "arn:aws:states:us-east-1:123456789012:execution:x:release-43"
    result = rollback.handler(_ended(failed, "FAILED", machine=machine, error=error, **input_), context)
    assert result["outcome"] == "ALERTED"
    assert f"ended FAILED ({error}: the cause)" in result["reason"]
    assert result["reason"].endswith(
        "nothing of it was rolled back, all traffic stays on 'control' as it was"
    )
    assert alerts(aws) == [{"reason": result["reason"]}]
    assert (rule_weights(aws), _records()) == (before, [])
