"""The rollback Lambda against moto: every event source, the order of the steps, duplicates, races, faults.

What a rollback must leave, read straight from ELBv2 and the registry: a forward action that names only the
live slot (no user, sticky or not, reaches the candidate), the experiment ROLLED_BACK, one record, one
alert per incident.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_kit import (
    TABLE,
    Env,
    alarm_action_event,
    alerts,
    begin,
    execution_status,
    pipeline_event,
    registry_items,
    rule_groups,
    rule_stickiness,
    rule_weights,
    set_rule_weights,
    sns_alarm_event,
    start_execution,
    start_rollout,
)

from canarywise.data.executions import AlertTopic, CanaryExecutions
from canarywise.data.models import ExperimentStatus, RollbackRecord
from canarywise.data.registry import Registry
from canarywise.data.traffic import TrafficSplit
from canarywise.handlers import promote, rollback, stage_gate
from canarywise.lifecycle.table import Event
from canarywise.runtime.events import EventError, parse_rollback_event
from canarywise.runtime.lifecycle import Lifecycle
from canarywise.runtime.rollback import RollbackFailedError, RollbackRefusedError, roll_back


def _rollback_records() -> list[dict[str, Any]]:
    return [i for i in registry_items() if i["sk"]["S"] == "ROLLBACK"]


def _history() -> list[dict[str, Any]]:
    return [i for i in registry_items() if i["sk"]["S"].startswith("ROLLBACK#")]


def _slots(aws: Env) -> dict[str, str]:
    return {"control": aws.traffic.control_target_group_arn, "canary": aws.traffic.canary_target_group_arn}


def _lifecycle(aws: Env, **traffic: Any) -> Lifecycle:
    registry = Registry(TABLE)
    return Lifecycle(
        "mangaassist", registry, TrafficSplit(aws.traffic.listener_rule_arn, _slots(aws), **traffic)
    )


def test_alarm_action_takes_every_user_off_the_candidate_then_records_and_notifies(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id, execution = start_rollout(aws, spec_data, context)
    assert rule_weights(aws) == {"control": 95, "canary": 5}
    assert rule_stickiness(aws) == {"Enabled": True, "DurationSeconds": 7 * 86400}

    result = rollback.handler(alarm_action_event(), context)

    assert result["outcome"] == "ROLLED_BACK"
    assert result["experiment_ids"] == [experiment_id]
    # Sequence 7 of the lifecycle issue: the candidate's group is absent from the forward action, so a user
    # holding a 7-day AWSALBTG cookie for it is routed to the live group like everyone else.
    assert rule_groups(aws) == {"control"}
    assert rule_weights(aws) == {"control": 100, "canary": 0}
    assert rule_stickiness(aws) == {"Enabled": False}
    assert execution_status(execution) == "ABORTED"
    experiment = Registry(TABLE).get_experiment(experiment_id)
    assert experiment.status is ExperimentStatus.ROLLED_BACK
    assert Registry(TABLE).list_running("mangaassist") == ()
    [message] = alerts(aws)
    assert message["outcome"] == "ROLLED_BACK"
    assert message["candidate"] == "v42"
    assert message["reason"] == "alarm canarywise-mangaassist-critical is ALARM: StatisticalHarm >= 1"
    assert message["forward"] == {"control": 100}
    assert message["live"] == "control"
    assert message["candidate_rollbacks_7d"] == 1


def test_the_same_alarm_delivered_three_times_is_one_rollback(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    start_rollout(aws, spec_data, context)
    outcomes = [rollback.handler(alarm_action_event(), context)["outcome"] for _ in range(3)]
    assert outcomes == ["ROLLED_BACK", "DUPLICATE", "DUPLICATE"]
    assert len(_rollback_records()) == 1
    assert len(_history()) == 1
    assert len(alerts(aws)) == 1
    assert rule_groups(aws) == {"control"}


def test_the_lambda_action_and_the_sns_copy_of_one_alarm_are_one_rollback(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    start_rollout(aws, spec_data, context)
    first = rollback.handler(sns_alarm_event(), context)
    second = rollback.handler(alarm_action_event(), context)
    # The critical alarm flapping ALARM -> OK -> ALARM after the rollback: a new state change, same incident.
    third = rollback.handler(alarm_action_event(timestamp="2026-11-02T09:45:00.000+0000"), context)
    assert (first["outcome"], second["outcome"], third["outcome"]) == (
        "ROLLED_BACK",
        "DUPLICATE",
        "DUPLICATE",
    )
    assert len(_history()) == 1
    assert len(alerts(aws)) == 1


def _running(aws: Env, spec_data: dict[str, Any], name: str, candidate: str) -> tuple[str, str]:
    """A fresh experiment at its first stage (registered directly: the cooldown would refuse the gate)."""
    execution = start_execution(aws, name)
    registry = Registry(TABLE)
    experiment = begin(registry, spec_data, candidate=candidate, execution_arn=execution)
    lifecycle = _lifecycle(aws)
    state = lifecycle.take(
        Event.STAGE_STARTED,
        experiment_id=experiment.experiment_id,
        percent=5,
        now=datetime.now(UTC),
        by="test",
    )
    lifecycle.settle(state)
    return experiment.experiment_id, execution


@pytest.mark.usefixtures("serialized_dynamodb_writes")
def test_two_concurrent_rollbacks_write_exactly_one_record(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    registry = Registry(TABLE)
    for round_ in range(3):
        experiment_id, execution = _running(aws, spec_data, f"race-{round_}", f"v{round_}")
        assert rule_weights(aws) == {"control": 95, "canary": 5}
        barrier = threading.Barrier(2)
        results: list[dict[str, Any]] = []
        errors: list[BaseException] = []

        def trigger(
            event: dict[str, Any],
            barrier: threading.Barrier = barrier,
            results: list[dict[str, Any]] = results,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait()
            try:
                results.append(rollback.handler(event, context))
            except BaseException as exc:  # re-checked below, in the test's thread
                errors.append(exc)

        events = [
            alarm_action_event(timestamp=f"2026-11-02T09:3{round_}:00.000+0000"),
            {"source": "cli", "reason": "on-call saw complaints"},
        ]
        threads = [threading.Thread(target=trigger, args=(event,)) for event in events]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        assert sorted(r["outcome"] for r in results) == ["DUPLICATE", "ROLLED_BACK"]
        assert len(_rollback_records()) == round_ + 1
        assert len(_history()) == round_ + 1  # one history item per rollback: the loser wrote nothing
        state = registry.service_state("mangaassist")
        assert state is not None
        assert rule_groups(aws) == {state.live}
        assert registry.get_experiment(experiment_id).status is ExperimentStatus.ROLLED_BACK
        assert execution_status(execution) == "ABORTED"
    assert len(alerts(aws)) == 3


def _overtaken_at(
    event: Event, overtaker_event: dict[str, Any], context: Any, monkeypatch: pytest.MonkeyPatch
) -> list[Any]:
    """Make the next rollback call run `overtaker_event`'s rollback to the end right before it takes
    `event` (it read the state and the experiment first, then lost the race)."""
    original = Lifecycle.take
    overtaker: list[Any] = []

    def take(self: Lifecycle, taken: Event, **kwargs: Any) -> Any:
        if taken is event and not overtaker:
            overtaker.append(None)
            overtaker[0] = rollback.handler(overtaker_event, context)
        return original(self, taken, **kwargs)

    monkeypatch.setattr(Lifecycle, "take", take)
    return overtaker


def test_a_cli_rollback_overtaken_by_the_alarm_is_a_duplicate(
    aws: Env, spec_data: dict[str, Any], context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    overtaker = _overtaken_at(Event.ROLL_BACK, alarm_action_event(), context, monkeypatch)

    late = rollback.handler({"source": "cli", "reason": "on-call saw complaints"}, context)

    assert (overtaker[0]["outcome"], late["outcome"]) == ("ROLLED_BACK", "DUPLICATE")
    assert overtaker[0]["experiment_ids"] == [experiment_id]
    assert len(_rollback_records()) == 1
    assert len(_history()) == 1
    assert len(alerts(aws)) == 1
    assert rule_groups(aws) == {"control"}


def test_a_rollback_whose_taker_died_is_finished_by_the_next_trigger(
    aws: Env, spec_data: dict[str, Any], context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first call took the rollback (ROLLING_BACK), then crashed before touching the rule: the alarm's
    next delivery finishes it, and it is still one record and one alert."""
    experiment_id, _ = start_rollout(aws, spec_data, context)
    lifecycle = _lifecycle(aws)
    lifecycle.take(Event.ROLL_BACK, experiment_id=experiment_id, now=datetime.now(UTC), by="a call that died")
    assert rule_weights(aws) == {"control": 95, "canary": 5}
    result = rollback.handler(alarm_action_event(), context)
    assert result["outcome"] == "ROLLED_BACK"
    assert rule_groups(aws) == {"control"}
    assert Registry(TABLE).get_experiment(experiment_id).status is ExperimentStatus.ROLLED_BACK
    assert (len(_rollback_records()), len(alerts(aws))) == (1, 1)


