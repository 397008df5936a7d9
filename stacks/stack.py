"""The canarywise stack for one service: a stack holding one :class:`CanaryControlPlane`.

One stack per rollout spec (``-c spec=config/<service>.yaml``), named ``canarywise-<service>``. The
construct's id is ``Default``, which CDK leaves out of logical ids: the resources keep the ids they had when
this stack composed the capabilities itself, so updating an existing deployment replaces nothing.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Environment, Stack
from constructs import Construct

from canarywise.spec import RolloutSpec

from .control_plane import CanaryControlPlane
from .monitor import MonitorOnlyPlane


def stack_props(spec: RolloutSpec) -> dict[str, Any]:
    """Description, account/region (the spec's ``environment``) and tags of a service's own stack."""
    env = spec.environment
    return {
        "description": f"canarywise control plane for {spec.service}: staged canary with statistical gates",
        "env": Environment(account=env.account, region=env.region) if env.account or env.region else None,
        "tags": {"canarywise:service": spec.service},
    }


class CanarywiseStack(Stack):
    """``canarywise-<service>``: the control plane from the spec's traffic ARNs (or its demo ALB)."""

    def __init__(self, scope: Construct, construct_id: str, *, spec: RolloutSpec) -> None:
        super().__init__(scope, construct_id, **stack_props(spec))
        if spec.mode == "monitor":  # the drift monitor alone: no traffic split, no rollouts
            self.monitor_plane = MonitorOnlyPlane(self, "Default", spec=spec)
            return
        self.control_plane = CanaryControlPlane(self, "Default", spec=spec)
