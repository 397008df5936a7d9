"""The control-plane cost benchmark measures what it says.

The tick runs the real significance check (``check_all`` with the real ``MetricSource``, ``Registry`` and
``HarmSignal``) on stubbed boto3 clients; the counts it reports are checked against hand derivations from
config/mangaassist.yaml and the AWS billing rules, never against the benchmark's own output.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from numpy.testing import assert_allclose

from bench import cost
from bench.report import _mean_metrics_per_tick

# Queries per stage window, by hand from config/mangaassist.yaml (p99_latency is alarm-only, not read):
# escalation_rate: SampleCount + Sum, 2 variants, overall + 4 intents = 2 * 2 * 5 = 20
# error_rate (ALB): RequestCount + 5XX Sum, 2 variants = 4
# slow_response, hallucination, safety_filter, task_completion, recommendation_ctr: 2 * 2 = 4 each -> 20
# csat (mean): SampleCount + Sum + Sum of squares, 2 variants = 6
QUERIES_PER_WINDOW = 20 + 4 + 20 + 6
# Besides the spec's metrics the data layer reads, per window, the new-assignment counts (one query per
# variant) for the sample-ratio check. Freshness (the newest minute of each variant's units of the 5
# safety/guardrail metrics over the last hour) comes from the stage in progress's own unit counts, read a
# minute at a time, once that stage is older than the hour: at every moment measured here (no probe request).
ASSIGNMENTS_PER_WINDOW = 2


def test_tick_checks_every_experiment_through_the_real_registry_and_metric_source() -> None:
    """Two experiments 52 h in (three stages started, the two closed ones frozen by the warm-up tick): one
    GetMetricData request each, for the stage in progress (which carries freshness), every query of the spec
    in it, and one transaction (the check record and the latest decision, fault table row 3) each."""
    result = cost.measure_tick(2, 1, at=timedelta(hours=52))
    assert result["decision"] == "CONTINUE"  # A/A-like answers, the third stage well under way
    assert result["get_metric_data_calls"] == 2 * 1
    per_window = QUERIES_PER_WINDOW + ASSIGNMENTS_PER_WINDOW
    assert result["metrics_requested"] == 2 * per_window
    assert result["metric_names_per_tick"]["NewAssignment"] == 2 * ASSIGNMENTS_PER_WINDOW
    assert result["dynamodb_writes"] == 2 * 1
    # A check reading every started stage (none frozen yet), then the next one (closed stages frozen).
    assert result["metrics_first_by_stage"] == [per_window * k for k in (1, 2, 3)]
    assert result["metrics_steady_by_stage"] == [per_window] * 3
    # Frozen 15 minutes after the stage's end (metric_source.FREEZE_AFTER): checks at +5, +10 and +15 min.
    assert result["unfrozen_checks_per_stage_end"] == 3
    assert result["cpu_seconds_median"] > 0


def test_item_bytes_follows_dynamodb_item_size_rules() -> None:
    """DynamoDB item size (Developer Guide, 'Item sizes'): attribute name length + value size; a string is
    its UTF-8 byte length, a number about (significant digits) / 2 + 1 bytes, a map 3 bytes + its entries,
    a boolean 1 byte."""
    item = {
        "pk": {"S": "EXP#é"},  # 2 + 6 (é is two bytes in UTF-8)
        "n": {"N": "123456"},  # 1 + (6 // 2 + 1) = 5
        "m": {"M": {"ok": {"BOOL": True}}},  # 1 + 3 + (2 + 1) = 7
    }
    assert cost.item_bytes(item) == 8 + 5 + 7


def test_rollout_cost_lines_multiply_quantity_by_price() -> None:
    """7 days of 5-minute checks = 2,016 ticks; GetMetricData billed per metric requested at $0.01 / 1,000."""
    lines = {
        line.item: line
        for line in cost.rollout_cost(
            days=7, check_interval=300, tick_seconds=0.3, metrics_per_tick=140.0, stages=3,
            write_units_per_tick=20, read_units_per_tick=7,
        )
    }  # fmt: skip
    gmd = lines["CloudWatch GetMetricData"]
    assert gmd.quantity == 2016 * 140.0
    assert_allclose(gmd.dollars, 2016 * 140 * 0.01 / 1000, rtol=1e-12)
    assert lines["DynamoDB writes"].quantity == 2016 * 20
    # Lambda: 2,016 checks x (1 GB x 0.3 s + 0.5 GB x 0.05 s) + 7 days x 4 cold starts x 1 GB x 2 s.
    assert_allclose(lines["Lambda compute"].quantity, 2016 * (0.3 + 0.025) + 7 * 4 * 2.0, rtol=1e-12)
    assert_allclose(lines["Metric alarms"].quantity, 9 * 7 / 30.4, rtol=1e-12)


def test_mean_metrics_per_tick_weights_each_stage_by_its_hours() -> None:
    """4 h at 50, 24 h at 100, the remaining 140 h of 7 days at 150: (200 + 2400 + 21000) / 168."""
    assert_allclose(_mean_metrics_per_tick([50, 100, 150], [4.0, 24.0, 48.0], 7.0), 23_600 / 168, rtol=1e-12)


@pytest.mark.parametrize("hours", [4.0, 28.0])
def test_stage_starts_follow_the_ladder_at_its_minimum_durations(hours: float) -> None:
    from datetime import UTC, datetime

    from canarywise.spec import load_spec

    start = datetime(2026, 11, 2, 10, tzinfo=UTC)
    stages = cost._stage_starts(load_spec(cost.SPEC_PATH), start, start + timedelta(hours=hours))
    # 5% from 0 h, 25% from 4 h, 50% from 28 h (the spec's minimum durations 4 h and 24 h).
    expected = [(0, 0.0, 5), (1, 4.0, 25), (2, 28.0, 50)][: 2 if hours < 28 else 3]
    assert [(i, (t - start).total_seconds() / 3600, p) for i, t, p in stages] == expected
    assert not math.isnan(hours)


def test_many_experiments_tick_adds_the_latency_of_each_aws_call_to_a_simulated_clock() -> None:
    """Three experiments, two ticks (quick mode of the row-13 bench). A steady tick, by hand: per experiment
    4 DynamoDB requests (get the experiment, query its stages, query its frozen stages, the check's
    transaction), 1 GetMetricData (the stage in progress, which carries freshness: no probe request) and 1
    ListMetrics page (the sliced metric's intents); per tick 1 query of the running experiments and 1
    PutMetricData."""
    latency = cost.LATENCY
    per_experiment = 4 * latency["dynamodb"] + 1 * latency["get_metric_data"] + latency["list_metrics"]
    first, steady = cost.measure_many(experiments=3, ticks=2)
    assert [(r["checked"], r["skipped"]) for r in (first, steady)] == [(3, 0), (3, 0)]
    assert_allclose(
        steady["aws_seconds"], 3 * per_experiment + latency["dynamodb"] + latency["put_metric_data"]
    )
    assert (
        first["aws_seconds"] > steady["aws_seconds"]
    )  # the first tick reads the closed stages, freezes them
    assert_allclose(steady["seconds"], steady["aws_seconds"] + steady["code_seconds"])
    assert_allclose(steady["seconds_per_experiment"], steady["seconds"] / 3)


def test_many_experiments_tick_stops_at_the_budget_and_reports_the_rest() -> None:
    """A 5.5 s timeout: the first experiment starts (5.5 s left ≥ 0 + the 5 s margin); after it (≥ 0.65 s of
    simulated latency) the time left is under the slowest + 5 s: the other three are skipped, every tick."""
    rows = cost.measure_many(experiments=4, ticks=2, timeout=5.5)
    assert [(r["checked"], r["skipped"]) for r in rows] == [(1, 3), (1, 3)]
    assert rows[0]["first_skipped"] != rows[1]["first_skipped"]  # the skipped come first next tick: rotation


def test_rollback_cold_path_moves_the_rule_to_the_live_slot_and_reads_it_back() -> None:
    """The rollback bench's run: the critical alarm rolls the 95/5 rollout back, the rule reads back 100% on
    the live slot; the calls it counts are the ELBv2 set and read back, the execution's stop and check, one
    alert, and the registry's reads and writes, each priced at `ROLLBACK_LATENCY`."""
    result = cost.measure_rollback()
    assert result["outcome"] == "ROLLED_BACK"
    assert (result["rule_before"], result["rule_after"]) == ({"control": 95, "canary": 5}, {"control": 100})
    calls = result["calls"]
    assert (calls["elbv2"], calls["stepfunctions"], calls["sns"]) == (2, 2, 1)
    assert calls["dynamodb"] > 0
    assert_allclose(result["aws_seconds"], sum(cost.ROLLBACK_LATENCY[k] * n for k, n in calls.items()))


def test_many_experiments_past_the_bound_are_handed_to_further_invocations() -> None:
    """Fault table row 13, fan-out: 5 experiments, at most 2 an invocation: the tick checks 2 and hands [2]
    and [1] on; three invocations check all 5, none skipped, every tick."""
    rows = cost.measure_many(experiments=5, ticks=2, batch_size=2)
    assert [(r["invocations"], r["checked"], r["skipped"]) for r in rows] == [(3, 5, 0), (3, 5, 0)]
