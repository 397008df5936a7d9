"""The significance check's time budget (fault table row 13), against moto: several running experiments, the
invocation's remaining time injected. The early experiments are checked, the rest reported skipped and checked
first at the next tick; StatisticalHarm is published as soon as an experiment is decided with harm."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_kit import TABLE, Env, LambdaContext, harm_metric, put_aggregate

from canarywise.data.executions import FunctionBatches, HarmSignal
from canarywise.data.metric_source import AlbDimensions, MetricSource
from canarywise.data.models import CheckRecord, Weights
from canarywise.data.registry import Registry
from canarywise.handlers import significance_check
from canarywise.runtime.significance import check_all
from canarywise.spec import parse_spec

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
STAGE_START = NOW - timedelta(hours=5)
SECONDS_PER_EXPERIMENT = 8.0  # what the injected clock moves each time an experiment is checked


class _Clock:
    """The invocation's time left: `budget` seconds, less `SECONDS_PER_EXPERIMENT` per experiment read."""

    def __init__(self, budget: float) -> None:
        self.left = budget

    def remaining_ms(self) -> int:
        return int(self.left * 1000)


class _Recorder:
    """What the tick did, in order: ``check <id>`` when it reads an experiment, ``harm 1``/``harm 0`` when it
    publishes StatisticalHarm (the real call, to moto)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, registry: Registry, clock: _Clock) -> None:
        self.events: list[str] = []
        read = registry.get_experiment

        def get_experiment(experiment_id: str) -> Any:
            self.events.append(f"check {experiment_id}")
            clock.left -= SECONDS_PER_EXPERIMENT
            return read(experiment_id)

        monkeypatch.setattr(registry, "get_experiment", get_experiment)
        signal = HarmSignal()
        publish = signal.publish

        def record(service: str, *, harm: bool, timestamp: datetime) -> None:
            self.events.append(f"harm {int(harm)}")
            publish(service, harm=harm, timestamp=timestamp)

        monkeypatch.setattr(signal, "publish", record)
        self.signal = signal


def _experiments(spec_data: dict[str, Any], last_checked: dict[str, datetime | None]) -> Registry:
    """Running experiments of one service, each with its last check (None: never checked). Written unfenced
    as `start` writes them (the lifecycle allows one rollout per service; a registry shared by services)."""
    registry = Registry(TABLE)
    for i, (experiment_id, checked_at) in enumerate(last_checked.items()):
        registry._put_if_absent(
            registry.new_experiment_item(
                parse_spec(spec_data), experiment_id=experiment_id, candidate=f"v{i}", release_id=str(i),
                execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:canary:{i}",
                now=STAGE_START - timedelta(minutes=1), first_stage_multiplier=1.0,
                baseline_slot="control", candidate_slot="canary",
            )
        )  # fmt: skip
        registry.record_stage_start(experiment_id, 0, Weights(control=95, canary=5), STAGE_START)
        if checked_at is not None:
            registry.record_check(
                experiment_id,
                CheckRecord(checked_at=checked_at, stage_index=0, decision="CONTINUE", reason=""),
            )
    return registry


def _escalations(control: tuple[int, int], canary: tuple[int, int]) -> None:
    """(successes, n) per arm for the escalation metric, half an hour ago and a minute ago (fresh data)."""
    for variant, (successes, n) in (("control", control), ("canary", canary)):
        for at, share in ((NOW - timedelta(minutes=30), 0.9), (NOW - timedelta(minutes=2), 0.1)):
            put_aggregate(
                "MangaAssist", "Escalation", {"Variant": variant}, at, n=n * share, total=successes * share
            )


def _source(env: Env) -> MetricSource:
    t = env.traffic
    groups = {"control": t.control_target_group_full_name, "canary": t.canary_target_group_full_name}
    return MetricSource(AlbDimensions(t.load_balancer_full_name, groups))


def _tick(env: Env, registry: Registry, recorder: _Recorder, clock: _Clock | None) -> Any:
    return check_all(
        now=NOW, service="mangaassist", registry=registry, metric_source=_source(env),
        harm_signal=recorder.signal, remaining_ms=clock.remaining_ms if clock else None,
    )  # fmt: skip


def _scheduled() -> dict[str, Any]:
    return {
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/canarywise-check"],
        "detail": {},
    }  # fmt: skip


def test_a_budget_that_runs_out_checks_the_oldest_first_and_reports_the_rest_skipped(
    aws: Env, spec_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 s left, 8 s an experiment, a 5 s margin: before each experiment the time left must cover the
    slowest so far (8 s) plus 5 s. 30 → check, 22 → check, 14 → check, 6 < 13 → the last two are skipped.
    The first is decided with harm and StatisticalHarm = 1 is published before the second is read; no 0 at
    the end. The next tick starts with the two skipped."""
    hour = NOW - timedelta(hours=1)
    registry = _experiments(
        spec_data,
        {  # ids in an order unlike the check order: the order is by last check, never checked first
            "a-checked-latest": hour + timedelta(minutes=50),
            "b-checked-third": hour + timedelta(minutes=20),
            "c-never-checked": None,
            "d-checked-first": hour,
            "e-checked-fourth": hour + timedelta(minutes=40),
        },
    )
    _escalations(control=(59_400, 495_000), canary=(700, 5_000))  # 12% vs 14%: harm (the case)
    clock = _Clock(30.0)
    recorder = _Recorder(monkeypatch, registry, clock)

    summary = _tick(aws, registry, recorder, clock)

    assert recorder.events == [
        "check c-never-checked", "harm 1", "check d-checked-first", "check b-checked-third",
    ]  # fmt: skip
    assert summary.decisions == dict.fromkeys(
        ["c-never-checked", "d-checked-first", "b-checked-third"], "ROLLBACK"
    )
    assert summary.skipped == ["e-checked-fourth", "a-checked-latest"]
    assert summary.to_dict()["skipped"] == summary.skipped
    assert (summary.harm, summary.failed) == (True, {})
    assert harm_metric(NOW) == [1.0]

    # The next tick (time enough) starts with the two this one skipped: a long tail rotates.
    recorder.events.clear()
    later = _tick(aws, registry, recorder, _Clock(120.0))
    checks = [e for e in recorder.events if e.startswith("check")]
    assert checks[:2] == ["check e-checked-fourth", "check a-checked-latest"]
    assert (len(checks), later.skipped) == (5, [])


