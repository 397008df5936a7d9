"""The release pipeline: release manifest → canary → a person approves → promote to 100%.

:class:`ReleaseStages` adds the three stages to any ``codepipeline.Pipeline`` (a team's own pipeline, after
its build and deploy-canary stages); :class:`ApprovalPipeline` is the stand-alone pipeline with an S3 source.

The release manifest is the canary execution's input (notes/contracts.md)::

    {"release": {"candidate": "v42", "release_id": "2026-11-22-1"}, "timing": {"check_interval_seconds": 300}}

uploaded as ``release.json`` inside ``release.zip`` to the release bucket (``aws s3 cp release.zip
s3://<ReleaseBucket>/release.zip`` starts a release). The canary action runs until the ladder is done
(or fails on rollback); rejecting the approval rolls the canary back (stacks/rollback.py); approving runs the
promote state machine, which reads the experiment id from the canary execution's output.

The approval action's text and link are fixed at deploy time (CodePipeline resolves only pipeline variables in
them), so they carry no numbers: the link is the service's stable "latest approval report" in the release
bucket, which the canary's ``ready`` step (over)writes with this release's report, and the same step publishes
the numbers to the alert topic, the approval's notification topic (docs/report.md).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from canarywise.data.executions import APPROVAL_ACTION, APPROVAL_STAGE
from canarywise.data.reports import HTML_NAME, REPORTS_PREFIX, console_link, latest_report_prefix
from canarywise.spec import RolloutSpec
from canarywise.spec.deployable import waits_for_canary

from .functions import FunctionFactory
from .nag import acknowledge, logical_id, split_arn_finding

CANARY_STAGE, PROMOTE_STAGE = "Canary", "Promote"
RELEASE_OBJECT_KEY = "release.zip"
RELEASE_MANIFEST = "release.json"
CANARY_STARTER_HANDLER = "canarywise.handlers.pipeline_start.handler"


def approval_message(spec: RolloutSpec) -> str:
    """What the approver reads (fixed at deploy time: no numbers, no claim about any one metric)."""
    ladder = " → ".join(f"{s.percent:g}%" for s in spec.stages)
    return (
        f"canarywise {spec.service}: the canary met every stage's gate ({ladder}). This release's numbers "
        "(each gate's bound vs its margin, sample ratio, stages, slices that moved) are in the approval "
        "report (link) and the ready-for-approval message on this topic. Approve: 100% to the candidate; "
        "reject: roll it back. Canary execution: #{" + CANARY_STAGE + ".ExecutionArn}"
    )


def latest_report_link(bucket: s3.IBucket, service: str) -> str:
    """The S3 console page of the service's latest approval report (the ``ready`` step writes it)."""
    key = latest_report_prefix(service) + HTML_NAME
    return console_link(bucket.bucket_name, key, Stack.of(bucket).region)


def canary_starter(
    scope: Construct, spec: RolloutSpec, functions: FunctionFactory, canary: sfn.IStateMachine
) -> lambda_.Function | None:
    """The Canary action's function for a ladder the pipeline cannot wait for (None: it can): it starts
    the canary execution and reports the action done (``canarywise.handlers.pipeline_start``)."""
    if waits_for_canary(spec):
        return None
    function = functions.function(
        scope,
        "CanaryStarter",
        handler=CANARY_STARTER_HANDLER,
        description="Starts the canary execution of a long ladder for the pipeline, without waiting",
        environment={"CANARY_STATE_MACHINE_ARN": canary.state_machine_arn},
        timeout=Duration.seconds(30),
    )
    canary.grant_start_execution(function)
    assert function.role is not None
    acknowledge(
        function.role,
        "AwsSolutions-IAM5[Resource::*]",
        "codepipeline:PutJobSuccessResult/PutJobFailureResult (as CDK's LambdaInvokeAction grants them) and "
        "the X-Ray tracing actions have no resource-level permissions.",
    )
    return function


