"""The scheduled significance check against moto: data in CloudWatch → decision in the registry → gate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np
import pytest
from aws_kit import (
    TABLE,
    Env,
    begin,
    harm_metric,
    put_aggregate,
    put_alb_counts,
    set_rule_weights,
    start_execution,
)
from numpy.testing import assert_allclose

from canarywise.data._aws import client
from canarywise.data.metric_source import AlbDimensions, MetricSource
from canarywise.data.models import CheckRecord, Weights
from canarywise.data.registry import Registry
from canarywise.decision.engine import decide
from canarywise.handlers import significance_check, stage_gate
from canarywise.runtime.events import EventError
from canarywise.runtime.significance import check_record, stage_records
from canarywise.spec import parse_spec
from canarywise.stats.srm import sequential_srm_test

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
STAGE_START = NOW - timedelta(hours=5)


class _GateClock(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return NOW


@pytest.fixture(autouse=True)
def _the_gate_reads_this_files_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks here are dated NOW, fixed when the file is imported; the stage gate reads the wall clock.
    In a slow parallel run a test reached more than 3 intervals (15 min) after the import saw its own check
    as a stale decision and held (seen on a loaded 2-core machine): the gate reads NOW too."""
    monkeypatch.setattr(stage_gate, "datetime", _GateClock)


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
    experiment = begin(
        registry, spec_data, execution_arn=start_execution(env, name), now=STAGE_START - timedelta(minutes=1)
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
        "skipped": [],
        "harm": True,
        "handed_off": [],  # fewer running experiments than one invocation checks
        "shadow": {},
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
    assert harm_metric(NOW) == [1.0]
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
    assert harm_metric(NOW) == [0.0]


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
    healthy = _experiment(aws, spec_data, "release-42")
    # An experiment item the lifecycle would never let in beside it (one rollout per service): a registry
    # shared by services, or an item from an older version. Written as `start` writes it, unfenced.
    registry = Registry(TABLE)
    broken = "mangaassist-v41-broken"
    registry._put_if_absent(
        registry.new_experiment_item(
            parse_spec(spec_data), experiment_id=broken, candidate="v41", release_id="release-41",
            execution_arn=start_execution(aws, "release-41"), now=STAGE_START, first_stage_multiplier=1.0,
            baseline_slot="control", candidate_slot="canary",
        )
    )  # fmt: skip
    registry.record_stage_start(broken, 0, Weights(control=95, canary=5), STAGE_START)
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
        "skipped": [],
        "harm": False,
        "handed_off": [],
        "shadow": {},
    }
    assert harm_metric(NOW) == [0.0]


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


# --- the sample-ratio check across a ramp with sticky returning users --------------------------------------
RAMP_START = NOW - timedelta(hours=2)  # stage 2 (75/25) began two hours ago, stage 1 (95/5) five hours ago
# Sessions per (stage, variant). In stage 2, 60% of the sessions come from returning users who keep the
# control cookie they got before the ramp, so the canary has 16% of the sessions under a 25% weight.
RAMP_SESSIONS = {(0, "control"): 95_000, (0, "canary"): 5_000, (1, "control"): 84_000, (1, "canary"): 16_000}


def _ramp_experiment(env: Env, spec_data: dict[str, Any]) -> str:
    """Stage 1 at 95/5, then stage 2 at 75/25, of a spec whose one decisive metric is hallucination_rate."""
    data = dict(spec_data)
    data["metrics"] = [m for m in spec_data["metrics"] if m["name"] == "hallucination_rate"]
    registry = Registry(TABLE)
    experiment = begin(
        registry,
        data,
        execution_arn=start_execution(env, "release-42"),
        now=STAGE_START - timedelta(minutes=1),
    )
    registry.record_stage_start(experiment.experiment_id, 0, Weights(control=95, canary=5), STAGE_START)
    registry.record_stage_start(experiment.experiment_id, 1, Weights(control=75, canary=25), RAMP_START)
    set_rule_weights(env, 75, 25)
    # Each stage's sessions: 90% half an hour in, 10% at its end (for stage 2: two minutes ago, fresh data).
    ends = {0: RAMP_START - timedelta(minutes=10), 1: NOW - timedelta(minutes=2)}
    for (stage, variant), sessions in RAMP_SESSIONS.items():
        start = STAGE_START if stage == 0 else RAMP_START
        for at, share in ((start + timedelta(minutes=30), 0.9), (ends[stage], 0.1)):
            n = sessions * share
            dims = {"Variant": variant}
            put_aggregate("MangaAssist", "Hallucination", dims, at, n=n, total=round(n * 0.03))
    return experiment.experiment_id


