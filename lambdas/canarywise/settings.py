"""Each handler's environment, parsed into a model (the only code that reads ``os.environ``).

Names are the lead's contract (stacks/ sets them). A missing or empty variable fails the invocation at once
with a message naming it, before anything is read or written.

Example
-------
>>> settings = load_settings(RollbackSettings, {"REGISTRY_TABLE": "t", "SERVICE": "mangaassist",
...     "LISTENER_RULE_ARN": "r", "CONTROL_TARGET_GROUP_ARN": "c", "CANARY_TARGET_GROUP_ARN": "k",
...     "STATE_MACHINE_ARN": "s", "ALERT_TOPIC_ARN": "a"})
>>> settings.service
'mangaassist'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from canarywise.errors import CanarywiseError

_Required = Annotated[str, Field(min_length=1)]


class SettingsError(CanarywiseError, ValueError):
    """The function's environment is incomplete; the message names each missing variable."""


class _Environment(BaseModel):
    # Extra variables (AWS_*, POWERTOOLS_*, ...) are everywhere in a Lambda: ignore them.
    model_config = ConfigDict(frozen=True, extra="ignore")


class CommonSettings(_Environment):
    registry_table: _Required = Field(alias="REGISTRY_TABLE")
    service: _Required = Field(alias="SERVICE")


class SignificanceCheckSettings(CommonSettings):
    load_balancer_full_name: _Required = Field(alias="LOAD_BALANCER_FULL_NAME")
    control_target_group_full_name: _Required = Field(alias="CONTROL_TARGET_GROUP_FULL_NAME")
    canary_target_group_full_name: _Required = Field(alias="CANARY_TARGET_GROUP_FULL_NAME")


class StageGateSettings(CommonSettings):
    pass


class TrafficSettings(CommonSettings):
    listener_rule_arn: _Required = Field(alias="LISTENER_RULE_ARN")
    control_target_group_arn: _Required = Field(alias="CONTROL_TARGET_GROUP_ARN")
    canary_target_group_arn: _Required = Field(alias="CANARY_TARGET_GROUP_ARN")


class PromoteSettings(TrafficSettings):
    pass


class RollbackSettings(TrafficSettings):
    state_machine_arn: _Required = Field(alias="STATE_MACHINE_ARN")
    alert_topic_arn: _Required = Field(alias="ALERT_TOPIC_ARN")


def load_settings[S: _Environment](model: type[S], environ: Mapping[str, str] | None = None) -> S:
    """Parse `environ` (default ``os.environ``) into `model`; `SettingsError` naming what is missing."""
    source = dict(os.environ if environ is None else environ)
    try:
        return model.model_validate(source)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            name = ".".join(str(part) for part in err["loc"])
            problems.append(
                f"environment variable {name} is not set"
                if err["type"] == "missing"
                else f"environment variable {name}: {err['msg']} (found {err.get('input')!r})"
            )
        raise SettingsError(f"{model.__name__}: " + "; ".join(problems)) from None