class ReleaseStages:
    """Canary (Step Functions) → manual approval → promote (Step Functions), for any pipeline.

    With `canary_starter` (a ladder longer than the Step Functions action can wait) the Canary action only
    starts the execution and the approval waits for the ladder, its timeout `approval_timeout`.

    Example
    -------
    >>> stages = ReleaseStages(canary=canary_sm, promote=promote_sm, alert_topic=topic,
    ...                        dashboard_url=url, message=approval_message(spec))
    >>> stages.add_to(my_pipeline, release_manifest_artifact)
    """

    def __init__(
        self,
        *,
        canary: sfn.IStateMachine,
        promote: sfn.IStateMachine,
        alert_topic: sns.ITopic,
        dashboard_url: str,
        message: str,
        canary_starter: lambda_.IFunction | None = None,
        approval_timeout: Duration | None = None,
    ) -> None:
        """`approval_timeout`: the manual approval's (default 3 days)."""
        self.canary_starter = canary_starter
        self.approval_timeout = approval_timeout or Duration.days(3)
        self.canary = canary
        self.promote = promote
        self.alert_topic = alert_topic
        self.dashboard_url = dashboard_url
        self.message = message

    def add_to(
        self,
        pipeline: codepipeline.Pipeline,
        release: codepipeline.Artifact,
        *,
        report_link: str | None = None,
    ) -> None:
        """Append the three stages; `release` holds ``release.json``, the canary execution's input.

        `report_link` is the approval's link (default: the dashboard).
        """
        run_canary: codepipeline.IAction = actions.StepFunctionInvokeAction(
            action_name="RunCanary",
            state_machine=self.canary,
            state_machine_input=actions.StateMachineInput.file_path(release.at_path(RELEASE_MANIFEST)),
            variables_namespace=CANARY_STAGE,
        )
        if self.canary_starter is not None:
            run_canary = actions.LambdaInvokeAction(
                action_name="StartCanary",
                lambda_=self.canary_starter,
                inputs=[release],
                variables_namespace=CANARY_STAGE,
            )
        pipeline.add_stage(stage_name=CANARY_STAGE, actions=[run_canary])
        pipeline.add_stage(
            stage_name=APPROVAL_STAGE,
            actions=[
                actions.ManualApprovalAction(
                    action_name=APPROVAL_ACTION,
                    notification_topic=self.alert_topic,
                    additional_information=self.message,
                    external_entity_link=report_link or self.dashboard_url,
                    timeout=self.approval_timeout,
                )
            ],
        )
        pipeline.add_stage(
            stage_name=PROMOTE_STAGE,
            actions=[
                actions.StepFunctionInvokeAction(
                    action_name="Promote",
                    state_machine=self.promote,
                    state_machine_input=actions.StateMachineInput.literal(
                        {"canary_execution_arn": "#{" + CANARY_STAGE + ".ExecutionArn}"}
                    ),
                )
            ],
        )
        for machine in (self.canary, self.promote):
            acknowledge(
                pipeline,
                split_arn_finding(machine, "states", "execution"),
                "The Step Functions action polls the execution it started (states:DescribeExecution); "
                "execution names are chosen at run time; limited to this one state machine's executions.",
            )
        if self.canary_starter is not None:
            reason = (
                "CDK's LambdaInvokeAction grants the action role lambda:ListFunctions (no resource-level "
                "permission) and lambda:InvokeFunction on the canary starter function and its versions (:*)."
            )
            acknowledge(pipeline, "AwsSolutions-IAM5[Resource::*]", reason)
            acknowledge(
                pipeline, f"AwsSolutions-IAM5[Resource::<{logical_id(self.canary_starter)}.Arn>:*]", reason
            )
        acknowledge(
            pipeline,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "The approval notification is published to the SSE-encrypted alert topic: GenerateDataKey* "
            "on that topic's own key only.",
        )


def acknowledge_artifact_access(pipeline: codepipeline.Pipeline) -> None:
    """CDK grants the pipeline and its action roles object access in the pipeline's own artifact bucket."""
    reason = (
        "CDK's standard CodePipeline grant: read/write of objects in this pipeline's own artifact bucket "
        "(s3:GetObject*, GetBucket*, List*, DeleteObject*, Abort* on <bucket>/*), nothing else."
    )
    for finding in ("Action::s3:Abort*", "Action::s3:DeleteObject*", "Action::s3:GetBucket*",
                    "Action::s3:GetObject*", "Action::s3:List*",
                    f"Resource::<{logical_id(pipeline.artifact_bucket)}.Arn>/*"):  # fmt: skip
        acknowledge(pipeline, f"AwsSolutions-IAM5[{finding}]", reason)


