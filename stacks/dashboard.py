"""A CloudWatch dashboard per service: both variants side by side, the stage and weights, decisions, p-values.

Variant metrics come from the ALB (per target group) and from the service's own metrics (dimension
``Variant``). Stage changes and decisions are not metrics: they are read from the logs (Logs Insights) of
the canary state machine and the significance check, which logs one structured line per metric test.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from canarywise.spec import RolloutSpec, ServiceSource

from .alarms import Alarms, error_rate, harm_metric, p99_latency, slot_dimensions
from .traffic import TrafficSplit


class Dashboard(Construct):
    """``canarywise-<service>``; :attr:`url` links to it (the approval message carries it)."""

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
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=name, default_interval=Duration.hours(6)
        )
        ladder = " → ".join(f"{s.percent:g}%" for s in spec.stages)
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"# canarywise · {spec.service}\n"
                    f"Stages {ladder} → approval → 100% · check every {spec.check_interval // 60} min · "
                    f"alpha {spec.statistics.alpha:g}, power {spec.statistics.power:g}, "
                    f"inconclusive → {spec.inconclusive_policy}"
                ),
                width=18,
                height=2,
            ),
            cloudwatch.AlarmStatusWidget(alarms=[alarms.critical, alarms.warning], width=6, height=2),
        )

        # By slot (target group): which one is live changes with every promotion (`canarywise status`).
        slots = list(traffic.target_group_full_names)
        alb = {slot: slot_dimensions(traffic, slot) for slot in slots}
        dashboard.add_widgets(
            _graph("Requests per minute", [_requests(alb[v], v) for v in slots]),
            _graph("5xx rate", [error_rate(alb[v], v, v) for v in slots]),
            _graph("p99 latency (s)", [p99_latency(alb[v], v) for v in slots]),
            _graph("StatisticalHarm (1 = harm proven)", [harm_metric(spec.service)]),
        )

        service_graphs = [
            _graph(
                f"{metric.name} ({metric.role.value})",
                [
                    cloudwatch.Metric(
                        namespace=metric.source.namespace,
                        metric_name=metric.source.metric_name,
                        dimensions_map={"Variant": v},
                        statistic="Sum" if metric.kind.value != "mean" else "Average",
                        period=Duration.minutes(5),
                        label=v,
                    )
                    for v in slots
                ],
            )
            for metric in spec.metrics
            if isinstance(metric.source, ServiceSource)
        ]
        for start in range(0, len(service_graphs), 4):
            dashboard.add_widgets(*service_graphs[start : start + 4])

        dashboard.add_widgets(
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
                width=12,
                height=6,
            ),
            cloudwatch.LogQueryWidget(
                title="Decisions and p-values (significance check)",
                log_group_names=[significance_function.log_group.log_group_name],
                query_lines=[
                    "fields @timestamp, experiment_id, stage_index, metric, method, estimate, pvalue,"
                    " decision",
                    "filter ispresent(decision)",
                    "sort @timestamp desc",
                    "limit 50",
                ],
                width=12,
                height=6,
            ),
        )


def _requests(dimensions: dict[str, str], label: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/ApplicationELB",
        metric_name="RequestCount",
        dimensions_map=dimensions,
        statistic="Sum",
        period=Duration.minutes(1),
        label=label,
    )


def _graph(title: str, metrics: list[cloudwatch.IMetric]) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=metrics, width=6, height=6)


def _log_group_name(machine: sfn.StateMachine) -> str:
    # The state machines log to /aws/vendedlogs/states/<name> (stacks/progression.py).
    return f"/aws/vendedlogs/states/{machine.state_machine_name}"
