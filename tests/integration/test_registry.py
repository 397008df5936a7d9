"""The registry against moto's DynamoDB: pre-registration, stages, checks, the lifecycle's fenced transitions,
rollback records, BH."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import boto3
import numpy as np
import pytest
from aws_kit import T0, TABLE, at, begin, conclude, take
from numpy.testing import assert_allclose
from scipy.stats import false_discovery_control

from canarywise.data.metric_source import FrozenStage
from canarywise.data.models import CheckRecord, ExperimentStatus, RollbackRecord, Weights
from canarywise.data.registry import (
    ExperimentNotFoundError,
    Registry,
    RegistryError,
    TransitionRefusedError,
)
from canarywise.decision.models import MeanAggregate, Observations, ProportionAggregate
from canarywise.lifecycle.table import TRANSITIONS, Event, Phase
from canarywise.spec import SpecError, parse_spec


def _new(
    registry: Registry, spec_data: dict[str, Any], candidate: str = "v42", n: int = 1, **spec_changes: Any
):
    return begin(registry, spec_data, candidate=candidate, n=n, **spec_changes)


def test_create_stores_the_spec_as_the_pre_registered_hypothesis(
    registry_table: str, spec_data: dict[str, Any]
) -> None:
    registry = Registry(TABLE)
    experiment = _new(registry, spec_data)
    assert experiment.status is ExperimentStatus.RUNNING
    assert experiment.spec == parse_spec(spec_data)
    assert experiment.created_at == T0
    assert (experiment.baseline_slot, experiment.candidate_slot) == ("control", "canary")
    # One rollout per service: a second start (even of the same execution, which the stage gate answers
    # from the existing experiment before it gets here) is refused by the service's state.
    with pytest.raises(
        TransitionRefusedError, match=r"^start refused: mangaassist is ROLLING_OUT \(needs STEADY\)"
    ):
        _new(registry, spec_data, candidate="v43")
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
    # Both read the experiment (sequence 0) before either wrote: a slow check finishing late must not win.
    registry.record_check(experiment_id, later, seen=0)
    registry.record_check(experiment_id, earlier, seen=0)
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
        TransitionRefusedError,
        match=rf"^approve refused: mangaassist is ROLLING_OUT \(needs AWAITING_APPROVAL\); "
        rf"experiment {re.escape(experiment_id)} is RUNNING \(needs READY_FOR_APPROVAL\)$",
    ):
        take(registry, "mangaassist", "approve", at(45), experiment_id=experiment_id)
    take(registry, "mangaassist", "ready", at(50), experiment_id=experiment_id)
    with pytest.raises(TransitionRefusedError, match=r"^ready refused: mangaassist is AWAITING_APPROVAL"):
        take(registry, "mangaassist", "ready", at(51), experiment_id=experiment_id)
    take(registry, "mangaassist", "approve", at(55), experiment_id=experiment_id)
    state = take(
        registry, "mangaassist", "promote", at(60), experiment_id=experiment_id,
        experiment_sets={"concluded_at": "2026-11-02T10:00:00.000000Z", "pvalue": 0.01},
    )  # fmt: skip
    promoted = registry.get_experiment(experiment_id)
    assert (promoted.status, promoted.concluded_at, promoted.pvalue) == (
        ExperimentStatus.PROMOTED,
        at(60),
        0.01,
    )
    # Promotion swaps the roles: the candidate's slot is live, the next release goes into the other one.
    assert (state.phase, state.live, state.idle, state.forward) == (
        Phase.STEADY,
        "canary",
        "control",
        {"canary": 100},
    )
    assert registry.list_running("mangaassist") == ()
    with pytest.raises(
        TransitionRefusedError, match=r"^roll_back refused: mangaassist has no experiment in progress$"
    ):
        take(registry, "mangaassist", "roll_back", at(61))
    # A check arriving after the conclusion is kept as history but is not the experiment's latest decision.
    registry.record_check(
        experiment_id, CheckRecord(checked_at=at(65), stage_index=2, decision="HOLD", reason="x")
    )
    assert registry.get_experiment(experiment_id).latest_check is None


def test_a_writer_with_a_stale_version_changes_nothing(
    registry_table: str, spec_data: dict[str, Any]
) -> None:
    registry = Registry(TABLE)
    experiment_id = _new(registry, spec_data).experiment_id
    token = registry.service_state("mangaassist")
    assert token is not None
    # A rollback takes the experiment first...
    take(registry, "mangaassist", "roll_back", at(10), experiment_id=experiment_id)
    # ...then a stage start holding the version read before it arrives: refused, nothing written.
    with pytest.raises(
        TransitionRefusedError,
        match=r"^stage_started refused: mangaassist moved on "
        r"\(version 2, roll_back by test; this call held version 1\)",
    ):
        registry.transition(
            Event.STAGE_STARTED, token, experiment_id=experiment_id, percent=25, now=at(11), by="x"
        )
    state = registry.service_state("mangaassist")
    assert state is not None
    assert (state.version, state.phase, state.forward) == (2, Phase.ROLLING_BACK, {"control": 100})
    assert registry.get_experiment(experiment_id).status is ExperimentStatus.ROLLING_BACK


def test_the_whole_table_walks(registry_table: str, spec_data: dict[str, Any]) -> None:
    """Every row once, in a release that is promoted and one that is rolled back; each row's "from" and "to"
    columns checked against what the registry holds before and after (read straight from the items)."""
    registry = Registry(TABLE)
    seen: set[Event] = set()

    def step(event: str, eid: str | None, **kwargs: Any) -> None:
        row = TRANSITIONS[Event(event)]
        before = registry.service_state("mangaassist")
        assert before is not None
        assert before.phase in row.service_from
        if row.needs_experiment and row.experiment_from:
            assert registry.get_experiment(eid).status in row.experiment_from
        after = take(registry, "mangaassist", event, at(len(seen)), experiment_id=eid, **kwargs)
        stored = registry.service_state("mangaassist")
        assert stored == after
        assert (stored.phase, stored.version) == (row.service_to, before.version + 1)
        assert (stored.live == before.idle) is row.swaps_roles
        seen.add(Event(event))

    one = _new(registry, spec_data, candidate="r1").experiment_id
    seen.add(Event.START)
    step("stage_started", one, percent=5)
    assert registry.service_state("mangaassist").forward == {"control": 95, "canary": 5}
    step("ready", one)
    step("approve", one)
    assert registry.service_state("mangaassist").forward == {"canary": 100}
    step("promote", one, experiment_sets={"concluded_at": "2026-11-02T10:00:00.000000Z"})
    two = _new(registry, spec_data, candidate="r2", n=2)
    assert (two.baseline_slot, two.candidate_slot) == ("canary", "control")
    step("stage_started", two.experiment_id, percent=25)
    assert registry.service_state("mangaassist").forward == {"canary": 75, "control": 25}
    step("pause", two.experiment_id)
    step("resume", two.experiment_id)
    step("pause", two.experiment_id)
    # Paused: traffic stays at the stage's share, and a rollback still takes it from there.
    assert registry.service_state("mangaassist").forward == {"canary": 75, "control": 25}
    step("roll_back", two.experiment_id)
    assert registry.service_state("mangaassist").forward == {"canary": 100}
    record = RollbackRecord(service="mangaassist", rolled_back_at=at(30), source="cli", reason="x",
                            experiment_id=two.experiment_id, candidate="r2")  # fmt: skip
    step("rolled_back", two.experiment_id, rollback=record,
         experiment_sets={"concluded_at": "2026-11-02T09:30:00.000000Z"})  # fmt: skip
    step("force_live", None)
    assert seen == set(TRANSITIONS)
    assert registry.get_experiment(two.experiment_id).status is ExperimentStatus.ROLLED_BACK


def test_a_rollback_is_recorded_once(registry_table: str, spec_data: dict[str, Any]) -> None:
    registry = Registry(TABLE)
    experiment = _new(registry, spec_data)
    conclude(registry, experiment, "rolled back", at(30))
    stored = registry.get_experiment(experiment.experiment_id)
    assert stored.status is ExperimentStatus.ROLLED_BACK
    assert stored.concluded_at == at(30)
    rollback = registry.get_rollback(experiment.experiment_id)
    assert rollback is not None
    assert rollback.reason == "test"
    assert len(registry.rollback_history("mangaassist")) == 1
    # The same completion again (a second caller): refused, still one record.
    with pytest.raises(
        TransitionRefusedError,
        match=r"^rolled_back refused: mangaassist is STEADY \(needs ROLLING_BACK\); "
        r"experiment mangaassist-v42-\w+ is ROLLED_BACK \(needs ROLLING_BACK\)$",
    ):
        take(registry, "mangaassist", "rolled_back", at(31), experiment_id=experiment.experiment_id)
    assert len(registry.rollback_history("mangaassist")) == 1


def test_anti_flapping_facts(registry_table: str, spec_data: dict[str, Any]) -> None:
    registry = Registry(TABLE)
    now = T0 + timedelta(days=10)
    when = [now - timedelta(days=8), now - timedelta(days=3), now - timedelta(hours=2)]
    for n, moment in enumerate(when):
        conclude(registry, _new(registry, spec_data, n=n), "rolled back", moment)
    registry.record_forced_rollback(
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
            experiment = _new(registry, spec_data, candidate=f"{tier}-{n}", statistics={"fdr_tier": tier})
            conclude(registry, experiment, "promoted", now - timedelta(days=30 + n), pvalue=pvalue)
            ids[tier].append(experiment.experiment_id)
    # Concluded 13 months ago: outside the rolling window, never part of the family.
    old = _new(registry, spec_data, candidate="old")
    conclude(registry, old, "promoted", now - timedelta(days=395), pvalue=0.0001)
    old = old.experiment_id
    # Rolled back without a primary p-value: not a test of the portfolio.
    no_p = _new(registry, spec_data, candidate="nop")
    conclude(registry, no_p, "rolled back", now - timedelta(days=3))

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


def test_a_check_killed_midway_leaves_no_newer_check_beside_an_older_decision(
    registry_table: str, spec_data: dict[str, Any]
) -> None:
    """Fault table row 3: the significance check dies while storing a ROLLBACK check. Either the check and
    the latest decision are both written or neither is; the gate never acts on an older ADVANCE while a
    newer ROLLBACK sits in the history."""
    experiment_id = _new(Registry(TABLE), spec_data).experiment_id
    advance = CheckRecord(checked_at=at(5), stage_index=0, decision="ADVANCE", reason="gate met")
    Registry(TABLE).record_check(experiment_id, advance)

    class Dies:
        """A client that dies on any write touching the experiment's META item (the process is killed)."""

        def __init__(self) -> None:
            self._real = boto3.client("dynamodb")

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

        def update_item(self, **kwargs: Any) -> Any:
            raise RuntimeError("killed")

        def transact_write_items(self, **kwargs: Any) -> Any:
            raise RuntimeError("killed")

    rollback = CheckRecord(checked_at=at(10), stage_index=0, decision="ROLLBACK", reason="harm")
    with pytest.raises(RuntimeError, match="killed"):
        Registry(TABLE, boto3_client=Dies()).record_check(experiment_id, rollback)
    assert [c.decision for c in Registry(TABLE).list_checks(experiment_id)] == ["ADVANCE"]
    assert Registry(TABLE).get_experiment(experiment_id).latest_check == advance


