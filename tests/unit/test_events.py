"""The control loop's input faults (issue 11 rows 4, 10, 14): events refused or ignored before anything moves.

Pure parsing (no AWS): each malformed, foreign or future event gives a one-line `EventError` or a
`RollbackRequest` that does not act. The shapes follow the AWS documentation of a CloudWatch alarm's Lambda
action and of the JSON message CloudWatch publishes to SNS.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from canarywise.runtime.events import EventError, parse_rollback_event, parse_scheduled_event

ACCOUNT = "123456789012"
PREFIX = "canarywise-mangaassist-"
CRITICAL = "canarywise-mangaassist-critical"
WHEN = "2026-11-02T09:30:15.490+0000"
FOREIGN_ACCOUNT = (
    f"alarm '{CRITICAL}' is in account 999999999999, not this stack's {ACCOUNT}: not a rollback trigger"
)


def _arn(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:cloudwatch:us-east-1:{account}:alarm:{name}"


def alarm_action(
    name: str = CRITICAL, account: str = ACCOUNT, arn_account: str | None = None
) -> dict[str, Any]:
    return {
        "source": "aws.cloudwatch",
        "alarmArn": _arn(name, arn_account or account),
        "accountId": account,
        "time": WHEN,
        "region": "us-east-1",
        "alarmData": {
            "alarmName": name,
            "state": {"value": "ALARM", "reason": "StatisticalHarm >= 1", "timestamp": WHEN},
        },
    }


def sns(message: Any) -> dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": message}}]}


def sns_alarm(name: str = CRITICAL, account: str = ACCOUNT, **extra: Any) -> dict[str, Any]:
    body = {
        "AlarmName": name,
        "AlarmArn": _arn(name, account),
        "AWSAccountId": account,
        "NewStateValue": "ALARM",
        "NewStateReason": "StatisticalHarm >= 1",
        "StateChangeTime": WHEN,
        **extra,
    }
    return sns(json.dumps(body))


def _own(event: Any) -> Any:
    return parse_rollback_event(event, own_alarm_prefix=PREFIX, account=ACCOUNT)


# --- row 14: malformed SNS envelopes -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"Records": [{"Sns": None}]}, "malformed SNS event: Records[0].Sns must be an object, found None"),
        ({"Records": [None]}, "malformed SNS event: Records[0] must be an object, found None"),
        ({"Records": None}, "malformed SNS event: Records must be a list, found None"),
        ({"Records": "x"}, "malformed SNS event: Records must be a list, found 'x'"),
        ({"Records": []}, "malformed SNS event: Records is empty"),
        (
            {"Records": [{"Sns": {}}]},
            "malformed SNS event: Records[0].Sns.Message is not a JSON object: 'None'",
        ),
        (sns("[1, 2]"), "malformed SNS event: Records[0].Sns.Message is not a JSON object: '[1, 2]'"),
        (sns(None), "malformed SNS event: Records[0].Sns.Message is not a JSON object: 'None'"),
    ],
    ids=["sns-null", "record-null", "records-null", "records-str", "empty", "no-message", "list", "null"],
)
def test_malformed_sns_envelopes_are_one_line_event_errors(event: Any, message: str) -> None:
    for parse in (parse_rollback_event, _own):
        with pytest.raises(EventError) as raised:
            parse(event)
        assert str(raised.value) == message


# --- row 14: only this stack's own alarms, in its own account, trigger -------------------------------------
@pytest.mark.parametrize("event", [alarm_action(), sns_alarm()], ids=["alarm-action", "sns"])
def test_the_stacks_own_alarm_triggers(event: dict[str, Any]) -> None:
    request = _own(event)
    assert request.act
    assert request.reason == f"alarm {CRITICAL} is ALARM: StatisticalHarm >= 1"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            alarm_action(name="billing-critical"),
            "alarm 'billing-critical' is not one of this stack's (names start with "
            "'canarywise-mangaassist-'): not a rollback trigger",
        ),
        (
            sns_alarm(name="canarywise-other-critical"),
            "alarm 'canarywise-other-critical' is not one of this stack's (names start with "
            "'canarywise-mangaassist-'): not a rollback trigger",
        ),
        (
            alarm_action(account="999999999999"),
            FOREIGN_ACCOUNT,
        ),
        (
            alarm_action(arn_account="999999999999"),
            FOREIGN_ACCOUNT,
        ),
        (
            sns_alarm(account="999999999999"),
            FOREIGN_ACCOUNT,
        ),
        (
            sns(json.dumps({"AlarmName": CRITICAL, "NewStateValue": "ALARM", "StateChangeTime": WHEN})),
            f"alarm '{CRITICAL}' names no account, not this stack's {ACCOUNT}: not a rollback trigger",
        ),
    ],
    ids=["action-name", "sns-name", "action-account", "action-arn-account", "sns-account", "sns-no-account"],
)
def test_a_foreign_alarm_is_not_a_rollback_trigger(event: dict[str, Any], reason: str) -> None:
    request = _own(event)
    assert not request.act
    assert request.reason == reason


# --- row 10: the rollback reason is bounded ----------------------------------------------------------------
def test_a_cli_reason_over_1000_characters_is_refused_before_anything_moves() -> None:
    assert parse_rollback_event({"source": "cli", "reason": "x" * 1000}).reason == "x" * 1000
    with pytest.raises(EventError) as raised:
        parse_rollback_event({"source": "cli", "reason": "x" * 420_000})
    assert str(raised.value) == "malformed CLI event: reason: at most 1,000 characters, found 420,000"


def test_an_automated_reason_is_shortened_never_refused() -> None:
    """A rollback the state machine or an alarm asks for must happen whatever its reason's length."""
    long = "the canary state machine failed in a stage: " + "y" * 40_000
    request = parse_rollback_event({"source": "state_machine", "experiment_id": "e1", "reason": long})
    assert request.act
    assert request.reason == long[:999] + "…"
    request = _own(sns_alarm(NewStateReason="z" * 5000))
    assert request.act
    assert len(request.reason) == 1000
    assert request.reason.startswith(f"alarm {CRITICAL} is ALARM: zzz")


# --- row 4: a check event dated in the future ---------------------------------------------------------------
NOW = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("time", "accepted"),
    [
        ("2026-12-07T20:05:00Z", True),  # 300 s ahead: clock skew and the scheduler's own jitter
        ("2026-12-07T20:05:01Z", False),
        ("2099-01-01T00:00:00Z", False),
        ("2026-11-30T09:00:00Z", True),  # the past: a replay (the demo) or a late delivery
    ],
)
def test_a_scheduled_event_dated_in_the_future_is_refused(time: str, accepted: bool) -> None:
    event = {"source": "aws.scheduler", "time": time}
    if accepted:
        assert parse_scheduled_event(event, now=NOW).time == datetime.fromisoformat(time)
        return
    with pytest.raises(EventError) as raised:
        parse_scheduled_event(event, now=NOW)
    found = datetime.fromisoformat(time).isoformat()
    assert str(raised.value) == (
        f"malformed scheduled event: time: {found} is more than 300 s ahead of the clock "
        "(2026-12-07T20:00:00+00:00)"
    )


def test_the_clock_is_the_callers() -> None:
    """Local mode replays accelerated time: the bound follows the clock the caller hands in."""
    event = {"source": "aws.scheduler", "time": "2026-12-14T09:00:00Z"}
    assert parse_scheduled_event(event, now=NOW + timedelta(days=7)).time == NOW + timedelta(days=6, hours=13)
