"""What the end-to-end tests read and do on the local AWS, straight through its APIs.

The reads go to ELBv2 and DynamoDB directly (``DescribeRules``, ``GetItem``, ``Query``), never through the
code under test, so an assertion on them checks what AWS would hold. The actions are the ones a person or a
service takes: start a state machine, invoke a function, answer the stage gate in place of the significance
check.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from canarywise.data.models import CheckRecord
from canarywise.data.registry import Registry
from canarywise.local.clock import GatePacer
from canarywise.local.deployment import Deployment
from canarywise.local.provision import provision, synthesize
from canarywise.local.server import LocalAws
from canarywise.spec import RolloutSpec


@dataclass(frozen=True)
class RuleForward:
    """The listener rule's forward action as ELBv2 returns it, target groups named by slot."""

    weights: dict[str, int]  # only the groups the action names
    sticky: bool

    @property
    def named(self) -> set[str]:
        return set(self.weights)


def rule_forward(aws: LocalAws, deployment: Deployment) -> RuleForward:
    """``DescribeRules`` on the stack's rule; the slot of each group from the functions' TARGET_GROUPS."""
    rule = aws.client("elbv2").describe_rules(RuleArns=[deployment.listener_rule_arn])["Rules"][0]
    (action,) = [a for a in rule["Actions"] if a["Type"] == "forward"]
    config = action["ForwardConfig"]
    slot_of = {arn: slot for slot, arn in deployment.target_groups.items()}
    weights = {slot_of[group["TargetGroupArn"]]: int(group["Weight"]) for group in config["TargetGroups"]}
    return RuleForward(weights, bool(config.get("TargetGroupStickinessConfig", {}).get("Enabled", False)))


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer  # type: ignore[import-untyped]

    deserializer = TypeDeserializer()
    return {key: deserializer.deserialize(value) for key, value in item.items()}


def service_item(aws: LocalAws, deployment: Deployment) -> dict[str, Any]:
    """The registry's ``SERVICE#<service>`` / ``STATE`` item, as stored (``forward`` decoded)."""
    item = aws.client("dynamodb").get_item(
        TableName=deployment.registry_table,
        Key={"pk": {"S": f"SERVICE#{deployment.service}"}, "sk": {"S": "STATE"}},
        ConsistentRead=True,
    )["Item"]
    plain = _plain(item)
    return plain | {"forward": json.loads(plain["forward"]), "version": int(plain["version"])}


def _query(aws: LocalAws, deployment: Deployment, pk: str, prefix: str) -> list[dict[str, Any]]:
    response = aws.client("dynamodb").query(
        TableName=deployment.registry_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": prefix}},
        ConsistentRead=True,
    )
    return [_plain(item) for item in response["Items"]]


def experiment_item(aws: LocalAws, deployment: Deployment, experiment_id: str) -> dict[str, Any]:
    (item,) = _query(aws, deployment, f"EXP#{experiment_id}", "META")
    return item


def rollback_items(aws: LocalAws, deployment: Deployment, experiment_id: str) -> list[dict[str, Any]]:
    """The experiment's ``ROLLBACK`` record and the service's rollback history items for it."""
    record = _query(aws, deployment, f"EXP#{experiment_id}", "ROLLBACK")
    history = [
        item
        for item in _query(aws, deployment, f"SERVICE#{deployment.service}", "ROLLBACK#")
        if experiment_id in item["sk"]
    ]
    return record + history


class AlertInbox:
    """An SQS queue subscribed to the stack's alert topic: every alert the stack sends lands here."""

    def __init__(self, aws: LocalAws, deployment: Deployment) -> None:
        self.sqs = aws.client("sqs")
        self.url = self.sqs.create_queue(QueueName="e2e-alerts")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]
        aws.client("sns").subscribe(
            TopicArn=deployment.outputs["AlertTopicArn"], Protocol="sqs", Endpoint=arn["QueueArn"]
        )
        self.received: list[dict[str, Any]] = []

    def messages(self) -> list[dict[str, Any]]:
        """Every alert so far, as SNS delivered it to SQS (``Subject``, ``Message``, ...)."""
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return list(self.received)
            for message in messages:
                self.received.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def subjects(self) -> list[str]:
        """Every alert subject so far."""
        return [message.get("Subject", "") for message in self.messages()]


