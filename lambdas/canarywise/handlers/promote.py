"""Promote Lambda, called by the promote state machine after approval: approve, 100%, verify, promote, BH."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from canarywise.data.registry import Registry
from canarywise.handlers import lifecycle_for
from canarywise.runtime.events import parse_promote_event
from canarywise.runtime.rollout import promote
from canarywise.settings import PromoteSettings, load_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(PromoteSettings)
    request = parse_promote_event(event)
    registry = Registry(settings.registry_table)
    result = promote(
        request, registry=registry, lifecycle=lifecycle_for(settings, registry), now=datetime.now(UTC)
    )
    metrics.add_metric(name="Promotions", unit=MetricUnit.Count, value=1)
    return result
