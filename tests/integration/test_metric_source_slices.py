"""A high-cardinality slice dimension (issue 11 row 12): the metric source reads a bounded number of slices.

The spec's ``max_slices`` caps the slices of a metric: its critical slices, then the busiest others (by units
over the experiment so far, both variants), and one ``(other)`` slice pooling the rest (the metric's overall
numbers minus the slices read). Expected numbers are counted by hand from what the test puts into moto's
CloudWatch.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_kit import Env, put_aggregate

from canarywise.data.metric_source import OTHER_SLICE, AlbDimensions, MetricSource
from canarywise.decision.models import ProportionAggregate, StageRecord, Variant
from canarywise.spec import parse_spec

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
START = NOW - timedelta(hours=2)
# intent -> units per variant (a tenth of them escalated in the control, a fifth in the canary); the
# critical slices of config/mangaassist.yaml (order_status, returns) are among the smallest.
VOLUMES = {
    "order_status": 20,
    "returns": 30,
    "recommend": 400,
    "search": 300,
    "chitchat": 200,
    "billing": 100,
    "shipping": 50,
    "gift": 40,
}


def _spec(spec_data: dict[str, Any], max_slices: int) -> Any:
    data = dict(spec_data)
    escalation = next(m for m in spec_data["metrics"] if m["name"] == "escalation_rate")
    data["metrics"] = [escalation | {"max_slices": max_slices}]
    return parse_spec(data)


def _put(intents: dict[str, int]) -> None:
    for variant, share in (("control", 0.1), ("canary", 0.2)):
        for intent, n in intents.items():
            dims = {"Variant": variant, "Intent": intent}
            put_aggregate(
                "MangaAssist", "Escalation", dims, START + timedelta(minutes=5), n=n, total=n * share
            )
        total = sum(intents.values())
        put_aggregate(
            "MangaAssist",
            "Escalation",
            {"Variant": variant},
            START + timedelta(minutes=5),
            n=total,
            total=total * share,
        )


def _read(aws: Env, spec: Any) -> Any:
    t = aws.traffic
    alb = AlbDimensions(
        t.load_balancer_full_name,
        {"control": t.control_target_group_full_name, "canary": t.canary_target_group_full_name},
    )
    stages = [StageRecord(0, 5.0, {"control": 95, "canary": 5}, START)]
    return MetricSource(alb).observe(spec, stages, NOW)


def _slices(observations: Any, variant: Variant) -> dict[str | None, ProportionAggregate]:
    return {
        key.slice: aggregate
        for key, aggregate in observations.aggregates.items()
        if key.metric == "escalation_rate" and key.variant is variant
    }


def test_slices_past_the_cap_are_the_critical_then_the_busiest_plus_other(
    aws: Env, spec_data: dict[str, Any]
) -> None:
    _put(VOLUMES)
    observations = _read(aws, _spec(spec_data, max_slices=4))
    # 4 slices: order_status and returns (critical), then recommend (400) and search (300); the other four
    # intents (200 + 100 + 50 + 40 = 390 units) pooled.
    for variant, share in ((Variant.CONTROL, 0.1), (Variant.CANARY, 0.2)):
        assert _slices(observations, variant) == {
            None: ProportionAggregate(1140, round(1140 * share)),
            "order_status": ProportionAggregate(20, round(20 * share)),
            "returns": ProportionAggregate(30, round(30 * share)),
            "recommend": ProportionAggregate(400, round(400 * share)),
            "search": ProportionAggregate(300, round(300 * share)),
            OTHER_SLICE: ProportionAggregate(390, round(390 * share)),
        }


def test_slices_within_the_cap_are_all_read_and_nothing_is_pooled(
    aws: Env, spec_data: dict[str, Any]
) -> None:
    few = {"order_status": 20, "returns": 30, "recommend": 400}
    _put(few)
    observations = _read(aws, _spec(spec_data, max_slices=4))
    assert set(_slices(observations, Variant.CANARY)) == {None, *few}