class Stack:
    """The stack provisioned on a fresh local AWS, with the canary state machine held at its gate."""

    def __init__(self, aws: LocalAws, spec: RolloutSpec) -> None:
        self.aws = aws
        self.deployment = provision(aws, synthesize(spec), stack_name=f"canarywise-{spec.service}")
        self.registry = Registry(self.deployment.registry_table, boto3_client=aws.client("dynamodb"))
        self.sfn = aws.client("stepfunctions")
        self.pacer = GatePacer(timeout=30)
        aws.runtime.before_invoke.append(self.pacer.hook)
        self.alerts = AlertInbox(aws, self.deployment)

    def forward(self) -> RuleForward:
        return rule_forward(self.aws, self.deployment)

    def state(self) -> dict[str, Any]:
        return service_item(self.aws, self.deployment)

    # -- the canary state machine --------------------------------------------------------------------------
    def start_release(self, name: str, *, slot: str | None = None) -> str:
        """Start the canary state machine for candidate `name`; returns the execution when it waits at its
        first gate (stage 1's traffic set), or has ended."""
        release: dict[str, Any] = {"candidate": name, "release_id": name}
        if slot is not None:
            release["slot"] = slot
        execution = self.sfn.start_execution(
            stateMachineArn=self.deployment.canary_state_machine_arn,
            name=name,
            input=json.dumps({"release": release, "timing": {"check_interval_seconds": 0}}),
        )["executionArn"]
        self.pacer.wait_parked(lambda: self.status(execution) != "RUNNING")
        return str(execution)

    def status(self, execution: str) -> str:
        return str(self.sfn.describe_execution(executionArn=execution)["status"])

    def answer_gate(self, execution: str, experiment_id: str, stage_index: int, decision: str) -> None:
        """Store `decision` for the stage as the significance check would, let the gate read it once, and
        wait until the state machine has acted on it (next stage set, or ended)."""
        self.registry.record_check(
            experiment_id,
            CheckRecord(
                checked_at=datetime.now(UTC), stage_index=stage_index, decision=decision, reason="e2e"
            ),
        )
        self.pacer.release()
        self.pacer.wait_parked(lambda: self.status(execution) != "RUNNING")

    def run_to_approval(self, execution: str, experiment_id: str, stages: int) -> None:
        """Every stage's gate met; the execution ends READY_FOR_APPROVAL (SUCCEEDED)."""
        for index in range(stages):
            last = index == stages - 1
            self.answer_gate(execution, experiment_id, index, "READY_FOR_APPROVAL" if last else "ADVANCE")
        self.wait_ended(execution)

    def wait_ended(self, execution: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described: dict[str, Any] = self.sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.02)
        raise TimeoutError(f"{execution} still RUNNING after {timeout} s")

    # -- the promote state machine and the rollback function -----------------------------------------------
    def promote(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Start the promote state machine with `payload`; its DescribeExecution once it ended."""
        execution = self.sfn.start_execution(
            stateMachineArn=self.deployment.promote_state_machine_arn,
            name=f"promote-{uuid.uuid4().hex[:12]}",
            input=json.dumps(payload),
        )["executionArn"]
        return self.wait_ended(execution)

    def roll_back(self, reason: str, **extra: Any) -> dict[str, Any]:
        """Invoke the rollback function as ``canarywise rollback`` does; its JSON answer."""
        function = self.deployment.function("rollback")
        response = self.aws.client("lambda").invoke(
            FunctionName=function.name,
            Payload=json.dumps({"source": "cli", "reason": reason, "actor": "e2e"} | extra),
        )
        payload: dict[str, Any] = json.loads(response["Payload"].read())
        assert "FunctionError" not in response, payload
        return payload

    def invoke_stage_gate(self, event: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Invoke the stage gate function with `event`: (errored, payload)."""
        function = self.deployment.function("stage_gate")
        response = self.aws.client("lambda").invoke(FunctionName=function.name, Payload=json.dumps(event))
        return "FunctionError" in response, json.loads(response["Payload"].read())

    def close(self) -> None:
        self.pacer.close()
        self.aws.runtime.wait_idle()


def local_stack(spec: RolloutSpec) -> Iterator[Stack]:
    """A fixture body: the stack on a fresh local AWS, torn down after the test."""
    with LocalAws() as aws:
        stack = Stack(aws, spec)
        try:
            yield stack
        finally:
            stack.close()
