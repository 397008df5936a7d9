"""A CloudWatch dashboard per service: both slots' rates side by side, limits and margins, the weights in
force (as the new-assignment split), check failures, stage starts and decisions.

Every graph of a service metric is a rate computed with metric math (successes / units per slot: ``Sum`` /
``SampleCount`` of the 0/1 values the service emits; for a mean, sum / units), never a ``Sum``: at a 95/5
split a Sum graphs the traffic shares, not the behaviour. Beside each decisive metric's rates, the difference
between the slots against the non-inferiority margin. Confidence bounds are not CloudWatch metrics (the
significance check stores them in the registry): ``canarywise report`` and the approval report draw them.
Stage changes and decisions are read from the logs (Logs Insights) of the canary state machine and the
significance check.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from canarywise.emit import ASSIGNMENT_METRIC, ASSIGNMENT_NAMESPACE
from canarywise.spec import AlbSource, Metric, MetricKind, MetricRole, RolloutSpec, ServiceSource

from .alarms import Alarms, error_rate, function_count, harm_metric, p99_latency, slot_dimensions
from .traffic import TrafficSplit

PERIOD = Duration.minutes(5)
_LIMIT = "#d62728"  # hard limits
_MARGIN = "#ff7f0e"  # non-inferiority margins


class Dashboard(Construct):
    """``canarywise-<service>``; :attr:`url` links to it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: RolloutSpec,
        traffic: TrafficSplit,
        alarms: Alarms,
        canary: sfn.StateMachine,
        significance_function: lambda_.Function,
    ) -> None:
        super().__init__(scope, construct_id)
        name = f"canarywise-{spec.service}"
        region = Stack.of(self).region
        self.url = f"https://console.aws.amazon.com/cloudwatch/home?region={region}#dashboards:name={name}"
        self.dashboard = dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=name, default_interval=Duration.hours(6)
        )
        ladder = " → ".join(f"{s.percent:g}%" for s in spec.stages)
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"# canarywise · {spec.service}\n"
                    f"Stages {ladder} → approval → 100% · check every {spec.check_interval // 60} min · "
                    f"alpha {spec.statistics.alpha:g}, power {spec.statistics.power:g}, "
                    f"inconclusive → {spec.inconclusive_policy}. Rates per slot (blue/green take turns "
                    "being live: `canarywise status`); confidence bounds: `canarywise report`."
                ),
                width=18,
                height=2,
            ),
            cloudwatch.AlarmStatusWidget(alarms=[alarms.critical, alarms.warning], width=6, height=2),
        )

        # By slot (target group): which one is live changes with every promotion.
        slots = list(traffic.target_group_full_names)
        alb = {slot: slot_dimensions(traffic, slot) for slot in slots}
        limits = {m.source.metric: m for m in spec.metrics if isinstance(m.source, AlbSource)}
        errors = limits.get("http_5xx")
        latency = limits.get("target_response_time")
        dashboard.add_widgets(
            _graph("New assignments per slot (%): the weights in force", _assignment_split(spec, slots)),
            _graph("Requests per minute", [_requests(alb[v], v) for v in slots]),
            _graph(
                "5xx rate",
                [error_rate(alb[v], v, v) for v in slots],
                _lines(errors, hard_limit=True),
            ),
            _graph(
                "p99 latency (s)",
                [p99_latency(alb[v], v) for v in slots],
                _lines(latency, hard_limit=True),
            ),
        )
        service_graphs: list[cloudwatch.IWidget] = []
        for metric in spec.metrics:
            if not isinstance(metric.source, ServiceSource):
                continue
            percent = metric.kind is not MetricKind.MEAN
            unit = " (%)" if percent else ""
            service_graphs.append(
                _graph(
                    f"{metric.name} ({metric.role.value}) rate per slot{unit}",
                    [_service_rate(metric, v) for v in slots],
                )
            )
            if metric.margin is not None and metric.role is not MetricRole.SECONDARY:
                service_graphs.append(
                    _graph(
                        f"{metric.name}: {slots[1]} − {slots[0]}{' (pt)' if percent else ''} vs margin",
                        [_service_difference(metric, slots)],
                        _lines(metric, hard_limit=False),
                    )
                )
        if errors is not None and errors.margin is not None:
            service_graphs.append(
                _graph(
                    f"{errors.name}: {slots[1]} − {slots[0]} (pt) vs margin",
                    [_alb_difference(alb, slots)],
                    _lines(errors, hard_limit=False),
                )
            )
        for start in range(0, len(service_graphs), 4):
            dashboard.add_widgets(*service_graphs[start : start + 4])

        dashboard.add_widgets(
            _graph(
                "Check failures",
                [
                    function_count(name, PERIOD).with_(label=label)
                    for name, label in (
                        ("ExperimentChecksFailed", "experiment checks failed"),
                        ("StaleDecision", "gate found no fresh decision"),
                        ("ApprovalReportFailed", "approval report not written"),
                    )
                ],
            ),
            _graph("StatisticalHarm (1 = harm proven)", [harm_metric(spec.service)]),
            cloudwatch.LogQueryWidget(
                title="Stage and weights (canary state machine)",
                log_group_names=[_log_group_name(canary)],
                query_lines=[
                    "fields @timestamp, details.name as state",
                    # "Superseded" is a Fail state: it is logged as FailStateEntered, not TaskStateEntered.
                    "filter type in ['TaskStateEntered', 'FailStateEntered']"
                    " and details.name like /started|Roll back|Superseded/",
                    "sort @timestamp desc",
                    "limit 20",
                ],
                width=6,
                height=6,
            ),
            cloudwatch.LogQueryWidget(
                title="Decisions (significance check)",
                log_group_names=[significance_function.log_group.log_group_name],
                query_lines=[
                    # One line per experiment and check (runtime/significance.py logs "decision").
                    "fields @timestamp, experiment_id, decision, why",
                    "filter ispresent(decision)",
                    "sort @timestamp desc",
                    "limit 50",
                ],
                width=6,
                height=6,
            ),
        )


