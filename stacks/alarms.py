"""Alarms: hard limits and proven harm roll back without waiting for anyone; softer trouble pages a person.

- one alarm per hard limit in the spec and slot (either target group may hold the candidate), on that
  group's ALB metrics: the 5xx count tested against the limit each minute (metric math over
  ``HTTPCode_Target_5XX_Count`` and ``RequestCount``, see :func:`error_excess`) and p99
  ``TargetResponseTime``;
- ``StatisticalHarm`` (published by the significance check, 1 when harm is proven);
- composite *critical* = any of those → the rollback function (Lambda alarm action) and the alert topic;
- composite *warning* = the significance check failing (the function, or an experiment's check 3 times
  running), the stage gate failing after its retries or holding on a stale or missing decision 3 intervals
  running, a rollback that could not run, or a hard-limit metric at half its limit → the stage gate function,
  which pauses the rollout (the lifecycle's ``pause``; ``canarywise resume`` goes on), and the alert topic.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from canarywise.spec import AlbSource, Metric, RolloutSpec

from .functions import METRICS_NAMESPACE, POWERTOOLS_SERVICE_NAME
from .traffic import TrafficSplit

ALB_NAMESPACE = "AWS/ApplicationELB"
# Below this many requests a minute a 5xx *rate* is noise (1 error in 20 requests is 5%); the significance
# check, which pools over time, covers low-traffic canaries.
MIN_REQUESTS_PER_MINUTE = 100
# The one-sided z (normal approximation to the binomial at the limit) a minute's 5xx count must reach: 3.09
# is the 0.1% tail. A bare "rate > limit" on 2 of 3 minutes went off within 7 days on 21.9-97.9% of healthy
# canaries at 100 requests a minute and a 0.3-0.5% baseline against a 2% limit; this rule at most 1e-8
# (make bench, hard limits).
ALARM_Z = 3.09
# A hard-limit alarm goes off when ALARM_DATAPOINTS of the last ALARM_PERIODS one-minute datapoints breach;
# its "approaching" warning (pages a person, does not roll back) is the same alarm at this fraction of the
# limit.
ALARM_DATAPOINTS, ALARM_PERIODS = 2, 3
APPROACHING_FRACTION = 0.5


class AlertTopic(Construct):
    """The SNS topic for alarms, approvals and rollbacks, encrypted with a key CloudWatch may use."""

    def __init__(self, scope: Construct, construct_id: str, *, service: str) -> None:
        super().__init__(scope, construct_id)
        key = kms.Key(
            self,
            "Key",
            enable_key_rotation=True,
            description=f"canarywise {service}: alert topic encryption",
        )
        # CloudWatch alarms publish to an encrypted topic only if the key policy lets them use the key
        # (the AWS-managed aws/sns key does not).
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )
        self.topic = sns.Topic(
            self, "Topic", display_name=f"canarywise {service}", master_key=key, enforce_ssl=True
        )


def _alb_metric(name: str, statistic: str, dimensions: dict[str, str]) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=ALB_NAMESPACE,
        metric_name=name,
        dimensions_map=dimensions,
        statistic=statistic,
        period=Duration.minutes(1),
    )


def error_rate(dimensions: dict[str, str], label: str, variant: str) -> cloudwatch.MathExpression:
    """The 5xx rate of one target group, zero while traffic is below :data:`MIN_REQUESTS_PER_MINUTE`."""
    errors, requests = f"errors_{variant}", f"requests_{variant}"  # ids must differ within one graph
    return cloudwatch.MathExpression(
        expression=f"IF({requests} >= {MIN_REQUESTS_PER_MINUTE}, {errors} / {requests}, 0)",
        using_metrics={
            errors: _alb_metric("HTTPCode_Target_5XX_Count", "Sum", dimensions),
            requests: _alb_metric("RequestCount", "Sum", dimensions),
        },
        label=label,
        period=Duration.minutes(1),
    )


def error_excess(dimensions: dict[str, str], limit: float, label: str) -> cloudwatch.MathExpression:
    """How far a minute's 5xx count lies above what `limit` allows, in standard errors (a z-statistic).

    ``(errors - limit * requests) / sqrt(limit * (1 - limit) * requests)``: a rate just above the limit on
    a few hundred requests is noise, the same rate on many thousands is not. Zero while traffic is below
    :data:`MIN_REQUESTS_PER_MINUTE`.
    """
    errors, requests = "errors_canary", "requests_canary"
    return cloudwatch.MathExpression(
        expression=(
            f"IF({requests} >= {MIN_REQUESTS_PER_MINUTE}, "
            f"({errors} - {limit!r} * {requests}) / SQRT({limit * (1 - limit)!r} * {requests}), 0)"
        ),
        using_metrics={
            errors: _alb_metric("HTTPCode_Target_5XX_Count", "Sum", dimensions),
            requests: _alb_metric("RequestCount", "Sum", dimensions),
        },
        label=label,
        period=Duration.minutes(1),
    )


def p99_latency(dimensions: dict[str, str], label: str | None = None) -> cloudwatch.Metric:
    """p99 ``TargetResponseTime`` of one target group (no label in alarms: it keeps the plain alarm form)."""
    metric = _alb_metric("TargetResponseTime", "p99", dimensions)
    return metric.with_(label=label) if label else metric


def harm_metric(service: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name="StatisticalHarm",
        dimensions_map={"Service": service},
        statistic="Maximum",
        period=Duration.minutes(5),
    )


def function_count(name: str, period: Duration) -> cloudwatch.Metric:
    """The sum of a count our functions publish with Powertools (its namespace, its ``service`` dimension)."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": POWERTOOLS_SERVICE_NAME},
        statistic="Sum",
        period=period,
    )


