"""The metric source against moto's CloudWatch: the emitter's shape in, sufficient statistics out.

Expected numbers are counted by hand (or with numpy) from the values the test itself puts into CloudWatch.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np
import pytest
from aws_kit import Env, put_aggregate, put_alb_counts, put_emf
from numpy.testing import assert_allclose

from canarywise.data.metric_source import AlbDimensions, MetricSource, MetricSourceError, period_for
from canarywise.decision.models import MeanAggregate, ProportionAggregate, StageRecord, Variant
from canarywise.emit import VariantMetrics
from canarywise.spec import parse_spec

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
STAGE0 = NOW - timedelta(hours=6)
STAGE1 = NOW - timedelta(hours=2)


def _stages() -> list[StageRecord]:
    return [
        StageRecord(0, 5.0, {"control": 95, "canary": 5}, STAGE0, STAGE1),
        StageRecord(1, 25.0, {"control": 75, "canary": 25}, STAGE1),
    ]


def _spec(spec_data: dict[str, Any], *names: str) -> Any:
    data = dict(spec_data)
    data["metrics"] = [m for m in spec_data["metrics"] if m["name"] in names]
    return parse_spec(data)


def _alb(env: Env) -> AlbDimensions:
    t = env.traffic
    return AlbDimensions(
        t.load_balancer_full_name, t.control_target_group_full_name, t.canary_target_group_full_name
    )


def test_what_the_emitter_writes_is_what_the_source_reads(aws: Env, spec_data: dict[str, Any]) -> None:
    spec = _spec(spec_data, "escalation_rate", "csat", "slow_response_rate")
    rng = np.random.default_rng(7)
    truth: dict[tuple[str, int, str, str | None], list[float]] = {}
    new_assignments: dict[tuple[int, Variant], int] = {}
    for stage, start in ((0, STAGE0), (1, STAGE1)):
        for variant in ("control", "canary"):
            lines: list[str] = []
            emitter = VariantMetrics(variant, spec=spec, output=lines.append)
            for unit in range(40):
                intent = ("returns", "order_status")[unit % 2]
                escalated = bool(rng.random() < 0.2)
                csat = float(rng.integers(1, 6))
                latency = float(rng.gamma(2.0, 3.0))
                if rng.random() < 0.4:  # arrived without the stickiness cookie
                    emitter.new_assignment()
                    key = (stage, Variant(variant))
                    new_assignments[key] = new_assignments.get(key, 0) + 1
                emitter.record("escalation_rate", escalated, slice_value=intent)
                emitter.record("csat", csat)
                emitter.record("slow_response_rate", latency)
                for key, value in (
                    (("escalation_rate", stage, variant, None), float(escalated)),
                    (("escalation_rate", stage, variant, intent), float(escalated)),
                    (("csat", stage, variant, None), csat),
                    (("slow_response_rate", stage, variant, None), float(latency > 8.0)),
                ):
                    truth.setdefault(key, []).append(value)
            for minute, line in enumerate(lines):
                put_emf(line, start + timedelta(minutes=1 + minute % 60))

    observations = MetricSource(_alb(aws)).observe(spec, _stages(), NOW)

    for (metric, stage, variant, slice_), values in truth.items():
        got = observations.get(metric, stage, Variant(variant), slice_)
        if metric == "csat":
            assert isinstance(got, MeanAggregate)
            assert got.n == len(values)
            # Reference: numpy sums of the values the test emitted.
            assert_allclose(
                [got.sum, got.sum_squares], [np.sum(values), np.sum(np.square(values))], rtol=1e-12
            )
        else:
            assert got == ProportionAggregate(n=len(values), successes=int(sum(values)))
    assert set(observations.latest) == {"escalation_rate", "csat", "slow_response_rate"}
    assert len(new_assignments) == 4  # every stage and variant had some
    assert observations.assignments == new_assignments


def test_without_new_assignment_data_the_assignments_stay_empty(aws: Env, spec_data: dict[str, Any]) -> None:
    """The service does not emit NewAssignment: the engine then falls back to counting a metric's units."""
    spec = _spec(spec_data, "hallucination_rate")
    put_aggregate(
        "MangaAssist", "Hallucination", {"Variant": "canary"}, STAGE1 + timedelta(minutes=5), n=50, total=1
    )
    # Another service's assignments are not this experiment's.
    put_aggregate(
        "Canarywise",
        "NewAssignment",
        {"Service": "storefront", "Variant": "canary"},
        STAGE1 + timedelta(minutes=5),
        n=40,
        total=40,
    )
    observations = MetricSource().observe(spec, _stages(), NOW)
    assert observations.get("hallucination_rate", 1, Variant.CANARY) == ProportionAggregate(50, 1)
    assert observations.assignments == {}