class ApprovalPipeline(Construct):
    """A stand-alone release pipeline: an upload of ``release.zip`` to :attr:`release_bucket` starts it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: RolloutSpec,
        stages: ReleaseStages,
        release_bucket: s3.IBucket | None = None,
    ) -> None:
        """`release_bucket`: a team's own (versioned; an imported one must have EventBridge notifications
        on, which a bucket created in the same app gets here); default: a new one."""
        super().__init__(scope, construct_id)
        access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            access_logs,
            "AwsSolutions-S1",
            "This is the access-log bucket of the release and artifact buckets; logging it to itself "
            "would loop.",
        )
        self.release_bucket = release_bucket or self._bucket("Releases", access_logs, "releases/")
        # S3 → EventBridge directly (no CloudTrail trail needed, no polling).
        cfn_bucket = self.release_bucket.node.default_child
        if isinstance(cfn_bucket, s3.CfnBucket):
            cfn_bucket.add_property_override(
                "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True
            )

        release = codepipeline.Artifact("Release")
        self.pipeline = codepipeline.Pipeline(
            self,
            "Pipeline",
            pipeline_name=f"canarywise-{spec.service}",
            pipeline_type=codepipeline.PipelineType.V2,
            artifact_bucket=self._bucket("Artifacts", access_logs, "artifacts/"),
            cross_account_keys=False,
            restart_execution_on_update=False,
        )
        self.pipeline.add_stage(
            stage_name="Release",
            actions=[
                actions.S3SourceAction(
                    action_name="ReleaseManifest",
                    bucket=self.release_bucket,
                    bucket_key=RELEASE_OBJECT_KEY,
                    output=release,
                    trigger=actions.S3Trigger.NONE,  # the EventBridge rule below starts it
                )
            ],
        )
        stages.add_to(
            self.pipeline, release, report_link=latest_report_link(self.release_bucket, spec.service)
        )
        acknowledge_artifact_access(self.pipeline)
        events.Rule(
            self,
            "OnRelease",
            description=f"Start the canarywise {spec.service} pipeline when a release manifest is uploaded",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [self.release_bucket.bucket_name]},
                    "object": {"key": [RELEASE_OBJECT_KEY]},
                },
            ),
            targets=[events_targets.CodePipeline(self.pipeline)],
        )

    def grant_report_writer(self, function: lambda_.Function, topic: sns.ITopic) -> None:
        """Let `function` (the stage gate's ``ready`` step) put reports under ``reports/`` and publish to
        `topic`; it finds both in ``REPORT_BUCKET`` and ``ALERT_TOPIC_ARN``."""
        function.add_environment("REPORT_BUCKET", self.release_bucket.bucket_name)
        function.add_environment("ALERT_TOPIC_ARN", topic.topic_arn)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[self.release_bucket.arn_for_objects(f"{REPORTS_PREFIX}*")],
            )
        )
        topic.grant_publish(function)
        assert function.role is not None
        bucket_arn = (
            f"<{logical_id(self.release_bucket)}.Arn>"
            if isinstance(self.release_bucket, s3.Bucket)
            else self.release_bucket.bucket_arn  # a team's own bucket, imported: its ARN is a literal
        )
        acknowledge(
            function.role,
            f"AwsSolutions-IAM5[Resource::{bucket_arn}/{REPORTS_PREFIX}*]",
            "The ready step writes each experiment's approval report under reports/<experiment id>/ and the "
            "service's latest one under reports/<service>/latest-approval/: PutObject under reports/ only.",
        )
        acknowledge(
            function.role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "Publishing the approval summary to the SSE-encrypted alert topic needs kms:GenerateDataKey* on "
            "that topic's own key only.",
        )

    def _bucket(self, construct_id: str, access_logs: s3.IBucket, prefix: str) -> s3.Bucket:
        return s3.Bucket(
            self,
            construct_id,
            versioned=True,  # the S3 source action requires it; it also keeps every release manifest
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=prefix,
            removal_policy=RemovalPolicy.RETAIN,
        )
