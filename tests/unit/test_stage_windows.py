"""The requests a check plans (no CloudWatch): the freshness probe, or the stage in progress carrying it.

GetMetricData is billed per metric requested, whatever the period or the window; the probe asks for the unit
count of each decisive metric per variant, which the stage in progress already asks for. When that stage
covers the probe's range (it is older than the probe's hour and kept at a minute's resolution), its unit
counts are read a minute at a time instead and the probe is dropped: 10 metrics fewer a check for the shipped
spec (5 safety and guardrail metrics x 2 variants), the same newest minute.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from canarywise.data.metric_source.queries import FIXED_SLOTS, AlbDimensions
from canarywise.data.metric_source.windows import stage_windows
from canarywise.decision.models import StageRecord
from canarywise.spec import load_spec

SPEC = load_spec(Path(__file__).resolve().parents[2] / "config" / "mangaassist.yaml")
ALB = AlbDimensions("app/alb/1", {"control": "targetgroup/control/2", "canary": "targetgroup/canary/3"})
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SLICES = {"escalation_rate": ("order_status", "other", "product_search", "returns")}


def _plan(stage_age: timedelta, now: datetime = NOW) -> list:  # type: ignore[type-arg]
    """The second stage began `stage_age` ago, the first 5 h before it (read: closed stages are skipped)."""
    began = now - stage_age
    stages = [
        StageRecord(0, 5.0, {"control": 95, "canary": 5}, began - timedelta(hours=5), began),
        StageRecord(1, 25.0, {"control": 75, "canary": 25}, began),
    ]
    return stage_windows(SPEC, stages, now, skip={0}, slices=SLICES, alb=ALB, slots=FIXED_SLOTS)


def test_an_old_stage_in_progress_carries_freshness_and_the_probe_is_gone() -> None:
    (window,) = _plan(timedelta(hours=3))
    minute = [q for q in window.queries if q.period == 60]
    # The shipped spec's safety and guardrail metrics (spec file): escalation_rate, error_rate,
    # slow_response_rate, hallucination_rate, safety_filter_rate; their unit count per variant.
    assert sorted((q.key.metric, q.key.variant.value, q.field) for q in minute) == sorted(
        (m, v, "n")
        for m in ("escalation_rate", "error_rate", "slow_response_rate", "hallucination_rate",
                  "safety_filter_rate")
        for v in ("control", "canary")
    )  # fmt: skip
    assert all(q.key.slice is None for q in minute)
    assert window.fresh_from == NOW - timedelta(hours=1)  # the probe's start (an hour: past the late limit)
    # 52 metrics requested, as the stage alone was before (count in tests/integration: PER_STAGE).
    assert len(window.queries) == 52


def test_a_stage_younger_than_the_probe_keeps_it() -> None:
    """Forty minutes into stage 2 the probe's hour reaches into stage 1: it stays a request of its own."""
    stage, probe = _plan(timedelta(minutes=40))
    assert probe.probe
    assert probe.start == NOW - timedelta(hours=1)
    assert not any(q.period for q in stage.queries)
    assert len(stage.queries) + len(probe.queries) == 52 + 10


def test_a_check_off_the_minute_keeps_the_probe() -> None:
    """The stage window ends on the minute before `now`; the probe reaches `now`: not the same range."""
    windows = _plan(timedelta(hours=3), now=NOW + timedelta(seconds=20))
    assert [w.probe for w in windows] == [False, True]
