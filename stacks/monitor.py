"""The drift monitor: a function every ``monitor.interval``, the drift alarm on its ``Drift`` metric, widgets.

The function (`canarywise.handlers.monitor`) gets its own spec in ``MONITOR_SPEC`` (mode monitor, its watches
and the metrics they read: `canarywise.spec.monitor.monitor_spec`). It reads CloudWatch, writes only the
service's items in the registry (its looks and drift records), publishes ``Canarywise/Drift`` and, when a
finding begins, a message with the numbers to the alert topic. The drift alarm (``canarywise-drift-
<service>``, outside the ``canarywise-<service>-`` prefix the rollback acts on: drift after promotion pages a
person, it rolls nothing back) goes to ALARM when a look publishes Drift = 1 and notifies the topic, and back
to OK (notified too) at the first look without a finding.
"""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, Duration, Stack, Tags
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sns as sns
from constructs import Construct

from canarywise.data.monitor_source import DRIFT_FINDINGS_METRIC, DRIFT_METRIC, DRIFT_NAMESPACE
from canarywise.spec import RolloutSpec, SpecError
from canarywise.spec.monitor import monitor_spec

from .alarms import AlertTopic
from .dashboard import Dashboard
from .functions import FunctionFactory, bundle_code
from .nag import acknowledge
from .registry import Registry, grant_registry
from .significance import grant_cloudwatch, scheduled_invoke

HANDLER = "canarywise.handlers.monitor.handler"
# Lambda allows 4 KB of environment variables in all; the monitor's spec must leave room for the rest.
MAX_MONITOR_SPEC_BYTES = 3000


def drift_alarm_name(service: str) -> str:
    """The drift alarm's name (not under the rollback's ``canarywise-<service>-`` prefix: see the docs)."""
    return f"canarywise-drift-{service}"


def drift_metric(service: str, name: str = DRIFT_METRIC) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=DRIFT_NAMESPACE,
        metric_name=name,
        dimensions_map={"Service": service},
        statistic="Maximum",
        period=Duration.hours(1),
    )