def _lines(metric: Metric | None, *, hard_limit: bool) -> list[cloudwatch.HorizontalAnnotation]:
    """The hard limit (on a rate graph) or the ± margin (on a difference graph), in the graph's units."""
    if metric is None:
        return []
    if hard_limit:
        if metric.hard_limit is None:
            return []
        return [cloudwatch.HorizontalAnnotation(value=metric.hard_limit, label="hard limit", color=_LIMIT)]
    if metric.margin is None:
        return []
    margin = metric.margin * (100.0 if metric.kind is not MetricKind.MEAN else 1.0)
    # Either slot may hold the candidate: its excess over the other may not pass the margin.
    return [
        cloudwatch.HorizontalAnnotation(value=margin, label=f"margin +{margin:g}", color=_MARGIN),
        cloudwatch.HorizontalAnnotation(value=-margin, label=f"margin −{margin:g}", color=_MARGIN),
    ]


def _service_metric(metric: Metric, slot: str, statistic: str) -> cloudwatch.Metric:
    assert isinstance(metric.source, ServiceSource)
    return cloudwatch.Metric(
        namespace=metric.source.namespace,
        metric_name=metric.source.metric_name,
        dimensions_map={"Variant": slot},
        statistic=statistic,
        period=PERIOD,
    )


def _rate_terms(metric: Metric, slot: str) -> tuple[str, dict[str, cloudwatch.IMetric]]:
    """``s_<slot> / n_<slot>``: successes (or the sum) over units, and the metrics it uses."""
    total, units = f"s_{slot}", f"n_{slot}"
    using: dict[str, cloudwatch.IMetric] = {
        total: _service_metric(metric, slot, "Sum"),
        units: _service_metric(metric, slot, "SampleCount"),
    }
    return f"{total} / {units}", using


def _service_rate(metric: Metric, slot: str) -> cloudwatch.MathExpression:
    ratio, using = _rate_terms(metric, slot)
    scale = "100 * " if metric.kind is not MetricKind.MEAN else ""
    return cloudwatch.MathExpression(
        expression=f"{scale}{ratio}", using_metrics=using, label=slot, period=PERIOD
    )


def _service_difference(metric: Metric, slots: list[str]) -> cloudwatch.MathExpression:
    first, using = _rate_terms(metric, slots[0])
    second, more = _rate_terms(metric, slots[1])
    scale = "100 * " if metric.kind is not MetricKind.MEAN else ""
    return cloudwatch.MathExpression(
        expression=f"{scale}({second} - {first})",
        using_metrics={**using, **more},
        label=f"{slots[1]} − {slots[0]}",
        period=PERIOD,
    )


def _alb_difference(alb: dict[str, dict[str, str]], slots: list[str]) -> cloudwatch.MathExpression:
    using: dict[str, cloudwatch.IMetric] = {}
    for slot in slots:
        for prefix, name in (("e", "HTTPCode_Target_5XX_Count"), ("r", "RequestCount")):
            using[f"{prefix}_{slot}"] = cloudwatch.Metric(
                namespace="AWS/ApplicationELB", metric_name=name, dimensions_map=alb[slot],
                statistic="Sum", period=PERIOD,
            )  # fmt: skip
    first, second = slots
    return cloudwatch.MathExpression(
        expression=f"100 * (e_{second} / r_{second} - e_{first} / r_{first})",
        using_metrics=using,
        label=f"{second} − {first}",
        period=PERIOD,
    )


def _assignment_split(spec: RolloutSpec, slots: list[str]) -> list[cloudwatch.IMetric]:
    """Each slot's share of the sessions the weights placed (``NewAssignment``): the split in force."""
    using: dict[str, cloudwatch.IMetric] = {
        f"a_{slot}": cloudwatch.Metric(
            namespace=ASSIGNMENT_NAMESPACE,
            metric_name=ASSIGNMENT_METRIC,
            dimensions_map={"Service": spec.service, "Variant": slot},
            statistic="Sum",
            period=PERIOD,
        )
        for slot in slots
    }
    total = " + ".join(using)
    return [
        cloudwatch.MathExpression(
            expression=f"100 * a_{slot} / ({total})", using_metrics=using, label=slot, period=PERIOD
        )
        for slot in slots
    ]


def _requests(dimensions: dict[str, str], label: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/ApplicationELB",
        metric_name="RequestCount",
        dimensions_map=dimensions,
        statistic="Sum",
        period=Duration.minutes(1),
        label=label,
    )


def _graph(
    title: str,
    metrics: list[cloudwatch.IMetric],
    annotations: list[cloudwatch.HorizontalAnnotation] | None = None,
) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(
        title=title, left=metrics, left_annotations=annotations or None, width=6, height=6
    )


def _log_group_name(machine: sfn.StateMachine) -> str:
    # The state machines log to /aws/vendedlogs/states/<name> (stacks/progression.py).
    return f"/aws/vendedlogs/states/{machine.state_machine_name}"
