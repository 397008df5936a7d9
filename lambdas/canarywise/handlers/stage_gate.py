"""Stage gate Lambda, called by the canary state machine: start, stage_started (sets traffic), gate, ready;
and by the warning composite alarm (its Lambda action), which pauses the rollout."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from canarywise.data.executions import AlertTopic
from canarywise.data.registry import Registry
from canarywise.data.reports import ReportStore
from canarywise.decision.models import DecisionKind
from canarywise.handlers import lifecycle_for
from canarywise.runtime.approval_report import publish_approval_report
from canarywise.runtime.events import (
    GateAction,
    ReadyAction,
    StageStartedAction,
    parse_rollback_event,
    parse_stage_gate_event,
)
from canarywise.runtime.pause import PAUSED, pause_for_alarm
from canarywise.runtime.rollout import (
    NO_DECISION,
    STALE_DECISION,
    gate,
    mark_ready,
    record_stage_started,
    start_rollout,
)
from canarywise.settings import StageGateSettings, load_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()

# A HOLD on a missing or stale decision (the check is not running or keeps failing) is counted as
# ``StaleDecision``, which the warning alarm ``<service>-stale-decision`` pages on.
_STALE_REASONS = (NO_DECISION, f"{STALE_DECISION} (")  # not "the latest decision is for stage …"


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(StageGateSettings)
    registry, now = Registry(settings.registry_table), datetime.now(UTC)
    if isinstance(event, dict) and (event.get("source") == "aws.cloudwatch" or "Records" in event):
        # Only this stack's warning composite, in this function's account, pauses (stacks/alarms.py).
        alarm = parse_rollback_event(
            event,
            own_alarm_prefix=f"canarywise-{settings.service}-warning",
            account=(context.invoked_function_arn.split(":") + [""] * 5)[4] or None,
        )
        result = pause_for_alarm(alarm, settings.service, registry, now=now)
        if result.outcome == PAUSED:
            metrics.add_metric(name="RolloutPaused", unit=MetricUnit.Count, value=1)
        return result.to_dict()
    action = parse_stage_gate_event(event)
    metrics.add_metric(name=f"StageGate_{action.action}", unit=MetricUnit.Count, value=1)
    if isinstance(action, GateAction):  # every poll: reads the registry only (no load-balancer client)
        answer = gate(action, registry=registry, now=now)
        if answer["decision"] == DecisionKind.HOLD.value and answer["reason"].startswith(_STALE_REASONS):
            metrics.add_metric(name="StaleDecision", unit=MetricUnit.Count, value=1)
        return answer
    lifecycle = lifecycle_for(settings, registry)
    if isinstance(action, StageStartedAction):
        return record_stage_started(action, registry=registry, lifecycle=lifecycle, now=now)
    if isinstance(action, ReadyAction):
        ready: dict[str, Any] = dict(mark_ready(action, lifecycle=lifecycle, now=now))
        if settings.report_bucket:
            ready["report"] = _approval_report(action.experiment_id, settings, registry)
        return ready
    return start_rollout(action, service=settings.service, registry=registry, lifecycle=lifecycle, now=now)


def _approval_report(experiment_id: str, settings: StageGateSettings, registry: Registry) -> str | None:
    """Write the approval report and publish its summary; a failure is logged and counted, never blocking:
    the rollout is ready either way, and the approver can run ``canarywise report`` (the registry has it all).
    """
    assert settings.report_bucket is not None
    topic = AlertTopic(settings.alert_topic_arn) if settings.alert_topic_arn else None
    try:
        message = publish_approval_report(
            experiment_id, registry=registry, store=ReportStore(settings.report_bucket), topic=topic
        )
    except Exception:
        logger.exception("approval report failed", extra={"experiment_id": experiment_id})
        metrics.add_metric(name="ApprovalReportFailed", unit=MetricUnit.Count, value=1)
        return None
    return str(message["report"])