def _new_assignments(counts: dict[tuple[int, str], int]) -> None:
    """What VariantMetrics.new_assignment adds up to: one 1 per request without the stickiness cookie."""
    for (stage, variant), count in counts.items():
        at = (STAGE_START if stage == 0 else RAMP_START) + timedelta(minutes=20)
        dims = {"Service": "mangaassist", "Variant": variant}
        put_aggregate("Canarywise", "NewAssignment", dims, at, n=count, total=count)


def _srm(experiment_id: str) -> tuple[str, dict[str, Any]]:
    check = Registry(TABLE).get_experiment(experiment_id).latest_check
    assert check is not None
    return check.decision, next(f for f in check.details["findings"] if f["metric"] == "(sample ratio)")


def test_after_a_ramp_srm_on_new_assignments_stays_quiet(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id = _ramp_experiment(aws, spec_data)
    # 40% of the sessions are first visits, placed by the weights in force (drawn, seeded).
    rng = np.random.default_rng(11)
    new: dict[tuple[int, str], int] = {}
    for stage, share in ((0, 0.05), (1, 0.25)):
        total = round(0.4 * (RAMP_SESSIONS[(stage, "control")] + RAMP_SESSIONS[(stage, "canary")]))
        new[(stage, "canary")] = int(rng.binomial(total, share))
        new[(stage, "control")] = total - new[(stage, "canary")]
    _new_assignments(new)

    significance_check.handler(_scheduled(), context)

    decision, srm = _srm(experiment_id)
    # Each stage against its own weights: the anytime-valid test on exactly these per-stage counts (its value
    # is checked against scipy's integration in tests/unit/stats/test_sequential_srm.py; here, the wiring)
    observed = [new[(0, "control")] + new[(1, "control")], new[(0, "canary")] + new[(1, "canary")]]
    stages = [([new[(s, "control")], new[(s, "canary")]], [100 - w, w]) for s, w in ((0, 5), (1, 25))]
    assert_allclose(srm["pvalue"], sequential_srm_test(stages, alpha=0.001).pvalue, rtol=1e-9)
    assert (srm["n_control"], srm["n_canary"]) == tuple(observed)
    assert srm["verdict"] == "srm_ok"
    assert "counting new assignments per variant" in srm["method"]
    assert decision == "CONTINUE"  # stage 2's 24-hour minimum is far off; nothing is held


def test_without_new_assignments_the_check_falls_back_to_sessions_and_says_so(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id = _ramp_experiment(aws, spec_data)

    significance_check.handler(_scheduled(), context)

    decision, srm = _srm(experiment_id)
    # The sessions lag the ramp: 95,000/5,000 at 95/5, then 84,000/16,000 at 75/25 (anytime-valid test)
    stages = [([95_000, 5_000], [95, 5]), ([84_000, 16_000], [75, 25])]
    assert_allclose(srm["pvalue"], sequential_srm_test(stages, alpha=0.001).pvalue, rtol=1e-9)
    assert srm["verdict"] == "srm"
    assert "counting units of hallucination_rate (fallback: no new-assignment counts" in srm["method"]
    assert decision == "HOLD"


def test_a_real_mismatch_in_new_assignments_still_holds(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id = _ramp_experiment(aws, spec_data)
    # A broken assignment: a third of the candidate's new users land on control in stage 2.
    _new_assignments(
        {(0, "control"): 38_000, (0, "canary"): 2_000, (1, "control"): 33_333, (1, "canary"): 6_667}
    )

    significance_check.handler(_scheduled(), context)

    decision, srm = _srm(experiment_id)
    stages = [([38_000, 2_000], [95, 5]), ([33_333, 6_667], [75, 25])]
    assert_allclose(srm["pvalue"], sequential_srm_test(stages, alpha=0.001).pvalue, rtol=1e-9)
    assert srm["verdict"] == "srm"
    assert decision == "HOLD"
    check = Registry(TABLE).get_experiment(experiment_id).latest_check
    assert check is not None
    assert check.reason.startswith("sample ratio mismatch: the canary's share is -4.17 pt off the weights")


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


# --- closed stages frozen in the registry ------------------------------------------------------------------
# The shipped spec in stage 3 of 3: stage 1 (95/5) began 30 hours ago, stage 2 (75/25) 26 hours ago, stage 3
# (50/50) two hours ago.
LADDER = ((NOW - timedelta(hours=30), 5), (NOW - timedelta(hours=26), 25), (NOW - timedelta(hours=2), 50))
INTENTS = ("order_status", "returns", "product_search", "other")
RATES = {
    "Escalation": 0.12, "SlowResponse": 0.02, "Hallucination": 0.03, "SafetyFilterTriggered": 0.01,
    "TaskCompleted": 0.78, "RecommendationClick": 0.10,
}  # fmt: skip


@pytest.fixture
def metric_queries(aws: Env) -> Iterator[list[int]]:
    """The number of metrics each GetMetricData request asks for (what CloudWatch bills), as the handler's
    client sends them."""
    counts: list[int] = []
    cloudwatch = client("cloudwatch")  # the handler gets this same client

    def count(params: dict[str, Any], **_: Any) -> None:
        counts.append(len(params["MetricDataQueries"]))

    event = "provide-client-params.cloudwatch.GetMetricData"
    cloudwatch.meta.events.register(event, count, unique_id="count-metric-queries")
    yield counts
    cloudwatch.meta.events.unregister(event, unique_id="count-metric-queries")


def _shipped_rollout(env: Env, spec_data: dict[str, Any]) -> str:
    """Every metric of the shipped spec in every stage, the newest two minutes ago; stage starts recorded as
    they always were (no frozen stage yet: an experiment from before the cache looks the same)."""
    registry = Registry(TABLE)
    experiment = begin(
        registry,
        spec_data,
        execution_arn=start_execution(env, "release-42"),
        now=LADDER[0][0] - timedelta(minutes=1),
    )
    ends = [start for start, _ in LADDER[1:]] + [NOW]
    rng = np.random.default_rng(17)
    for index, ((start, percent), end) in enumerate(zip(LADDER, ends, strict=True)):
        registry.record_stage_start(
            experiment.experiment_id, index, Weights.for_canary_percent(percent), start
        )
        for variant, share in (("control", 1 - percent / 100), ("canary", percent / 100)):
            for at in (start + timedelta(minutes=30), end - timedelta(minutes=2)):
                n = round(20_000 * share)
                dims = {"Variant": variant}
                for name, rate in RATES.items():
                    put_aggregate("MangaAssist", name, dims, at, n=n, total=rng.binomial(n, rate))
                for intent in INTENTS:
                    hits = rng.binomial(n // 4, RATES["Escalation"])
                    put_aggregate(
                        "MangaAssist", "Escalation", dims | {"Intent": intent}, at, n=n // 4, total=hits
                    )
                csat = rng.normal(4.2, 0.8, size=50)
                put_aggregate("MangaAssist", "CSAT", dims, at, n=50, total=float(csat.sum()))
                put_aggregate(
                    "MangaAssist", "CSATSquared", dims, at, n=50, total=float(np.square(csat).sum())
                )
                put_alb_counts(env, variant, at, requests=n, errors=rng.binomial(n, 0.003))
                assigned = {"Service": "mangaassist", "Variant": variant}
                put_aggregate("Canarywise", "NewAssignment", assigned, at, n=n // 2, total=n // 2)
    set_rule_weights(env, 50, 50)
    return experiment.experiment_id


def _stage_cache(experiment_id: str) -> dict[str, Any]:
    check = Registry(TABLE).get_experiment(experiment_id).latest_check
    assert check is not None
    return check.details["stage_cache"]


def _alb(env: Env) -> AlbDimensions:
    t = env.traffic
    return AlbDimensions(
        t.load_balancer_full_name,
        {"control": t.control_target_group_full_name, "canary": t.canary_target_group_full_name},
    )


# Metrics requested per stage window of the shipped spec: escalation 2 stats x 2 variants x (1 + 4 intents)
# = 20, error_rate, slow_response, hallucination, safety_filter, task_completion and recommendation_ctr 2 x 2
# each = 24, csat 3 x 2 = 6, new assignments 2 -> 52. No freshness probe (its 10: units x 2 variants of the 5
# safety and guardrail metrics): stage 3, two hours old, covers its hour and carries freshness in those same
# unit counts, read a minute at a time. (p99_latency is alarm-only: never queried.)
PER_STAGE = 52


def test_closed_stages_are_frozen_and_later_checks_read_only_the_stage_in_progress(
    aws: Env, spec_data: dict[str, Any], context: Any, metric_queries: list[int]
) -> None:
    experiment_id = _shipped_rollout(aws, spec_data)
    later = NOW + timedelta(minutes=5)

    first = significance_check.handler(_scheduled(), context)
    asked_first, metric_queries[:] = sum(metric_queries), []
    first_cache = _stage_cache(experiment_id)
    second = significance_check.handler(_scheduled(later), context)
    asked_second = sum(metric_queries)

    assert first["failed"] == second["failed"] == {}
    # The first check reads all three stages and freezes the two closed ones; the next reads stage 3 only.
    assert first_cache == {"from_registry": [], "frozen_now": [0, 1], "not_frozen": {}}
    assert _stage_cache(experiment_id) == {"from_registry": [0, 1], "frozen_now": [], "not_frozen": {}}
    assert (asked_first, asked_second) == (3 * PER_STAGE, PER_STAGE)  # 156 -> 52

    # Frozen == fresh: the same observations and the same decision, every number of it, as reading every
    # stage from CloudWatch at the same moment.
    registry = Registry(TABLE)
    experiment = registry.get_experiment(experiment_id)
    stages = stage_records(registry.stage_history(experiment_id))
    source = MetricSource(_alb(aws))
    fresh = source.observe(experiment.spec, stages, later)
    cached = source.read(experiment.spec, stages, later, frozen=registry.frozen_stages(experiment_id))
    assert cached.cached == (0, 1)
    assert cached.observations == fresh
    recorded = registry.list_checks(experiment_id)[-1]
    expected = check_record(
        experiment, decide(experiment.spec, stages, fresh, later), stage_cache=recorded.details["stage_cache"]
    )
    assert recorded.model_dump_json() == expected.model_dump_json()
    assert second["decisions"][experiment_id] == expected.decision


def _refuse_frozen_items(monkeypatch: pytest.MonkeyPatch) -> Any:
    """DynamoDB refuses the frozen items (as it would one over 400 KB); returns the real put_item."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.put_item

    def put_item(self: Any, table_name: str, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if item_attrs["sk"]["S"].startswith("FROZEN#"):
            raise ItemSizeTooLarge()
        return original(self, table_name, item_attrs, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "put_item", put_item)
    return original


def test_a_failed_cache_write_never_fails_the_check(
    aws: Env,
    spec_data: dict[str, Any],
    context: Any,
    metric_queries: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.dynamodb.models import DynamoDBBackend

    experiment_id = _shipped_rollout(aws, spec_data)
    original = _refuse_frozen_items(monkeypatch)

    refused = significance_check.handler(_scheduled(), context)
    refused_cache = _stage_cache(experiment_id)
    monkeypatch.setattr(DynamoDBBackend, "put_item", original)
    metric_queries.clear()
    retried = significance_check.handler(_scheduled(NOW + timedelta(minutes=5)), context)

    assert refused["failed"] == {}
    assert refused["decisions"][experiment_id] == retried["decisions"][experiment_id]
    why = (
        "could not store it: ClientError: An error occurred (ValidationException) when calling the PutItem "
        "operation: Item size has exceeded the maximum allowed size"
    )
    assert refused_cache == {"from_registry": [], "frozen_now": [], "not_frozen": {"0": why, "1": why}}
    # The next check has nothing frozen: it reads every stage again, and freezes them this time.
    assert sum(metric_queries) == 3 * PER_STAGE
    assert _stage_cache(experiment_id) == {"from_registry": [], "frozen_now": [0, 1], "not_frozen": {}}


def test_an_unreadable_cache_means_reading_cloudwatch(
    aws: Env, spec_data: dict[str, Any], context: Any, metric_queries: list[int]
) -> None:
    experiment_id = _shipped_rollout(aws, spec_data)
    boto3.client("dynamodb").put_item(
        TableName=TABLE,
        Item={"pk": {"S": f"EXP#{experiment_id}"}, "sk": {"S": "FROZEN#000"}, "frozen": {"S": "{not json"}},
    )

    summary = significance_check.handler(_scheduled(), context)

    assert summary["failed"] == {}
    assert sum(metric_queries) == 3 * PER_STAGE
    # The second stage is frozen; the first one's broken copy stands (a copy is written once), so that stage
    # is read from CloudWatch at every check.
    assert _stage_cache(experiment_id) == {
        "from_registry": [],
        "frozen_now": [1],
        "not_frozen": {"0": "a frozen copy is already in the registry"},
    }


def test_metrics_unreadable_past_the_stages_maximum_end_in_the_inconclusive_policy(
    aws: Env, spec_data: dict[str, Any], context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault table row 2: CloudWatch unreadable for longer than the stage's max_duration (48 h for stage 1
    of config/mangaassist.yaml) no longer holds forever: the spec's inconclusive policy decides. Never
    ADVANCE."""
    registry = Registry(TABLE)
    experiment = begin(
        registry,
        spec_data,
        execution_arn=start_execution(aws, "release-42"),
        now=NOW - timedelta(hours=49),
    )
    registry.record_stage_start(
        experiment.experiment_id, 0, Weights(control=95, canary=5), NOW - timedelta(hours=48)
    )
    _patch_get_metric_data(monkeypatch, "Throttling")

    summary = significance_check.handler(_scheduled(), context)

    assert summary["decisions"] == {experiment.experiment_id: "INCONCLUSIVE"}
    check = registry.get_experiment(experiment.experiment_id).latest_check
    assert check is not None
    assert check.reason.startswith(
        "stage 1 of 3 reached its maximum duration (48 h) while its metrics could not be read; "
        "the spec's inconclusive policy applies: CloudWatch read failed: Throttling: "
    )
    gate = stage_gate.handler(
        {"action": "gate", "experiment_id": experiment.experiment_id, "stage_index": 0}, context
    )
    assert gate["decision"] == "INCONCLUSIVE"
