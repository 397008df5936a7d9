"""The drift monitor against moto: hourly counts in CloudWatch -> looks and drift records in the registry,
the Drift metric, the SNS message with the numbers.

References: the chi-square of the intent mix and of the thumbs-down rate are recomputed here from the counts
written to CloudWatch with ``scipy.stats.chi2_contingency`` (the current hour against the four baseline hours
pooled, ``correction=False`` for the 2 x 2 table).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np
import pytest
from aws_kit import TABLE, LambdaContext, create_alert_topic, create_registry_table
from moto import mock_aws
from numpy.testing import assert_allclose
from scipy import stats

from canarywise.cli.drift_status import drift_rows, drift_status
from canarywise.data.executions import AlertTopic
from canarywise.data.monitor_source import DriftSignal, MonitorSource
from canarywise.data.registry import Registry
from canarywise.demo.drift_traffic import Drift, HourCounts, MonitorTraffic, hour_counts, to_metric_data
from canarywise.handlers import monitor as monitor_handler
from canarywise.runtime.monitor import look
from canarywise.spec import load_spec
from canarywise.spec.monitor import monitor_spec

SPEC = load_spec("lambdas/canarywise/demo/specs/mangaassist-monitor.yaml")
# Two looks: at 21:12 (window 20:00-21:00) and 22:12 (21:00-22:00) on a Monday.
HOURS = (datetime(2026, 11, 30, 20, tzinfo=UTC), datetime(2026, 11, 30, 21, tzinfo=UTC))


@pytest.fixture
def topic() -> Iterator[tuple[str, str]]:
    with mock_aws():
        create_registry_table(boto3.client("dynamodb"))
        yield create_alert_topic()


def _write(traffic: MonitorTraffic, seed: int) -> dict[datetime, HourCounts]:
    """The two current hours and the same hours of the four weeks before, written to CloudWatch."""
    rng = np.random.default_rng(seed)
    cloudwatch = boto3.client("cloudwatch")
    written = {}
    for hour in HOURS:
        for weeks in range(5):
            moment = hour - timedelta(weeks=weeks)
            counts = hour_counts(traffic, moment, rng)
            written[moment] = counts
            # Mid-hour: the datapoint falls inside the hour's window.
            data = to_metric_data(counts, "blue", moment + timedelta(minutes=30))
            for first in range(0, len(data), 500):
                cloudwatch.put_metric_data(Namespace="MangaAssist", MetricData=data[first : first + 500])
    return written


def _look(at: datetime, topic_arn: str) -> Any:
    return look(
        now=at + timedelta(hours=1, minutes=12), spec=SPEC, source=MonitorSource(), registry=Registry(TABLE),
        signal=DriftSignal(), topic=AlertTopic(topic_arn),
    )  # fmt: skip


def _messages(queue: str) -> list[dict[str, Any]]:
    got = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


def _drift_metric() -> list[float]:
    response = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="Canarywise", MetricName="Drift", Dimensions=[{"Name": "Service", "Value": "mangaassist"}],
        StartTime=HOURS[0], EndTime=HOURS[1] + timedelta(hours=3), Period=3600, Statistics=["Maximum"],
    )  # fmt: skip
    return [p["Maximum"] for p in sorted(response["Datapoints"], key=lambda p: p["Timestamp"])]


def test_a_stationary_week_raises_nothing(topic: tuple[str, str]) -> None:
    """Monday evening against four Monday evenings: the evening's own mix and rate are no drift."""
    arn, queue = topic
    _write(MonitorTraffic(), seed=11)
    for hour in HOURS:
        summary = _look(hour, arn)
        assert summary.tested
        assert summary.deviating == []
        assert summary.findings == []
    registry = Registry(TABLE)
    assert registry.drift_records("mangaassist") == ()
    looks = registry.monitor_looks("mangaassist", last=5)
    assert [lk.window_end for lk in looks] == [h + timedelta(hours=1) for h in HOURS]
    assert all(r.pvalue is not None for lk in looks for r in lk.results)  # every watch was tested
    assert _messages(queue) == []
    assert _drift_metric() == [0.0, 0.0]
    status = drift_status(registry, "mangaassist", HOURS[1] + timedelta(hours=2))
    assert status is not None
    assert (status["drifting"], status["findings"]) == ([], [])


