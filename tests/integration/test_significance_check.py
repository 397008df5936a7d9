"""The scheduled significance check against moto: data in CloudWatch → decision in the registry → gate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_kit import TABLE, Env, put_aggregate, put_alb_counts, set_rule_weights, start_execution

from canarywise.data.models import CheckRecord, Weights
from canarywise.data.registry import Registry
from canarywise.handlers import significance_check, stage_gate
from canarywise.runtime.events import EventError
from canarywise.spec import parse_spec

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
STAGE_START = NOW - timedelta(hours=5)


def _scheduled(at: datetime = NOW) -> dict[str, Any]:
    """An EventBridge scheduled event; its `time` is the check's "now"."""
    return {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/canarywise-check"],
        "detail": {},
    }


def _experiment(env: Env, spec_data: dict[str, Any], name: str = "release-42") -> str:
    registry = Registry(TABLE)
    experiment = registry.create_experiment(
        parse_spec(spec_data),
        candidate="v42",
        release_id=name,
        execution_arn=start_execution(env, name),
        now=STAGE_START - timedelta(minutes=1),
    )
    registry.record_stage_start(experiment.experiment_id, 0, Weights(control=95, canary=5), STAGE_START)
    set_rule_weights(env, 95, 5)
    return experiment.experiment_id


def _escalations(control: tuple[int, int], canary: tuple[int, int]) -> None:
    """(successes, n) per arm for the escalation metric, half an hour ago and a minute ago (fresh data)."""
    for variant, (successes, n) in (("control", control), ("canary", canary)):
        for at, share in ((NOW - timedelta(minutes=30), 0.9), (NOW - timedelta(minutes=2), 0.1)):
            put_aggregate(
                "MangaAssist", "Escalation", {"Variant": variant}, at, n=n * share, total=successes * share
            )


def _harm_metric() -> list[float]:
    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="Canarywise",
        MetricName="StatisticalHarm",
        Dimensions=[{"Name": "Service", "Value": "mangaassist"}],
        StartTime=NOW - timedelta(minutes=5),
        EndTime=NOW + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum"],
    )
    return [p["Maximum"] for p in stats["Datapoints"]]


