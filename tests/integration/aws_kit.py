"""AWS for the integration tests, in-process with moto's `mock_aws`: nothing leaves the process.

The fixtures build what the stack builds, with the lead's contract names: the registry table (pk/sk, GSIs
``running`` and ``concluded``, TTL ``expires_at``), an ALB with a listener, two target groups and a weighted
rule (stickiness on), the canary state machine, the alert topic (with an SQS queue subscribed, so a test can
read what people were told), and every environment variable the handlers read.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from canarywise.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "mangaassist"
TABLE = "canarywise-registry"
REGION = "us-east-1"
STICKINESS_SECONDS = 7 * 86400


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, so no test can ever reach a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_SERVICE_NAME": "canarywise",
        "POWERTOOLS_METRICS_NAMESPACE": "Canarywise",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@dataclass(frozen=True)
class Traffic:
    listener_rule_arn: str
    control_target_group_arn: str
    canary_target_group_arn: str
    load_balancer_full_name: str
    control_target_group_full_name: str
    canary_target_group_full_name: str


@dataclass(frozen=True)
class Env:
    """Everything the fixtures created; `apply` sets the handlers' environment variables."""

    traffic: Traffic
    state_machine_arn: str
    topic_arn: str
    queue_url: str

    def variables(self) -> dict[str, str]:
        return {
            "REGISTRY_TABLE": TABLE,
            "SERVICE": SERVICE,
            "LOAD_BALANCER_FULL_NAME": self.traffic.load_balancer_full_name,
            # Slots named as before blue/green roles: the migration path (docs/lifecycle.md).
            "TARGET_GROUP_FULL_NAMES": json.dumps(
                {
                    "control": self.traffic.control_target_group_full_name,
                    "canary": self.traffic.canary_target_group_full_name,
                }
            ),
            "LISTENER_RULE_ARN": self.traffic.listener_rule_arn,
            "TARGET_GROUPS": json.dumps(
                {
                    "control": self.traffic.control_target_group_arn,
                    "canary": self.traffic.canary_target_group_arn,
                }
            ),
            "STICKINESS_SECONDS": str(STICKINESS_SECONDS),
            "STATE_MACHINE_ARN": self.state_machine_arn,
            "ALERT_TOPIC_ARN": self.topic_arn,
        }


def create_registry_table(dynamodb: Any) -> None:
    """The registry table exactly as contracts.md fixes it."""
    dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("pk", "sk", "running_pk", "experiment_id", "concluded_pk", "concluded_at")
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "running",
                "KeySchema": [
                    {"AttributeName": "running_pk", "KeyType": "HASH"},
                    {"AttributeName": "experiment_id", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "concluded",
                "KeySchema": [
                    {"AttributeName": "concluded_pk", "KeyType": "HASH"},
                    {"AttributeName": "concluded_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
        SSESpecification={"Enabled": True},
    )
    dynamodb.update_time_to_live(
        TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )


def create_traffic() -> Traffic:
    ec2 = boto3.client("ec2")
    elbv2 = boto3.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")[
            "Subnet"
        ]["SubnetId"]
        for i, zone in enumerate("ab")
    ]
    lb = elbv2.create_load_balancer(Name="chat-alb", Subnets=subnets, Type="application")["LoadBalancers"][0]
    groups = [
        elbv2.create_target_group(Name=name, Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip")[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        for name in ("control", "canary")
    ]
    listener = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
    )["Listeners"][0]["ListenerArn"]
    rule = elbv2.create_rule(
        ListenerArn=listener,
        Priority=10,
        Conditions=[{"Field": "path-pattern", "Values": ["/chat/*"]}],
        Actions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": groups[0], "Weight": 100},
                        {"TargetGroupArn": groups[1], "Weight": 0},
                    ],
                    "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": STICKINESS_SECONDS},
                },
            }
        ],
    )["Rules"][0]["RuleArn"]

    def full_name(arn: str, marker: str) -> str:
        # CloudWatch's dimension value is the ARN's tail: "app/<name>/<id>" and "targetgroup/<name>/<id>".
        return marker + arn.split(f":{marker}", 1)[1] if f":{marker}" in arn else arn.split("/", 1)[1]

    return Traffic(
        listener_rule_arn=rule,
        control_target_group_arn=groups[0],
        canary_target_group_arn=groups[1],
        load_balancer_full_name=lb["LoadBalancerArn"].split(":loadbalancer/", 1)[1],
        control_target_group_full_name=full_name(groups[0], "targetgroup"),
        canary_target_group_full_name=full_name(groups[1], "targetgroup"),
    )


