"""The rollback function: takes the rollback, stops its execution, all traffic to the live slot (read back),
records, notifies; and rejects the pending approval, so a stale click cannot promote (docs/lifecycle.md).

It is invoked asynchronously by the critical composite alarm (Lambda alarm action), by an EventBridge rule
when a person rejects the CodePipeline approval, by the canary state machine, and by ``canarywise rollback``.
The handler is idempotent; reserved concurrency keeps capacity for it even when the account's concurrency
is exhausted (which is often *why* a release is failing), and failed asynchronous invocations land in a
queue an operator is alarmed on instead of disappearing.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .functions import FunctionFactory
from .nag import acknowledge, arn_finding
from .progression import states_arn
from .registry import grant_registry
from .traffic import TrafficSplit

HANDLER = "canarywise.handlers.rollback.handler"
# Enough for the alarm, the state machine and a person acting within the same minute; the handler is
# idempotent, so concurrent invocations are safe, and more would only contend on the same conditional write.
RESERVED_CONCURRENCY = 5


class Rollback(Construct):
    """The rollback function, its failure queue, and (via :meth:`on_rejected_approval`) the approval rule."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionFactory,
        registry: dynamodb.Table,
        traffic: TrafficSplit,
        alert_topic: sns.ITopic,
        canary_state_machine_name: str,
        service: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.failures = sqs.Queue(
            self,
            "FailedInvocations",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.failures,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter destination of the rollback function's failed invocations.",
        )
        # Named, not referenced: the state machine invokes this function, so a reference would be a cycle.
        state_machine_arn = states_arn(self, "stateMachine", canary_state_machine_name)
        executions_arn = states_arn(self, "execution", f"{canary_state_machine_name}:*")
        self.function = functions.function(
            self,
            "Function",
            handler=HANDLER,
            description="Takes the rollback, stops its execution, all traffic to the live slot, verifies",
            environment=traffic.function_environment()
            | {"STATE_MACHINE_ARN": state_machine_arn, "ALERT_TOPIC_ARN": alert_topic.topic_arn},
            timeout=Duration.seconds(60),
            reserved_concurrent_executions=RESERVED_CONCURRENCY,
            on_failure=destinations.SqsDestination(self.failures),
            retry_attempts=2,
        )
        role = self.function.role
        assert role is not None
        # Writes the experiment's status and rollback record and the service's state and history.
        grant_registry(role, registry, write_keys=["EXP#*", f"SERVICE#{service}"])
        alert_topic.grant_publish(role)
        traffic.grant_set_traffic(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["states:StopExecution", "states:DescribeExecution"], resources=[executions_arn]
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "elasticloadbalancing:DescribeRules and the X-Ray tracing actions have no resource-level "
            "permissions.",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "Publishing to the SSE-encrypted alert topic needs kms:GenerateDataKey* on that topic's own key "
            "only.",
        )
        acknowledge(
            role,
            arn_finding(self, "states", f"execution:{canary_state_machine_name}:*"),
            "Stops whichever execution of the canary state machine is running: execution names are not known "
            "in advance; the wildcard is limited to that one state machine's executions.",
        )

    def on_rejected_approval(
        self, pipeline: codepipeline.Pipeline, stage_name: str, action_name: str
    ) -> None:
        """Invoke the rollback when a person rejects `action_name` (the manual approval) of `pipeline`; and
        let every rollback reject that approval while it waits, so a stale click cannot promote."""
        assert isinstance(self.function, lambda_.Function)
        # Named, not referenced: the pipeline runs the canary state machine, which invokes this function.
        cfn = pipeline.node.default_child
        assert isinstance(cfn, codepipeline.CfnPipeline)
        assert isinstance(cfn.name, str)
        name = cfn.name
        pipeline_arn = Stack.of(self).format_arn(service="codepipeline", resource=name)
        self.function.add_environment("PIPELINE_NAME", name)
        role = self.function.role
        assert role is not None
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["codepipeline:GetPipelineState", "codepipeline:PutApprovalResult"],
                resources=[pipeline_arn, f"{pipeline_arn}/{stage_name}/{action_name}"],
            )
        )
        events.Rule(
            self,
            "ApprovalRejected",
            description="A rejected canarywise approval rolls the canary back",
            event_pattern=events.EventPattern(
                source=["aws.codepipeline"],
                detail_type=["CodePipeline Action Execution State Change"],
                detail={
                    "pipeline": [pipeline.pipeline_name],
                    "stage": [stage_name],
                    "action": [action_name],
                    "state": ["FAILED"],
                    "type": {"category": ["Approval"]},
                },
            ),
            targets=[
                events_targets.LambdaFunction(
                    self.function,
                    dead_letter_queue=self.failures,
                    retry_attempts=4,
                    max_event_age=Duration.hours(1),
                )
            ],
        )
