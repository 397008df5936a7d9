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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from canarywise.data.models import ExperimentStatus, UtcDatetime, Weights, to_iso
from canarywise.errors import CanarywiseError

_Text = Annotated[str, Field(min_length=1)]
# A scheduled event may be dated this far ahead of the receiving clock (clock skew, the scheduler's jitter);
# further ahead it is refused: a check dated in the future would pin the latest decision.
MAX_SCHEDULE_AHEAD = timedelta(minutes=5)
# A rollback reason is stored with the record and sent in the alert: a person's (the CLI) longer than this is
# refused before anything moves; an automated one (an alarm, the state machine) is shortened, never refused.
MAX_REASON_CHARS = 1000


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
# The most experiments one significance-check invocation checks; a tick hands the rest, in batches of this
# size, to further invocations of the same function (fault table, row 13).
MAX_EXPERIMENTS_PER_INVOCATION = 25


class ScheduledEvent(_Event):
    """An EventBridge (Scheduler) event; its ``time`` is the check's "now". ``experiment_ids``: a batch a
    tick handed to this invocation (it checks those, and hands nothing further)."""

    time: UtcDatetime
    experiment_ids: (
        Annotated[list[_Text], Field(min_length=1, max_length=MAX_EXPERIMENTS_PER_INVOCATION)] | None
    ) = None


def parse_scheduled_event(event: Any, *, now: datetime | None = None) -> ScheduledEvent:
    """The scheduled event; with `now` (the receiving clock), `EventError` when its ``time`` is more than
    `MAX_SCHEDULE_AHEAD` ahead of it. A time in the past is accepted (a late delivery, a replay)."""
    scheduled = _parse(ScheduledEvent, event, "scheduled")
    if now is not None and scheduled.time > now + MAX_SCHEDULE_AHEAD:
        raise EventError(
            f"malformed scheduled event: time: {scheduled.time.isoformat()} is more than "
            f"{MAX_SCHEDULE_AHEAD.total_seconds():g} s ahead of the clock ({now.isoformat()})"
        )
    return scheduled


# --- stage gate --------------------------------------------------------------------------------------------
class Release(_Event):
    """The release manifest: what is deployed, and (optionally) the slot it was deployed into.

    When `slot` is given, ``start`` refuses unless it is the service's idle slot: the candidate must never
    be deployed over the live model.
    """

    candidate: _Text
    release_id: _Text
    slot: Annotated[str, Field(min_length=1)] | None = None
    # A link to the analysis of the candidate's last rollback (``anti_flapping.require_root_cause``).
    root_cause: Annotated[str, Field(min_length=1, max_length=MAX_REASON_CHARS)] | None = None


class Timing(_Event):
    """The execution input's ``timing``: the seconds each stage's Wait state waits between gate polls."""

    check_interval_seconds: Annotated[int, Field(ge=0, le=86_400)]


class StartAction(_Event):
    action: Literal["start"]
    execution_arn: _Text
    release: Release
    # Optional for callers other than the state machine (tests, tools); the state machine always sends it.
    timing: Timing | None = None
    spec: dict[str, Any]


class StageStartedAction(_Event):
    action: Literal["stage_started"]
    experiment_id: _Text
    stage_index: Annotated[int, Field(ge=0)]
    weights: Weights
    # The state machine's clock when it entered the stage (``$$.State.EnteredTime``): the stage's deadline
    # is counted from it. Optional for callers other than the state machine (tests, tools).
    entered_at: UtcDatetime | None = None


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
    # Who approved (the pipeline's approver or the CLI caller's identity), recorded on the transition.
    approved_by: Annotated[str, Field(min_length=1, max_length=512)] = "CodePipeline approval"


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

    # "aws.states": an execution ended FAILED, TIMED_OUT or ABORTED (`canarywise.runtime.execution_ended`)
    source: Literal["aws.cloudwatch", "sns", "state_machine", "cli", "aws.codepipeline", "aws.states"]
    reason: Annotated[str, Field(max_length=MAX_REASON_CHARS)]
    act: bool = True
    experiment_id: str | None = None
    trigger_id: str | None = None
    status: ExperimentStatus = ExperimentStatus.ROLLED_BACK
    # A person's `rollback --force`: with nothing running, return all traffic to the live slot anyway.
    force: bool = False
    actor: str = ""


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
    accountId: str | None = None  # noqa: N815
    alarmData: _AlarmData  # noqa: N815


class _SnsAlarmMessage(_Event):
    AlarmName: _Text
    AlarmArn: str | None = None
    AWSAccountId: str | None = None
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
    force: bool = False
    actor: Annotated[str, Field(max_length=512)] = ""


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


