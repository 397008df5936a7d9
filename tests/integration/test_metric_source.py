"""The metric source against moto's CloudWatch: the emitter's shape in, sufficient statistics out.

Expected numbers are counted by hand (or with numpy) from the values the test itself puts into CloudWatch.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np
import pytest
from aws_kit import TABLE, Env, put_aggregate, put_alb_counts, put_emf
from numpy.testing import assert_allclose

from canarywise.data.metric_source import (
    REREAD_EVERY,
    AlbDimensions,
    FrozenStage,
    MetricSource,
    MetricSourceError,
    due_for_reread,
    resolution_at,
    whole_window,
)
from canarywise.data.registry import Registry
from canarywise.decision.engine import decide
from canarywise.decision.models import (
    DecisionInputError,
    MeanAggregate,
    Observations,
    ProportionAggregate,
    StageRecord,
    Variant,
)
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
        t.load_balancer_full_name,
        {"control": t.control_target_group_full_name, "canary": t.canary_target_group_full_name},
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
    # Freshness is read for the metrics it can hold a rollout for (not csat, a secondary metric).
    assert set(observations.latest) == {"escalation_rate", "slow_response_rate"}
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
    put_alb_counts(aws, "canary", NOW - timedelta(minutes=7), requests=50, errors=3)

    observations = MetricSource(_alb(aws)).observe(spec, _stages(), NOW)

    # Hand count: control 10 x 950 requests, 10 x 2 errors; canary 11 x 50 requests, 3 errors (minutes
    # without a 5XX datapoint count as zero errors, as the ALB publishes none then).
    assert observations.get("error_rate", 1, Variant.CONTROL) == ProportionAggregate(n=9500, successes=20)
    assert observations.get("error_rate", 1, Variant.CANARY) == ProportionAggregate(n=550, successes=3)
    assert observations.get("error_rate", 0, Variant.CONTROL) is None  # no data in stage 0's window
    # target_response_time is alarm-only (percentiles are not sufficient statistics): never queried.
    assert {k.metric for k in observations.aggregates} == {"error_rate"}
    # The freshness probe sees the newest minute exactly.
    assert observations.latest["error_rate"] == NOW - timedelta(minutes=7)


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
    # The newest datapoint is 1 h 59 min old, older than the freshness probe's hour: "no datapoint since"
    # the probe's start, which the engine calls late (HOLD), not fresh.
    assert observations.latest["hallucination_rate"] == NOW - timedelta(hours=1)


class _RecordingCloudWatch:
    """Moto's CloudWatch, with every GetMetricData request and its results recorded."""

    def __init__(self) -> None:
        self._real = boto3.client("cloudwatch")
        self.requests: list[dict[str, Any]] = []
        self.results: list[list[dict[str, Any]]] = []

    def get_paginator(self, name: str) -> Any:
        return self._real.get_paginator(name)

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(dict(kwargs))
        response = self._real.get_metric_data(**kwargs)
        self.results.append(response["MetricDataResults"])
        return dict(response)

    def reads(self) -> list[tuple[datetime, datetime, set[int], int]]:
        """(StartTime, EndTime, the periods asked for, queries) of each request."""
        return [
            (
                r["StartTime"],
                r["EndTime"],
                {q["MetricStat"]["Period"] for q in r["MetricDataQueries"]},
                len(r["MetricDataQueries"]),
            )
            for r in self.requests
        ]


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
    # hallucination 2 x 2 = 4, new assignments 1 x 2 = 2 -> 28 per stage, in ceil(28 / 5) = 6 batches; no
    # probe (the stage in progress, two hours old, covers its hour). Each batch comes in 2 pages: 12 x 2.
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