def test_new_assignments_are_counted_per_stage_window(aws: Env, spec_data: dict[str, Any]) -> None:
    spec = _spec(spec_data, "hallucination_rate")

    def assigned(variant: str, at: datetime, count: int) -> None:
        dims = {"Service": "mangaassist", "Variant": variant}
        put_aggregate("Canarywise", "NewAssignment", dims, at, n=count, total=count)

    assigned("control", STAGE0 + timedelta(minutes=10), 950)
    assigned("canary", STAGE0 + timedelta(minutes=10), 50)
    assigned("control", STAGE1 - timedelta(minutes=1), 95)  # the last minute of stage 1
    assigned("control", STAGE1 + timedelta(minutes=1), 300)
    assigned("canary", STAGE1 + timedelta(minutes=1), 100)
    assigned("canary", STAGE0 - timedelta(minutes=3), 7)  # before the experiment: no stage's

    observations = MetricSource().observe(spec, _stages(), NOW)

    # Hand count per stage window: stage 1 [STAGE0, STAGE1), stage 2 [STAGE1, NOW).
    assert observations.assignments == {
        (0, Variant.CONTROL): 950 + 95,
        (0, Variant.CANARY): 50,
        (1, Variant.CONTROL): 300,
        (1, Variant.CANARY): 100,
    }
    assert "(new assignments)" not in observations.latest  # freshness is judged on the metrics


def test_alb_requests_and_5xx_per_target_group(aws: Env, spec_data: dict[str, Any]) -> None:
    spec = _spec(spec_data, "error_rate", "p99_latency")
    for minute in range(10):
        put_alb_counts(aws, "control", STAGE1 + timedelta(minutes=5 + minute), requests=950, errors=2)
        put_alb_counts(aws, "canary", STAGE1 + timedelta(minutes=5 + minute), requests=50, errors=0)
    put_alb_counts(aws, "canary", STAGE1 + timedelta(minutes=30), requests=50, errors=3)

    observations = MetricSource(_alb(aws)).observe(spec, _stages(), NOW)

    # Hand count: control 10 x 950 requests, 10 x 2 errors; canary 11 x 50 requests, 3 errors (minutes
    # without a 5XX datapoint count as zero errors, as the ALB publishes none then).
    assert observations.get("error_rate", 1, Variant.CONTROL) == ProportionAggregate(n=9500, successes=20)
    assert observations.get("error_rate", 1, Variant.CANARY) == ProportionAggregate(n=550, successes=3)
    assert observations.get("error_rate", 0, Variant.CONTROL) is None  # no data in stage 0's window
    # target_response_time is alarm-only (percentiles are not sufficient statistics): never queried.
    assert {k.metric for k in observations.aggregates} == {"error_rate"}
    assert observations.latest["error_rate"] == STAGE1 + timedelta(minutes=30)


def test_stage_windows_do_not_mix_and_late_data_shows(aws: Env, spec_data: dict[str, Any]) -> None:
    spec = _spec(spec_data, "hallucination_rate")
    variant = {"Variant": "canary"}
    put_aggregate("MangaAssist", "Hallucination", variant, STAGE0 + timedelta(minutes=30), n=100, total=4)
    put_aggregate("MangaAssist", "Hallucination", variant, STAGE1 - timedelta(minutes=1), n=10, total=1)
    put_aggregate("MangaAssist", "Hallucination", variant, STAGE1 + timedelta(minutes=1), n=300, total=6)
    # Before the experiment: belongs to no stage.
    put_aggregate("MangaAssist", "Hallucination", variant, STAGE0 - timedelta(minutes=5), n=1000, total=900)

    observations = MetricSource(_alb(aws)).observe(spec, _stages(), NOW)

    assert observations.get("hallucination_rate", 0, Variant.CANARY) == ProportionAggregate(110, 5)
    assert observations.get("hallucination_rate", 1, Variant.CANARY) == ProportionAggregate(300, 6)
    # The newest datapoint is 1 h 59 min old: the engine will call this late (HOLD), not fresh.
    assert observations.latest["hallucination_rate"] == STAGE1 + timedelta(minutes=1)


