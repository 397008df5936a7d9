"""The significance check: one Lambda, every check interval, evaluating every running experiment.

EventBridge Scheduler invokes it with an event shaped like a scheduled EventBridge event; its ``time`` is the
schedule's scheduled time, which the handler uses as "now" (so a simulation can replay time).
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from constructs import Construct

from .functions import METRICS_NAMESPACE, FunctionFactory
from .nag import acknowledge, logical_id
from .registry import RUNNING_INDEX, grant_registry
from .traffic import TrafficSplit

HANDLER = "canarywise.handlers.significance_check.handler"


class SignificanceCheck(Construct):
    """The check function and its schedule.

    Its role may read CloudWatch metrics (``GetMetricData``), read and write the registry, and publish
    metrics to the ``Canarywise`` namespace only (``StatisticalHarm``, which the alarms watch).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionFactory,
        registry: dynamodb.Table,
        traffic: TrafficSplit,
        check_interval_minutes: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = functions.function(
            self,
            "Function",
            handler=HANDLER,
            description="Tests canary vs control on every running experiment; writes checks and decisions",
            environment=traffic.metrics_environment(),
            # Works on aggregates, so its cost does not grow with traffic; well inside one interval.
            timeout=Duration.seconds(min(120, 60 * check_interval_minutes)),
            memory_size=1024,  # more memory = more CPU: scipy imports faster on a cold start
            retry_attempts=0,  # a retried check is stale; the next interval's check replaces it
        )
        role = self.function.role
        assert role is not None
        # Reads experiments (by key and through the running index) and writes only experiment items: its
        # checks, their latest decision, frozen stages; and shadow phases' looks (SHADOW#, docs/shadow.md).
        # Never the service's state or rollback history.
        grant_registry(role, registry, write_keys=["EXP#*", "SHADOW#*"], indexes=[RUNNING_INDEX])
        grant_cloudwatch(role)
        # Fan-out (fault table, row 13): a tick with more running experiments than one invocation checks
        # hands the rest to further invocations of this function. A policy of its own, not the role's
        # default one, which the function depends on (a reference to its own ARN there is a cycle).
        iam.Policy(
            self,
            "FanOut",
            roles=[role],
            statements=[
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.function.function_arn])
            ],
        )
        self.schedule = scheduled_invoke(
            self, self.function, minutes=check_interval_minutes, what="significance check"
        )


def grant_cloudwatch(role: iam.IRole) -> None:
    """Read the service's metrics (GetMetricData, and ListMetrics for slice values) and publish to the
    ``Canarywise`` namespace only."""
    role.add_to_principal_policy(
        # ListMetrics: the slice values (e.g. each Intent) the service emitted, to test per slice.
        iam.PolicyStatement(actions=["cloudwatch:GetMetricData", "cloudwatch:ListMetrics"], resources=["*"])
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
        )
    )
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "cloudwatch:GetMetricData, ListMetrics (slice values) and PutMetricData have no resource-level "
        "permissions; PutMetricData is limited to the Canarywise namespace by condition. X-Ray (tracing) "
        "likewise has none.",
    )


def scheduled_invoke(
    scope: Construct, function: lambda_.Function, *, minutes: int, what: str
) -> scheduler.Schedule:
    """Invoke `function` every `minutes` with a scheduled event whose ``time`` is the scheduled time (the
    handler's "now"); no retries, and a missed event is dropped after the interval less a minute."""
    return scheduler.Schedule(
        scope,
        "Schedule",
        description=f"canarywise {what} every {minutes} minutes",
        schedule=scheduler.ScheduleExpression.rate(Duration.minutes(minutes)),
        target=scheduler_targets.LambdaInvoke(
            function,
            input=scheduler.ScheduleTargetInput.from_object(
                {
                    "source": "aws.scheduler",
                    "detail-type": "Scheduled Event",
                    "time": scheduler.ContextAttribute.scheduled_time,
                    "resources": [scheduler.ContextAttribute.schedule_arn],
                    "detail": {},
                }
            ),
            role=_scheduler_role(scope, function, what),
            retry_attempts=0,
            max_event_age=Duration.minutes(max(1, minutes - 1)),
        ),
    )


def _scheduler_role(scope: Construct, function: lambda_.Function, what: str) -> iam.Role:
    """The schedule's role: ours, not CDK's stack-wide singleton, so the acknowledgement sits on it."""
    stack = Stack.of(scope)
    role = iam.Role(
        scope,
        "ScheduleRole",
        assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
        ),
        description=f"EventBridge Scheduler: invoke the canarywise {what}",
    )
    acknowledge(
        role,
        f"AwsSolutions-IAM5[Resource::<{logical_id(function)}.Arn>:*]",
        f"CDK grants invoke on the {what} function and its versions (ARN suffix :*); this one function only.",
    )
    return role