# --- periods: one datapoint per stage window, at a resolution CloudWatch keeps ------------------------------
FIXED_NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("age", "resolution"),
    [
        (timedelta(days=2), 60),
        (timedelta(days=14, hours=22, minutes=59), 60),
        (timedelta(days=14, hours=23, minutes=30), 300),  # the 15-day limit, taken an hour early
        (timedelta(days=20), 300),
        (timedelta(days=62, hours=23, minutes=30), 3600),
        (timedelta(days=70), 3600),
    ],
)
def test_resolution_by_age(age: timedelta, resolution: int) -> None:
    # CloudWatch's MetricStat.Period: StartTime 3 h-15 days ago: a multiple of 60 s; 15-63 days: of 300 s;
    # older: of 3600 s.
    assert resolution_at(FIXED_NOW - age, FIXED_NOW) == resolution


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # 2 days old: whole minutes, rounded inward.
        ("2026-11-28T09:03:20", "2026-11-28T13:03:20", ("2026-11-28T09:04:00", "2026-11-28T13:03:00")),
        # 20 days old: 5-minute clock.
        ("2026-11-10T09:03:00", "2026-11-10T13:03:00", ("2026-11-10T09:05:00", "2026-11-10T13:00:00")),
        # 70 days old: the hour.
        ("2026-09-21T09:03:00", "2026-09-21T13:03:00", ("2026-09-21T10:00:00", "2026-09-21T13:00:00")),
        # 20 days old and shorter than a 5-minute step once rounded: nothing to read.
        ("2026-11-10T09:01:00", "2026-11-10T09:04:00", None),
    ],
)
def test_whole_window_rounds_inward(start: str, end: str, expected: tuple[str, str] | None) -> None:
    got = whole_window(_at(start), _at(end), FIXED_NOW)
    assert got == (None if expected is None else (_at(expected[0]), _at(expected[1])))


def test_each_stage_is_one_datapoint_per_query_and_freshness_comes_from_the_stage_in_progress(
    aws: Env, spec_data: dict[str, Any]
) -> None:
    spec = _spec(spec_data, "hallucination_rate")
    rng = np.random.default_rng(3)
    put: dict[tuple[int, str], list[tuple[int, int]]] = {}
    # A datapoint every minute: stage 1 from STAGE0 to STAGE1, stage 2 up to three minutes ago.
    for stage, begin, minutes in ((0, STAGE0, 240), (1, STAGE1, 118)):
        for variant in ("control", "canary"):
            for minute in range(minutes):
                n = int(rng.integers(20, 40))
                hits = int(rng.binomial(n, 0.03))
                at = begin + timedelta(minutes=minute)
                put_aggregate("MangaAssist", "Hallucination", {"Variant": variant}, at, n=n, total=hits)
                put.setdefault((stage, variant), []).append((n, hits))
    fake = _RecordingCloudWatch()

    observations = MetricSource(boto3_client=fake).observe(spec, _stages(), NOW)

    # One request per stage window, its period the whole window, but for the stage in progress's units per
    # variant: a minute at a time, which gives the newest minute (no separate probe: the stage, two hours
    # old, covers the probe's hour; GetMetricData is billed per metric requested).
    assert fake.reads() == [
        (STAGE0, STAGE1, {4 * 3600}, 6),  # units and events x 2 variants + new assignments x 2
        (STAGE1, NOW, {2 * 3600, 60}, 6),
    ]
    minute = [
        q["MetricStat"] for q in fake.requests[1]["MetricDataQueries"] if q["MetricStat"]["Period"] == 60
    ]
    assert [(m["Stat"], m["Metric"]["Dimensions"]) for m in minute] == [
        ("SampleCount", [{"Name": "Variant", "Value": v}]) for v in ("control", "canary")
    ]
    minute_ids = {q["Id"] for q in fake.requests[1]["MetricDataQueries"] if q["MetricStat"]["Period"] == 60}
    whole = fake.results[0] + [r for r in fake.results[1] if r["Id"] not in minute_ids]
    assert {len(r["Values"]) for r in whole} == {0, 1}  # one datapoint per query (none: no data)
    # Sums by hand (numpy) of the minute datapoints put: moto aggregated each window into its one datapoint.
    for (stage, variant), rows in put.items():
        n, hits = np.sum(rows, axis=0)
        assert observations.get("hallucination_rate", stage, Variant(variant)) == ProportionAggregate(
            int(n), int(hits)
        )
    assert observations.latest == {"hallucination_rate": NOW - timedelta(minutes=3)}


