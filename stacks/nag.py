"""cdk-nag (AwsSolutions) at synth, and the one way we acknowledge a finding: with a specific reason.

cdk-nag 3 runs as a CDK validation plugin: a finding that is not acknowledged fails ``cdk synth``. Each
acknowledgement is placed on the narrowest construct the finding is about, never on the whole stack, and
IAM5 findings name the exact wildcard (``AwsSolutions-IAM5[Resource::*]``) so a new wildcard still fails.
"""

from __future__ import annotations

import json

from aws_cdk import Acknowledgment, App, CfnElement, Stack, Token, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge `rule_id` on `scope` (and below it) with `reason`, which a reviewer must be able to check.

    Example
    -------
    >>> acknowledge(queue, "AwsSolutions-SQS3", "This queue is itself the dead-letter queue.")
    """
    if len(reason) < 20:
        raise ValueError(f"an acknowledgement needs a specific reason, found {reason!r}")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def add_nag_checks(app: App) -> None:
    """Run the AwsSolutions rules on every stack of `app` at synth; an unacknowledged finding fails synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))


def logical_id(construct: IConstruct) -> str:
    """The CloudFormation logical id of `construct`'s resource, as cdk-nag prints it in IAM5 finding ids."""
    cfn = construct.node.default_child
    if not isinstance(cfn, CfnElement):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource")
    return Stack.of(construct).get_logical_id(cfn)


def arn_finding(scope: IConstruct, service: str, resource: str) -> str:
    """The IAM5 finding id of a wildcard ARN built with ``Stack.format_arn`` in `scope`'s stack.

    cdk-nag prints unresolved pseudo parameters as ``<AWS::Region>``; resolved ones (the spec fixed the
    region) literally.

    Example
    -------
    >>> arn_finding(stack, "states", "execution:canarywise-x-canary:*")
    'AwsSolutions-IAM5[Resource::arn:aws:states:us-east-1:<AWS::AccountId>:execution:canarywise-x-canary:*]'
    """
    stack = Stack.of(scope)

    def shown(value: str, pseudo: str) -> str:
        return f"<AWS::{pseudo}>" if Token.is_unresolved(value) else value

    arn = (
        f"arn:{shown(stack.partition, 'Partition')}:{service}:{shown(stack.region, 'Region')}:"
        f"{shown(stack.account, 'AccountId')}:{resource}"
    )
    return f"AwsSolutions-IAM5[Resource::{arn}]"


def split_arn_finding(construct: IConstruct, service: str, resource_type: str) -> str:
    """The IAM5 finding id of ``<resource_type>:<name>:*`` derived by CDK from a referenced ARN.

    CDK builds e.g. a state machine's executions ARN by splitting the machine's ARN on ``:``
    (``Fn::Select``/``Fn::Split``), and cdk-nag prints those functions verbatim.
    """

    def part(index: int) -> str:
        ref = json.dumps({"Ref": logical_id(construct)}, separators=(",", ":"))
        return f'{{"Fn::Select":[{index},{{"Fn::Split":[":",{ref}]}}]}}'

    arn = f"arn:{part(1)}:{service}:{part(3)}:{part(4)}:{resource_type}:{part(6)}:*"
    return f"AwsSolutions-IAM5[Resource::{arn}]"