def test_no_harm_publishes_one_zero_at_the_end_even_when_experiments_are_skipped(
    aws: Env, spec_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _experiments(spec_data, {"x-1": None, "x-2": None, "x-3": None})
    _escalations(control=(59_400, 495_000), canary=(600, 5_000))  # equal rates
    clock = _Clock(20.0)  # 20 → check, 12 < 8 + 5 → two skipped
    recorder = _Recorder(monkeypatch, registry, clock)

    summary = _tick(aws, registry, recorder, clock)

    assert recorder.events == ["check x-1", "harm 0"]
    assert (summary.skipped, summary.harm) == (["x-2", "x-3"], False)
    assert harm_metric(NOW) == [0.0]


class _Killed(BaseException):
    """The Lambda runtime ending the invocation at its timeout (no `except Exception` catches it)."""


def test_harm_is_in_cloudwatch_before_a_timeout_kills_the_tick(
    aws: Env, spec_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first experiment is decided with harm; the invocation dies while reading the second. Before this
    change StatisticalHarm was published after the loop only, so the kill dropped it."""
    registry = _experiments(spec_data, {"k-1": None, "k-2": None})
    _escalations(control=(59_400, 495_000), canary=(700, 5_000))
    clock = _Clock(120.0)
    recorder = _Recorder(monkeypatch, registry, clock)
    checked = registry.get_experiment

    def killed_on_the_second(experiment_id: str) -> Any:
        if experiment_id == "k-2":
            raise _Killed
        return checked(experiment_id)

    monkeypatch.setattr(registry, "get_experiment", killed_on_the_second)
    with pytest.raises(_Killed):
        _tick(aws, registry, recorder, clock)
    assert recorder.events == ["check k-1", "harm 1"]
    assert harm_metric(NOW) == [1.0]


class _ContextWithLittleTime(LambdaContext):
    def get_remaining_time_in_millis(self) -> int:
        return 4_000  # under the 5 s margin: nothing is started


def test_the_handler_counts_skipped_experiments_in_a_metric(
    aws: Env,
    spec_data: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The handler hands the Lambda context's remaining time to the check; what it skips is counted in the
    ``ExperimentsSkipped`` metric (Powertools EMF on stdout) and logged, never silent."""
    _experiments(spec_data, {"s-1": None, "s-2": None})
    capsys.readouterr()
    summary = significance_check.handler(_scheduled(), _ContextWithLittleTime())
    assert (summary["decisions"], summary["skipped"], summary["harm"]) == ({}, ["s-1", "s-2"], False)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    metrics = next(line for line in lines if "ExperimentsSkipped" in line)
    assert (metrics["ExperimentsSkipped"], metrics["ExperimentsChecked"]) == ([2.0], [0.0])
    warning = next(r for r in caplog.records if r.levelname == "WARNING")
    assert (warning.getMessage(), warning.__dict__["skipped"]) == (
        "time budget spent: experiments left for the next tick",
        ["s-1", "s-2"],
    )
    assert harm_metric(NOW) == [0.0]


class _Lambda:
    """A Lambda client that records the asynchronous invocations it is asked for."""

    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.refuse = refuse

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        if self.refuse:
            raise RuntimeError("TooManyRequestsException")
        self.calls.append(kwargs)
        return {"StatusCode": 202}


def test_past_the_bound_a_tick_hands_the_rest_to_further_invocations_and_all_are_checked(
    aws: Env, spec_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch, context: Any
) -> None:
    """Fault table row 13, fan-out: 7 running experiments, at most 3 an invocation. The tick checks the 3
    checked longest ago and hands [the next 3] and [the last 1] to two asynchronous invocations of the same
    function (the scheduled event plus ``experiment_ids``); each of those checks its batch and hands nothing
    on. After the three invocations every experiment's latest check is this tick's."""
    hour = NOW - timedelta(hours=1)
    ids = [f"f-{i}" for i in range(7)]  # f-0 checked longest ago
    registry = _experiments(spec_data, {i: hour + timedelta(minutes=n) for n, i in enumerate(ids)})
    _escalations(control=(59_400, 495_000), canary=(600, 5_000))
    lambda_client = _Lambda()
    batches = FunctionBatches("arn:aws:lambda:us-east-1:123456789012:function:check", _scheduled(),
                              boto3_client=lambda_client)  # fmt: skip
    recorder = _Recorder(monkeypatch, registry, _Clock(120.0))

    tick = check_all(
        now=NOW, service="mangaassist", registry=registry, metric_source=_source(aws),
        harm_signal=recorder.signal, hand_off=batches.hand, batch_size=3,
    )  # fmt: skip

    assert list(tick.decisions) == ids[:3]
    assert (tick.handed_off, tick.skipped) == ([ids[3:6], ids[6:]], [])
    assert [(c["FunctionName"], c["InvocationType"]) for c in lambda_client.calls] == [
        ("arn:aws:lambda:us-east-1:123456789012:function:check", "Event")
    ] * 2
    payloads = [json.loads(c["Payload"]) for c in lambda_client.calls]
    assert payloads == [
        _scheduled() | {"experiment_ids": ids[3:6]},
        _scheduled() | {"experiment_ids": ids[6:]},
    ]
    for payload in payloads:  # each handed-off invocation, through the handler as Lambda would run it
        batch = significance_check.handler(payload, context)
        assert (list(batch["decisions"]), batch["handed_off"], batch["skipped"]) == (
            payload["experiment_ids"], [], []
        )  # fmt: skip
    assert {registry.get_experiment(i).latest_check.checked_at for i in ids} == {NOW}


def test_a_batch_that_cannot_be_handed_off_is_reported_skipped(
    aws: Env, spec_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda refuses the asynchronous invocation (throttled): the batch is the tick's ``skipped``, so it is
    counted in ``ExperimentsSkipped`` and checked first next tick, never silently dropped."""
    registry = _experiments(spec_data, {"g-1": None, "g-2": None, "g-3": None})
    _escalations(control=(59_400, 495_000), canary=(600, 5_000))
    refused = FunctionBatches("arn:aws:lambda:us-east-1:123456789012:function:check", _scheduled(),
                              boto3_client=_Lambda(refuse=True))  # fmt: skip
    recorder = _Recorder(monkeypatch, registry, _Clock(120.0))
    tick = check_all(
        now=NOW, service="mangaassist", registry=registry, metric_source=_source(aws),
        harm_signal=recorder.signal, hand_off=refused.hand, batch_size=2,
    )  # fmt: skip
    assert (list(tick.decisions), tick.handed_off, tick.skipped) == (["g-1", "g-2"], [], ["g-3"])