def test_old_stages_are_read_at_the_resolution_cloudwatch_keeps(aws: Env, spec_data: dict[str, Any]) -> None:
    """Stage 1 began 71 days before the check (hourly data left), stage 2 18 days (5-minute), stage 3 two."""
    spec = _spec(spec_data, "hallucination_rate")
    starts = (_at("2026-09-20T09:07"), _at("2026-11-12T09:02"), _at("2026-11-28T09:03"))
    stages = [
        StageRecord(0, 5.0, {"control": 95, "canary": 5}, starts[0], starts[1]),
        StageRecord(1, 25.0, {"control": 75, "canary": 25}, starts[1], starts[2]),
        StageRecord(2, 50.0, {"control": 50, "canary": 50}, starts[2]),
    ]
    units = {
        "2026-09-20T09:30": 1,  # stage 1's first, partial hour: left out (CloudWatch has it as an hour only)
        "2026-09-25T12:00": 10,
        "2026-11-12T08:30": 100,  # stage 1's last whole hour
        "2026-11-12T09:01": 1_000,  # stage 1's last, partial hour: left out
        "2026-11-12T09:03": 10_000,  # stage 2's first, partial 5 minutes: left out
        "2026-11-20T00:00": 100_000,
        "2026-11-28T08:59": 1_000_000,  # stage 2's last whole 5 minutes
        "2026-11-28T09:03": 10_000_000,  # stage 3, at a minute's resolution
    }
    for at, n in units.items():
        put_aggregate("MangaAssist", "Hallucination", {"Variant": "control"}, _at(at), n=n, total=0)
    fake = _RecordingCloudWatch()

    observations = MetricSource(boto3_client=fake).observe(spec, stages, FIXED_NOW)

    windows = [
        (_at("2026-09-20T10:00"), _at("2026-11-12T09:00")),  # inward to the hour
        (_at("2026-11-12T09:05"), _at("2026-11-28T09:00")),  # inward to 5 minutes
        (_at("2026-11-28T09:03"), FIXED_NOW),
    ]
    assert [(start, end) for start, end, _, _ in fake.reads()[:3]] == windows
    periods = [periods for _, _, periods, _ in fake.reads()[:3]]
    # Stage 3 (two days old, minute data kept) also carries freshness: its units a minute at a time.
    assert periods == [{int((end - start).total_seconds())} for start, end in windows[:2]] + [
        {int((windows[2][1] - windows[2][0]).total_seconds()), 60}
    ]
    # Hand counts of the units above, per window.
    got = [observations.get("hallucination_rate", i, Variant.CONTROL) for i in range(3)]
    assert [agg.n if agg else 0 for agg in got] == [10 + 100, 100_000 + 1_000_000, 10_000_000]


def test_datapoints_per_call_stay_under_the_limit(aws: Env, spec_data: dict[str, Any]) -> None:
    spec = _spec(spec_data, "escalation_rate", "hallucination_rate")
    for intent in ("returns", "order_status", "recommend"):
        for variant in ("control", "canary"):
            dims = {"Variant": variant, "Intent": intent}
            put_aggregate("MangaAssist", "Escalation", dims, NOW - timedelta(minutes=4), n=30, total=4)
            put_aggregate(
                "MangaAssist", "Escalation", {"Variant": variant}, NOW - timedelta(minutes=4), n=90, total=12
            )
    expected = MetricSource().observe(spec, _stages(), NOW)
    fake = _RecordingCloudWatch()

    got = MetricSource(boto3_client=fake, max_datapoints_per_call=130).observe(spec, _stages(), NOW)

    assert got == expected
    # Datapoints a request can return: per query, the periods in its window.
    points = [
        sum(math.ceil((r["EndTime"] - r["StartTime"]).total_seconds() / q["MetricStat"]["Period"])
            for q in r["MetricDataQueries"])
        for r in fake.requests
    ]  # fmt: skip
    assert max(points) <= 130
    # Stage 1: escalation 2 x 2 x (1 + 3) + hallucination 2 x 2 + assignments 2 = 22 queries, one datapoint
    # each, one request. Stage 2 (two hours: no probe) the same 22, of which the 4 unit counts of the two
    # decisive metrics are read a minute at a time (120 datapoints each): 4 requests at least.
    reads = [n for _, _, _, n in fake.reads()]
    assert (reads[0], sum(reads[1:])) == (22, 22)
    assert len(reads[1:]) == 4
    assert sorted(p // 120 for p in points[1:]) == [1, 1, 1, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_queries_per_call": 501}, "`max_queries_per_call` must be in [1, 500], found 501"),
        ({"max_datapoints_per_call": 0}, "`max_datapoints_per_call` must be in [1, 100800], found 0"),
    ],
)
def test_raises(aws: Env, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=r"^`max_") as raised:
        MetricSource(**kwargs)
    assert str(raised.value) == message


# --- frozen stages: a closed stage is read until its data is complete, then taken from its frozen copy ------
def _stored(frozen: FrozenStage) -> FrozenStage:
    """What the registry gives back: the frozen stage through JSON text."""
    return FrozenStage.from_dict(json.loads(json.dumps(frozen.to_dict())))


