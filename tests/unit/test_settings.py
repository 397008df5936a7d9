"""Handler environments: parsed into models, a missing variable named before anything runs."""

from __future__ import annotations

import pytest

from canarywise.settings import (
    PromoteSettings,
    RollbackSettings,
    SettingsError,
    SignificanceCheckSettings,
    load_settings,
)

COMMON = {"REGISTRY_TABLE": "registry", "SERVICE": "mangaassist", "AWS_REGION": "us-east-1"}
TRAFFIC = {"LISTENER_RULE_ARN": "rule", "TARGET_GROUPS": '{"blue": "tg-b", "green": "tg-g"}'}


def test_rollback_settings() -> None:
    settings = load_settings(
        RollbackSettings, COMMON | TRAFFIC | {"STATE_MACHINE_ARN": "sm", "ALERT_TOPIC_ARN": "topic"}
    )
    assert (settings.registry_table, settings.service, settings.listener_rule_arn) == (
        "registry",
        "mangaassist",
        "rule",
    )
    assert (settings.state_machine_arn, settings.alert_topic_arn) == ("sm", "topic")


def test_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (COMMON | TRAFFIC).items():
        monkeypatch.setenv(name, value)
    settings = load_settings(PromoteSettings)
    assert settings.target_groups == {"blue": "tg-b", "green": "tg-g"}
    assert settings.stickiness_seconds == 7 * 86400  # the ALB's longest, when STICKINESS_SECONDS is not set


def test_raises_naming_every_missing_variable() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(SignificanceCheckSettings, COMMON | {"LOAD_BALANCER_FULL_NAME": "app/alb/1"})
    assert str(raised.value) == (
        "SignificanceCheckSettings: environment variable TARGET_GROUP_FULL_NAMES is not set"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"blue": "tg-b"}', "Value should have at least 2 items after validation, not 1"),
        ("blue,green", "Invalid JSON: expected value at line 1 column 1"),
        ('{"blue": "tg-b", "green": ""}', "String should have at least 1 character"),
    ],
    ids=["one-slot", "not-json", "empty-arn"],
)
def test_target_groups_must_be_two_named_slots(value: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(PromoteSettings, COMMON | TRAFFIC | {"TARGET_GROUPS": value})
    assert str(raised.value).startswith("PromoteSettings: environment variable TARGET_GROUPS")
    assert message in str(raised.value)


def test_raises_on_an_empty_variable() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(PromoteSettings, COMMON | TRAFFIC | {"SERVICE": ""})
    assert str(raised.value) == (
        "PromoteSettings: environment variable SERVICE: String should have at least 1 character (found '')"
    )


def test_rollback_settings_name_the_stacks_own_alarms_and_account() -> None:
    """What the rollback handler hands `parse_rollback_event` (stacks/alarms.py names every alarm
    ``canarywise-<service>-…``; the account is the state machine's)."""
    settings = RollbackSettings.model_construct(
        service="mangaassist", state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:m"
    )
    assert (settings.own_alarm_prefix, settings.account) == ("canarywise-mangaassist-", "123456789012")
    broken = RollbackSettings.model_construct(service="mangaassist", state_machine_arn="s")
    with pytest.raises(SettingsError) as raised:
        _ = broken.account
    assert str(raised.value) == "environment variable STATE_MACHINE_ARN: not a state machine ARN (found 's')"
