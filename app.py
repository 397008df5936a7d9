#!/usr/bin/env python3
"""The CDK app: ``cdk synth -c spec=config/<service>.yaml`` (default: config/mangaassist.yaml).

One stack per service holding the construct a team can add to its own stack instead (docs/construct.md).
"""

import sys

from aws_cdk import App, Stack

from canarywise.spec import SpecError
from stacks.control_plane import CanaryControlPlane
from stacks.nag import add_nag_checks
from stacks.spec_loading import load_rollout_spec
from stacks.stack import stack_props

app = App()
try:
    spec = load_rollout_spec(app)  # the file named by -c spec=…, checked: one line per problem
except SpecError as exc:
    sys.exit(f"cdk synth failed: the rollout spec is invalid\n{exc}")
stack = Stack(app, f"canarywise-{spec.service}", **stack_props(spec))
CanaryControlPlane(stack, "Default", spec=spec)  # "Default": left out of the logical ids
add_nag_checks(app)
app.synth()
