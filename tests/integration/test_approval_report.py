"""The ``ready`` step writes the approval report to the stack's bucket and publishes its summary (moto)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from aws_kit import TABLE, Env, alerts, start_rollout

from canarywise.data.models import CheckRecord
from canarywise.data.registry import Registry
from canarywise.handlers import stage_gate

BUCKET = "canarywise-mangaassist-releases"


def _ready_check(experiment_id: str) -> None:
    ni = {"metric": "escalation_rate", "slice": None, "method": "non-inferiority: mSPRT", "estimate": 0.001,
          "ci_low": None, "ci_high": 0.0042, "pvalue": 1e-6, "n_control": 180_000, "n_canary": 20_000,
          "threshold": 0.01, "verdict": "non_inferior", "alpha": 0.05, "adjusted_pvalue": None}  # fmt: skip
    Registry(TABLE).record_check(
        experiment_id,
        CheckRecord(checked_at=datetime.now(UTC), stage_index=0, decision="READY_FOR_APPROVAL",
                    reason="gate met", details={"findings": [ni]}),
    )  # fmt: skip


def test_ready_writes_the_report_and_publishes_the_numbers(
    aws: Env, spec_data: dict[str, Any], context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("REPORT_BUCKET", BUCKET)
    experiment_id, _ = start_rollout(aws, spec_data, context)
    _ready_check(experiment_id)
    alerts(aws)  # drop what the start sent

    answer = stage_gate.handler({"action": "ready", "experiment_id": experiment_id}, context)

    key = f"reports/{experiment_id}/report.html"
    assert answer["status"] == "READY_FOR_APPROVAL"
    assert (
        answer["report"]
        == f"https://s3.console.aws.amazon.com/s3/object/{BUCKET}?region=us-east-1&prefix={key}"
    )
    html = s3.get_object(Bucket=BUCKET, Key=key)
    assert html["ContentType"] == "text/html; charset=utf-8"
    body = html["Body"].read().decode()
    assert (
        body
        == s3.get_object(Bucket=BUCKET, Key="reports/mangaassist/latest-approval/report.html")["Body"]
        .read()
        .decode()
    )
    assert "READY FOR APPROVAL" in body
    markdown = s3.get_object(Bucket=BUCKET, Key=f"reports/{experiment_id}/report.md")["Body"].read().decode()
    assert markdown.startswith("# canarywise report: mangaassist v42")
    (sent,) = alerts(aws)  # raw delivery: the message itself
    assert sent["report"] == answer["report"]
    # 0.0042 and 0.01 in percentage points
    assert sent["gates"] == [
        {"metric": "escalation_rate", "test": "non-inferiority", "estimate": "+0.10 pt",
         "bound": "upper +0.42 pt", "threshold": "margin +1.00 pt", "pvalue": "1e-06",
         "verdict": "non inferior", "passed": True}
    ]  # fmt: skip
    assert sent["stages"][0]["weights"] == "95/5"


def test_a_report_that_cannot_be_written_never_blocks_the_ready_step(
    aws: Env, spec_data: dict[str, Any], context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORT_BUCKET", "no-such-bucket")
    experiment_id, _ = start_rollout(aws, spec_data, context)
    _ready_check(experiment_id)

    answer = stage_gate.handler({"action": "ready", "experiment_id": experiment_id}, context)

    assert answer == {"experiment_id": experiment_id, "status": "READY_FOR_APPROVAL", "report": None}