def _shortened(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"


@dataclass(frozen=True)
class _OwnAlarms:
    """Whose alarms may roll back: names under `prefix` (``canarywise-<service>-``) in `account`."""

    prefix: str | None
    account: str | None

    def foreign(self, name: str, *accounts: str | None) -> str | None:
        """Why the alarm `name` (in the `accounts` its event names) is not a trigger; None: it is one."""
        if self.prefix is not None and not name.startswith(self.prefix):
            return f"alarm {name!r} is not one of this stack's (names start with {self.prefix!r})"
        if self.account is None:
            return None
        named = {a for a in accounts if a}
        if named != {self.account}:
            others = ", ".join(sorted(named - {self.account})) or "no account"
            where = "names no account" if not named else f"is in account {others}"
            return f"alarm {name!r} {where}, not this stack's {self.account}"
        return None


def _alarm_request(
    source: Literal["aws.cloudwatch", "sns"],
    name: str,
    state: str,
    reason: str,
    trigger_id: str,
    refusal: str | None,
) -> RollbackRequest:
    if refusal is not None:
        return RollbackRequest(
            source=source,
            reason=_shortened(f"{refusal}: not a rollback trigger"),
            act=False,
            trigger_id=trigger_id,
        )
    return RollbackRequest(
        source=source,
        reason=_shortened(f"alarm {name} is {state}: {reason}".rstrip(": ")),
        act=state == "ALARM",
        trigger_id=trigger_id,
    )


def _arn_account(arn: str | None) -> str | None:
    parts = (arn or "").split(":")
    return parts[4] if len(parts) > 5 and parts[0] == "arn" else None


def parse_rollback_event(
    event: Any, *, own_alarm_prefix: str | None = None, account: str | None = None
) -> RollbackRequest:
    """One `RollbackRequest` from a CloudWatch alarm action, an SNS-wrapped alarm, the state machine, the
    CLI or a CodePipeline approval event; `EventError` for anything else.

    Parameters
    ----------
    own_alarm_prefix : str, optional
        Alarms whose name does not start with it (``canarywise-<service>-``) are not triggers: their request
        does not act (``act=False``) and its reason says why.
    account : str, optional
        Likewise for an alarm whose event names another account (or none).
    """
    if not isinstance(event, Mapping):
        raise EventError(f"malformed rollback event: expected an object, found {type(event).__name__}")
    own = _OwnAlarms(own_alarm_prefix, account)
    if "Records" in event:
        return _from_sns(event, own)
    source = event.get("source")
    if source == "aws.cloudwatch":
        alarm = _parse(_AlarmActionEvent, event, "CloudWatch alarm")
        state = alarm.alarmData.state
        name = alarm.alarmData.alarmName
        return _alarm_request(
            "aws.cloudwatch",
            name,
            state.value,
            state.reason,
            _alarm_trigger(alarm.alarmArn, state.timestamp),
            own.foreign(name, alarm.accountId, _arn_account(alarm.alarmArn)),
        )
    if source == "state_machine":
        machine = _parse(_StateMachineEvent, event, "state machine")
        return RollbackRequest(
            source="state_machine",
            reason=_shortened(machine.reason),
            experiment_id=machine.experiment_id,
            trigger_id=f"state_machine@{machine.experiment_id}",
        )
    if source == "cli":
        cli = _parse(_CliEvent, event, "CLI")
        if len(cli.reason) > MAX_REASON_CHARS:
            raise EventError(
                f"malformed CLI event: reason: at most {MAX_REASON_CHARS:,} characters, "
                f"found {len(cli.reason):,}"
            )
        return RollbackRequest(
            source="cli", reason=cli.reason, experiment_id=cli.experiment_id, force=cli.force, actor=cli.actor
        )
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


def _member(value: Any, key: str, where: str) -> Any:
    """``value[key]`` of an object `where` (``Records[0]``); `EventError` naming it if it is no object."""
    if not isinstance(value, Mapping):
        raise EventError(f"malformed SNS event: {where} must be an object, found {value!r:.200}")
    return value.get(key)


def _from_sns(event: Mapping[str, Any], own: _OwnAlarms) -> RollbackRequest:
    records = event["Records"]
    if not isinstance(records, list):
        raise EventError(f"malformed SNS event: Records must be a list, found {records!r:.200}")
    if not records:
        raise EventError("malformed SNS event: Records is empty")
    raw = _member(_member(records[0], "Sns", "Records[0]"), "Message", "Records[0].Sns")
    try:
        body = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise EventError(
            f"malformed SNS event: Records[0].Sns.Message is not a JSON object: {str(raw)[:200]!r}"
        )
    alarm = _parse(_SnsAlarmMessage, body, "SNS alarm message")
    return _alarm_request(
        "sns",
        alarm.AlarmName,
        alarm.NewStateValue,
        alarm.NewStateReason,
        _alarm_trigger(alarm.AlarmArn or alarm.AlarmName, alarm.StateChangeTime),
        own.foreign(alarm.AlarmName, alarm.AWSAccountId, _arn_account(alarm.AlarmArn)),
    )


__all__ = [
    "MAX_EXPERIMENTS_PER_INVOCATION",
    "MAX_REASON_CHARS",
    "MAX_SCHEDULE_AHEAD",
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
