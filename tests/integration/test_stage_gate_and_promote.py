"""The stage gate (start, stage_started, gate, ready) and the promote Lambda against moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_kit import (
    TABLE,
    Env,
    registry_items,
    rule_groups,
    rule_stickiness,
    rule_weights,
    start_execution,
    start_rollout,
)

from canarywise.data.models import CheckRecord, ExperimentStatus, RollbackRecord
from canarywise.data.registry import Registry, TransitionRefusedError
from canarywise.handlers import promote, rollback, stage_gate
from canarywise.runtime.events import EventError
from canarywise.runtime.rollout import (
    CandidateRejectedError,
    CooldownActiveError,
    PromoteRefusedError,
    RolloutAlreadyRunningError,
    RootCauseRequiredError,
    StageMismatchError,
    WrongSlotError,
)
from canarywise.spec import SpecError


def _start_event(
    env: Env, spec_data: dict[str, Any], name: str = "release-42", candidate: str = "v42"
) -> dict:
    return {
        "action": "start",
        "execution_arn": start_execution(env, name),
        "release": {"candidate": candidate, "release_id": name},
        "spec": spec_data,
    }


def _past_rollbacks(*ages: timedelta, candidate: str = "v42") -> None:
    now = datetime.now(UTC)
    for age in ages:
        Registry(TABLE).record_forced_rollback(
            RollbackRecord(
                service="mangaassist",
                rolled_back_at=now - age,
                source="sns",
                reason="alarm",
                candidate=candidate,
                trigger_id=f"alarm@{age}",
            )
        )


def _roll_back(experiment_id: str, context: Any) -> dict[str, Any]:
    return rollback.handler({"source": "cli", "reason": "x", "experiment_id": experiment_id}, context)


def _check(experiment_id: str, decision: str, *, stage: int = 0, age: timedelta = timedelta(0)) -> None:
    Registry(TABLE).record_check(
        experiment_id,
        CheckRecord(
            checked_at=datetime.now(UTC) - age, stage_index=stage, decision=decision, reason=f"{decision}!"
        ),
    )


def _gate(experiment_id: str, context: Any, stage: int = 0) -> dict[str, str]:
    return stage_gate.handler(
        {"action": "gate", "experiment_id": experiment_id, "stage_index": stage}, context
    )


# --- start ------------------------------------------------------------------------------------------------
def test_start_registers_once_per_execution(aws: Env, spec_data: dict[str, Any], context: Any) -> None:
    event = _start_event(aws, spec_data)
    first = stage_gate.handler(event, context)
    again = stage_gate.handler(event, context)  # the state machine retried the task
    assert first == again
    experiment = Registry(TABLE).get_experiment(first["experiment_id"])
    assert (experiment.candidate, experiment.release_id, experiment.execution_arn) == (
        "v42",
        "release-42",
        event["execution_arn"],
    )
    assert experiment.first_stage_multiplier == 1.0


def test_start_refuses_a_second_rollout_of_the_service(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    stage_gate.handler(_start_event(aws, spec_data), context)
    with pytest.raises(
        RolloutAlreadyRunningError, match=r"is still ROLLING_OUT for mangaassist; promote or roll it"
    ):
        stage_gate.handler(_start_event(aws, spec_data, "release-43", "v43"), context)


def test_two_starts_at_the_same_moment_make_one_rollout(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    """Sequence 4 of the lifecycle issue: both starts read STEADY before either writes; the conditional write
    on the service's state lets exactly one through."""
    from canarywise.lifecycle.table import Event
    from canarywise.runtime import rollout

    first, second = _start_event(aws, spec_data), _start_event(aws, spec_data, "release-43", "v43")
    original = rollout.Lifecycle.take
    raced: list[str] = []

    def take_after_the_other_started(self: Any, event: Event, **kwargs: Any) -> Any:
        if event is Event.START and not raced:  # the first caller is overtaken right before its write
            raced.append("overtaken")
            stage_gate.handler(second, context)
        return original(self, event, **kwargs)

    rollout.Lifecycle.take = take_after_the_other_started  # type: ignore[method-assign]
    try:
        with pytest.raises(RolloutAlreadyRunningError, match=r"^start refused: mangaassist moved on"):
            stage_gate.handler(first, context)
    finally:
        rollout.Lifecycle.take = original  # type: ignore[method-assign]
    running = Registry(TABLE).list_running("mangaassist")
    assert [e.candidate for e in running] == ["v43"]
    assert [i for i in registry_items() if i["sk"]["S"] == "META"].__len__() == 1


