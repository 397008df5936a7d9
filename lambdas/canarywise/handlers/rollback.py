"""Rollback Lambda: CloudWatch alarm action, SNS-wrapped alarm, state machine, CLI, rejected approval, and
an execution that ended FAILED, TIMED_OUT or ABORTED (`canarywise.runtime.execution_ended`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from canarywise.data.executions import (
    APPROVAL_ACTION,
    APPROVAL_STAGE,
    AlertTopic,
    CanaryExecutions,
    PendingApproval,
)
from canarywise.data.registry import Registry
from canarywise.handlers import lifecycle_for
from canarywise.runtime.events import parse_rollback_event
from canarywise.runtime.execution_ended import SOURCE as EXECUTION_ENDED
from canarywise.runtime.execution_ended import ended
from canarywise.runtime.rollback import RollbackResult, roll_back
from canarywise.settings import RollbackSettings, load_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(RollbackSettings)
    registry = Registry(settings.registry_table)
    approvals = (
        PendingApproval(settings.pipeline_name, APPROVAL_STAGE, APPROVAL_ACTION)
        if settings.pipeline_name
        else None
    )
    act: Callable[..., RollbackResult]
    trigger: Any
    if isinstance(event, dict) and event.get("source") == EXECUTION_ENDED:
        # A canary or promote execution failed, timed out or was aborted: end in a verified state.
        act, trigger = ended, event
    else:
        # Only this stack's critical composite alarm, in this account, is a rollback trigger (the warning
        # one shares the name prefix and pages only).
        act, trigger = (
            roll_back,
            parse_rollback_event(
                event, own_alarm_prefix=f"{settings.own_alarm_prefix}critical", account=settings.account
            ),
        )
    result = act(
        trigger,
        service=settings.service,
        registry=registry,
        lifecycle=lifecycle_for(settings, registry),
        executions=CanaryExecutions(settings.state_machine_arn),
        alerts=AlertTopic(settings.alert_topic_arn),
        approvals=approvals,
        now=datetime.now(UTC),
    )
    metrics.add_metric(name=f"Rollback{result.outcome.title()}", unit=MetricUnit.Count, value=1)
    return result.to_dict()
