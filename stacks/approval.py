"""The release pipeline: release manifest → canary → a person approves → promote to 100%.

:class:`ReleaseStages` adds the three stages to any ``codepipeline.Pipeline`` (a team's own pipeline, after
its build and deploy-canary stages); :class:`ApprovalPipeline` is the stand-alone pipeline with an S3 source.

The release manifest is the canary execution's input (notes/contracts.md)::

    {"release": {"candidate": "v42", "release_id": "2026-11-22-1"}, "timing": {"check_interval_seconds": 300}}

uploaded as ``release.json`` inside ``release.zip`` to the release bucket (``aws s3 cp release.zip
s3://<ReleaseBucket>/release.zip`` starts a release). The canary action runs until the ladder is done
(or fails on rollback); the approval names the canary execution and links the dashboard; rejecting it rolls
the canary back (stacks/rollback.py); approving runs the promote state machine, which reads the experiment id
from the canary execution's output.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from canarywise.data.executions import APPROVAL_ACTION, APPROVAL_STAGE
from canarywise.spec import RolloutSpec

from .nag import acknowledge, logical_id, split_arn_finding

CANARY_STAGE, PROMOTE_STAGE = "Canary", "Promote"
RELEASE_OBJECT_KEY = "release.zip"
RELEASE_MANIFEST = "release.json"


def approval_message(spec: RolloutSpec) -> str:
    """What the approver reads: the ladder that was passed, the rule that was applied, where to look."""
    ladder = " → ".join(f"{s.percent:g}% (≥ {s.min_duration / 3600:g} h)" for s in spec.stages)
    guarded = ", ".join(m.name for m in spec.metrics if m.role.value in {"guardrail", "safety"})
    return (
        f"canarywise {spec.service}: the canary passed every stage ({ladder}) with no rollback: no harm "
        f"proven at alpha {spec.statistics.alpha:g} on {guarded}, no hard limit breached, sample ratio "
        "consistent. Approve to send 100% of traffic to the candidate; reject to roll it back. "
        "Decisions, p-values and intervals: the dashboard (link) and `canarywise status`. "
        "Canary execution: #{" + CANARY_STAGE + ".ExecutionArn}"
    )


class ReleaseStages:
    """Canary (Step Functions) → manual approval → promote (Step Functions), for any pipeline.

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
    ) -> None:
        self.canary = canary
        self.promote = promote
        self.alert_topic = alert_topic
        self.dashboard_url = dashboard_url
        self.message = message

    def add_to(self, pipeline: codepipeline.Pipeline, release: codepipeline.Artifact) -> None:
        """Append the three stages; `release` holds ``release.json``, the canary execution's input."""
        pipeline.add_stage(
            stage_name=CANARY_STAGE,
            actions=[
                actions.StepFunctionInvokeAction(
                    action_name="RunCanary",
                    state_machine=self.canary,
                    state_machine_input=actions.StateMachineInput.file_path(
                        release.at_path(RELEASE_MANIFEST)
                    ),
                    variables_namespace=CANARY_STAGE,
                )
            ],
        )
        pipeline.add_stage(
            stage_name=APPROVAL_STAGE,
            actions=[
                actions.ManualApprovalAction(
                    action_name=APPROVAL_ACTION,
                    notification_topic=self.alert_topic,
                    additional_information=self.message,
                    external_entity_link=self.dashboard_url,
                    timeout=Duration.days(3),
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
        stages.add_to(self.pipeline, release)
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