def test_a_check_dated_in_the_future_does_not_pin_the_latest_decision(
    registry_table: str, spec_data: dict[str, Any]
) -> None:
    """Fault table row 4: the latest decision moves by the registry's own sequence, not by the check's time.
    A check stamped 2099 (a skewed clock, a forged ``time`` that got past the handler) is the latest until
    the next check is written; that next ROLLBACK is then what the gate reads."""
    registry = Registry(TABLE)
    experiment_id = _new(registry, spec_data).experiment_id
    forged = CheckRecord(
        checked_at=at(0).replace(year=2099), stage_index=0, decision="INCONCLUSIVE", reason="forged"
    )
    registry.record_check(experiment_id, forged, seen=registry.get_experiment(experiment_id).check_sequence)
    rollback = CheckRecord(checked_at=at(10), stage_index=0, decision="ROLLBACK", reason="harm")
    registry.record_check(experiment_id, rollback, seen=registry.get_experiment(experiment_id).check_sequence)
    latest = registry.get_experiment(experiment_id)
    assert (latest.latest_check, latest.check_sequence) == (rollback, 2)


def test_a_check_overtaken_by_a_later_one_is_history_only_whatever_its_time(
    registry_table: str, spec_data: dict[str, Any]
) -> None:
    """Fault table row 4: two checks read the experiment (sequence 0); the one that writes second finds the
    sequence moved (1) and is kept as history only, though its own clock says it is the later one."""
    registry = Registry(TABLE)
    experiment_id = _new(registry, spec_data).experiment_id
    slow_seen = registry.get_experiment(experiment_id).check_sequence  # the slow check starts first
    fast_seen = registry.get_experiment(experiment_id).check_sequence
    fast = CheckRecord(checked_at=at(5), stage_index=0, decision="ROLLBACK", reason="harm")
    registry.record_check(experiment_id, fast, seen=fast_seen)
    slow = CheckRecord(checked_at=at(9), stage_index=0, decision="ADVANCE", reason="a clock running fast")
    registry.record_check(experiment_id, slow, seen=slow_seen)
    latest = registry.get_experiment(experiment_id)
    assert (slow_seen, fast_seen, latest.latest_check, latest.check_sequence) == (0, 0, fast, 1)
    assert [c.decision for c in registry.list_checks(experiment_id)] == ["ROLLBACK", "ADVANCE"]
