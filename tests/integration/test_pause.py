"""Pause and resume (the lifecycle's ``pause``/``resume``) against moto: a person, and the warning alarm's
Lambda action on the stage gate. Every assertion reads the registry's items or the rule directly."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_kit import TABLE, Env, alarm_action_event, rule_groups, rule_weights, start_rollout

from canarywise.data.models import CheckRecord
from canarywise.data.registry import Registry
from canarywise.handlers import rollback, stage_gate
from canarywise.runtime.pause import pause, resume

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
WARNING = "canarywise-mangaassist-warning"


def _gate(experiment_id: str, context: Any, stage: int = 0) -> dict[str, str]:
    return stage_gate.handler(
        {"action": "gate", "experiment_id": experiment_id, "stage_index": stage}, context
    )


def _advance(experiment_id: str, stage: int = 0) -> None:
    Registry(TABLE).record_check(
        experiment_id,
        CheckRecord(checked_at=datetime.now(UTC), stage_index=stage, decision="ADVANCE", reason="gate met"),
    )


def _stage_started(experiment_id: str, context: Any, index: int, percent: int) -> dict[str, Any]:
    event = {"action": "stage_started", "experiment_id": experiment_id, "stage_index": index,
             "weights": {"control": 100 - percent, "canary": percent}}  # fmt: skip
    return stage_gate.handler(event, context)


def _items(experiment_id: str, prefix: str) -> list[dict[str, Any]]:
    response = boto3.client("dynamodb").query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues={":pk": {"S": f"EXP#{experiment_id}"}, ":p": {"S": prefix}},
    )
    return response["Items"]


def _phase() -> str:
    item = boto3.client("dynamodb").get_item(
        TableName=TABLE, Key={"pk": {"S": "SERVICE#mangaassist"}, "sk": {"S": "STATE"}}
    )["Item"]
    return str(item["phase"]["S"])


def _warning_event(
    state: str = "ALARM", name: str = WARNING, account: str = "123456789012"
) -> dict[str, Any]:
    event = copy.deepcopy(alarm_action_event(state))
    event["alarmArn"] = f"arn:aws:cloudwatch:us-east-1:{account}:alarm:{name}"
    event["accountId"] = account
    event["alarmData"]["alarmName"] = name
    event["alarmData"]["state"]["reason"] = "canarywise-mangaassist-stale-decision is ALARM"
    return event


def test_a_paused_rollout_holds_with_who_and_why_then_advances_after_resume(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    _advance(experiment_id)
    registry = Registry(TABLE)
    result = pause("mangaassist", registry, by="alice", reason="CSAT complaints on the candidate", now=NOW)
    assert (result.outcome, _phase()) == ("PAUSED", "PAUSED")
    # The significance check's ADVANCE stands, but the gate holds, saying who paused and why.
    assert _gate(experiment_id, context) == {
        "decision": "HOLD",
        "reason": "paused by alice: CSAT complaints on the candidate",
    }
    # A stage start that the state machine had already asked for changes nothing while paused.
    answer = _stage_started(experiment_id, context, 1, 25)
    assert answer["paused"] == "paused by alice: CSAT complaints on the candidate"
    assert rule_weights(aws) == {"control": 95, "canary": 5}
    assert [s.stage_index for s in registry.stage_history(experiment_id)] == [0]
    ready = stage_gate.handler({"action": "ready", "experiment_id": experiment_id}, context)
    assert (ready["paused"], _phase()) == ("paused by alice: CSAT complaints on the candidate", "PAUSED")
    # A second pause (the alarm again, another person) is no new transition.
    assert pause("mangaassist", registry, by="bob", reason="x", now=NOW).outcome == "ALREADY"

    result = resume("mangaassist", registry, by="carol", reason="CSAT dip was a survey bug", now=NOW)
    assert (result.outcome, _phase()) == ("RESUMED", "ROLLING_OUT")
    assert _gate(experiment_id, context) == {"decision": "ADVANCE", "reason": "gate met"}
    _stage_started(experiment_id, context, 1, 25)
    assert rule_weights(aws) == {"control": 75, "canary": 25}
    # Who and why, both transitions, kept under the experiment; the pause note cleared from it.
    notes = [(i["event"]["S"], i["by"]["S"], i["reason"]["S"]) for i in _items(experiment_id, "NOTE#")]
    assert notes == [
        ("pause", "alice", "CSAT complaints on the candidate"),
        ("resume", "carol", "CSAT dip was a survey bug"),
    ]
    assert "paused" not in _items(experiment_id, "META")[0]
    assert resume("mangaassist", registry, by="carol", reason="x", now=NOW).outcome == "NOTHING_TO_DO"


def test_a_rollback_works_while_paused(aws: Env, spec_data: dict[str, Any], context: Any) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    pause("mangaassist", Registry(TABLE), by="alice", reason="looking", now=NOW)
    result = rollback.handler(
        {"source": "cli", "reason": "it is real", "experiment_id": experiment_id}, context
    )
    assert result["outcome"] == "ROLLED_BACK"
    assert rule_groups(aws) == {"control"}  # the forward names only the live slot
    assert _phase() == "STEADY"
    assert pause("mangaassist", Registry(TABLE), by="a", reason="b", now=NOW).outcome == "NOTHING_TO_DO"


def test_the_warning_alarm_pauses_and_only_it(aws: Env, spec_data: dict[str, Any], context: Any) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    # Not a pause: the alarm back to OK, the critical alarm (the rollback function's), another account's.
    for event in (
        _warning_event("OK"),
        _warning_event(name="canarywise-mangaassist-critical"),
        _warning_event(account="999999999999"),
    ):
        assert stage_gate.handler(event, context)["outcome"] == "IGNORED", event
    assert _phase() == "ROLLING_OUT"

    result = stage_gate.handler(_warning_event(), context)
    assert result["outcome"] == "PAUSED"
    _advance(experiment_id)
    assert _gate(experiment_id, context) == {
        "decision": "HOLD",
        "reason": f"paused by alarm {WARNING}: canarywise-mangaassist-stale-decision is ALARM",
    }
    assert stage_gate.handler(_warning_event(), context)["outcome"] == "ALREADY"
    assert rule_weights(aws) == {"control": 95, "canary": 5}
    (note,) = _items(experiment_id, "NOTE#")
    assert json.loads(_items(experiment_id, "META")[0]["paused"]["S"])["by"] == f"alarm {WARNING}"
    assert note["by"]["S"] == f"alarm {WARNING}"


def test_a_pause_does_not_stop_the_stages_maximum(aws: Env, spec_data: dict[str, Any], context: Any) -> None:
    """A pause holds the gate, but the stage's maximum keeps counting (docs/lifecycle.md): once the
    significance check says INCONCLUSIVE (the stage reached its maximum), the gate answers INCONCLUSIVE, so
    the spec's inconclusive policy applies (under `hold`, the state machine's once-a-day poll): a long pause
    cannot poll every interval until the execution history's quota (fault table, row 7)."""
    experiment_id, _ = start_rollout(aws, spec_data, context)
    registry = Registry(TABLE)
    pause("mangaassist", registry, by="alice", reason="investigating", now=NOW)
    reason = "stage 1 of 3 reached its maximum duration 48h without a decision"
    registry.record_check(
        experiment_id,
        CheckRecord(checked_at=datetime.now(UTC), stage_index=0, decision="INCONCLUSIVE", reason=reason),
    )
    assert _gate(experiment_id, context) == {
        "decision": "INCONCLUSIVE",
        "reason": f"paused by alice: investigating; {reason}",
    }
    # A check of another stage (or a CONTINUE) keeps the pause's HOLD.
    registry.record_check(
        experiment_id,
        CheckRecord(checked_at=datetime.now(UTC), stage_index=0, decision="CONTINUE", reason="collecting"),
    )
    assert _gate(experiment_id, context)["decision"] == "HOLD"
