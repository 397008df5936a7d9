"""The experiment registry: one DynamoDB table for experiments, stages, checks, decisions and rollbacks.

Keys and indexes are fixed in notes/contracts.md and used by ``canarywise.data.registry``. It is a
``dynamodb.Table``, not ``TableV2``: moto's CloudFormation (local mode) only knows ``AWS::DynamoDB::Table``.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

TTL_ATTRIBUTE = "expires_at"  # epoch seconds, set on check records only
RUNNING_INDEX = "running"  # sparse: running_pk = "RUNNING" only while an experiment runs
CONCLUDED_INDEX = "concluded"  # concluded_pk = "CONCLUDED", sorted by concluded_at (ISO-8601 UTC)


def _string(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


class Registry(Construct):
    """On-demand table with point-in-time recovery, KMS encryption at rest, TTL and the two indexes.

    The table is retained when the stack is deleted: it is the audit trail of every release decision.
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=_string("pk"),
            sort_key=_string("sk"),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=TTL_ATTRIBUTE,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.table.add_global_secondary_index(
            index_name=RUNNING_INDEX,
            partition_key=_string("running_pk"),
            sort_key=_string("experiment_id"),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        self.table.add_global_secondary_index(
            index_name=CONCLUDED_INDEX,
            partition_key=_string("concluded_pk"),
            sort_key=_string("concluded_at"),
            projection_type=dynamodb.ProjectionType.ALL,
        )


def grant_registry(
    role: iam.IRole,
    table: dynamodb.ITable,
    *,
    write_keys: Sequence[str],
    indexes: Sequence[str] = (),
) -> None:
    """What a function does with the registry, and no more (fault table, row 15): reads by key and queries
    of the base table (plus the named `indexes`); PutItem and UpdateItem (a transaction needs the same
    actions per item) only on items whose partition key matches one of `write_keys` (``StringLike``
    patterns such as ``EXP#*``). No DeleteItem, Scan or BatchWriteItem: no function rewrites the audit
    trail wholesale.
    """
    index_arns = [f"{table.table_arn}/index/{name}" for name in indexes]
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["dynamodb:GetItem", "dynamodb:Query"], resources=[table.table_arn, *index_arns]
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["dynamodb:PutItem", "dynamodb:UpdateItem"],
            resources=[table.table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(write_keys)}},
        )
    )
