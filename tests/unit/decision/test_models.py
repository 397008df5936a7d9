"""The engine's models survive a JSON round trip (the registry stores them) and reject malformed input."""

from __future__ import annotations

import json

import pytest
from decision_kit import ESCALATION, hours, make_obs, make_spec, metric, stage

from canarywise.decision.context import decisive_metrics, stage_label
from canarywise.decision.engine import decide
from canarywise.decision.models import (
    Decision,
    DecisionInputError,
    MeanAggregate,
    Observations,
    ProportionAggregate,
    StageRecord,
    Variant,
)


def test_decision_round_trips_through_json() -> None:
    spec = make_spec([ESCALATION, metric("token_cost", kind="mean", mde=0.05)])
    now = hours(5)
    cells = {
        ("escalation_rate", 0): ((380_000, 45_600), (20_000, 2_400)),
        ("token_cost", 0): ((20_000, 20_000.0, 25_000.0), (2_000, 2_000.0, 2_500.0)),
    }
    decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
    text = json.dumps(decision.to_dict(), allow_nan=False)  # JSON proper: no NaN, no Infinity
    assert Decision.from_dict(json.loads(text)) == decision


def test_observations_and_stage_records_round_trip() -> None:
    now = hours(1)
    obs = Observations.build(
        {
            ("escalation_rate", 0, "control", None): ProportionAggregate(100, 12),
            ("escalation_rate", 0, Variant.CANARY, "returns"): ProportionAggregate(10, 2),
            ("token_cost", 0, "canary", None): MeanAggregate(3, 6.0, 14.0),
            ("token_cost", 0, "control", None): MeanAggregate.from_values([1e9 - 1, 1e9, 1e9 + 1]),  # shifted
        },
        latest={"escalation_rate": now},
        assignments={(0, "control"): 100, (0, "canary"): 10},
    )
    assert Observations.from_dict(json.loads(json.dumps(obs.to_dict()))) == obs
    record = StageRecord(1, 25.0, {"control": 75, "canary": 25}, hours(0), hours(2))
    assert StageRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_mean_aggregate_is_the_statistics_summary() -> None:
    # values 1, 2, 3: mean 2, sample variance 1
    arm = MeanAggregate(3, 6.0, 14.0)
    assert (arm.mean, arm.variance) == (2.0, 1.0)


def test_raises_on_malformed_input() -> None:
    with pytest.raises(
        DecisionInputError, match=r"^StageRecord.weights needs non-negative 'control' and 'canary'"
    ):
        StageRecord(0, 5.0, {"control": 95}, hours(0))
    with pytest.raises(DecisionInputError, match=r"^malformed decision: KeyError\('kind'\)$"):
        Decision.from_dict({})
    with pytest.raises(DecisionInputError, match=r"^malformed observations: KeyError\('aggregates'\)$"):
        Observations.from_dict({})
    with pytest.raises(DecisionInputError, match=r"^malformed stage record: KeyError\('index'\)$"):
        StageRecord.from_dict({})


def test_stage_labels_count_from_one() -> None:
    assert [stage_label(i, 3) for i in range(3)] == ["stage 1 of 3", "stage 2 of 3", "stage 3 of 3"]


def test_decisive_metrics_are_safety_and_guardrails_plus_the_ab_primary() -> None:
    metrics = [
        ESCALATION,
        metric("error_rate"),
        metric("conversion", role="primary", direction="higher_is_better"),
        metric("clicks", role="secondary"),
    ]
    canary = make_spec(metrics)
    ab = make_spec(metrics, mode="ab", stages=[{"percent": 50, "min_duration": "1d", "max_duration": "7d"}])
    assert [m.name for m in decisive_metrics(canary)] == ["escalation_rate", "error_rate"]
    assert [m.name for m in decisive_metrics(ab)] == ["escalation_rate", "error_rate", "conversion"]
