"""Each handler's environment, parsed into a model (the only code that reads ``os.environ``).

Names are the lead's contract (stacks/ sets them). A missing or empty variable fails the invocation at once
with a message naming it, before anything is read or written.

Example
-------
>>> settings = load_settings(RollbackSettings, {"REGISTRY_TABLE": "t", "SERVICE": "mangaassist",
...     "LISTENER_RULE_ARN": "r", "TARGET_GROUPS": '{"blue": "b", "green": "g"}',
...     "STATE_MACHINE_ARN": "s", "ALERT_TOPIC_ARN": "a"})
>>> settings.service
'mangaassist'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Json, ValidationError

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


# Slot name → value, as a JSON object in one variable: the two target groups take turns being live.
_Slots = Annotated[Json[dict[Annotated[str, Field(min_length=1)], _Required]], Field(min_length=2)]


class SignificanceCheckSettings(CommonSettings):
    load_balancer_full_name: _Required = Field(alias="LOAD_BALANCER_FULL_NAME")
    # Slot → the ``TargetGroup`` dimension value of its ALB metrics (``targetgroup/<name>/<id>``).
    target_group_full_names: _Slots = Field(alias="TARGET_GROUP_FULL_NAMES")


class TrafficSettings(CommonSettings):
    listener_rule_arn: _Required = Field(alias="LISTENER_RULE_ARN")
    target_groups: _Slots = Field(alias="TARGET_GROUPS")  # slot → target group ARN
    stickiness_seconds: Annotated[int, Field(ge=1, le=7 * 86400)] = Field(
        default=7 * 86400, alias="STICKINESS_SECONDS"
    )


class StageGateSettings(TrafficSettings):
    # Where the ``ready`` step writes the approval report, and the topic its summary goes to (absent: none).
    report_bucket: str | None = Field(default=None, alias="REPORT_BUCKET")
    alert_topic_arn: str | None = Field(default=None, alias="ALERT_TOPIC_ARN")


class PromoteSettings(TrafficSettings):
    pass


class RollbackSettings(TrafficSettings):
    state_machine_arn: _Required = Field(alias="STATE_MACHINE_ARN")
    alert_topic_arn: _Required = Field(alias="ALERT_TOPIC_ARN")
    # The pipeline whose pending approval a rollback rejects (absent: no pipeline, e.g. local mode).
    pipeline_name: str | None = Field(default=None, alias="PIPELINE_NAME")

    @property
    def own_alarm_prefix(self) -> str:
        """The start of this stack's alarm names (stacks/alarms.py): only those alarms may roll back."""
        return f"canarywise-{self.service}-"

    @property
    def account(self) -> str:
        """This stack's account, read from STATE_MACHINE_ARN: an alarm from another one may not roll back."""
        parts = self.state_machine_arn.split(":")
        if len(parts) < 7 or parts[0] != "arn" or not parts[4].isdigit():
            raise SettingsError(
                "environment variable STATE_MACHINE_ARN: not a state machine ARN "
                f"(found {self.state_machine_arn!r})"
            )
        return parts[4]


class MonitorSettings(CommonSettings):
    alert_topic_arn: _Required = Field(alias="ALERT_TOPIC_ARN")
    # The monitor's own spec (mode monitor: its watches and the metrics they read), as JSON
    # (`canarywise.spec.monitor.monitor_spec`); validated again here.
    monitor_spec: _Required = Field(alias="MONITOR_SPEC")


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
