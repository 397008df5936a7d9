"""The traffic split: a listener rule with a weighted forward across the control and canary target groups.

The normal case imports the service's existing listener and target groups by ARN (``traffic.listener_arn``
…); ``traffic.create_demo: true`` creates a small internal demo VPC and ALB instead. Either way the rule is
the same L1 resource, in exactly the shape the state machine's ``modifyRule`` calls write later: a weighted
forward (100/0 at deploy, so deploying changes nothing for users) with target-group stickiness, so a user
stays on one variant for the whole stage.
"""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from constructs import Construct

from canarywise.spec import RolloutSpec, SpecError
from canarywise.spec import Traffic as TrafficSpec
from stacks.nag import acknowledge

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


def weighted_forward(
    control_arn: str, canary_arn: str, canary_percent: float, stickiness_seconds: int
) -> dict[str, Any]:
    """The forward action of the rule, in the shape of the ELBv2 API (``ModifyRule`` ``Actions[0]``).

    Weights are integers 0-999 in the ALB API; the spec's percentages are rounded to whole percent.

    Example
    -------
    >>> weighted_forward("arn:c", "arn:k", 5, 604800)["ForwardConfig"]["TargetGroups"][1]
    {'TargetGroupArn': 'arn:k', 'Weight': 5}
    """
    canary = round(canary_percent)
    return {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [
                {"TargetGroupArn": control_arn, "Weight": 100 - canary},
                {"TargetGroupArn": canary_arn, "Weight": canary},
            ],
            "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": stickiness_seconds},
        },
    }


def _full_name(pattern: re.Pattern[str], field_name: str, arn: str | None, what: str) -> str:
    match = pattern.match(arn or "")
    if not match:
        raise SpecError(f"rollout spec: traffic.{field_name}: not an {what} ARN (found {arn!r})")
    return match.group(1)


class TrafficSplit(Construct):
    """The listener rule and what the rest of the stack needs to know about the split.

    Attributes
    ----------
    listener_rule_arn, control_target_group_arn, canary_target_group_arn:
        for the weight changes (state machine, rollback, promote).
    load_balancer_full_name, control_target_group_full_name, canary_target_group_full_name:
        the ``LoadBalancer`` / ``TargetGroup`` dimension values of the ALB metrics (alarms, dashboard,
        significance check), e.g. ``app/my-alb/50dc6c495c0c9188`` and ``targetgroup/canary/73e2d6bc24d8a067``.
    """

    def __init__(self, scope: Construct, construct_id: str, *, spec: RolloutSpec) -> None:
        super().__init__(scope, construct_id)
        traffic = spec.traffic
        self.stickiness_seconds = traffic.stickiness
        listener_arn = self._create_demo() if traffic.create_demo else self._import(traffic)

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
            actions=[self._forward_property()],
        )
        self.listener_rule_arn = rule.ref

    def _forward_property(self) -> elbv2.CfnListenerRule.ActionProperty:
        action = weighted_forward(
            self.control_target_group_arn, self.canary_target_group_arn, 0, self.stickiness_seconds
        )
        groups = action["ForwardConfig"]["TargetGroups"]
        return elbv2.CfnListenerRule.ActionProperty(
            type="forward",
            forward_config=elbv2.CfnListenerRule.ForwardConfigProperty(
                target_groups=[
                    elbv2.CfnListenerRule.TargetGroupTupleProperty(
                        target_group_arn=group["TargetGroupArn"], weight=group["Weight"]
                    )
                    for group in groups
                ],
                target_group_stickiness_config=elbv2.CfnListenerRule.TargetGroupStickinessConfigProperty(
                    enabled=True, duration_seconds=self.stickiness_seconds
                ),
            ),
        )

    def _import(self, traffic: TrafficSpec) -> str:
        self.load_balancer_full_name = _full_name(
            _LISTENER_ARN, "listener_arn", traffic.listener_arn, "ALB listener"
        )
        self.control_target_group_full_name = _full_name(
            _TARGET_GROUP_ARN,
            "control_target_group_arn",
            traffic.control_target_group_arn,
            "ALB target group",
        )
        self.canary_target_group_full_name = _full_name(
            _TARGET_GROUP_ARN, "canary_target_group_arn", traffic.canary_target_group_arn, "ALB target group"
        )
        # All three matched their patterns above, so none is None.
        self.control_target_group_arn = str(traffic.control_target_group_arn)
        self.canary_target_group_arn = str(traffic.canary_target_group_arn)
        return str(traffic.listener_arn)

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
        for variant in ("control", "canary"):
            groups[variant] = elbv2.ApplicationTargetGroup(
                self,
                f"Demo{variant.title()}",
                vpc=vpc,
                port=8080,
                protocol=elbv2.ApplicationProtocol.HTTP,
                target_type=elbv2.TargetType.IP,
                health_check=elbv2.HealthCheck(path="/health", interval=Duration.seconds(30)),
                deregistration_delay=Duration.seconds(30),
            )
        self.control_target_group_arn = groups["control"].target_group_arn
        self.canary_target_group_arn = groups["canary"].target_group_arn
        self.load_balancer_full_name = alb.load_balancer_full_name
        self.control_target_group_full_name = groups["control"].target_group_full_name
        self.canary_target_group_full_name = groups["canary"].target_group_full_name
        return listener.listener_arn