def slot_dimensions(traffic: TrafficSplit, slot: str) -> dict[str, str]:
    """The ALB metric dimensions of one slot's target group."""
    return {
        "LoadBalancer": traffic.load_balancer_full_name,
        "TargetGroup": traffic.target_group_full_names[slot],
    }


class Alarms(Construct):
    """The metric alarms and the two composites (``critical``, ``warning``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: RolloutSpec,
        traffic: TrafficSplit,
        alert_topic: sns.ITopic,
        rollback_function: lambda_.IFunction,
        significance_function: lambda_.IFunction,
        stage_gate_function: lambda_.IFunction,
        rollback_failures: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        prefix = f"canarywise-{spec.service}"
        critical: list[cloudwatch.IAlarm] = []
        warning: list[cloudwatch.IAlarm] = []

        # One alarm per hard limit and slot: the two target groups take turns holding the candidate, so both
        # are watched. An alarm on either one during a rollout rolls the rollout back (traffic returns to the
        # live slot only); with no rollout in progress the rollback function answers "nothing to roll back"
        # and the alert topic still pages.
        for metric in spec.metrics:
            if not isinstance(metric.source, AlbSource) or metric.hard_limit is None:
                continue
            for slot in traffic.target_group_full_names:
                self._hard_limit_alarms(
                    prefix, metric, slot, slot_dimensions(traffic, slot), critical, warning
                )

        self.harm = cloudwatch.Alarm(
            self,
            "StatisticalHarm",
            alarm_name=f"{prefix}-statistical-harm",
            alarm_description="The significance check proved the canary worse on a safety metric",
            metric=harm_metric(spec.service).with_(period=Duration.seconds(spec.check_interval)),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        critical.append(self.harm)

        interval = Duration.seconds(spec.check_interval)
        checks_failed = function_count("ExperimentChecksFailed", interval)
        # Published by the stage gate (one poll an interval) each time it holds for want of a fresh decision.
        stale_decision = function_count("StaleDecision", interval)
        for construct_id, name, signal, periods, description in (
            (
                "SignificanceCheckErrors",
                "significance-check-errors",
                significance_function.metric_errors(period=interval),
                2,
                "The significance check failed twice in a row: no decisions are being made",
            ),
            (
                "StageGateErrors",
                "stage-gate-errors",
                stage_gate_function.metric_errors(period=interval),
                1,
                "The stage gate failed after its retries: the rollout holds (a control-plane fault is never "
                "taken for harm) until it works again",
            ),
            (
                "ExperimentChecksFailed",
                "experiment-checks-failed",
                checks_failed,
                3,
                "An experiment's check failed 3 times in a row (metrics unreadable, a registry write "
                "refused): its rollout holds on an old decision",
            ),
            (
                "StaleDecision",
                "stale-decision",
                stale_decision,
                3,
                "The stage gate found no fresh decision (none yet, or older than 3 check intervals) 3 "
                "intervals running: the rollout holds unseen; is the significance check running?",
            ),
            (
                "RollbackFailed",
                "rollback-failed",
                rollback_failures.metric_approximate_number_of_messages_visible(period=Duration.minutes(1)),
                1,
                "A rollback invocation failed after its retries: check the rule by hand",
            ),
        ):
            warning.append(
                signal.create_alarm(
                    self,
                    construct_id,
                    alarm_name=f"{prefix}-{name}",
                    alarm_description=description,
                    threshold=1,
                    evaluation_periods=periods,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )

        notify = cloudwatch_actions.SnsAction(alert_topic)
        self.critical = self._composite(
            "Critical",
            f"{prefix}-critical",
            critical,
            "Roll back now: a hard limit is breached or harm is proven",
        )
        self.critical.add_alarm_action(cloudwatch_actions.LambdaAction(rollback_function), notify)
        self.warning = self._composite(
            "Warning",
            f"{prefix}-warning",
            warning,
            "Look: checks failing, a rollback failed, or a limit is near",
        )
        # A warning pauses the rollout (the stage gate takes the lifecycle's ``pause``: the ladder holds at
        # its stage, traffic unchanged) until a person resumes or rolls back; a critical alarm still rolls
        # back while paused.
        self.warning.add_alarm_action(cloudwatch_actions.LambdaAction(stage_gate_function), notify)

    def _hard_limit_alarms(
        self,
        prefix: str,
        metric: Metric,
        slot: str,
        dimensions: dict[str, str],
        critical: list[cloudwatch.IAlarm],
        warning: list[cloudwatch.IAlarm],
    ) -> None:
        """The hard limit (critical) and its "approaching" line (warning) of `metric` on one slot."""
        assert metric.hard_limit is not None
        assert isinstance(metric.source, AlbSource)
        levels = (("hard-limit", 1.0, critical), ("approaching", APPROACHING_FRACTION, warning))
        for level, fraction, sink in levels:
            line = metric.hard_limit * fraction
            which = "the hard limit" if fraction == 1 else "half the hard limit"
            signal: cloudwatch.IMetric
            if metric.source.metric == "http_5xx":
                signal = error_excess(dimensions, line, f"{slot} 5xx excess over {line:g} ({metric.name})")
                threshold = ALARM_Z
                what = f"5xx rate proven above {line:g} ({which}; z >= {ALARM_Z:g})"
            else:
                signal, threshold = p99_latency(dimensions), line
                what = f"above {line:g} s ({which})"
            sink.append(
                cloudwatch.Alarm(
                    self,
                    f"{metric.name}-{level}-{slot}",
                    alarm_name=f"{prefix}-{metric.name}-{level}-{slot}",
                    alarm_description=(
                        f"{metric.name} on target group {slot} {what} in {ALARM_DATAPOINTS} of the last "
                        f"{ALARM_PERIODS} minutes"
                    ),
                    metric=signal,
                    threshold=threshold,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    evaluation_periods=ALARM_PERIODS,
                    datapoints_to_alarm=ALARM_DATAPOINTS,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )

    def _composite(
        self, construct_id: str, name: str, alarms: Sequence[cloudwatch.IAlarm], description: str
    ) -> cloudwatch.CompositeAlarm:
        return cloudwatch.CompositeAlarm(
            self,
            construct_id,
            composite_alarm_name=name,
            alarm_description=description,
            alarm_rule=cloudwatch.AlarmRule.any_of(*alarms),
        )
