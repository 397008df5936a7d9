"""Significance check Lambda, on a schedule: every running experiment, at the event's time, within the
invocation's remaining time (the rest are counted in ``ExperimentsSkipped`` and checked first next tick).
Past `MAX_EXPERIMENTS_PER_INVOCATION` running experiments a tick hands the rest, in batches, to further
invocations of this function (asynchronous; each checks its batch and hands nothing on)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from canarywise.data.executions import FunctionBatches, HarmSignal
from canarywise.data.metric_source import AlbDimensions, MetricSource
from canarywise.data.metric_source.paired import PairedSource
from canarywise.data.registry import Registry
from canarywise.runtime.events import parse_scheduled_event
from canarywise.runtime.shadow import check_running_shadows
from canarywise.runtime.significance import check_all
from canarywise.settings import SignificanceCheckSettings, load_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(SignificanceCheckSettings)
    # A time more than a few minutes ahead of this clock is refused: it would pin the latest decision.
    scheduled = parse_scheduled_event(event, now=datetime.now(UTC))
    alb = AlbDimensions(settings.load_balancer_full_name, settings.target_group_full_names)
    registry = Registry(settings.registry_table)
    summary = check_all(
        now=scheduled.time,
        service=settings.service,
        registry=registry,
        metric_source=MetricSource(alb),
        harm_signal=HarmSignal(),
        remaining_ms=context.get_remaining_time_in_millis,
        # A batch handed over by a tick is checked here; a tick hands what is past its bound onwards.
        experiment_ids=scheduled.experiment_ids,
        hand_off=FunctionBatches(context.invoked_function_arn, event).hand,
    )
    # Shadow phases (docs/shadow.md): paired looks, same schedule, the same "now"; by the tick only, not by
    # the invocations it handed batches of experiments to.
    shadow = (
        check_running_shadows(
            service=settings.service, now=scheduled.time, registry=registry, source=PairedSource()
        )
        if scheduled.experiment_ids is None
        else None
    )
    metrics.add_metric(name="ExperimentsChecked", unit=MetricUnit.Count, value=len(summary.decisions))
    metrics.add_metric(name="ExperimentChecksFailed", unit=MetricUnit.Count, value=len(summary.failed))
    # Never silent: experiments the time budget left for the next tick are counted (and logged by check_all).
    metrics.add_metric(name="ExperimentsSkipped", unit=MetricUnit.Count, value=len(summary.skipped))
    metrics.add_metric(
        name="ExperimentBatchesHandedOff", unit=MetricUnit.Count, value=len(summary.handed_off)
    )
    return {**summary.to_dict(), "shadow": shadow}