def test_start_refuses_a_release_deployed_into_the_live_slot(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    event = _start_event(aws, spec_data)
    event["release"]["slot"] = "control"
    with pytest.raises(
        WrongSlotError,
        match=r"was deployed into 'control', but 'control' is live and 'canary' is idle: "
        r"deploy the candidate into 'canary'$",
    ):
        stage_gate.handler(event, context)
    event["release"]["slot"] = "canary"
    assert stage_gate.handler(event, context)["experiment_id"]


def test_start_refuses_during_the_cooldown(aws: Env, spec_data: dict[str, Any], context: Any) -> None:
    _past_rollbacks(timedelta(hours=20))  # the spec's cooldown is 24 h
    with pytest.raises(
        CooldownActiveError, match=r"^mangaassist was rolled back at .*; the cooldown of 86400 s ends"
    ):
        stage_gate.handler(_start_event(aws, spec_data, candidate="v43"), context)
    assert [i for i in registry_items() if i["pk"]["S"].startswith("EXP#")] == []  # nothing registered


def test_a_candidate_rolled_back_three_times_in_7_days_is_rejected(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    _past_rollbacks(timedelta(days=6), timedelta(days=2), timedelta(hours=25))
    with pytest.raises(
        CandidateRejectedError,
        match=r"^candidate 'v42' was rolled back 3 times in the last 7 days \(limit 3\); ship a new",
    ):
        stage_gate.handler(_start_event(aws, spec_data), context)
    # Another candidate is welcome (the cooldown has passed).
    assert stage_gate.handler(_start_event(aws, spec_data, "release-43", "v43"), context)["experiment_id"]


def test_after_a_rollback_the_first_stage_lasts_longer(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    _past_rollbacks(timedelta(days=8), timedelta(hours=25))  # one inside the 7-day window
    started = stage_gate.handler(_start_event(aws, spec_data), context)
    # config/mangaassist.yaml: anti_flapping.first_stage_multiplier 1.25
    assert Registry(TABLE).get_experiment(started["experiment_id"]).first_stage_multiplier == 1.25


def test_a_rolled_back_candidate_needs_a_root_cause_when_the_spec_says_so(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    spec = json.loads(json.dumps(spec_data))
    spec["anti_flapping"]["require_root_cause"] = True
    _past_rollbacks(timedelta(hours=25))
    with pytest.raises(
        RootCauseRequiredError,
        match=r"^candidate 'v42' was rolled back 1 time\(s\) in the last 7 days and "
        r"anti_flapping.require_root_cause is set: add release.root_cause",
    ):
        stage_gate.handler(_start_event(aws, spec), context)
    assert [i for i in registry_items() if i["pk"]["S"].startswith("EXP#")] == []  # nothing registered
    # With a link to the analysis it starts, and the link is recorded with the experiment.
    event = _start_event(aws, spec, "release-43")
    event["release"]["root_cause"] = "https://wiki.example.com/postmortems/v42"
    started = stage_gate.handler(event, context)
    (meta,) = [i for i in registry_items() if i["pk"]["S"] == f"EXP#{started['experiment_id']}"
               and i["sk"]["S"] == "META"]  # fmt: skip
    assert meta["root_cause"]["S"] == "https://wiki.example.com/postmortems/v42"


def test_start_with_an_invalid_spec_names_the_field(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    spec = json.loads(json.dumps(spec_data))
    spec["stages"][1]["percent"] = 3
    with pytest.raises(
        SpecError,
        match=r"^start event spec: stages: stages must increase: stages\[1\]\.percent is 3, not above",
    ):
        stage_gate.handler(_start_event(aws, spec), context)
    assert registry_items() == []


def test_start_with_another_services_spec(aws: Env, spec_data: dict[str, Any], context: Any) -> None:
    spec = dict(spec_data, service="otherservice")
    with pytest.raises(
        StageMismatchError, match=r"^the spec is for service 'otherservice', this function serves"
    ):
        stage_gate.handler(_start_event(aws, spec), context)


# --- stage_started ----------------------------------------------------------------------------------------
def test_stage_started_checks_the_weights_against_the_spec(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    with pytest.raises(
        StageMismatchError,
        match=r"^stage 2 of 3 sends 25% to the canary, found weights \{'control': 90, 'canary': 10\}$",
    ):
        stage_gate.handler(
            {
                "action": "stage_started",
                "experiment_id": experiment_id,
                "stage_index": 1,
                "weights": {"control": 90, "canary": 10},
            },
            context,
        )
    with pytest.raises(StageMismatchError, match=r"^stage_index 3 is outside the spec's 3 stages$"):
        stage_gate.handler(
            {
                "action": "stage_started",
                "experiment_id": experiment_id,
                "stage_index": 3,
                "weights": {"control": 0, "canary": 100},
            },
            context,
        )
    assert [s.stage_index for s in Registry(TABLE).stage_history(experiment_id)] == [0]


def test_stage_started_answers_the_stages_deadline_on_the_state_machines_clock(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    """Fault table row 1: the canary state machine keeps the deadline and compares its own clock with it
    when the gate keeps failing. config/mangaassist.yaml's stage 2 lasts at most 48 h: entered at
    2026-12-07T09:00:00.250Z (the state machine's ``$$.State.EnteredTime``), its deadline is
    2026-12-09T09:00:00Z, whole seconds, whatever the function's own clock says; a retry answers the same."""
    experiment_id, _ = start_rollout(aws, spec_data, context)
    assert spec_data["stages"][1]["max_duration"] == 48 * 3600
    event = {
        "action": "stage_started",
        "experiment_id": experiment_id,
        "stage_index": 1,
        "weights": {"control": 75, "canary": 25},
        "entered_at": "2026-12-07T09:00:00.250Z",
    }
    first = stage_gate.handler(event, context)
    retry = stage_gate.handler(event, context)
    assert (first["deadline"], retry["deadline"]) == ("2026-12-09T09:00:00Z", "2026-12-09T09:00:00Z")


# --- gate -------------------------------------------------------------------------------------------------
def test_gate_holds_until_the_check_has_decided(aws: Env, spec_data: dict[str, Any], context: Any) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    assert _gate(experiment_id, context) == {
        "decision": "HOLD",
        "reason": "no decision yet: the significance check has not run",
    }


def test_gate_returns_the_fresh_decision_for_its_stage(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    _check(experiment_id, "ADVANCE")
    assert _gate(experiment_id, context) == {"decision": "ADVANCE", "reason": "ADVANCE!"}
    assert _gate(experiment_id, context, stage=1) == {
        "decision": "HOLD",
        "reason": "the latest decision is for stage 1, not stage 2",
    }


def test_gate_holds_on_a_stale_decision(aws: Env, spec_data: dict[str, Any], context: Any) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    _check(experiment_id, "ADVANCE", age=timedelta(minutes=16))  # 3 check intervals of 5 min is the limit
    answer = _gate(experiment_id, context)
    assert answer["decision"] == "HOLD"
    assert answer["reason"].endswith("is older than 0:15:00: is the significance check running?")


def _stale_decision_metrics(output: str) -> list[float]:
    """The ``StaleDecision`` values in the EMF lines Powertools printed (one JSON line per invocation)."""
    values = []
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        names = {m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
        if "StaleDecision" in names:
            assert blob["service"] == "canarywise"  # the dimension the warning alarm reads
            value = blob["StaleDecision"]
            values.extend(value if isinstance(value, list) else [value])
    return values


@pytest.mark.parametrize(
    ("age", "published"),
    [
        (None, [1.0]),  # no decision yet
        (timedelta(minutes=16), [1.0]),  # older than 3 check intervals of 5 min
        (timedelta(minutes=14), []),  # fresh enough: acted on, nothing published
    ],
)
def test_gate_publishes_stale_decision_when_it_holds_for_want_of_a_fresh_decision(
    aws: Env,
    spec_data: dict[str, Any],
    context: Any,
    capsys: pytest.CaptureFixture[str],
    age: timedelta | None,
    published: list[float],
) -> None:
    """Fault table row 2: the metric the ``<service>-stale-decision`` warning alarm pages on."""
    experiment_id, _ = start_rollout(aws, spec_data, context)
    if age is not None:
        _check(experiment_id, "ADVANCE", age=age)
    capsys.readouterr()
    answer = _gate(experiment_id, context)
    assert (answer["decision"] == "HOLD") == bool(published)
    assert _stale_decision_metrics(capsys.readouterr().out) == published


@pytest.mark.parametrize(
    ("stored", "answered"),
    [("PROMOTE", "READY_FOR_APPROVAL"), ("KEEP_CONTROL", "ROLLBACK"), ("NO_DIFFERENCE", "INCONCLUSIVE")],
)
def test_gate_maps_ab_verdicts_onto_the_state_machine_choices(
    aws: Env, spec_data: dict[str, Any], context: Any, stored: str, answered: str
) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    _check(experiment_id, stored)
    assert _gate(experiment_id, context)["decision"] == answered


def test_gate_after_a_rollback_says_rollback(aws: Env, spec_data: dict[str, Any], context: Any) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    _check(experiment_id, "ADVANCE")
    _roll_back(experiment_id, context)
    assert _gate(experiment_id, context) == {
        "decision": "ROLLBACK",
        "reason": "experiment is already ROLLED_BACK",
    }


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            {"action": "jump"},
            "malformed stage_gate event: request: Input tag 'jump' found using 'action' does not "
            "match any of the expected tags: 'start', 'stage_started', 'gate', 'ready'",
        ),
        (
            {"action": "gate", "experiment_id": "x"},
            "malformed stage_gate event: request.gate.stage_index: Field required",
        ),
        (
            {
                "action": "stage_started",
                "experiment_id": "x",
                "stage_index": 0,
                "weights": {"control": 90, "canary": 5},
            },
            "malformed stage_gate event: request.stage_started.weights: Value error, "
            "weights must sum to 100, found control 90 + canary 5",
        ),
        ("start", "malformed stage_gate event: expected an object, found str"),
    ],
    ids=["unknown-action", "no-stage", "bad-weights", "not-an-object"],
)
def test_malformed_stage_gate_events(aws: Env, context: Any, event: Any, message: str) -> None:
    with pytest.raises(EventError) as raised:
        stage_gate.handler(event, context)
    assert str(raised.value) == message
    assert registry_items() == []


# --- ready and promote ------------------------------------------------------------------------------------
def test_ready_then_promote_sends_all_traffic_and_concludes(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    Registry(TABLE).record_check(
        experiment_id,
        CheckRecord(
            checked_at=datetime.now(UTC),
            stage_index=2,
            decision="READY_FOR_APPROVAL",
            reason="gate met",
            details={"primary_pvalue": 0.004},
        ),
    )
    assert stage_gate.handler({"action": "ready", "experiment_id": experiment_id}, context) == {
        "experiment_id": experiment_id,
        "status": "READY_FOR_APPROVAL",
    }

    result = promote.handler(
        {"experiment_id": experiment_id, "approved_by": "arn:aws:iam::1:user/ana"}, context
    )

    # Only the candidate's slot is named: every user, sticky or not, reaches it; the slots swapped roles.
    assert rule_groups(aws) == {"canary"}
    assert rule_weights(aws) == {"control": 0, "canary": 100}
    assert rule_stickiness(aws) == {"Enabled": False}
    state = Registry(TABLE).service_state("mangaassist")
    assert state is not None
    assert (state.live, state.idle, state.phase) == ("canary", "control", "STEADY")
    assert result["live"] == "canary"
    experiment = Registry(TABLE).get_experiment(experiment_id)
    assert experiment.status is ExperimentStatus.PROMOTED
    assert experiment.pvalue == 0.004
    # Alone in its tier, BH leaves the p-value as it is: m * p / rank = 1 * 0.004 / 1.
    assert result["adjusted_pvalue"] == pytest.approx(0.004, rel=1e-12)
    assert result["fdr_discovery"] is True  # 0.004 <= q 0.10
    assert result["registry_experiments_in_fdr"] == 1
    # Idempotent: the promote state machine may retry the task.
    assert promote.handler({"experiment_id": experiment_id}, context)["status"] == "PROMOTED"


def test_promote_refuses_an_experiment_nobody_approved(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    with pytest.raises(
        PromoteRefusedError,
        match=r"^approve refused: mangaassist is ROLLING_OUT \(needs AWAITING_APPROVAL\); experiment "
        r"\S+ is RUNNING \(needs READY_FOR_APPROVAL\); traffic untouched$",
    ):
        promote.handler({"experiment_id": experiment_id}, context)
    assert rule_weights(aws) == {"control": 95, "canary": 5}  # checked before touching traffic


def test_an_approval_after_a_rollback_moves_no_traffic(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    """Sequence 1 of the lifecycle issue, at the promote function: the click that comes after a rollback."""
    experiment_id, _ = start_rollout(aws, spec_data, context)
    stage_gate.handler({"action": "ready", "experiment_id": experiment_id}, context)
    _roll_back(experiment_id, context)
    with pytest.raises(
        PromoteRefusedError, match=r"is ROLLED_BACK \(needs READY_FOR_APPROVAL\); traffic untouched$"
    ):
        promote.handler({"experiment_id": experiment_id}, context)
    assert rule_groups(aws) == {"control"}
    with pytest.raises(PromoteRefusedError, match=r"^promote refused: no experiment 'typo' in table"):
        promote.handler({"experiment_id": "typo"}, context)
    assert rule_groups(aws) == {"control"}


def test_a_rollback_during_the_promotion_wins(aws: Env, spec_data: dict[str, Any], context: Any) -> None:
    """Sequence 2: the rollback lands between the promote function's approve and its weight change."""
    from canarywise.runtime import lifecycle

    experiment_id, _ = start_rollout(aws, spec_data, context)
    stage_gate.handler({"action": "ready", "experiment_id": experiment_id}, context)
    original = lifecycle.Lifecycle.settle
    calls: list[int] = []

    def rollback_lands_first(self: Any, state: Any) -> Any:
        if not calls:
            calls.append(1)
            _roll_back(experiment_id, context)
        return original(self, state)

    lifecycle.Lifecycle.settle = rollback_lands_first  # type: ignore[method-assign]
    try:
        with pytest.raises(
            lifecycle.SupersededError, match=r"^approve \(version 4\) was superseded by rolled_back"
        ):
            promote.handler({"experiment_id": experiment_id}, context)
    finally:
        lifecycle.Lifecycle.settle = original  # type: ignore[method-assign]
    assert rule_groups(aws) == {"control"}
    assert Registry(TABLE).get_experiment(experiment_id).status is ExperimentStatus.ROLLED_BACK


def test_ready_twice_is_fine_but_not_after_a_rollback(
    aws: Env, spec_data: dict[str, Any], context: Any
) -> None:
    experiment_id, _ = start_rollout(aws, spec_data, context)
    stage_gate.handler({"action": "ready", "experiment_id": experiment_id}, context)
    stage_gate.handler({"action": "ready", "experiment_id": experiment_id}, context)
    _roll_back(experiment_id, context)
    with pytest.raises(TransitionRefusedError, match=r"is ROLLED_BACK \(needs RUNNING\)$"):
        stage_gate.handler({"action": "ready", "experiment_id": experiment_id}, context)


def test_malformed_promote_event(aws: Env, context: Any) -> None:
    with pytest.raises(EventError, match=r"^malformed promote event: experiment_id: Field required$"):
        promote.handler({"experimentId": "x"}, context)
    assert rule_weights(aws) == {"control": 100, "canary": 0}


def test_a_stage_change_landing_after_a_rollback_is_put_back(
    aws: Env, spec_data: dict[str, Any], context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequence 3 of the lifecycle issue: stage 2's ModifyRule is in flight while a rollback runs to the end
    (its rule verified, its record written); the stage's write then lands. The stage task re-reads the
    version after writing, finds the rollback's, and puts the live-only forward back; the rule is read from
    ELBv2 by the test."""
    from canarywise.data.traffic import TrafficSplit
    from canarywise.runtime.lifecycle import SupersededError

    experiment_id, _ = start_rollout(aws, spec_data, context)
    real_apply = TrafficSplit.apply
    landed: list[dict[str, int]] = []

    def slow_apply(self: TrafficSplit, state: Any) -> dict[str, int]:
        if state.last_event == "stage_started" and not landed:
            rolled = _roll_back(experiment_id, context)  # the whole rollback happens meanwhile
            assert rolled["outcome"] == "ROLLED_BACK"
            assert rule_groups(aws) == {"control"}
            landed.append(real_apply(self, state))  # ...and then the stale write lands
            assert rule_weights(aws) == {"control": 75, "canary": 25}
            return landed[0]
        return real_apply(self, state)

    monkeypatch.setattr(TrafficSplit, "apply", slow_apply)
    with pytest.raises(
        SupersededError, match=r"^stage_started \(version \d+\) was superseded by rolled_back"
    ):
        stage_gate.handler(
            {
                "action": "stage_started",
                "experiment_id": experiment_id,
                "stage_index": 1,
                "weights": {"control": 75, "canary": 25},
            },
            context,
        )
    assert rule_groups(aws) == {"control"}
    assert rule_stickiness(aws) == {"Enabled": False}
    assert Registry(TABLE).get_experiment(experiment_id).status is ExperimentStatus.ROLLED_BACK
    assert [i for i in registry_items() if i["sk"]["S"] == "ROLLBACK"].__len__() == 1
    assert [s.stage_index for s in Registry(TABLE).stage_history(experiment_id)] == [0]


@pytest.mark.parametrize(
    ("timing", "problem"),
    [
        (
            {"check_interval_seconds": "soon"},
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        ({"check_interval_seconds": -5}, "Input should be greater than or equal to 0"),
        ({}, "Field required"),
    ],
    ids=["not-a-number", "negative", "missing"],
)
def test_a_release_manifest_with_a_bad_timing_is_refused_at_start(
    aws: Env, spec_data: dict[str, Any], context: Any, timing: dict[str, Any], problem: str
) -> None:
    """Fault table row 6: checked before anything is registered or moved (a Wait state cannot catch it)."""
    event = _start_event(aws, spec_data) | {"timing": timing}
    with pytest.raises(EventError) as raised:
        stage_gate.handler(event, context)
    assert str(raised.value).startswith(
        "malformed stage_gate event: request.start.timing.check_interval_seconds: "
    )
    assert problem in str(raised.value)
    assert registry_items() == []
    assert rule_weights(aws) == {"control": 100, "canary": 0}
