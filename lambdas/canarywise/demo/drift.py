"""``canarywise demo --scenario drift``: the drift monitor on the local AWS; a stationary week, a campaign.

The stack of ``demo/specs/mangaassist-monitor.yaml`` (``mode: monitor``) is synthesized and provisioned on
moto in server mode (:func:`canarywise.local.provision.provision`); four weeks of MangaAssist traffic
(`canarywise.demo.drift_traffic`, with its daily and weekly cycles; the hours the looks read) are written
to CloudWatch as the baseline, then the demo plays hour by hour: the hour's traffic, the monitor function's
look (invoked through the local Lambda, its scheduled event's time one look after the hour), the drift alarm
evaluated as CloudWatch would. A stationary week raises nothing; then a campaign moves the recommendation
share 32% -> 21% and thumbs-down 6% -> 9%, and the drift alarm goes to ALARM with the numbers in the registry
and on the topic.

Example
-------
>>> result = run_drift_demo(stationary_hours=168, campaign_hours=6)  # doctest: +SKIP
>>> result.as_expected, result.alarm_hours  # doctest: +SKIP
(True, 2.0)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from canarywise.demo.drift_traffic import Drift, MonitorTraffic, hour_counts, to_metric_data
from canarywise.demo.scenarios import PACKAGE
from canarywise.local.alarms import ALARM, AlarmEvaluator
from canarywise.local.provision import provision, synthesize
from canarywise.local.server import LocalAws
from canarywise.spec import load_spec

NAME = "drift"
TITLE = "Drift monitor: a stationary week raises nothing; a campaign (recommendation 32% → 21%) pages"
SPEC = PACKAGE / "specs" / "mangaassist-monitor.yaml"
LOOK_DELAY = timedelta(minutes=12)  # the schedule's time after each hour (past the monitor's data lag)


@dataclass
class DriftDemoResult:
    """What happened: the stationary part's alarms and findings (none expected), the campaign's."""

    stationary_hours: int
    stationary_alarms: int = 0
    stationary_findings: list[str] = field(default_factory=list)
    campaign_onset: datetime | None = None
    alarm_at: datetime | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    looks: int = 0
    wall_seconds: float = 0.0

    @property
    def alarm_hours(self) -> float | None:
        """Hours from the campaign's onset to the drift alarm."""
        if self.alarm_at is None or self.campaign_onset is None:
            return None
        return (self.alarm_at - self.campaign_onset).total_seconds() / 3600

    @property
    def as_expected(self) -> bool:
        return self.stationary_alarms == 0 and not self.stationary_findings and self.alarm_at is not None


def _week_start(now: datetime) -> datetime:
    """Monday 00:00 UTC two weeks before `now` (the demo's hours all lie in the past)."""
    monday = (now - timedelta(days=now.weekday() + 14)).replace(hour=0, minute=0, second=0, microsecond=0)
    return monday


def run_drift_demo(
    *,
    seed: int = 7,
    stationary_hours: int = 168,
    campaign_hours: int = 8,
    say: Any = print,
) -> DriftDemoResult:
    """Provision the monitor's stack locally and play the stationary hours, then the campaign (see above)."""
    began = time.monotonic()
    spec = load_spec(SPEC)
    assert spec.monitor is not None
    template = synthesize(spec)
    rng = np.random.default_rng(seed)
    start = _week_start(datetime.now(UTC))
    onset = start + timedelta(hours=stationary_hours)
    traffic = MonitorTraffic(drift=Drift(onset=onset))
    result = DriftDemoResult(stationary_hours=stationary_hours, campaign_onset=onset)
    with LocalAws() as aws:
        deployment = provision(aws, template, stack_name=f"canarywise-{spec.service}")
        monitor = deployment.function("monitor")
        inbox = _subscribe_inbox(aws, deployment.outputs["AlertTopicArn"])
        cloudwatch, lambda_client = aws.client("cloudwatch"), aws.client("lambda")
        alarms = AlarmEvaluator(cloudwatch, lambda_client, aws.client("sns"))
        weeks = spec.monitor.baseline_weeks
        say(f"baseline: {weeks} weeks of traffic before {start:%Y-%m-%d} (daily and weekly cycles)")
        # Only the baseline hours the looks read: the same hours of earlier weeks (a short run stays fast).
        played = stationary_hours + campaign_hours
        before = sorted({h - 168 * k for h in range(played) for k in range(1, weeks + 1) if h < 168 * k})
        _write_hours(cloudwatch, traffic, rng, [start + timedelta(hours=h) for h in before])
        say(
            f"stationary: {stationary_hours} h from {start:%a %Y-%m-%d %H:%M}; campaign from {onset:%a %H:%M}"
        )
        for hour in range(stationary_hours + campaign_hours):
            moment = start + timedelta(hours=hour)
            _write_hours(cloudwatch, traffic, rng, [moment])
            look_at = moment + timedelta(hours=1) + LOOK_DELAY
            event = {"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {},
                     "time": look_at.strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
            response = lambda_client.invoke(FunctionName=monitor.name, Payload=json.dumps(event).encode())
            summary = json.loads(response["Payload"].read() or b"{}")
            result.looks += 1
            changes = alarms.evaluate(look_at + timedelta(minutes=1))
            fired = [c for c in changes if c.state == ALARM]
            if moment < onset:
                result.stationary_alarms += len(fired)
                result.stationary_findings += summary.get("findings", [])
            elif fired and result.alarm_at is None:
                result.alarm_at = look_at
                say(f"{look_at:%a %H:%M}: drift alarm {fired[0].name} -> ALARM")
            for name in summary.get("new_findings", []):
                say(f"{look_at:%a %H:%M}: finding {name}")
        from canarywise.data.registry import Registry

        registry = Registry(deployment.outputs["RegistryTableName"], boto3_client=aws.client("dynamodb"))
        result.findings = [
            {"watch": d.watch, "detected_at": d.detected_at.isoformat(), "summary": d.summary}
            for d in registry.drift_records(spec.service)
        ]
        result.messages = _drain(aws, inbox)
    result.wall_seconds = time.monotonic() - began
    return result


def _write_hours(
    cloudwatch: Any, traffic: MonitorTraffic, rng: np.random.Generator, hours: list[datetime]
) -> None:
    """Each hour's traffic (starting at each of `hours`) as CloudWatch statistic sets, mid-hour."""
    data: list[dict[str, Any]] = []
    for moment in hours:
        data += to_metric_data(
            hour_counts(traffic, moment, rng), traffic.variant, moment + timedelta(minutes=30)
        )
    for begin in range(0, len(data), 1000):  # PutMetricData takes at most 1000 data a call
        cloudwatch.put_metric_data(Namespace="MangaAssist", MetricData=data[begin : begin + 1000])


def _subscribe_inbox(aws: LocalAws, topic_arn: str) -> str:
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName="drift-demo-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return str(queue)


def _drain(aws: LocalAws, queue: str) -> list[str]:
    """The subjects of the messages on the alert topic (the monitor's findings, the alarm's notices)."""
    sqs = aws.client("sqs")
    subjects: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return subjects
        for message in got:
            subjects.append(json.loads(message["Body"]).get("Subject") or "")
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