def _put_rollout(aws: Env, rng: np.random.Generator) -> dict[tuple[int, str], list[float]]:
    """Every kind of query in both stages (a sliced proportion, a mean with awkward floats, the ALB's counts,
    new assignments); the newest datapoints three minutes ago. Returns the canary's escalation (n, events) per
    stage, counted by hand."""
    escalations: dict[tuple[int, str], list[float]] = {}
    times = {
        0: (STAGE0 + timedelta(minutes=20), STAGE1 - timedelta(minutes=1)),
        1: (STAGE1 + timedelta(minutes=5), NOW - timedelta(minutes=3)),
    }
    for stage in (0, 1):
        for variant in ("control", "canary"):
            for at in times[stage]:
                for intent in (None, "returns", "order_status", "recommend"):
                    dims = {"Variant": variant} | ({"Intent": intent} if intent else {})
                    n = float(rng.integers(50, 500))
                    hits = float(rng.binomial(int(n), 0.12))
                    put_aggregate("MangaAssist", "Escalation", dims, at, n=n, total=hits)
                    if intent is None:
                        row = escalations.setdefault((stage, variant), [0.0, 0.0])
                        row[0], row[1] = row[0] + n, row[1] + hits
                csat = rng.gamma(4.0, 1.1, size=7)
                dims = {"Variant": variant}
                put_aggregate("MangaAssist", "CSAT", dims, at, n=7, total=float(csat.sum()))
                put_aggregate("MangaAssist", "CSATSquared", dims, at, n=7, total=float(np.square(csat).sum()))
                put_aggregate("MangaAssist", "Hallucination", dims, at, n=90, total=float(rng.integers(0, 5)))
                put_alb_counts(aws, variant, at, requests=float(rng.integers(100, 900)), errors=1)
                assigned = float(rng.integers(10, 60))
                assignments = {"Service": "mangaassist"} | dims
                put_aggregate("Canarywise", "NewAssignment", assignments, at, n=assigned, total=assigned)
    return escalations


def test_a_frozen_stage_gives_exactly_what_a_fresh_read_gives(aws: Env, spec_data: dict[str, Any]) -> None:
    spec = _spec(spec_data, "escalation_rate", "error_rate", "csat", "hallucination_rate")
    escalations = _put_rollout(aws, np.random.default_rng(5))
    fake = _RecordingCloudWatch()
    source = MetricSource(_alb(aws), boto3_client=fake)

    first = source.read(spec, _stages(), NOW)
    frozen = {f.stage: _stored(f) for f in first.to_freeze}
    reads_before = len(fake.requests)
    cached = source.read(spec, _stages(), NOW, frozen=frozen)
    fresh = MetricSource(_alb(aws)).observe(spec, _stages(), NOW)

    # Stage 1 ended two hours ago and every decisive metric has newer data: frozen at once.
    assert (first.cached, list(frozen), first.not_frozen) == ((), [0], {})
    assert frozen[0].start == STAGE0
    assert frozen[0].end == STAGE1
    assert frozen[0].frozen_at == NOW
    assert cached.cached == (0,)
    assert cached.to_freeze == ()
    # Identical numbers (floats to the last bit) in the same order, freshness and assignments included.
    assert cached.observations == fresh == first.observations
    assert list(cached.observations.aggregates.items()) == list(fresh.aggregates.items())
    assert list(cached.observations.assignments.items()) == list(fresh.assignments.items())
    # The frozen copy holds the hand count of what was put.
    n, hits = escalations[(0, "canary")]
    assert frozen[0].observations.get("escalation_rate", 0, Variant.CANARY) == ProportionAggregate(
        int(n), int(hits)
    )
    # Queries per stage window: escalation 2 stats x 2 variants x (1 + 3 intents) = 16, error_rate 2 x 2,
    # csat 3 x 2, hallucination 2 x 2, new assignments 2 -> 32; no probe (stage 2, two hours old, carries
    # freshness in its units of the 3 decisive metrics, read a minute at a time). The cached read skips
    # stage 1's window.
    first_reads, cached_reads = fake.reads()[:reads_before], fake.reads()[reads_before:]
    assert [(start, n) for start, _, _, n in first_reads] == [(STAGE0, 32), (STAGE1, 32)]
    assert [(start, n) for start, _, _, n in cached_reads] == [(STAGE1, 32)]


