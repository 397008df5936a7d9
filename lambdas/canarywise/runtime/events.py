"""The events the handlers accept, parsed into models before anything is read or written.

A malformed event raises `EventError` naming what is wrong; the handler lets it fail the invocation, so
nothing is written and the caller sees a clear error.

Example
-------
>>> parse_rollback_event({"source": "cli", "reason": "thumbs-down complaints"}).reason
'thumbs-down complaints'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser.models import SnsModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from canarywise.data.models import ExperimentStatus, UtcDatetime, Weights, to_iso
from canarywise.errors import CanarywiseError

_Text = Annotated[str, Field(min_length=1)]


class EventError(CanarywiseError, ValueError):
    """The invocation's event is malformed; the message names the field and what was found."""


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


def _parse[M: BaseModel](model: type[M], event: Any, what: str) -> M:
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(event)'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise EventError(f"malformed {what} event: {problems}") from None


# --- significance check ------------------------------------------------------------------------------------
class ScheduledEvent(_Event):
    """An EventBridge (Scheduler) event; only its ``time`` matters: it is the check's "now"."""

    time: UtcDatetime


def parse_scheduled_event(event: Any) -> ScheduledEvent:
    return _parse(ScheduledEvent, event, "scheduled")


# --- stage gate --------------------------------------------------------------------------------------------
class Release(_Event):
    candidate: _Text
    release_id: _Text


class StartAction(_Event):
    action: Literal["start"]
    execution_arn: _Text
    release: Release
    spec: dict[str, Any]


class StageStartedAction(_Event):
    action: Literal["stage_started"]
    experiment_id: _Text
    stage_index: Annotated[int, Field(ge=0)]
    weights: Weights


class GateAction(_Event):
    action: Literal["gate"]
    experiment_id: _Text
    stage_index: Annotated[int, Field(ge=0)]


class ReadyAction(_Event):
    action: Literal["ready"]
    experiment_id: _Text


class StageGateEvent(_Event):
    request: Annotated[
        StartAction | StageStartedAction | GateAction | ReadyAction, Field(discriminator="action")
    ]


StageGateAction = StartAction | StageStartedAction | GateAction | ReadyAction


def parse_stage_gate_event(event: Any) -> StageGateAction:
    if not isinstance(event, Mapping):
        raise EventError(f"malformed stage_gate event: expected an object, found {type(event).__name__}")
    return _parse(StageGateEvent, {"request": event}, "stage_gate").request


# --- promote -----------------------------------------------------------------------------------------------
class PromoteEvent(_Event):
    experiment_id: _Text


def parse_promote_event(event: Any) -> PromoteEvent:
    return _parse(PromoteEvent, event, "promote")


# --- rollback ----------------------------------------------------------------------------------------------
class RollbackRequest(_Event):
    """What a rollback trigger asks for, whichever of the five sources it came from.

    `act` is False for events that are not a call to roll back (an alarm going back to OK, a pipeline
    action that succeeded); `trigger_id` identifies one delivery's cause (an alarm's state change, a pipeline
    event) so that the same cause delivered again is recognised; `status` is REJECTED for a rejected
    approval and ROLLED_BACK otherwise.
    """

    source: Literal["aws.cloudwatch", "sns", "state_machine", "cli", "aws.codepipeline"]
    reason: str
    act: bool = True
    experiment_id: str | None = None
    trigger_id: str | None = None
    status: ExperimentStatus = ExperimentStatus.ROLLED_BACK


class _AlarmState(_Event):
    value: _Text
    reason: str = ""
    timestamp: UtcDatetime


class _AlarmData(_Event):
    alarmName: _Text  # noqa: N815 - CloudWatch's field names
    state: _AlarmState


class _AlarmActionEvent(_Event):
    source: Literal["aws.cloudwatch"]
    alarmArn: _Text  # noqa: N815
    alarmData: _AlarmData  # noqa: N815


class _SnsAlarmMessage(_Event):
    AlarmName: _Text
    AlarmArn: str | None = None
    NewStateValue: _Text
    NewStateReason: str = ""
    StateChangeTime: UtcDatetime


class _StateMachineEvent(_Event):
    source: Literal["state_machine"]
    experiment_id: _Text
    reason: _Text