@pytest.fixture
def registry_table() -> Iterator[str]:
    """Only the registry table (the registry's own tests need nothing else)."""
    with mock_aws():
        create_registry_table(boto3.client("dynamodb"))
        yield TABLE


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """Registry table, ALB, state machine, topic; the handlers' environment set."""
    with mock_aws():
        create_registry_table(boto3.client("dynamodb"))
        traffic = create_traffic()
        iam = boto3.client("iam")
        role = iam.create_role(
            RoleName="canary-sfn",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "states.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        # Stays RUNNING until stopped, as a canary execution does (a 1 s wait ended on its own when a loaded
        # machine took longer than that between the start and the rollback: the tests read its status).
        machine = boto3.client("stepfunctions").create_state_machine(
            name="mangaassist-canary",
            definition=json.dumps(
                {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 600, "End": True}}}
            ),
            roleArn=role,
        )["stateMachineArn"]
        topic, queue = create_alert_topic()
        env = Env(traffic=traffic, state_machine_arn=machine, topic_arn=topic, queue_url=queue)
        for name, value in env.variables().items():
            monkeypatch.setenv(name, value)
        yield env


# --- helpers the tests share ----------------------------------------------------------------------------
def create_alert_topic() -> tuple[str, str]:
    """The alert topic and a queue subscribed to it (raw delivery): (topic ARN, queue URL)."""
    sns = boto3.client("sns")
    sqs = boto3.client("sqs")
    topic = sns.create_topic(Name="canarywise-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    return topic, queue


@dataclass
class LambdaContext:
    function_name: str = "canarywise-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:canarywise-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture(scope="session")
def spec_data() -> dict[str, Any]:
    """The MangaAssist rollout spec as the state machine embeds it (JSON)."""
    return load_spec(ROOT / "config" / "mangaassist.yaml").model_dump(mode="json")


def alerts(env: Env) -> list[dict[str, Any]]:
    """Every message published on the alert topic so far (drains the queue)."""
    sqs = boto3.client("sqs")
    out = []
    while True:
        messages = sqs.receive_message(QueueUrl=env.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return out
        for message in messages:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=env.queue_url, ReceiptHandle=message["ReceiptHandle"])


def rule_weights(env: Env) -> dict[str, int]:
    """The weights on the listener rule, read straight from ELBv2 (not through the code under test)."""
    rule = boto3.client("elbv2").describe_rules(RuleArns=[env.traffic.listener_rule_arn])["Rules"][0]
    forward = next(a for a in rule["Actions"] if a["Type"] == "forward")["ForwardConfig"]
    by_arn = {tg["TargetGroupArn"]: tg["Weight"] for tg in forward["TargetGroups"]}
    # A group the forward action does not name receives nothing: weight 0.
    return {
        "control": by_arn.get(env.traffic.control_target_group_arn, 0),
        "canary": by_arn.get(env.traffic.canary_target_group_arn, 0),
    }


def rule_groups(env: Env) -> set[str]:
    """The slots the rule's forward action names (read straight from ELBv2)."""
    rule = boto3.client("elbv2").describe_rules(RuleArns=[env.traffic.listener_rule_arn])["Rules"][0]
    forward = next(a for a in rule["Actions"] if a["Type"] == "forward")["ForwardConfig"]
    slot = {env.traffic.control_target_group_arn: "control", env.traffic.canary_target_group_arn: "canary"}
    return {slot[tg["TargetGroupArn"]] for tg in forward["TargetGroups"]}


def rule_stickiness(env: Env) -> dict[str, Any]:
    rule = boto3.client("elbv2").describe_rules(RuleArns=[env.traffic.listener_rule_arn])["Rules"][0]
    forward = next(a for a in rule["Actions"] if a["Type"] == "forward")["ForwardConfig"]
    return dict(forward.get("TargetGroupStickinessConfig", {}))


def registry_items() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=TABLE)["Items"]


def start_execution(env: Env, name: str = "release-42") -> str:
    return boto3.client("stepfunctions").start_execution(
        stateMachineArn=env.state_machine_arn, name=name, input="{}"
    )["executionArn"]


def execution_status(arn: str) -> str:
    return str(boto3.client("stepfunctions").describe_execution(executionArn=arn)["status"])


T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def serialized_dynamodb_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give moto's DynamoDB what the real service has: each write request is atomic.

    DynamoDB evaluates a condition and applies the write as one step on its side; moto's in-process backend
    checks and then writes in Python, so two threads can interleave between the two. Holding a lock around
    each write request restores the service's atomicity without serialising anything else the threads do
    (ELBv2, Step Functions, reads), so the race the test exercises is still a race.
    """
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        original: Callable[..., Any] = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, __original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            with lock:
                return __original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


# --- events as AWS delivers them ----------------------------------------------------------------------------
ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:canarywise-mangaassist-critical"


def alarm_action_event(
    state: str = "ALARM", timestamp: str = "2026-11-02T09:30:15.490+0000"
) -> dict[str, Any]:
    """A CloudWatch alarm's Lambda action (the composite "critical" alarm)."""
    return {
        "source": "aws.cloudwatch",
        "alarmArn": ALARM_ARN,
        "accountId": "123456789012",
        "time": timestamp,
        "region": REGION,
        "alarmData": {
            "alarmName": "canarywise-mangaassist-critical",
            "state": {"value": state, "reason": "StatisticalHarm >= 1", "timestamp": timestamp},
            "previousState": {"value": "OK", "reason": "", "timestamp": "2026-11-02T09:00:00.000+0000"},
            "configuration": {"alarmRule": "ALARM(mangaassist-harm)"},
        },
    }


