"""The registry against moto's DynamoDB: pre-registration, stages, checks, guarded transitions, BH."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import boto3
import numpy as np
import pytest
from aws_kit import T0, TABLE, at
from numpy.testing import assert_allclose
from scipy.stats import false_discovery_control

from canarywise.data.metric_source import FrozenStage
from canarywise.data.models import CheckRecord, ExperimentStatus, RollbackRecord, Weights
from canarywise.data.registry import (
    ExperimentNotFoundError,
    InvalidTransitionError,
    Registry,
    RegistryError,
)
from canarywise.decision.models import MeanAggregate, Observations, ProportionAggregate
from canarywise.spec import SpecError, parse_spec


def _new(
    registry: Registry, spec_data: dict[str, Any], candidate: str = "v42", n: int = 1, **spec_changes: Any
):
    data = json.loads(json.dumps(spec_data))
    for section, values in spec_changes.items():
        data[section].update(values)
    return registry.create_experiment(
        parse_spec(data),
        candidate=candidate,
        release_id=f"r{n}",
        execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:canary:{candidate}-{n}",
        now=T0,
    )


def test_create_stores_the_spec_as_the_pre_registered_hypothesis(
    registry_table: str, spec_data: dict[str, Any]
) -> None:
    registry = Registry(TABLE)
    experiment = _new(registry, spec_data)
    assert experiment.status is ExperimentStatus.RUNNING
    assert experiment.spec == parse_spec(spec_data)
    assert experiment.created_at == T0
    # A retried start of the same execution finds the same experiment instead of registering a second one.
    again = _new(registry, spec_data)
    assert again.experiment_id == experiment.experiment_id
    assert [e.experiment_id for e in registry.list_running("mangaassist")] == [experiment.experiment_id]
    assert registry.list_running("another-service") == ()


def test_a_stored_spec_is_revalidated_when_read(registry_table: str, spec_data: dict[str, Any]) -> None:
    registry = Registry(TABLE)
    experiment = _new(registry, spec_data)
    broken = json.loads(json.dumps(spec_data))
    broken["statistics"]["alpha"] = 1.5
    boto3.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"EXP#{experiment.experiment_id}"}, "sk": {"S": "META"}},
        UpdateExpression="SET spec = :s",
        ExpressionAttributeValues={":s": {"S": json.dumps(broken)}},
    )
    with pytest.raises(SpecError, match=r"statistics\.alpha: Input should be less than 1 \(found 1\.5\)"):
        registry.get_experiment(experiment.experiment_id)


def test_unknown_experiment(registry_table: str) -> None:
    with pytest.raises(
        ExperimentNotFoundError, match=r"^no experiment 'nope' in table 'canarywise-registry'$"
    ):
        Registry(TABLE).get_experiment("nope")


def test_stage_starts_keep_the_weights_in_force(registry_table: str, spec_data: dict[str, Any]) -> None:
    registry = Registry(TABLE)
    experiment_id = _new(registry, spec_data).experiment_id
    registry.record_stage_start(experiment_id, 0, Weights(control=95, canary=5), at(0))
    registry.record_stage_start(experiment_id, 1, Weights(control=75, canary=25), at(300))
    # The state machine retries a task after a timeout: the first record stands.
    retry = registry.record_stage_start(experiment_id, 1, Weights(control=75, canary=25), at(301))
    assert retry.started_at == at(300)
    history = registry.stage_history(experiment_id)
    assert [(s.stage_index, s.weights.canary, s.started_at) for s in history] == [
        (0, 5, at(0)),
        (1, 25, at(300)),
    ]


def _frozen(stage: int, n: int = 4_000) -> FrozenStage:
    """A closed stage's data with floats that JSON must carry to the last bit."""
    return FrozenStage(
        stage,
        at(0),
        at(240),
        at(260),
        Observations.build(
            {
                ("escalation_rate", stage, "control", None): ProportionAggregate(n, 480),
                ("escalation_rate", stage, "canary", "returns"): ProportionAggregate(210, 31),
                ("csat", stage, "canary", None): MeanAggregate(7, 0.1 + 0.2, 29.400000000000006),
            },
            assignments={(stage, "control"): 1_900, (stage, "canary"): 100},
        ),
    )


def test_a_frozen_stage_is_written_once_and_read_back_exactly(
    registry_table: str, spec_data: dict[str, Any]
) -> None:
    registry = Registry(TABLE)
    experiment_id = _new(registry, spec_data).experiment_id
    registry.record_stage_start(experiment_id, 0, Weights(control=95, canary=5), at(0))
    registry.record_stage_start(experiment_id, 1, Weights(control=75, canary=25), at(240))
    assert registry.frozen_stages(experiment_id) == {}  # an experiment from before the cache has none

    assert registry.freeze_stage(experiment_id, _frozen(0)) is True
    # A second writer (a concurrent or retried check) does not replace the first copy.
    assert registry.freeze_stage(experiment_id, _frozen(0, n=9_999)) is False

    assert registry.frozen_stages(experiment_id) == {0: _frozen(0)}
    # Its own item: the stage history is unchanged.
    assert [s.stage_index for s in registry.stage_history(experiment_id)] == [0, 1]
    item = boto3.client("dynamodb").get_item(
        TableName=TABLE, Key={"pk": {"S": f"EXP#{experiment_id}"}, "sk": {"S": "FROZEN#000"}}
    )["Item"]
    assert (item["kind"]["S"], item["stage_index"]["N"]) == ("frozen_stage", "0")