class _CliEvent(_Event):
    source: Literal["cli"]
    reason: _Text
    experiment_id: Annotated[str, Field(min_length=1)] | None = None


class _PipelineActionType(_Event):
    category: str = ""


class _PipelineDetail(_Event):
    pipeline: _Text
    execution_id: _Text = Field(alias="execution-id")
    state: _Text
    action: str = ""
    type: _PipelineActionType = _PipelineActionType()


class _PipelineEvent(_Event):
    source: Literal["aws.codepipeline"]
    id: _Text
    detail_type: _Text = Field(alias="detail-type")
    detail: _PipelineDetail


def _alarm_trigger(alarm: str, changed_at: datetime) -> str:
    # The Lambda action and the SNS message of one state change carry the same time in different formats.
    return f"{alarm}@{to_iso(changed_at)}"


def parse_rollback_event(event: Any) -> RollbackRequest:
    """One `RollbackRequest` from a CloudWatch alarm action, an SNS-wrapped alarm, the state machine, the
    CLI or a CodePipeline approval event; `EventError` for anything else.
    """
    if not isinstance(event, Mapping):
        raise EventError(f"malformed rollback event: expected an object, found {type(event).__name__}")
    if "Records" in event:
        return _from_sns(event)
    source = event.get("source")
    if source == "aws.cloudwatch":
        alarm = _parse(_AlarmActionEvent, event, "CloudWatch alarm")
        state = alarm.alarmData.state
        return RollbackRequest(
            source="aws.cloudwatch",
            reason=f"alarm {alarm.alarmData.alarmName} is {state.value}: {state.reason}".rstrip(": "),
            act=state.value == "ALARM",
            trigger_id=_alarm_trigger(alarm.alarmArn, state.timestamp),
        )
    if source == "state_machine":
        machine = _parse(_StateMachineEvent, event, "state machine")
        return RollbackRequest(
            source="state_machine",
            reason=machine.reason,
            experiment_id=machine.experiment_id,
            trigger_id=f"state_machine@{machine.experiment_id}",
        )
    if source == "cli":
        cli = _parse(_CliEvent, event, "CLI")
        return RollbackRequest(source="cli", reason=cli.reason, experiment_id=cli.experiment_id)
    if source == "aws.codepipeline":
        pipeline = _parse(_PipelineEvent, event, "CodePipeline")
        detail = pipeline.detail
        rejected = (
            detail.state == "FAILED"
            and pipeline.detail_type == "CodePipeline Action Execution State Change"
            and detail.type.category in {"", "Approval"}
        )
        return RollbackRequest(
            source="aws.codepipeline",
            reason=f"approval {detail.action or '(action)'} in pipeline {detail.pipeline} was rejected",
            act=rejected,
            trigger_id=f"codepipeline@{detail.execution_id}",
            status=ExperimentStatus.REJECTED,
        )
    raise EventError(
        "malformed rollback event: expected source 'aws.cloudwatch', 'state_machine', 'cli' or "
        f"'aws.codepipeline', or SNS Records; found source {source!r} and keys {sorted(map(str, event))}"
    )


def _from_sns(event: Mapping[str, Any]) -> RollbackRequest:
    envelope = _parse(SnsModel, event, "SNS")
    if not envelope.Records:
        raise EventError("malformed SNS event: Records is empty")
    raw = envelope.Records[0].Sns.Message
    try:
        body = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise EventError(
            f"malformed SNS event: Records[0].Sns.Message is not a JSON object: {str(raw)[:200]!r}"
        )
    alarm = _parse(_SnsAlarmMessage, body, "SNS alarm message")
    return RollbackRequest(
        source="sns",
        reason=f"alarm {alarm.AlarmName} is {alarm.NewStateValue}: {alarm.NewStateReason}".rstrip(": "),
        act=alarm.NewStateValue == "ALARM",
        trigger_id=_alarm_trigger(alarm.AlarmArn or alarm.AlarmName, alarm.StateChangeTime),
    )


__all__ = [
    "EventError",
    "GateAction",
    "PromoteEvent",
    "ReadyAction",
    "RollbackRequest",
    "ScheduledEvent",
    "StageGateAction",
    "StageStartedAction",
    "StartAction",
    "parse_promote_event",
    "parse_rollback_event",
    "parse_scheduled_event",
    "parse_stage_gate_event",
]