def test_a_stage_closed_less_than_freeze_after_ago_is_read_fresh(aws: Env, spec_data: dict[str, Any]) -> None:
    spec = _spec(spec_data, "hallucination_rate")
    ramp = NOW - timedelta(minutes=10)
    stages = [
        StageRecord(0, 5.0, {"control": 95, "canary": 5}, STAGE0, ramp),
        StageRecord(1, 25.0, {"control": 75, "canary": 25}, ramp),
    ]
    for variant in ("control", "canary"):
        for at in (STAGE0 + timedelta(minutes=30), NOW - timedelta(minutes=2)):
            put_aggregate("MangaAssist", "Hallucination", {"Variant": variant}, at, n=100, total=3)

    early = MetricSource().read(spec, stages, NOW)
    on_time = MetricSource().read(spec, stages, NOW + timedelta(minutes=5))

    assert early.to_freeze == ()
    assert early.not_frozen == {0: "ended 10 min ago; frozen 15 min after its end"}
    assert [f.stage for f in on_time.to_freeze] == [0]
    assert on_time.not_frozen == {}


def test_late_data_is_not_frozen_but_read_until_it_arrives(aws: Env, spec_data: dict[str, Any]) -> None:
    """The canary's pipeline stalls 20 minutes before stage 1 ends: its last minutes arrive much later."""
    spec = _spec(spec_data, "hallucination_rate")
    canary, control = {"Variant": "canary"}, {"Variant": "control"}
    put_aggregate("MangaAssist", "Hallucination", canary, STAGE0 + timedelta(minutes=30), n=200, total=5)
    for at in (STAGE0 + timedelta(minutes=30), STAGE1 - timedelta(minutes=5), NOW - timedelta(minutes=2)):
        put_aggregate("MangaAssist", "Hallucination", control, at, n=1000, total=30)

    stalled = MetricSource().read(spec, _stages(), NOW)
    # The backlog arrives: the stage's last minutes, and the canary's data since.
    put_aggregate("MangaAssist", "Hallucination", canary, STAGE1 - timedelta(minutes=5), n=40, total=2)
    put_aggregate("MangaAssist", "Hallucination", canary, NOW - timedelta(minutes=2), n=300, total=6)
    caught_up = MetricSource().read(spec, _stages(), NOW + timedelta(minutes=5))

    assert stalled.to_freeze == ()
    assert stalled.not_frozen == {0: "hallucination_rate (canary) has no datapoint since the stage ended yet"}
    # Frozen once the canary's data is newer than the stage's end, with the late minutes in (200 + 40, 5 + 2).
    (frozen,) = caught_up.to_freeze
    assert frozen.observations.get("hallucination_rate", 0, Variant.CANARY) == ProportionAggregate(240, 7)


def test_a_closed_stage_missing_a_decisive_metric_is_not_frozen(aws: Env, spec_data: dict[str, Any]) -> None:
    spec = _spec(spec_data, "hallucination_rate")
    put_aggregate(
        "MangaAssist", "Hallucination", {"Variant": "control"}, STAGE0 + timedelta(minutes=30), n=100, total=3
    )
    for variant in ("control", "canary"):  # stage 2 has data, fresh: only stage 1 lacks the canary's
        dims = {"Variant": variant}
        put_aggregate("MangaAssist", "Hallucination", dims, NOW - timedelta(minutes=2), n=100, total=3)

    reading = MetricSource().read(spec, _stages(), NOW)

    assert reading.to_freeze == ()
    assert reading.not_frozen == {0: "no hallucination_rate data for canary in the stage"}


