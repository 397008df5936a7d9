"""Drift monitor Lambda, on a schedule (``monitor.interval``): one look at the event's time (see
`canarywise.runtime.monitor`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from canarywise.data.executions import AlertTopic
from canarywise.data.monitor_source import DriftSignal, MonitorSource
from canarywise.data.registry import Registry
from canarywise.runtime.events import parse_scheduled_event
from canarywise.runtime.monitor import look
from canarywise.settings import MonitorSettings, load_settings
from canarywise.spec import parse_spec

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(MonitorSettings)
    spec = parse_spec(json.loads(settings.monitor_spec), source="environment variable MONITOR_SPEC")
    scheduled = parse_scheduled_event(event, now=datetime.now(UTC))
    summary = look(
        now=scheduled.time,
        spec=spec,
        source=MonitorSource(),
        registry=Registry(settings.registry_table),
        signal=DriftSignal(),
        topic=AlertTopic(settings.alert_topic_arn),
    )
    return summary.to_dict()
