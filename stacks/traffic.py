"""The traffic split: a listener rule whose forward action names the service's target groups (slots).

The normal case imports the service's existing listener and its two target groups by ARN
(``traffic.listener_arn``, ``traffic.target_groups``); ``traffic.create_demo: true`` creates a small internal
demo VPC and ALB with the slots ``blue`` and ``green``. The two slots take turns being live
(docs/lifecycle.md). At deploy the rule forwards to the first slot only; from then on only the functions
write it, from the registry's lifecycle state (`canarywise.data.traffic.TrafficSplit`). The template's
action never changes, so a stack update leaves the live rule alone unless the rule's own properties (path,
priority) change: do that between releases, never during one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aws_cdk import Duration, Fn, Stack, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from canarywise.spec import DEMO_SLOTS, RolloutSpec, SpecError
from canarywise.spec import Traffic as TrafficSpec

from .nag import acknowledge

# A literal, not the VPC's CidrBlock attribute: cdk-nag's EC23 can only check a literal CIDR.
DEMO_VPC_CIDR = "10.42.0.0/16"
# arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/my-alb/50dc6c495c0c9188/f2f7dc8efc522ab2
_LISTENER_ARN = re.compile(
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:listener/(app/[^/]+/[0-9a-f]+)/[0-9a-f]+$"
)
# arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/control/73e2d6bc24d8a067
_TARGET_GROUP_ARN = re.compile(
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:(targetgroup/[^/]+/[0-9a-f]+)$"
)


def _full_name(pattern: re.Pattern[str], field_name: str, arn: str | None, what: str) -> str:
    match = pattern.match(arn or "")
    if not match:
        raise SpecError(f"rollout spec: traffic.{field_name}: not an {what} ARN (found {arn!r})")
    return match.group(1)


class TrafficSplit(Construct):
    """The listener rule and what the rest of the stack needs to know about the split.

    Attributes
    ----------
    listener_rule_arn, target_groups:
        the rule and slot → target group ARN, for the functions that set traffic (stage gate, promote,
        rollback; see `function_environment`).
    load_balancer_full_name, target_group_full_names:
        the ``LoadBalancer`` and, per slot, ``TargetGroup`` dimension values of the ALB metrics (alarms,
        dashboard, significance check), e.g. ``app/my-alb/50dc6c495c0c9188`` and
        ``targetgroup/blue/73e2d6bc24d8a067``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: RolloutSpec,
        listener: elbv2.IApplicationListener | None = None,
        target_groups: Mapping[str, elbv2.ITargetGroup] | None = None,
    ) -> None:
        """`listener` and `target_groups` (slot → group), when given, replace the spec's ARNs."""
        super().__init__(scope, construct_id)
        traffic = spec.traffic
        self.stickiness_seconds = traffic.stickiness
        if listener is not None and target_groups is not None:
            listener_arn = self._adopt(listener, target_groups)
        elif traffic.create_demo:
            listener_arn = self._create_demo()
        else:
            listener_arn = self._import(traffic)

        # The action CloudFormation writes at create time; it never changes afterwards, so a stack update
        # leaves the live rule alone. A deployment from before blue/green roles keeps the exact action its
        # template always had (both groups, 100/0, stickiness on): upgrading must not rewrite the rule — its
        # last release may have been promoted into the "canary" group, which is then live.
        legacy = listener is None and traffic.target_groups is None and not traffic.create_demo
        groups = list(self.target_groups.values())
        initial = {groups[0]: 100, groups[1]: 0} if legacy else {groups[0]: 100}
        rule = elbv2.CfnListenerRule(
            self,
            "Rule",
            listener_arn=listener_arn,
            priority=traffic.rule_priority,
            conditions=[
                elbv2.CfnListenerRule.RuleConditionProperty(
                    field="path-pattern",
                    path_pattern_config=elbv2.CfnListenerRule.PathPatternConfigProperty(
                        values=[traffic.path_pattern]
                    ),
                )
            ],
            actions=[self._forward_property(initial, sticky=legacy)],
        )
        self.listener_rule_arn = rule.ref

    def function_environment(self) -> dict[str, str]:
        """What a function that sets traffic reads (`canarywise.settings.TrafficSettings`)."""
        return {
            "LISTENER_RULE_ARN": self.listener_rule_arn,
            "TARGET_GROUPS": Stack.of(self).to_json_string(self.target_groups),
            "STICKINESS_SECONDS": str(self.stickiness_seconds),
        }

    def metrics_environment(self) -> dict[str, str]:
        """What the significance check reads to find the ALB's metrics per slot."""
        return {
            "LOAD_BALANCER_FULL_NAME": self.load_balancer_full_name,
            "TARGET_GROUP_FULL_NAMES": Stack.of(self).to_json_string(self.target_group_full_names),
        }

    def grant_set_traffic(self, role: iam.IRole) -> None:
        """ModifyRule on this one rule; DescribeRules (no resource-level permissions) to read it back."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["elasticloadbalancing:ModifyRule"], resources=[self.listener_rule_arn]
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["elasticloadbalancing:DescribeRules"], resources=["*"])
        )

    def _forward_property(
        self, weights: dict[str, int], *, sticky: bool
    ) -> elbv2.CfnListenerRule.ActionProperty:
        # Stickiness off while one group is named (see canarywise.data.traffic.forward_action).
        stickiness = (
            elbv2.CfnListenerRule.TargetGroupStickinessConfigProperty(
                enabled=True, duration_seconds=self.stickiness_seconds
            )
            if sticky
            else elbv2.CfnListenerRule.TargetGroupStickinessConfigProperty(enabled=False)
        )
        return elbv2.CfnListenerRule.ActionProperty(
            type="forward",
            forward_config=elbv2.CfnListenerRule.ForwardConfigProperty(
                target_groups=[
                    elbv2.CfnListenerRule.TargetGroupTupleProperty(target_group_arn=arn, weight=weight)
                    for arn, weight in weights.items()
                ],
                target_group_stickiness_config=stickiness,
            ),
        )

    def _import(self, traffic: TrafficSpec) -> str:
        self.load_balancer_full_name = _full_name(
            _LISTENER_ARN, "listener_arn", traffic.listener_arn, "ALB listener"
        )
        self.target_groups = traffic.slots()
        field = "target_groups" if traffic.target_groups is not None else "control/canary_target_group_arn"
        self.target_group_full_names = {
            slot: _full_name(_TARGET_GROUP_ARN, f"{field} ({slot})", arn, "ALB target group")
            for slot, arn in self.target_groups.items()
        }
        return str(traffic.listener_arn)

    def _adopt(self, listener: elbv2.IApplicationListener, groups: Mapping[str, elbv2.ITargetGroup]) -> str:
        """CDK objects (imported or created in the same app): the dimension values are the ARNs' suffixes,
        cut out at deploy time when an ARN is a token (``Fn::Split``), checked here when it is a literal."""
        if len(groups) != 2:
            raise SpecError(f"target_groups: name exactly two slots, found {sorted(groups)}")
        self.target_groups = {slot: group.target_group_arn for slot, group in groups.items()}
        arn = listener.listener_arn
        if Token.is_unresolved(arn):
            parts = Fn.split("/", Fn.select(5, Fn.split(":", arn)))  # listener/app/<name>/<id>/<listener id>
            self.load_balancer_full_name = Fn.join("/", [Fn.select(i, parts) for i in (1, 2, 3)])
        else:
            self.load_balancer_full_name = _full_name(_LISTENER_ARN, "listener", arn, "ALB listener")
        self.target_group_full_names = {
            slot: Fn.select(5, Fn.split(":", group_arn))
            if Token.is_unresolved(group_arn)
            else _full_name(_TARGET_GROUP_ARN, f"target_groups ({slot})", group_arn, "ALB target group")
            for slot, group_arn in self.target_groups.items()
        }
        return arn

    def _create_demo(self) -> str:
        """An internal ALB in a small isolated VPC: no NAT gateway, no internet exposure, no cost at rest
        beyond the ALB hour. The target groups start empty; register the two variants' tasks in them."""
        vpc = ec2.Vpc(
            self,
            "DemoVpc",
            ip_addresses=ec2.IpAddresses.cidr(DEMO_VPC_CIDR),
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                )
            ],
            # Without this CDK adds a custom-resource Lambda just to empty the default security group.
            restrict_default_security_group=False,
        )
        vpc.add_flow_log(
            "FlowLogs",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                logs.LogGroup(self, "DemoVpcFlowLogs", retention=logs.RetentionDays.ONE_MONTH)
            ),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        security_group = ec2.SecurityGroup(
            self, "DemoAlbSecurityGroup", vpc=vpc, allow_all_outbound=False, description="demo ALB: VPC only"
        )
        security_group.add_ingress_rule(ec2.Peer.ipv4(DEMO_VPC_CIDR), ec2.Port.tcp(80), "HTTP from the VPC")
        security_group.add_egress_rule(ec2.Peer.ipv4(DEMO_VPC_CIDR), ec2.Port.tcp(8080), "to the targets")
        alb = elbv2.ApplicationLoadBalancer(
            self,
            "DemoAlb",
            vpc=vpc,
            internet_facing=False,
            security_group=security_group,
            drop_invalid_header_fields=True,
        )
        acknowledge(
            alb,
            "AwsSolutions-ELB2",
            "Demo ALB (traffic.create_demo): internal, no real users; production imports the team's own ALB, "
            "whose access logs are the team's to configure.",
        )
        listener = alb.add_listener(
            "Http",
            port=80,
            open=False,
            default_action=elbv2.ListenerAction.fixed_response(404, message_body="no route"),
        )
        groups = {}
        for slot in DEMO_SLOTS:
            groups[slot] = elbv2.ApplicationTargetGroup(
                self,
                f"Demo{slot.title()}",
                vpc=vpc,
                port=8080,
                protocol=elbv2.ApplicationProtocol.HTTP,
                target_type=elbv2.TargetType.IP,
                health_check=elbv2.HealthCheck(path="/health", interval=Duration.seconds(30)),
                deregistration_delay=Duration.seconds(30),
            )
        self.target_groups = {slot: group.target_group_arn for slot, group in groups.items()}
        self.target_group_full_names = {slot: group.target_group_full_name for slot, group in groups.items()}
        self.load_balancer_full_name = alb.load_balancer_full_name
        return listener.listener_arn