class DriftMonitor(Construct):
    """The monitor function and its schedule, the drift alarm, and the widgets for the dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: RolloutSpec,
        functions: FunctionFactory,
        registry: dynamodb.Table,
        alert_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        assert spec.monitor is not None, "DriftMonitor needs a spec with a monitor block"
        own_spec = json.dumps(monitor_spec(spec), separators=(",", ":"))
        if len(own_spec.encode()) > MAX_MONITOR_SPEC_BYTES:
            raise SpecError(
                f"rollout spec: monitor: its watches and their metrics take {len(own_spec.encode())} bytes, "
                f"more than the {MAX_MONITOR_SPEC_BYTES} its environment holds: watch fewer metrics"
            )
        minutes = spec.monitor.interval // 60
        self.function = functions.function(
            self,
            "Function",
            handler=HANDLER,
            description="Drift monitor: the current window against the same hours of earlier weeks",
            environment={"ALERT_TOPIC_ARN": alert_topic.topic_arn, "MONITOR_SPEC": own_spec},
            timeout=Duration.seconds(120),
            memory_size=1024,  # scipy.stats at a cold start
            retry_attempts=0,  # a look is idempotent per window; the next interval looks again
        )
        role = self.function.role
        assert role is not None
        # Its looks and drift records are the service's items; it reads nothing else.
        grant_registry(role, registry, write_keys=[f"SERVICE#{spec.service}"])
        grant_cloudwatch(role)
        alert_topic.grant_publish(role)
        acknowledge(
            role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "A drift finding is published to the SSE-encrypted alert topic: GenerateDataKey* on that topic's "
            "own key only.",
        )
        self.schedule = scheduled_invoke(self, self.function, minutes=minutes, what="drift monitor")

        self.alarm = cloudwatch.Alarm(
            self,
            "DriftAlarm",
            alarm_name=drift_alarm_name(spec.service),
            alarm_description=(
                f"canarywise {spec.service}: a sustained drift against the same hours of the previous "
                f"{spec.monitor.baseline_weeks} weeks; the numbers are in the SNS message, the registry "
                "(canarywise status) and the monitor's log"
            ),
            metric=drift_metric(spec.service),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            # Looks come every interval (an hour or more): hours without one keep the state they had.
            treat_missing_data=cloudwatch.TreatMissingData.IGNORE,
        )
        notify = cloudwatch_actions.SnsAction(alert_topic)
        self.alarm.add_alarm_action(notify)
        self.alarm.add_ok_action(notify)

        self.widgets: list[cloudwatch.IWidget] = [
            cloudwatch.TextWidget(
                markdown=(
                    f"## Drift monitor\nEvery {minutes // 60} h: the last {minutes // 60} h against the same "
                    f"hours of the previous {spec.monitor.baseline_weeks} weeks · "
                    f"{spec.monitor.false_alerts_per_30d:g} false alerts per 30 days · "
                    f"{spec.monitor.sustain} looks in a row"
                ),
                width=18,
                height=2,
            ),
            cloudwatch.AlarmStatusWidget(alarms=[self.alarm], width=6, height=2),
            cloudwatch.GraphWidget(
                title="Drift (1 = a finding holds) and drifting watches",
                left=[drift_metric(spec.service), drift_metric(spec.service, DRIFT_FINDINGS_METRIC)],
                width=12,
                height=6,
            ),
            cloudwatch.LogQueryWidget(
                title="Drift findings (the numbers)",
                log_group_names=[self.function.log_group.log_group_name],
                query_lines=[
                    "fields @timestamp, watch, summary",
                    'filter message = "drift"',
                    "sort @timestamp desc",
                    "limit 20",
                ],
                width=12,
                height=6,
            ),
        ]


def add_monitor(
    scope: Construct,
    spec: RolloutSpec,
    functions: FunctionFactory,
    registry: dynamodb.Table,
    alert_topic: sns.ITopic,
    dashboard: Dashboard,
) -> DriftMonitor | None:
    """The drift monitor beside a canary control plane, its widgets on the service's dashboard; None when
    the spec has no monitor block."""
    if spec.monitor is None:
        return None
    monitor = DriftMonitor(
        scope, "Monitor", spec=spec, functions=functions, registry=registry, alert_topic=alert_topic
    )
    dashboard.dashboard.add_widgets(*monitor.widgets)
    return monitor


class MonitorOnlyPlane(Construct):
    """A ``mode: monitor`` service: registry, alert topic, the drift monitor, its dashboard and the outputs
    the CLI reads (``RegistryTableName``, ``MonitorFunctionName``, ``AlertTopicArn``, ``DashboardUrl``)."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: RolloutSpec) -> None:
        super().__init__(scope, construct_id)
        self.registry = Registry(self, "Registry")
        self.alert_topic = AlertTopic(self, "Alerts", service=spec.service).topic
        functions = FunctionFactory(
            code=bundle_code(),
            environment={"REGISTRY_TABLE": self.registry.table.table_name, "SERVICE": spec.service},
        )
        self.monitor = DriftMonitor(
            self, "Monitor", spec=spec, functions=functions, registry=self.registry.table,
            alert_topic=self.alert_topic,
        )  # fmt: skip
        name = f"canarywise-{spec.service}"
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=name, default_interval=Duration.days(7)
        )
        dashboard.add_widgets(*self.monitor.widgets)
        region = Stack.of(self).region
        url = f"https://console.aws.amazon.com/cloudwatch/home?region={region}#dashboards:name={name}"
        Tags.of(self).add("canarywise:component", "drift-monitor")
        for key, value, description in (
            ("RegistryTableName", self.registry.table.table_name, "the registry: looks and drift records"),
            ("MonitorFunctionName", self.monitor.function.function_name, "the drift monitor"),
            ("AlertTopicArn", self.alert_topic.topic_arn, "subscribe the on-call here"),
            ("DashboardUrl", url, "the drift monitor's dashboard"),
        ):
            CfnOutput(self, key, key=key, value=value, description=description)
