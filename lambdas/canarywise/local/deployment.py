"""What the stack created on the local AWS, by role: the functions and their environment, the outputs, alarms.

:func:`canarywise.local.provision.provision` returns a :class:`Deployment`; the demo and the end-to-end tests
find the listener rule, the slots' target groups and the functions through it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from canarywise.data.traffic import TrafficSplit
from canarywise.errors import CanarywiseError
from canarywise.local.alarms import CompositeAlarm


class ProvisionError(CanarywiseError, RuntimeError):
    """The stack could not be synthesized or created on the local AWS."""


@dataclass(frozen=True)
class LocalFunction:
    """A deployed function: its name, ARN, handler string and resolved environment."""

    name: str
    arn: str
    handler: str
    environment: Mapping[str, str]


@dataclass(frozen=True)
class Deployment:
    """What the stack created locally, by role."""

    stack_name: str
    outputs: Mapping[str, str]
    functions: Mapping[str, LocalFunction]  # by handler module: significance_check, stage_gate, ...
    composites: tuple[CompositeAlarm, ...]
    metric_alarms: tuple[str, ...]
    not_provisioned: Mapping[str, str] = field(default_factory=dict)

    def function(self, role: str) -> LocalFunction:
        try:
            return self.functions[role]
        except KeyError:
            known = ", ".join(sorted(self.functions))
            raise ProvisionError(f"the stack has no {role!r} function; it has: {known}") from None

    @property
    def canary_state_machine_arn(self) -> str:
        return self.outputs["CanaryStateMachineArn"]

    @property
    def promote_state_machine_arn(self) -> str:
        return self.outputs["PromoteStateMachineArn"]

    @property
    def registry_table(self) -> str:
        return self.function("stage_gate").environment["REGISTRY_TABLE"]

    @property
    def service(self) -> str:
        return self.function("stage_gate").environment["SERVICE"]

    @property
    def listener_rule_arn(self) -> str:
        return self.function("rollback").environment["LISTENER_RULE_ARN"]

    @property
    def target_groups(self) -> dict[str, str]:
        """Slot → target group ARN (the functions' ``TARGET_GROUPS``, a JSON object)."""
        return _json_object(self.function("rollback").environment, "TARGET_GROUPS")

    @property
    def load_balancer_full_name(self) -> str:
        """The ALB metrics' ``LoadBalancer`` dimension value."""
        return self.function("significance_check").environment["LOAD_BALANCER_FULL_NAME"]

    @property
    def target_group_full_names(self) -> dict[str, str]:
        """Slot → the ALB metrics' ``TargetGroup`` dimension value (``TARGET_GROUP_FULL_NAMES``)."""
        return _json_object(self.function("significance_check").environment, "TARGET_GROUP_FULL_NAMES")

    def traffic_split(self, elbv2: Any) -> TrafficSplit:
        """The listener rule and its slots, read with `elbv2` (a client on the local endpoint)."""
        return TrafficSplit(self.listener_rule_arn, self.target_groups, boto3_client=elbv2)


def _json_object(environment: Mapping[str, str], name: str) -> dict[str, str]:
    """A variable holding a JSON object (the stack builds it with ``Fn::Join``; moto resolves that)."""
    try:
        value = json.loads(environment[name])
    except (KeyError, ValueError) as exc:
        raise ProvisionError(f"{name} is not a JSON object: {environment.get(name)!r}") from exc
    if not isinstance(value, dict):
        raise ProvisionError(f"{name} is not a JSON object: {environment[name]!r}")
    return {str(slot): str(arn) for slot, arn in value.items()}