def test_a_late_host_harmful_burst_in_a_critical_slice_is_seen_by_the_next_reread(
    aws: Env, spec_data: dict[str, Any]
) -> None:
    """Fault table row 11: stage 1 is frozen (complete, 2 h after its end); then one slow host's backlog lands
    with the stage's old timestamps: the canary's ``returns`` intent (a critical slice) escalating 60% of the
    time. Checks between re-reads keep the frozen copy; the next re-read (2 h 30 min after the stage's end,
    `due_for_reread`) sees the burst, is used instead of the copy, replaces it in the registry, and the
    decision turns to ROLLBACK."""
    spec = _spec(spec_data, "escalation_rate", "error_rate", "csat", "hallucination_rate")
    _put_rollout(aws, np.random.default_rng(5))
    source = MetricSource(_alb(aws))
    registry, experiment_id = Registry(TABLE), "mangaassist-v42-late"
    (frozen,) = source.read(spec, _stages(), NOW).to_freeze
    assert registry.freeze_stage(experiment_id, frozen) is True
    before = decide(spec, _stages(), source.observe(spec, _stages(), NOW), NOW).kind

    # The slow host's backlog: stamped inside stage 1, arriving after the freeze.
    burst = {"Variant": "canary", "Intent": "returns"}
    put_aggregate("MangaAssist", "Escalation", burst, STAGE1 - timedelta(minutes=30), n=1_000, total=600)

    between = NOW + timedelta(minutes=5)
    reread_at = STAGE1 + REREAD_EVERY * 2.5
    assert [due_for_reread(spec, frozen, t) for t in (NOW, between, reread_at)] == [False, False, True]
    stale = source.read(spec, _stages(), between, frozen=registry.frozen_stages(experiment_id))
    reading = source.read(spec, _stages(), reread_at, frozen=registry.frozen_stages(experiment_id))

    # Between re-reads the frozen copy stands (the burst unseen); the re-read sees it.
    returns = ("escalation_rate", 0, Variant.CANARY, "returns")
    frozen_returns = frozen.observations.get(*returns)
    assert (stale.cached, stale.late, stale.observations.get(*returns)) == ((0,), {}, frozen_returns)
    assert frozen_returns is not None
    seen = reading.observations.get(*returns)
    assert seen == ProportionAggregate(frozen_returns.n + 1_000, frozen_returns.successes + 600)
    assert reading.cached == ()
    assert list(reading.late) == [0]
    assert f"escalation_rate/canary/returns: {frozen_returns} -> {seen}" in reading.late[0]
    # The re-read replaces the copy it was compared with, once (a second writer finds it replaced).
    (refrozen,) = reading.to_freeze
    assert (refrozen.stage, refrozen.frozen_at, refrozen.replaces) == (0, reread_at, NOW)
    assert registry.freeze_stage(experiment_id, refrozen) is True
    assert registry.freeze_stage(experiment_id, refrozen) is False
    stored = registry.frozen_stages(experiment_id)[0]
    assert (stored.frozen_at, stored.observations.get(*returns)) == (reread_at, seen)

    after = decide(spec, _stages(), reading.observations, reread_at).kind
    assert (before != "ROLLBACK", after) == (True, "ROLLBACK")


class _PartialCloudWatch(_RecordingCloudWatch):
    """CloudWatch saying it answered stage 1's window only in part (its limits, or data still coming)."""

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        response = super().get_metric_data(**kwargs)
        if kwargs["StartTime"] == STAGE0:
            for result in response["MetricDataResults"]:
                result["StatusCode"] = "PartialData"
        return response


def test_a_stage_cloudwatch_answered_in_part_is_not_frozen(aws: Env, spec_data: dict[str, Any]) -> None:
    spec = _spec(spec_data, "hallucination_rate")
    for variant in ("control", "canary"):
        for at in (STAGE0 + timedelta(minutes=30), NOW - timedelta(minutes=2)):
            put_aggregate("MangaAssist", "Hallucination", {"Variant": variant}, at, n=100, total=3)

    reading = MetricSource(boto3_client=_PartialCloudWatch()).read(spec, _stages(), NOW)

    assert reading.observations.get("hallucination_rate", 0, Variant.CANARY) == ProportionAggregate(100, 3)
    assert reading.to_freeze == ()
    assert reading.not_frozen == {0: "CloudWatch answered part of its queries with partial data"}


def test_a_frozen_copy_of_the_stage_in_progress_is_ignored(aws: Env, spec_data: dict[str, Any]) -> None:
    spec = _spec(spec_data, "hallucination_rate")
    put_aggregate(
        "MangaAssist", "Hallucination", {"Variant": "canary"}, NOW - timedelta(minutes=2), n=100, total=3
    )
    bogus = FrozenStage(1, STAGE1, NOW, NOW, Observations({}))

    reading = MetricSource().read(spec, _stages(), NOW, frozen={1: bogus})

    assert reading.cached == ()
    assert reading.observations.get("hallucination_rate", 1, Variant.CANARY) == ProportionAggregate(100, 3)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: FrozenStage.from_dict({"stage": 0, "start": STAGE0.isoformat()}),
            "malformed frozen stage: KeyError('end')",
        ),
        (
            lambda: FrozenStage(
                0,
                STAGE0,
                STAGE1,
                NOW,
                Observations.build({("hallucination_rate", 1, "canary", None): ProportionAggregate(9, 1)}),
            ),
            "frozen stage 0 holds data of stages [1]",
        ),
    ],
    ids=["missing-field", "another-stage"],
)
def test_raises_on_a_malformed_frozen_stage(build: Any, message: str) -> None:
    with pytest.raises(DecisionInputError) as raised:
        build()
    assert str(raised.value) == message