def test_a_cli_rollback_after_a_finished_one_moves_nothing_unless_forced(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    """Sequence 6 of the lifecycle issue, and its escape hatch: with nothing running a rollback refuses and
    says what the rule holds; `--force` (a person, on purpose) returns all traffic to the live slot."""
    start_rollout(aws, spec_data, context)
    assert rollback.handler(alarm_action_event(), context)["outcome"] == "ROLLED_BACK"
    set_rule_weights(aws, 50, 50)  # someone sent traffic to the candidate by hand
    late = rollback.handler({"source": "cli", "reason": "manual"}, context)
    assert late["outcome"] == "DUPLICATE"
    assert late["reason"] == (
        "nothing to roll back: no rollout of mangaassist is in progress; all traffic is on 'control'; "
        "but the rule forwards {'control': 50, 'canary': 50}, the registry says {'control': 100}: "
        "`canarywise rollback --force` restores it (manual)"
    )
    assert rule_weights(aws) == {"control": 50, "canary": 50}  # refused: nothing moved
    forced = rollback.handler({"source": "cli", "reason": "manual", "force": True, "actor": "ana"}, context)
    assert forced["outcome"] == "ROLLED_BACK"
    assert rule_groups(aws) == {"control"}
    assert len(_history()) == 2
    assert Registry(TABLE).rollback_history("mangaassist")[-1].actor == "cli (ana)"
    assert len(alerts(aws)) == 2


def test_the_day_after_a_promotion_a_rollback_refuses(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    """Sequence 6: nothing running after a promotion; 100/0 would send every user back to the old model."""
    experiment_id, _ = start_rollout(aws, spec_data, context)
    stage_gate.handler({"action": "ready", "experiment_id": experiment_id}, context)
    promote.handler({"experiment_id": experiment_id}, context)
    assert rule_groups(aws) == {"canary"}
    result = rollback.handler({"source": "cli", "reason": "a person, a day later"}, context)
    assert result["outcome"] == "NOTHING_TO_ROLL_BACK"
    assert result["reason"].startswith(
        "nothing to roll back: no rollout of mangaassist is in progress; all traffic is on 'canary'"
    )
    assert rule_groups(aws) == {"canary"}
    assert alerts(aws) == []  # nobody paged
    assert _history() == []


def test_a_rollback_naming_an_experiment_checks_the_id_first(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    """Sequence 5: an unknown or promoted id moves nothing and stops nothing; the live rollout goes on."""
    old_id, _ = start_rollout(aws, spec_data, context)
    stage_gate.handler({"action": "ready", "experiment_id": old_id}, context)
    promote.handler({"experiment_id": old_id}, context)
    live_id, execution = start_rollout(aws, spec_data, context, candidate="v43", execution_name="release-43")
    before = rule_weights(aws)
    assert before == {"control": 5, "canary": 95}  # release 2 went into the other slot
    with pytest.raises(
        RollbackRefusedError, match=r"^rollback refused: experiment \S+ was promoted \(v42 is live\)"
    ):
        rollback.handler({"source": "cli", "reason": "old id", "experiment_id": old_id}, context)
    with pytest.raises(RollbackRefusedError, match=r"^rollback refused: no experiment 'nope' in table"):
        rollback.handler({"source": "cli", "reason": "typo", "experiment_id": "nope"}, context)
    assert rule_weights(aws) == before
    assert execution_status(execution) == "RUNNING"
    assert Registry(TABLE).get_experiment(live_id).status is ExperimentStatus.RUNNING
    assert alerts(aws) == []


def test_the_state_machine_rollback_spares_its_own_execution_and_stops_no_other(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id, execution = start_rollout(aws, spec_data, context)
    other = start_execution(aws, "stray-run")
    result = rollback.handler(
        {"source": "state_machine", "experiment_id": experiment_id, "reason": "escalation rate: harm proven"},
        context,
    )
    assert result["outcome"] == "ROLLED_BACK"
    # The caller fails by itself right after (a clear "Failed"); an execution of another experiment is not
    # this rollback's business.
    assert execution_status(execution) == "RUNNING"
    assert execution_status(other) == "RUNNING"
    assert Registry(TABLE).get_rollback(experiment_id).reason == "escalation rate: harm proven"  # type: ignore[union-attr]


def test_cli_rollback_with_nothing_running_refuses(aws: Env, context: Any) -> None:
    result = rollback.handler({"source": "cli", "reason": "manual"}, context)
    assert result["outcome"] == "NOTHING_TO_ROLL_BACK"
    assert result["experiment_ids"] == []
    assert rule_weights(aws) == {"control": 100, "canary": 0}
    assert Registry(TABLE).rollback_history("mangaassist") == ()
    assert alerts(aws) == []


def test_a_rejected_approval_rolls_back_and_marks_rejected(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    stage_gate.handler({"action": "ready", "experiment_id": experiment_id}, context)
    result = rollback.handler(pipeline_event("FAILED"), context)
    assert result["outcome"] == "ROLLED_BACK"
    assert Registry(TABLE).get_experiment(experiment_id).status is ExperimentStatus.REJECTED
    assert rule_groups(aws) == {"control"}


@pytest.mark.parametrize(
    "event",
    [alarm_action_event(state="OK"), sns_alarm_event(state="OK"), pipeline_event("SUCCEEDED")],
    ids=["alarm-ok", "sns-ok", "pipeline-succeeded"],
)
def test_events_that_ask_for_no_rollback_change_nothing(
    aws: Env, spec_data: dict[str, Any], context: Any, event: dict[str, Any]
) -> None:
    _, execution = start_rollout(aws, spec_data, context)
    before = registry_items()
    assert rollback.handler(event, context)["outcome"] == "IGNORED"
    assert rule_weights(aws) == {"control": 95, "canary": 5}
    assert execution_status(execution) == "RUNNING"
    assert registry_items() == before
    assert alerts(aws) == []


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            {},
            "malformed rollback event: expected source 'aws.cloudwatch', 'state_machine', 'cli' or "
            "'aws.codepipeline', or SNS Records; found source None and keys []",
        ),
        ([1, 2], "malformed rollback event: expected an object, found list"),
        ({"source": "cli"}, "malformed CLI event: reason: Field required"),
        (
            {"source": "cli", "reason": ""},
            "malformed CLI event: reason: String should have at least 1 character",
        ),
        (
            {"source": "state_machine", "reason": "x"},
            "malformed state machine event: experiment_id: Field required",
        ),
        (
            {"source": "aws.cloudwatch", "alarmArn": "arn"},
            "malformed CloudWatch alarm event: alarmData: Field required",
        ),
        (
            {"source": "aws.s3"},
            "malformed rollback event: expected source 'aws.cloudwatch', 'state_machine', 'cli' "
            "or 'aws.codepipeline', or SNS Records; found source 'aws.s3' and keys ['source']",
        ),
        ({"Records": []}, "malformed SNS event: Records is empty"),
    ],
    ids=[
        "empty",
        "list",
        "cli-no-reason",
        "cli-empty-reason",
        "sm-no-id",
        "alarm-no-data",
        "unknown",
        "sns-empty",
    ],
)
def test_malformed_events_fail_clearly_and_write_nothing(
    aws: Env, spec_data: dict[str, Any], context: Any, event: Any, message: str
) -> None:
    _, execution = start_rollout(aws, spec_data, context)
    before = registry_items()
    with pytest.raises(EventError) as raised:
        rollback.handler(event, context)
    assert str(raised.value) == message
    assert rule_weights(aws) == {"control": 95, "canary": 5}
    assert execution_status(execution) == "RUNNING"
    assert registry_items() == before
    assert alerts(aws) == []


def test_an_sns_message_that_is_not_json_is_refused(aws: Env, context: Any) -> None:
    event = sns_alarm_event()
    event["Records"][0]["Sns"]["Message"] = "ALARM!!"
    with pytest.raises(
        EventError, match=r"^malformed SNS event: Records\[0\]\.Sns\.Message is not a JSON object"
    ):
        rollback.handler(event, context)
    assert rule_weights(aws) == {"control": 100, "canary": 0}  # untouched from the fixture's 100/0
    assert registry_items() == []


class _FailingElb:
    """An elbv2 client whose modify_rule keeps failing (reads pass through to moto)."""

    def __init__(self) -> None:
        self._real = boto3.client("elbv2")
        self.modify_calls = 0

    def describe_rules(self, **kwargs: Any) -> Any:
        return self._real.describe_rules(**kwargs)

    def modify_rule(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        self.modify_calls += 1
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "ELB is down"}}, "ModifyRule")