class _PagingCloudWatch:
    """Moto's answers, cut into pages with a NextToken and recorded, like CloudWatch does for big requests."""

    def __init__(self) -> None:
        self._real = boto3.client("cloudwatch")
        self.requests: list[dict[str, Any]] = []

    def get_paginator(self, name: str) -> Any:
        return self._real.get_paginator(name)

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(dict(kwargs))
        token = kwargs.pop("NextToken", None)
        response = self._real.get_metric_data(**kwargs)
        results = response["MetricDataResults"]
        half = len(results) // 2
        if token is None and half:
            return {"MetricDataResults": results[:half], "NextToken": "page-2"}
        return {"MetricDataResults": results[half:] if token else results}


def test_batches_of_at_most_n_queries_and_pagination(aws: Env, spec_data: dict[str, Any]) -> None:
    spec = _spec(spec_data, "escalation_rate", "csat", "hallucination_rate")
    for variant, total in (("control", 120), ("canary", 9)):
        for intent in ("returns", "order_status", "recommend"):
            dims = {"Variant": variant, "Intent": intent}
            put_aggregate(
                "MangaAssist", "Escalation", dims, STAGE1 + timedelta(minutes=3), n=100, total=total / 3
            )
        put_aggregate(
            "MangaAssist",
            "Escalation",
            {"Variant": variant},
            STAGE1 + timedelta(minutes=3),
            n=300,
            total=total,
        )
    expected = MetricSource(_alb(aws)).observe(spec, _stages(), NOW)

    fake = _PagingCloudWatch()
    source = MetricSource(_alb(aws), boto3_client=fake, max_queries_per_call=5)
    got = source.observe(spec, _stages(), NOW)

    assert got == expected
    # Queries per stage: escalation 2 stats x 2 variants x (1 + 3 intents) = 16, csat 3 x 2 = 6,
    # hallucination 2 x 2 = 4, new assignments 1 x 2 = 2 -> 28 per stage, in ceil(28 / 5) = 6 batches;
    # each batch is 2 pages.
    sizes = [len(r["MetricDataQueries"]) for r in fake.requests if "NextToken" not in r]
    assert sizes == [5, 5, 5, 5, 5, 3] * 2
    assert max(len(r["MetricDataQueries"]) for r in fake.requests) <= 5
    assert len(fake.requests) == 24
    assert got.get("escalation_rate", 1, Variant.CANARY, "recommend") == ProportionAggregate(100, 3)


class _FailingCloudWatch:
    def __init__(self, code: str) -> None:
        self._real = boto3.client("cloudwatch")
        self._code = code

    def get_paginator(self, name: str) -> Any:
        return self._real.get_paginator(name)

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": self._code, "Message": "Rate exceeded"}}, "GetMetricData")


@pytest.mark.parametrize("code", ["Throttling", "InternalServiceError"])
def test_a_failing_cloudwatch_is_a_named_error(aws: Env, spec_data: dict[str, Any], code: str) -> None:
    spec = _spec(spec_data, "hallucination_rate")
    with pytest.raises(MetricSourceError, match=f"^CloudWatch read failed: {code}: "):
        MetricSource(boto3_client=_FailingCloudWatch(code)).observe(spec, _stages(), NOW)


def test_a_proportion_with_more_successes_than_units_is_refused(aws: Env, spec_data: dict[str, Any]) -> None:
    spec = _spec(spec_data, "hallucination_rate")
    put_aggregate(
        "MangaAssist", "Hallucination", {"Variant": "control"}, STAGE1 + timedelta(minutes=2), n=10, total=25
    )
    with pytest.raises(
        MetricSourceError,
        match=r"^metric 'hallucination_rate' \(control, stage 2 of 3\) has more successes \(25\) than "
        r"units \(10\): is it emitted as a 0/1 value\?$",
    ):
        MetricSource().observe(spec, _stages(), NOW)


def test_period_for_a_window() -> None:
    # CloudWatch retention: 1-minute data 15 days, 5-minute data 63 days.
    assert [period_for(timedelta(hours=h)) for h in (1, 24, 25, 15 * 24, 15 * 24 + 1)] == [
        60,
        60,
        300,
        300,
        3600,
    ]
    assert math.isclose(period_for(timedelta(minutes=5)), 60)