def sns_alarm_event(state: str = "ALARM", timestamp: str = "2026-11-02T09:30:15.490+0000") -> dict[str, Any]:
    """The same alarm state change delivered through SNS (what a Lambda subscribed to the topic gets)."""
    message = {
        "AlarmName": "canarywise-mangaassist-critical",
        "AlarmArn": ALARM_ARN,
        "NewStateValue": state,
        "NewStateReason": "StatisticalHarm >= 1",
        "StateChangeTime": timestamp,
        "OldStateValue": "OK",
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"arn:aws:sns:{REGION}:123456789012:alarms:1b2c",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                    "TopicArn": f"arn:aws:sns:{REGION}:123456789012:alarms",
                    "Subject": "ALARM: canarywise-mangaassist-critical",
                    "Message": json.dumps(message),
                    "Timestamp": "2026-11-02T09:30:16.000Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/cert.pem",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {},
                },
            }
        ]
    }


def pipeline_event(state: str = "FAILED", category: str = "Approval") -> dict[str, Any]:
    """EventBridge: a CodePipeline action changed state (FAILED for an approval = rejected)."""
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "CodePipeline Action Execution State Change",
        "source": "aws.codepipeline",
        "account": "123456789012",
        "time": "2026-11-02T10:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:codepipeline:{REGION}:123456789012:mangaassist-release"],
        "detail": {
            "pipeline": "mangaassist-release",
            "execution-id": "c3a8e1f0-0000-4000-8000-000000000001",
            "stage": "Approve",
            "action": "ApproveFullRollout",
            "state": state,
            "type": {"owner": "AWS", "provider": "Manual", "category": category, "version": "1"},
        },
    }


def set_rule_weights(env: Env, control: int, canary: int) -> None:
    """What the state machine's SDK task does at a stage start (kept outside the code under test)."""
    boto3.client("elbv2").modify_rule(
        RuleArn=env.traffic.listener_rule_arn,
        Actions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": env.traffic.control_target_group_arn, "Weight": control},
                        {"TargetGroupArn": env.traffic.canary_target_group_arn, "Weight": canary},
                    ],
                    "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": STICKINESS_SECONDS},
                },
            }
        ],
    )


def start_rollout(
    env: Env,
    spec_data: dict[str, Any],
    context: Any,
    *,
    candidate: str = "v42",
    execution_name: str = "release-42",
) -> tuple[str, str]:
    """Start an execution, register its experiment through the stage gate and begin stage 0 at 5%.

    Returns (experiment_id, execution_arn).
    """
    from canarywise.handlers import stage_gate

    execution_arn = start_execution(env, execution_name)
    started = stage_gate.handler(
        {
            "action": "start",
            "execution_arn": execution_arn,
            "release": {"candidate": candidate, "release_id": execution_name},
            "spec": spec_data,
        },
        context,
    )
    stage_gate.handler(
        {
            "action": "stage_started",
            "experiment_id": started["experiment_id"],
            "stage_index": 0,
            "weights": {"control": 95, "canary": 5},
        },
        context,
    )
    return started["experiment_id"], execution_arn


# --- CloudWatch data ----------------------------------------------------------------------------------
def put_emf(line: str, timestamp: datetime) -> None:
    """Do what CloudWatch Logs does with an EMF log line: one datapoint per metric per dimension set.

    moto does not read logs, so the tests turn the emitter's output into PutMetricData themselves; the
    timestamp is given so a test can place the data inside a stage's window.
    """
    blob = json.loads(line)
    cloudwatch = boto3.client("cloudwatch")
    for directive in blob["_aws"]["CloudWatchMetrics"]:
        data = []
        for dimension_names in directive["Dimensions"]:
            dimensions = [{"Name": name, "Value": blob[name]} for name in dimension_names]
            for metric in directive["Metrics"]:
                values = blob[metric["Name"]]
                values = values if isinstance(values, list) else [values]
                data.append(
                    {
                        "MetricName": metric["Name"],
                        "Dimensions": dimensions,
                        "Timestamp": timestamp,
                        "Values": [float(v) for v in values],
                        "Counts": [1.0] * len(values),
                        "Unit": metric["Unit"],
                    }
                )
        cloudwatch.put_metric_data(Namespace=directive["Namespace"], MetricData=data)