def test_elbv2_failing_is_retried_then_fails_loudly_and_says_so_in_the_registry(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id, execution = start_rollout(aws, spec_data, context)
    elb = _FailingElb()
    waits: list[float] = []
    with pytest.raises(
        RollbackFailedError,
        match=r"^rollback of mangaassist FAILED: the rule does not send everything to the live",
    ):
        roll_back(
            parse_rollback_event(alarm_action_event()),
            service="mangaassist",
            registry=Registry(TABLE),
            lifecycle=_lifecycle(aws, boto3_client=elb, sleep=waits.append),
            executions=CanaryExecutions(aws.state_machine_arn),
            alerts=AlertTopic(aws.topic_arn),
            now=datetime.now(UTC),
        )
    # 4 tries with exponential backoff between them (0.5 s, 1 s, 2 s).
    assert elb.modify_calls == 4
    assert waits == [0.5, 1.0, 2.0]
    assert rule_weights(aws) == {"control": 95, "canary": 5}
    # The rollout is stopped anyway (before the rule), and the registry says the rollback failed; the
    # experiment stays ROLLING_BACK so a retry (Lambda's async retry, the next alarm, `canarywise rollback`)
    # completes it — and nothing else (a stage start, an approval) can move it meanwhile.
    assert execution_status(execution) == "ABORTED"
    registry = Registry(TABLE)
    [failure] = registry.rollback_failures("mangaassist")
    assert failure["experiment_ids"] == [experiment_id]
    assert "ServiceUnavailable: " in failure["error"]
    experiment = registry.get_experiment(experiment_id)
    assert experiment.status is ExperimentStatus.ROLLING_BACK
    assert experiment.rollback_failed_at is not None
    assert _rollback_records() == []
    [message] = alerts(aws)
    assert message["action"] == "set the listener rule to forward only to the live target group by hand"

    # The retry, once ELB answers again, completes the rollback.
    result = rollback.handler(alarm_action_event(), context)
    assert result["outcome"] == "ROLLED_BACK"
    assert rule_groups(aws) == {"control"}
    assert len(alerts(aws)) == 1


def test_elbv2_failing_through_the_handler_is_a_loud_failure(
    aws: Env, spec_data: dict[str, Any], context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.elbv2.exceptions import RuleNotFoundError
    from moto.elbv2.models import ELBv2Backend

    experiment_id, _ = start_rollout(aws, spec_data, context)
    calls: list[str] = []

    def refuse(self: Any, rule_arn: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(rule_arn)
        raise RuleNotFoundError()

    monkeypatch.setattr(ELBv2Backend, "modify_rule", refuse)
    monkeypatch.setattr("canarywise.data.traffic.time.sleep", lambda seconds: None)
    with pytest.raises(RollbackFailedError, match="RuleNotFound"):
        rollback.handler(alarm_action_event(), context)
    assert calls == [aws.traffic.listener_rule_arn] * 4
    assert Registry(TABLE).get_experiment(experiment_id).status is ExperimentStatus.ROLLING_BACK
    assert len(Registry(TABLE).rollback_failures("mangaassist")) == 1


def test_the_third_rollback_in_7_days_rejects_the_candidate(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    registry = Registry(TABLE)
    now = datetime.now(UTC)
    for days in (5, 2):  # two earlier rollbacks of v42 (history items, as earlier rollouts left them)
        registry.record_forced_rollback(
            RollbackRecord(
                service="mangaassist",
                rolled_back_at=now - timedelta(days=days),
                source="sns",
                reason="alarm",
                candidate="v42",
                trigger_id=f"old-{days}",
            )
        )
    result = rollback.handler(alarm_action_event(), context)
    assert (result["candidate_rollbacks_7d"], result["candidate_rejected"]) == (3, True)
    [message] = alerts(aws)
    assert message["candidate_rejected"] is True
    # The spec's cooldown is 24 h (config/mangaassist.yaml: `cooldown: 24h`): no next rollout before it ends.
    assert datetime.fromisoformat(message["next_rollout_not_before"]) - datetime.fromisoformat(
        message["rolled_back_at"]
    ) == timedelta(hours=24)
    assert registry.get_experiment(experiment_id).status is ExperimentStatus.ROLLED_BACK


def test_an_alarm_that_is_not_this_stacks_critical_alarm_moves_nothing(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    """Fault table row 14, through the handler: another stack's alarm (or this stack's warning composite,
    which pages only) is not a rollback trigger."""
    start_rollout(aws, spec_data, context)
    for name in ("canarywise-other-critical", "canarywise-mangaassist-warning"):
        event = alarm_action_event()
        event["alarmData"]["alarmName"] = name
        event["alarmArn"] = event["alarmArn"].replace("canarywise-mangaassist-critical", name)
        assert rollback.handler(event, context)["outcome"] == "IGNORED"
    assert rule_weights(aws) == {"control": 95, "canary": 5}
    assert _history() == []


def test_a_rollback_rejects_the_approval_waiting_in_the_pipeline(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    """A stale click cannot resurrect the candidate: the rollback rejects the pending approval (CodePipeline's
    own API shapes, checked by botocore's Stubber; moto does not implement approvals)."""
    from botocore.stub import Stubber

    from canarywise.data.executions import APPROVAL_ACTION, APPROVAL_STAGE, PendingApproval

    experiment_id, _ = start_rollout(aws, spec_data, context)
    stage_gate.handler({"action": "ready", "experiment_id": experiment_id}, context)
    codepipeline = boto3.client("codepipeline")
    stubber = Stubber(codepipeline)
    stubber.add_response(
        "get_pipeline_state",
        {
            "pipelineName": "canarywise-mangaassist",
            "stageStates": [
                {
                    "stageName": "Canary",
                    "actionStates": [{"actionName": "Run", "latestExecution": {"status": "Succeeded"}}],
                },
                {
                    "stageName": APPROVAL_STAGE,
                    "actionStates": [
                        {
                            "actionName": APPROVAL_ACTION,
                            "latestExecution": {"status": "InProgress", "token": "t-1"},
                        }
                    ],
                },
            ],
        },
        {"name": "canarywise-mangaassist"},
    )
    stubber.add_response(
        "put_approval_result",
        {"approvedAt": datetime(2026, 11, 2, tzinfo=UTC)},
        {
            "pipelineName": "canarywise-mangaassist",
            "stageName": APPROVAL_STAGE,
            "actionName": APPROVAL_ACTION,
            "result": {"summary": "rolled back: complaints", "status": "Rejected"},
            "token": "t-1",
        },
    )
    with stubber:
        result = roll_back(
            parse_rollback_event({"source": "cli", "reason": "complaints"}),
            service="mangaassist",
            registry=Registry(TABLE),
            lifecycle=_lifecycle(aws),
            executions=CanaryExecutions(aws.state_machine_arn),
            alerts=AlertTopic(aws.topic_arn),
            approvals=PendingApproval(
                "canarywise-mangaassist", APPROVAL_STAGE, APPROVAL_ACTION, boto3_client=codepipeline
            ),
            now=datetime.now(UTC),
        )
    stubber.assert_no_pending_responses()
    assert (result.outcome, result.approval_rejected) == ("ROLLED_BACK", True)
    assert rule_groups(aws) == {"control"}