def test_an_unreadable_frozen_stage_is_a_registry_error(
    registry_table: str, spec_data: dict[str, Any]
) -> None:
    registry = Registry(TABLE)
    experiment_id = _new(registry, spec_data).experiment_id
    boto3.client("dynamodb").put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": f"EXP#{experiment_id}"},
            "sk": {"S": "FROZEN#001"},
            "frozen": {"S": json.dumps({"stage": 1})},
        },
    )
    with pytest.raises(RegistryError) as raised:
        registry.frozen_stages(experiment_id)
    assert str(raised.value) == (
        f"unreadable frozen stage 'FROZEN#001' of {experiment_id!r}: "
        "malformed frozen stage: KeyError('start')"
    )


def test_checks_are_appended_with_a_ttl_and_the_latest_only_moves_forward(
    registry_table: str, spec_data: dict[str, Any]
) -> None:
    registry = Registry(TABLE)
    experiment_id = _new(registry, spec_data).experiment_id
    later = CheckRecord(checked_at=at(10), stage_index=0, decision="CONTINUE", reason="collecting")
    earlier = CheckRecord(checked_at=at(5), stage_index=0, decision="ADVANCE", reason="late writer")
    registry.record_check(experiment_id, later)
    registry.record_check(experiment_id, earlier)  # a slow check finishing late must not win
    assert registry.get_experiment(experiment_id).latest_check == later
    assert [c.checked_at for c in registry.list_checks(experiment_id)] == [at(5), at(10)]
    item = boto3.client("dynamodb").get_item(
        TableName=TABLE,
        Key={"pk": {"S": f"EXP#{experiment_id}"}, "sk": {"S": "CHECK#2026-11-02T09:10:00.000000Z"}},
    )["Item"]
    # 400 days after the check, in epoch seconds: hand-derived from 2026-11-02T09:10:00Z.
    assert int(item["expires_at"]["N"]) == int((at(10) + timedelta(days=400)).timestamp())


def test_status_moves_only_along_the_allowed_paths(registry_table: str, spec_data: dict[str, Any]) -> None:
    registry = Registry(TABLE)
    experiment_id = _new(registry, spec_data).experiment_id
    with pytest.raises(
        InvalidTransitionError,
        match=f"^experiment '{re.escape(experiment_id)}' is RUNNING; it cannot move to PROMOTED$",
    ):
        registry.conclude_promoted(experiment_id, at(60), pvalue=0.01)
    assert registry.mark_ready_for_approval(experiment_id, at(50)) is True
    assert registry.mark_ready_for_approval(experiment_id, at(51)) is False  # a retry, not an error
    assert registry.conclude_promoted(experiment_id, at(60), pvalue=0.01) is True
    promoted = registry.get_experiment(experiment_id)
    assert (promoted.status, promoted.concluded_at, promoted.pvalue) == (
        ExperimentStatus.PROMOTED,
        at(60),
        0.01,
    )
    assert registry.list_running("mangaassist") == ()
    with pytest.raises(InvalidTransitionError, match=r"is PROMOTED; it cannot move to READY_FOR_APPROVAL$"):
        registry.mark_ready_for_approval(experiment_id, at(61))
    # A check arriving after the conclusion is kept as history but is not the experiment's latest decision.
    registry.record_check(
        experiment_id, CheckRecord(checked_at=at(65), stage_index=2, decision="HOLD", reason="x")
    )
    assert registry.get_experiment(experiment_id).latest_check is None


def test_a_rollback_is_recorded_once(registry_table: str, spec_data: dict[str, Any]) -> None:
    registry = Registry(TABLE)
    experiment = _new(registry, spec_data)
    record = RollbackRecord(
        service="mangaassist",
        rolled_back_at=at(30),
        source="cli",
        reason="complaints",
        experiment_id=experiment.experiment_id,
        candidate="v42",
    )
    assert registry.record_rollback(record) is True
    assert registry.record_rollback(record.model_copy(update={"rolled_back_at": at(31)})) is False
    stored = registry.get_experiment(experiment.experiment_id)
    assert stored.status is ExperimentStatus.ROLLED_BACK
    assert stored.concluded_at == at(30)
    rollback = registry.get_rollback(experiment.experiment_id)
    assert rollback is not None
    assert (rollback.reason, rollback.status) == ("complaints", ExperimentStatus.ROLLED_BACK)
    assert len(registry.rollback_history("mangaassist")) == 1