def test_escalation_12_to_14_percent_rolls_back_and_raises_statistical_harm(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    # The case: control 59,400 / 495,000 (12%), canary 700 / 5,000 (14%).
    experiment_id = _experiment(aws, spec_data)
    _escalations(control=(59_400, 495_000), canary=(700, 5_000))

    summary = significance_check.handler(_scheduled(), context)

    assert summary == {
        "now": NOW.isoformat(),
        "decisions": {experiment_id: "ROLLBACK"},
        "failed": {},
        "harm": True,
    }
    check = Registry(TABLE).get_experiment(experiment_id).latest_check
    assert check is not None
    assert (check.decision, check.harm, check.checked_at, check.stage_index) == ("ROLLBACK", True, NOW, 0)
    finding = next(
        f
        for f in check.details["findings"]
        if f["metric"] == "escalation_rate" and f["slice"] is None and f["verdict"] == "harm"
    )
    assert (finding["n_control"], finding["n_canary"]) == (495_000, 5_000)
    assert finding["estimate"] == pytest.approx(0.14 - 0.12, abs=1e-12)  # 700/5000 - 59400/495000
    assert _harm_metric() == [1.0]
    assert (
        stage_gate.handler({"action": "gate", "experiment_id": experiment_id, "stage_index": 0}, context)[
            "decision"
        ]
        == "ROLLBACK"
    )


def test_equal_rates_do_not_roll_back_and_statistical_harm_is_zero(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id = _experiment(aws, spec_data)
    _escalations(control=(59_400, 495_000), canary=(600, 5_000))
    summary = significance_check.handler(_scheduled(), context)
    assert summary["decisions"][experiment_id] != "ROLLBACK"
    assert summary["harm"] is False
    assert _harm_metric() == [0.0]


def _patch_get_metric_data(monkeypatch: pytest.MonkeyPatch, code: str) -> list[int]:
    from moto.cloudwatch.exceptions import CloudWatchException
    from moto.cloudwatch.models import CloudWatchBackend

    calls: list[int] = []

    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise CloudWatchException(code, "Rate exceeded" if code == "Throttling" else "refused")

    monkeypatch.setattr(CloudWatchBackend, "get_metric_data", refuse)
    return calls


@pytest.mark.parametrize("code", ["Throttling", "InvalidParameterValue"])
def test_cloudwatch_throttled_or_failing_means_hold_never_advance(
    aws: Env, spec_data: dict[str, Any], context: Any, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    experiment_id = _experiment(aws, spec_data)
    registry = Registry(TABLE)
    # The previous look said ADVANCE; the gate must not act on it once the data cannot be read.
    registry.record_check(
        experiment_id,
        CheckRecord(
            checked_at=NOW - timedelta(minutes=5), stage_index=0, decision="ADVANCE", reason="gate met"
        ),
    )
    calls = _patch_get_metric_data(monkeypatch, code)

    summary = significance_check.handler(_scheduled(), context)

    assert calls  # CloudWatch was asked (botocore retries a throttled call before giving up)
    assert summary["decisions"] == {experiment_id: "HOLD"}
    check = registry.get_experiment(experiment_id).latest_check
    assert check is not None
    assert check.decision == "HOLD"
    assert check.reason.startswith(f"metrics unavailable, holding: CloudWatch read failed: {code}: ")
    gate = stage_gate.handler({"action": "gate", "experiment_id": experiment_id, "stage_index": 0}, context)
    assert gate["decision"] == "HOLD"
    assert summary["harm"] is False


def test_one_failing_experiment_never_stops_the_others(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    broken = _experiment(aws, spec_data, "release-41")
    healthy = _experiment(aws, spec_data, "release-42")
    spec = json.loads(json.dumps(spec_data))
    spec["stages"] = "not a list"
    boto3.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"EXP#{broken}"}, "sk": {"S": "META"}},
        UpdateExpression="SET spec = :s",
        ExpressionAttributeValues={":s": {"S": json.dumps(spec)}},
    )
    _escalations(control=(59_400, 495_000), canary=(700, 5_000))

    summary = significance_check.handler(_scheduled(), context)

    assert summary["decisions"] == {healthy: "ROLLBACK"}
    assert list(summary["failed"]) == [broken]
    assert summary["failed"][broken].startswith("SpecError: registry experiment " + broken)
    assert summary["harm"] is True
    # The broken experiment's gate now reads HOLD with the reason, not an older decision.
    checks = Registry(TABLE).list_checks(broken)
    assert [c.decision for c in checks] == ["HOLD"]
    assert checks[0].reason.startswith("the check failed, holding: SpecError: ")


def test_no_running_experiment_publishes_no_harm(aws: Env, context: Any) -> None:
    assert significance_check.handler(_scheduled(), context) == {
        "now": NOW.isoformat(),
        "decisions": {},
        "failed": {},
        "harm": False,
    }
    assert _harm_metric() == [0.0]


def test_alb_5xx_in_the_check(aws: Env, spec_data: dict[str, Any], context: Any) -> None:
    experiment_id = _experiment(aws, spec_data)
    for minute in range(0, 290, 10):
        put_alb_counts(aws, "control", STAGE_START + timedelta(minutes=minute + 1), requests=9_500, errors=5)
        put_alb_counts(aws, "canary", STAGE_START + timedelta(minutes=minute + 1), requests=500, errors=40)
    significance_check.handler(_scheduled(), context)
    check = Registry(TABLE).get_experiment(experiment_id).latest_check
    assert check is not None
    # 8% canary 5xx against a 2% hard limit and ~0.05% control: harm on the guardrail.
    assert check.decision == "ROLLBACK"
    error_findings = [f for f in check.details["findings"] if f["metric"] == "error_rate"]
    assert {f["n_canary"] for f in error_findings} == {29 * 500}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "malformed scheduled event: time: Field required"),
        (
            {"time": "yesterday"},
            "malformed scheduled event: time: Input should be a valid datetime or date, input is too short",
        ),
        (
            {"time": "2026-11-02T09:00:00"},
            "malformed scheduled event: time: Value error, must be timezone-aware "
            "(UTC), found '2026-11-02T09:00:00'",
        ),
    ],
    ids=["no-time", "not-a-time", "naive-time"],
)
def test_malformed_scheduled_events_write_nothing(
    aws: Env, spec_data: dict[str, Any], context: Any, event: dict[str, Any], message: str
) -> None:
    experiment_id = _experiment(aws, spec_data)
    with pytest.raises(EventError) as raised:
        significance_check.handler(event, context)
    assert str(raised.value) == message
    assert Registry(TABLE).list_checks(experiment_id) == ()
