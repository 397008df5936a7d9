"""The canarywise stack for one service: composes the constructs, tags them, exports what operators need.

One stack per rollout spec (``-c spec=config/<service>.yaml``), named ``canarywise-<service>``.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack, Tags
from constructs import Construct

from canarywise.data.executions import APPROVAL_ACTION, APPROVAL_STAGE
from canarywise.spec import RolloutSpec
from stacks.alarms import Alarms, AlertTopic
from stacks.approval import ApprovalPipeline, ReleaseStages, approval_message
from stacks.dashboard import Dashboard
from stacks.functions import FunctionFactory, bundle_code
from stacks.progression import Progression, state_machine_names
from stacks.registry import Registry
from stacks.rollback import Rollback
from stacks.significance import SignificanceCheck
from stacks.traffic import TrafficSplit


class CanarywiseStack(Stack):
    """Traffic split, registry, significance check, progression, alarms, rollback, approval, dashboard."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: RolloutSpec) -> None:
        env = spec.environment
        super().__init__(
            scope,
            construct_id,
            description=f"canarywise control plane for {spec.service}: staged canary with statistical gates",
            env=Environment(account=env.account, region=env.region) if env.account or env.region else None,
            tags={"canarywise:service": spec.service},
        )
        registry = Registry(self, "Registry")
        traffic = TrafficSplit(self, "Traffic", spec=spec)
        alerts = AlertTopic(self, "Alerts", service=spec.service)
        functions = FunctionFactory(
            code=bundle_code(),
            environment={"REGISTRY_TABLE": registry.table.table_name, "SERVICE": spec.service},
        )
        canary_name, _ = state_machine_names(spec.service)
        rollback = Rollback(
            self,
            "Rollback",
            functions=functions,
            registry=registry.table,
            traffic=traffic,
            alert_topic=alerts.topic,
            canary_state_machine_name=canary_name,
            service=spec.service,
        )
        significance = SignificanceCheck(
            self,
            "SignificanceCheck",
            functions=functions,
            registry=registry.table,
            traffic=traffic,
            check_interval_minutes=spec.check_interval // 60,
        )
        progression = Progression(
            self,
            "Progression",
            spec=spec,
            functions=functions,
            registry=registry.table,
            traffic=traffic,
            rollback_function=rollback.function,
        )
        alarms = Alarms(
            self,
            "Alarms",
            spec=spec,
            traffic=traffic,
            alert_topic=alerts.topic,
            rollback_function=rollback.function,
            significance_function=significance.function,
            stage_gate_function=progression.stage_gate,
            rollback_failures=rollback.failures,
        )
        dashboard = Dashboard(
            self,
            "Dashboard",
            spec=spec,
            traffic=traffic,
            alarms=alarms,
            canary=progression.canary,
            significance_function=significance.function,
        )
        approval = ApprovalPipeline(
            self,
            "Approval",
            spec=spec,
            stages=ReleaseStages(
                canary=progression.canary,
                promote=progression.promote,
                alert_topic=alerts.topic,
                dashboard_url=dashboard.url,
                message=approval_message(spec),
            ),
        )
        rollback.on_rejected_approval(approval.pipeline, APPROVAL_STAGE, APPROVAL_ACTION)

        Tags.of(self).add("canarywise:service", spec.service)
        Tags.of(self).add("canarywise:component", "control-plane")
        for name, value, description in (
            ("RegistryTableName", registry.table.table_name, "the experiment registry (REGISTRY_TABLE)"),
            ("CanaryStateMachineArn", progression.canary.state_machine_arn, "runs the stage ladder"),
            ("PromoteStateMachineArn", progression.promote.state_machine_arn, "sends 100% and concludes"),
            ("RollbackFunctionName", rollback.function.function_name, "canarywise rollback invokes it"),
            ("ListenerRuleArn", traffic.listener_rule_arn, "the weighted rule the canary moves"),
            ("ReleaseBucketName", approval.release_bucket.bucket_name, "upload release.zip here to release"),
            ("PipelineName", approval.pipeline.pipeline_name, "canary → approval → promote"),
            ("AlertTopicArn", alerts.topic.topic_arn, "subscribe the on-call here"),
            ("DashboardUrl", dashboard.url, "variants side by side, decisions, p-values"),
        ):
            CfnOutput(self, name, value=value, description=description)