def harm_metric(around: datetime) -> list[float]:
    """The StatisticalHarm datapoints (Maximum a minute, service mangaassist) within 5 minutes of `around`."""
    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="Canarywise",
        MetricName="StatisticalHarm",
        Dimensions=[{"Name": "Service", "Value": SERVICE}],
        StartTime=around - timedelta(minutes=5),
        EndTime=around + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum"],
    )
    return [p["Maximum"] for p in stats["Datapoints"]]


def put_aggregate(
    namespace: str,
    metric_name: str,
    dimensions: dict[str, str],
    timestamp: datetime,
    *,
    n: float,
    total: float,
) -> None:
    """Many units at once, as CloudWatch stores them (a statistic set: SampleCount and Sum)."""
    boto3.client("cloudwatch").put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": metric_name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                "Timestamp": timestamp,
                "StatisticValues": {
                    "SampleCount": n,
                    "Sum": total,
                    "Minimum": 0.0,
                    "Maximum": max(total, 1.0),
                },
            }
        ],
    )


def put_alb_counts(env: Env, variant: str, timestamp: datetime, *, requests: float, errors: float) -> None:
    """The ALB's own per-target-group metrics (RequestCount, HTTPCode_Target_5XX_Count)."""
    group = (
        env.traffic.control_target_group_full_name
        if variant == "control"
        else env.traffic.canary_target_group_full_name
    )
    dims = {"LoadBalancer": env.traffic.load_balancer_full_name, "TargetGroup": group}
    put_aggregate("AWS/ApplicationELB", "RequestCount", dims, timestamp, n=1, total=requests)
    if errors:
        put_aggregate("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", dims, timestamp, n=1, total=errors)


# --- the lifecycle, driven directly (tests of the registry and of what reads it) -------------------------
def begin(
    registry: Any,
    spec_data: dict[str, Any],
    *,
    candidate: str = "v42",
    n: int = 1,
    now: datetime = T0,
    execution_arn: str | None = None,
    **spec_changes: Any,
) -> Any:
    """Take ``start`` for a new experiment of the spec's service (its state initialised control-live)."""
    from canarywise.data.registry import experiment_id_for
    from canarywise.lifecycle.state import ServiceState
    from canarywise.lifecycle.table import Event
    from canarywise.spec import parse_spec

    data = json.loads(json.dumps(spec_data))
    for section, values in spec_changes.items():
        data[section].update(values)
    spec = parse_spec(data)
    state = registry.service_state(spec.service) or registry.initialise_service_state(
        ServiceState.initial(spec.service, live="control", idle="canary", now=now)
    )
    execution_arn = execution_arn or f"arn:aws:states:us-east-1:123456789012:execution:canary:{candidate}-{n}"
    experiment_id = experiment_id_for(spec.service, candidate, execution_arn)
    item = registry.new_experiment_item(
        spec,
        experiment_id=experiment_id,
        candidate=candidate,
        release_id=f"r{n}",
        execution_arn=execution_arn,
        now=now,
        first_stage_multiplier=1.0,
        baseline_slot=state.live,
        candidate_slot=state.idle,
    )
    registry.transition(
        Event.START, state, experiment_id=experiment_id, new_experiment=item, now=now, by="test"
    )
    return registry.get_experiment(experiment_id)


def take(registry: Any, service: str, event: str, now: datetime, **kwargs: Any) -> Any:
    """Take lifecycle `event` from the service's current state (the registry only; traffic untouched)."""
    from canarywise.lifecycle.table import Event

    state = registry.service_state(service)
    return registry.transition(Event(event), state, now=now, by="test", **kwargs)


def conclude(registry: Any, experiment: Any, how: str, now: datetime, *, pvalue: float | None = None) -> None:
    """Walk `experiment` to PROMOTED or ROLLED_BACK through the table (registry only)."""
    from canarywise.data.models import RollbackRecord, to_iso

    service, eid = experiment.service, experiment.experiment_id
    if how == "promoted":
        take(registry, service, "ready", now, experiment_id=eid)
        take(registry, service, "approve", now, experiment_id=eid)
        take(registry, service, "promote", now, experiment_id=eid,
             experiment_sets={"concluded_at": to_iso(now), "pvalue": pvalue})  # fmt: skip
        return
    take(registry, service, "roll_back", now, experiment_id=eid)
    record = RollbackRecord(
        service=service, rolled_back_at=now, source="cli", reason="test", experiment_id=eid,
        candidate=experiment.candidate,
    )  # fmt: skip
    sets = {"concluded_at": to_iso(now), "rolled_back_at": to_iso(now), "pvalue": pvalue}
    take(registry, service, "rolled_back", now, experiment_id=eid, rollback=record, experiment_sets=sets)
