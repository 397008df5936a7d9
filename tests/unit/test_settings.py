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
TRAFFIC = {"LISTENER_RULE_ARN": "rule", "CONTROL_TARGET_GROUP_ARN": "tg-c", "CANARY_TARGET_GROUP_ARN": "tg-k"}


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
    assert load_settings(PromoteSettings).canary_target_group_arn == "tg-k"


def test_raises_naming_every_missing_variable() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(SignificanceCheckSettings, COMMON | {"LOAD_BALANCER_FULL_NAME": "app/alb/1"})
    assert str(raised.value) == (
        "SignificanceCheckSettings: environment variable CONTROL_TARGET_GROUP_FULL_NAME is not set; "
        "environment variable CANARY_TARGET_GROUP_FULL_NAME is not set"
    )


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