def test_a_rejected_approval_ends_as_rejected(registry_table: str, spec_data: dict[str, Any]) -> None:
    registry = Registry(TABLE)
    experiment_id = _new(registry, spec_data).experiment_id
    registry.mark_ready_for_approval(experiment_id, at(40))
    record = RollbackRecord(
        service="mangaassist",
        rolled_back_at=at(45),
        source="aws.codepipeline",
        reason="rejected",
        experiment_id=experiment_id,
        candidate="v42",
        status=ExperimentStatus.REJECTED,
    )
    assert registry.record_rollback(record) is True
    assert registry.get_experiment(experiment_id).status is ExperimentStatus.REJECTED
    # A later alarm on the same experiment is a duplicate, not an error.
    assert registry.record_rollback(record.model_copy(update={"status": None, "source": "sns"})) is False


def test_anti_flapping_facts(registry_table: str, spec_data: dict[str, Any]) -> None:
    registry = Registry(TABLE)
    now = T0 + timedelta(days=10)
    when = [now - timedelta(days=8), now - timedelta(days=3), now - timedelta(hours=2)]
    for n, moment in enumerate(when):
        experiment_id = _new(registry, spec_data, n=n).experiment_id
        registry.record_rollback(
            RollbackRecord(
                service="mangaassist",
                rolled_back_at=moment,
                source="sns",
                reason="alarm",
                experiment_id=experiment_id,
                candidate="v42",
            )
        )
    registry.record_rollback(
        RollbackRecord(
            service="mangaassist", rolled_back_at=now - timedelta(hours=1), source="cli", reason="x"
        )
    )
    facts = registry.rollback_facts("mangaassist", "v42", now)
    # v42 was rolled back 3 times, one of them 8 days ago (outside the 7-day window); the last rollback of the
    # service (any candidate, or none) was an hour ago.
    assert facts.candidate_rollbacks_7d == 2
    assert facts.last_rollback_at == now - timedelta(hours=1)
    assert registry.rollback_facts("mangaassist", "v43", now).candidate_rollbacks_7d == 0


def test_registry_bh_per_tier_over_twelve_months(registry_table: str, spec_data: dict[str, Any]) -> None:
    registry = Registry(TABLE)
    now = T0 + timedelta(days=400)
    default = [0.001, 0.02, 0.04, 0.30, 0.049]
    critical = [0.01, 0.03, 0.20]
    ids: dict[str, list[str]] = {"default": [], "revenue-critical": []}
    for tier, pvalues in (("default", default), ("revenue-critical", critical)):
        for n, pvalue in enumerate(pvalues):
            experiment_id = _new(
                registry, spec_data, candidate=f"{tier}-{n}", statistics={"fdr_tier": tier}
            ).experiment_id
            registry.mark_ready_for_approval(experiment_id, now - timedelta(days=30 + n))
            registry.conclude_promoted(experiment_id, now - timedelta(days=30 + n), pvalue=pvalue)
            ids[tier].append(experiment_id)
    # Concluded 13 months ago: outside the rolling window, never part of the family.
    old = _new(registry, spec_data, candidate="old").experiment_id
    registry.mark_ready_for_approval(old, now - timedelta(days=395))
    registry.conclude_promoted(old, now - timedelta(days=395), pvalue=0.0001)
    # Rolled back without a primary p-value: not a test of the portfolio.
    no_p = _new(registry, spec_data, candidate="nop").experiment_id
    registry.record_rollback(
        RollbackRecord(
            service="mangaassist",
            rolled_back_at=now - timedelta(days=3),
            source="cli",
            reason="x",
            experiment_id=no_p,
            candidate="nop",
        )
    )

    entries = {e.experiment_id: e for e in registry.apply_registry_fdr(now)}
    assert set(entries) == set(ids["default"]) | set(ids["revenue-critical"])
    for tier, pvalues, q in (("default", default, 0.10), ("revenue-critical", critical, 0.05)):
        # Reference: scipy.stats.false_discovery_control(pvalues, method="bh"); rejected where <= tier q.
        expected = false_discovery_control(pvalues, method="bh")
        got = [entries[i].adjusted_pvalue for i in ids[tier]]
        assert_allclose(got, expected, rtol=1e-12)
        assert [entries[i].rejected for i in ids[tier]] == list(np.asarray(expected) <= q)
        assert [entries[i].q for i in ids[tier]] == [q] * len(pvalues)
        stored = [registry.get_experiment(i) for i in ids[tier]]
        assert [s.pvalue for s in stored] == pvalues  # the raw p-value stays next to the adjusted one
        assert_allclose([s.adjusted_pvalue for s in stored], expected, rtol=1e-12)
    assert registry.get_experiment(old).adjusted_pvalue is None
