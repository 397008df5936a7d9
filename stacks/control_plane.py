"""``CanaryControlPlane``: canary control for one service, added to any CDK stack (docs/construct.md).

A platform team passes its listener and two target groups as CDK objects (imported or created in the same
app), the rollout spec (a file, its data or a parsed :class:`RolloutSpec`) and, optionally, what it owns
already: the SNS topic, the release pipeline (or none yet: :meth:`CanaryControlPlane.add_to_pipeline` later)
and the release bucket. The construct adds the rest: registry, functions, state machines, alarms, schedule,
dashboard. Each capability stays its own construct (``stacks/<capability>.py``); this module only composes.

Example
-------
>>> plane = CanaryControlPlane(stack, "Canary", spec="config/shop.yaml", listener=listener,
...                            target_groups={"blue": blue, "green": green}, alert_topic=oncall)
>>> plane.canary.state_machine_arn  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Tags
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from canarywise.data.executions import APPROVAL_ACTION, APPROVAL_STAGE
from canarywise.spec import RolloutSpec, SpecError, parse_spec
from canarywise.spec.deployable import approval_timeout, synth_problems
from canarywise.spec.loading import read_spec_data

from .alarms import Alarms, AlertTopic
from .approval import ApprovalPipeline, ReleaseStages, approval_message, canary_starter
from .dashboard import Dashboard
from .functions import FunctionFactory, bundle_code
from .monitor import add_monitor
from .progression import Progression, state_machine_names
from .registry import Registry
from .rollback import Rollback
from .significance import SignificanceCheck
from .traffic import TrafficSplit

SpecSource = RolloutSpec | str | os.PathLike[str] | Mapping[str, Any]
# The spec's traffic fields the CDK objects replace.
_TRAFFIC_ARN_FIELDS = ("create_demo", "listener_arn", "target_groups", "control_target_group_arn",
                       "canary_target_group_arn")  # fmt: skip


def resolve_spec(
    spec: SpecSource,
    *,
    listener_arn: str | None = None,
    target_group_arns: Mapping[str, str] | None = None,
) -> RolloutSpec:
    """The spec the stack is built from, checked for synth (:class:`SpecError` lists every problem).

    With `listener_arn` and `target_group_arns` (possibly CDK tokens) the spec's own traffic ARNs are
    replaced: a spec file for the construct may leave them out. The ARNs stay in the spec the canary
    execution carries, so the registry records where the split was.
    """
    source = "rollout spec"
    if isinstance(spec, str | os.PathLike):
        source = str(spec)
        spec = read_spec_data(Path(spec))
    adopted: dict[str, Any] = {}
    if listener_arn is not None and target_group_arns is not None:
        adopted = {"listener_arn": listener_arn, "target_groups": dict(target_group_arns)}
    if isinstance(spec, RolloutSpec):
        parsed = spec
        if adopted:
            cleared = dict.fromkeys(_TRAFFIC_ARN_FIELDS) | {"create_demo": False} | adopted
            parsed = spec.model_copy(update={"traffic": spec.traffic.model_copy(update=cleared)})
    else:
        data = dict(spec) if isinstance(spec, Mapping) else spec  # not a mapping: parse_spec says so
        if adopted and isinstance(data, dict):
            kept = {k: v for k, v in dict(data.get("traffic") or {}).items() if k not in _TRAFFIC_ARN_FIELDS}
            data["traffic"] = kept | adopted
        parsed = parse_spec(data, source=source)
    problems = synth_problems(parsed, source)
    if problems:
        raise SpecError("\n".join(problems))
    return parsed


class CanaryControlPlane(Construct):
    """Registry, traffic rule, significance check and its schedule, stage gate, state machines, rollback,
    alarms, dashboard and (unless ``create_pipeline=False``) the release pipeline, for one service.

    Parameters
    ----------
    spec:
        the rollout spec: a path, its data, or a parsed :class:`RolloutSpec`.
    listener, target_groups:
        the ALB listener the weighted rule goes on and the two target groups by slot name (the ``Variant``
        value the service's tasks in each group emit, e.g. ``{"blue": …, "green": …}``). Both or neither;
        neither: the spec's ``traffic`` ARNs (or its demo ALB).
    alert_topic:
        the team's SNS topic for alarms, rollbacks and approvals (its key, if any, must let CloudWatch
        use it); default: a new KMS-encrypted topic.
    pipeline, release_artifact:
        the team's pipeline and the artifact holding ``release.json``: the canary, approval and promote
        stages are appended to it (:meth:`add_to_pipeline`). The pipeline needs a literal
        ``pipeline_name``.
    create_pipeline:
        without `pipeline`: create the stand-alone release pipeline (default) or none
        (call :meth:`add_to_pipeline` later).
    release_bucket:
        the stand-alone pipeline's source bucket, if the team has one (versioned, EventBridge on).
    outputs:
        add the stack outputs the CLI reads (``RegistryTableName``, ``RollbackFunctionName``, …) under
        fixed keys: one construct per stack then. ``False`` for a second one.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: SpecSource,
        listener: elbv2.IApplicationListener | None = None,
        target_groups: Mapping[str, elbv2.ITargetGroup] | None = None,
        alert_topic: sns.ITopic | None = None,
        pipeline: codepipeline.Pipeline | None = None,
        release_artifact: codepipeline.Artifact | None = None,
        create_pipeline: bool = True,
        release_bucket: s3.IBucket | None = None,
        outputs: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        if (listener is None) != (target_groups is None):
            raise SpecError("CanaryControlPlane: give both listener and target_groups, or neither")
        if (pipeline is None) != (release_artifact is None):
            raise SpecError("CanaryControlPlane: give both pipeline and release_artifact, or neither")
        self.spec = resolve_spec(
            spec,
            listener_arn=listener.listener_arn if listener is not None else None,
            target_group_arns={s: g.target_group_arn for s, g in (target_groups or {}).items()} or None,
        )
        spec = self.spec
        self.registry = Registry(self, "Registry")
        self.traffic = TrafficSplit(
            self, "Traffic", spec=spec, listener=listener, target_groups=target_groups
        )
        self.alert_topic = alert_topic or AlertTopic(self, "Alerts", service=spec.service).topic
        functions = FunctionFactory(
            code=bundle_code(),
            environment={"REGISTRY_TABLE": self.registry.table.table_name, "SERVICE": spec.service},
        )
        canary_name, _ = state_machine_names(spec.service)
        self.rollback = Rollback(
            self,
            "Rollback",
            functions=functions,
            registry=self.registry.table,
            traffic=self.traffic,
            alert_topic=self.alert_topic,
            canary_state_machine_name=canary_name,
            service=spec.service,
        )
        self.significance = SignificanceCheck(
            self,
            "SignificanceCheck",
            functions=functions,
            registry=self.registry.table,
            traffic=self.traffic,
            check_interval_minutes=spec.check_interval // 60,
        )
        self.progression = Progression(
            self,
            "Progression",
            spec=spec,
            functions=functions,
            registry=self.registry.table,
            traffic=self.traffic,
            rollback_function=self.rollback.function,
        )
        self.alarms = Alarms(
            self,
            "Alarms",
            spec=spec,
            traffic=self.traffic,
            alert_topic=self.alert_topic,
            rollback_function=self.rollback.function,
            significance_function=self.significance.function,
            stage_gate_function=self.progression.stage_gate,
            rollback_failures=self.rollback.failures,
        )
        self.dashboard = Dashboard(
            self,
            "Dashboard",
            spec=spec,
            traffic=self.traffic,
            alarms=self.alarms,
            canary=self.progression.canary,
            significance_function=self.significance.function,
        )
        # The drift monitor after promotion, when the spec has a monitor block (stacks/monitor.py).
        self.monitor = add_monitor(
            self, spec, functions, self.registry.table, self.alert_topic, self.dashboard
        )
        self.release_stages = ReleaseStages(
            canary=self.progression.canary,
            promote=self.progression.promote,
            alert_topic=self.alert_topic,
            dashboard_url=self.dashboard.url,
            message=approval_message(spec),
            canary_starter=canary_starter(self, spec, functions, self.progression.canary),
            approval_timeout=Duration.minutes(int(approval_timeout(spec).total_seconds() // 60)),
        )
        self.pipeline: codepipeline.Pipeline | None = None
        self.release_bucket: s3.IBucket | None = None
        if pipeline is not None and release_artifact is not None:
            self.add_to_pipeline(pipeline, release_artifact)
        elif create_pipeline:
            approval = ApprovalPipeline(
                self, "Approval", spec=spec, stages=self.release_stages, release_bucket=release_bucket
            )
            self.release_bucket = approval.release_bucket
            self._wire_rejection(approval.pipeline)
            approval.grant_report_writer(self.progression.stage_gate, self.alert_topic)

        Tags.of(self).add("canarywise:service", spec.service)
        Tags.of(self).add("canarywise:component", "control-plane")
        if outputs:
            self._outputs()

    def _outputs(self) -> None:
        """Stack outputs under fixed keys: the CLI (``--stack``) and local mode read them by name."""
        values = [
            ("RegistryTableName", self.registry.table.table_name, "the experiment registry (REGISTRY_TABLE)"),
            ("CanaryStateMachineArn", self.canary.state_machine_arn, "runs the stage ladder"),
            ("PromoteStateMachineArn", self.promote.state_machine_arn, "sends 100% and concludes"),
            ("RollbackFunctionName", self.rollback.function.function_name, "canarywise rollback invokes it"),
            ("ListenerRuleArn", self.traffic.listener_rule_arn, "the weighted rule the canary moves"),
        ]
        if self.release_bucket is not None:
            values.append(
                ("ReleaseBucketName", self.release_bucket.bucket_name, "upload release.zip here to release")
            )
        if self.pipeline is not None:
            values.append(("PipelineName", self.pipeline.pipeline_name, "canary → approval → promote"))
        values += [
            ("AlertTopicArn", self.alert_topic.topic_arn, "subscribe the on-call here"),
            ("DashboardUrl", self.dashboard.url, "variants side by side, decisions, p-values"),
        ]
        for key, value, description in values:
            CfnOutput(self, key, key=key, value=value, description=description)

    @property
    def canary(self) -> sfn.StateMachine:
        """The canary state machine (runs the stage ladder)."""
        return self.progression.canary

    @property
    def promote(self) -> sfn.StateMachine:
        """The promote state machine (sends 100% to the candidate and concludes)."""
        return self.progression.promote

    def add_to_pipeline(self, pipeline: codepipeline.Pipeline, release: codepipeline.Artifact) -> None:
        """Append canary → approval → promote to the team's `pipeline` (after its own build and deploy
        stages); `release` holds ``release.json``. A rejected approval rolls the canary back."""
        if self.pipeline is not None:
            raise SpecError("CanaryControlPlane: the release stages are already in a pipeline")
        self.release_stages.add_to(pipeline, release)
        self._wire_rejection(pipeline)

    def _wire_rejection(self, pipeline: codepipeline.Pipeline) -> None:
        cfn = pipeline.node.default_child
        if not isinstance(cfn, codepipeline.CfnPipeline) or not isinstance(cfn.name, str):
            raise SpecError(
                "CanaryControlPlane: the pipeline needs a literal pipeline_name (the rollback names it; a "
                "reference would be a dependency cycle)"
            )
        self.pipeline = pipeline
        self.rollback.on_rejected_approval(pipeline, APPROVAL_STAGE, APPROVAL_ACTION)