def test_the_campaign_drift_raises_the_alarm_metric_a_record_and_a_message(topic: tuple[str, str]) -> None:
    arn, queue = topic
    written = _write(MonitorTraffic(drift=Drift(onset=HOURS[0])), seed=12)
    first = _look(HOURS[0], arn)
    assert {"intent_mix", "thumbs_down_rate"} <= set(first.deviating)
    assert first.findings == []  # one deviating hour is not yet a finding (sustain: 2)
    second = _look(HOURS[1], arn)
    assert {"intent_mix", "thumbs_down_rate"} <= set(second.findings)
    assert set(second.new_findings) == set(second.findings)

    records = {r.watch: r for r in Registry(TABLE).drift_records("mangaassist")}
    current = written[HOURS[1]]
    baseline = [written[HOURS[1] - timedelta(weeks=k)] for k in range(1, 5)]
    intents = list(current.intents)
    table = [[sum(b.intents[k] for b in baseline) for k in intents], [current.intents[k] for k in intents]]
    expected = stats.chi2_contingency(table, correction=False)
    mix = records["intent_mix"].result
    assert_allclose([mix.statistic, mix.pvalue], [expected.statistic, expected.pvalue], rtol=1e-9)
    shares = mix.detail["current_shares"]
    assert_allclose(
        shares["recommendation"], current.intents["recommendation"] / current.sessions, rtol=1e-12
    )
    assert shares["recommendation"] < 0.25 < mix.detail["baseline_shares"]["recommendation"]

    x0, n0 = sum(b.thumbs_down for b in baseline), sum(b.sessions for b in baseline)
    x1, n1 = current.thumbs_down, current.sessions
    expected = stats.chi2_contingency([[x0, n0 - x0], [x1, n1 - x1]], correction=False)
    thumbs = records["thumbs_down_rate"].result
    assert_allclose([thumbs.statistic, thumbs.pvalue, thumbs.effect], [expected.statistic, expected.pvalue,
                    x1 / n1 - x0 / n0], rtol=1e-9)  # fmt: skip
    assert "recommendation share" in records["intent_mix"].summary

    subjects = {m["watch"] for m in _messages(queue)}
    assert subjects == set(second.new_findings)
    assert _drift_metric() == [0.0, 1.0]

    status = drift_status(Registry(TABLE), "mangaassist", HOURS[1] + timedelta(hours=2))
    assert status is not None
    assert set(status["drifting"]) == set(second.findings)
    assert [f["summary"] for f in status["findings"]] == [r.summary for r in records.values()]
    rows = dict(drift_rows(status))
    assert rows["last look"] == f"{HOURS[1].isoformat()} .. {(HOURS[1] + timedelta(hours=1)).isoformat()}"

    again = _look(HOURS[1], arn)  # a retried invocation for the same window changes nothing
    assert not again.tested
    assert set(again.findings) == set(second.findings)
    assert len(Registry(TABLE).drift_records("mangaassist")) == len(records)


def test_the_handler_reads_its_spec_from_the_environment(
    topic: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    arn, _ = topic
    _write(MonitorTraffic(), seed=13)
    for name, value in {
        "REGISTRY_TABLE": TABLE, "SERVICE": "mangaassist", "ALERT_TOPIC_ARN": arn,
        "MONITOR_SPEC": json.dumps(monitor_spec(SPEC)),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    event = {"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {},
             "time": (HOURS[0] + timedelta(hours=1, minutes=12)).strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
    result = monitor_handler.handler(event, LambdaContext())
    assert result["window_end"] == (HOURS[0] + timedelta(hours=1)).isoformat()
    assert result["tested"]
    assert result["findings"] == []
