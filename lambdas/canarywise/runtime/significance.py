"""The five-minute significance check: every running experiment → metrics → decision → registry.

One experiment failing (a bad spec, a registry hiccup) never stops the others. When CloudWatch cannot be read
the experiment's decision is HOLD with the reason, written like any other, so the stage gate stops on it and
never advances on an older ADVANCE.

Closed stages are read from CloudWatch until their data is complete, then frozen in the registry
(`canarywise.data.metric_source.FrozenStage`) and taken from there: a check reads only the stage in progress
and the freshness probe. The cache only saves money: when it cannot be read or written the check reads
CloudWatch as before. Each check record says where its stages came from (``details["stage_cache"]``).

A tick has a time budget (fault table row 13): experiments are checked the one checked longest ago first, no
new one is started when the invocation's time left is under the slowest experiment so far plus a margin, and
the rest are reported as ``skipped`` (they come first at the next tick). StatisticalHarm is published as soon
as an experiment is decided with harm, so a timeout later in the tick cannot drop it.

Example
-------
>>> summary = check_all(now=event_time, service="mangaassist", registry=registry,  # doctest: +SKIP
...                     metric_source=source, harm_signal=signal)
>>> summary.decisions  # doctest: +SKIP
{'mangaassist-v42-686abaf5b4': 'CONTINUE'}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from canarywise.data._aws import AwsCallError
from canarywise.data.executions import HarmSignal
from canarywise.data.metric_source import FrozenStage, MetricSource, MetricSourceError, Reading
from canarywise.data.models import CheckRecord, Experiment, StageStart
from canarywise.data.registry import Registry, RegistryError
from canarywise.decision.acknowledgement import SliceAcknowledgement
from canarywise.decision.context import stage_in_force, stage_label
from canarywise.decision.engine import decide
from canarywise.decision.evidence import duration
from canarywise.decision.models import Decision, DecisionKind, StageRecord, Variant, Verdict
from canarywise.decision.temporal import marks_from
from canarywise.runtime.events import MAX_EXPERIMENTS_PER_INVOCATION
from canarywise.spec import MetricRole

logger = Logger(child=True)

_HARM_VERDICTS = {Verdict.HARM, Verdict.HARD_LIMIT_BREACHED}
_HARM_KINDS = {DecisionKind.ROLLBACK, DecisionKind.KEEP_CONTROL}

# Seconds kept back at the end of a tick, on top of the slowest experiment seen: the last StatisticalHarm
# publish and the handler's metrics (a few AWS calls), with room for one slow response.
BUDGET_MARGIN_SECONDS = 5.0


@dataclass
class CheckSummary:
    """What one scheduled run did (the handler returns it). `skipped`: the experiments the tick's time budget
    left for the next tick, in the order they would have been checked."""

    now: datetime
    decisions: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    harm: bool = False
    handed_off: list[list[str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "decisions": self.decisions,
            "failed": self.failed,
            "skipped": self.skipped,
            "harm": self.harm,
            "handed_off": self.handed_off,
        }


def stage_records(stages: tuple[StageStart, ...]) -> tuple[StageRecord, ...]:
    """The engine's stage history: each stage ends when the next one starts."""
    ordered = sorted(stages, key=lambda s: s.stage_index)
    return tuple(
        StageRecord(
            index=stage.stage_index,
            percent=float(stage.weights.canary),
            weights={Variant.CONTROL: stage.weights.control, Variant.CANARY: stage.weights.canary},
            started_at=stage.started_at,
            ended_at=ordered[i + 1].started_at if i + 1 < len(ordered) else None,
        )
        for i, stage in enumerate(ordered)
    )


def check_all(
    *,
    now: datetime,
    service: str,
    registry: Registry,
    metric_source: MetricSource,
    harm_signal: HarmSignal,
    remaining_ms: Callable[[], int] | None = None,
    margin_seconds: float = BUDGET_MARGIN_SECONDS,
    experiment_ids: list[str] | None = None,
    hand_off: Callable[[list[str]], None] | None = None,
    batch_size: int = MAX_EXPERIMENTS_PER_INVOCATION,
) -> CheckSummary:
    """Evaluate the running experiments of `service` at `now`, the one checked longest ago first, within the
    invocation's time.

    Parameters
    ----------
    remaining_ms
        The milliseconds left before the invocation times out (the Lambda context's
        ``get_remaining_time_in_millis``); None for no budget. No new experiment is started once the time left
        is under the slowest experiment of this tick so far plus `margin_seconds`; the rest are reported in
        ``summary.skipped`` (and logged) and come first at the next tick.
    margin_seconds
        What is kept back for the end of the tick (the last StatisticalHarm publish, the handler's metrics).
    experiment_ids
        A batch handed to this invocation by a tick: check these (in this order), hand nothing further.
    hand_off, batch_size
        A tick with more than `batch_size` running experiments keeps the `batch_size` checked longest ago and
        hands the rest, `batch_size` at a time, to `hand_off` (another invocation of this function), so every
        running experiment is checked every tick (fault table, row 13). A batch that cannot be handed off is
        reported as skipped (checked first next tick).

    Notes
    -----
    StatisticalHarm is published (1) as soon as an experiment is decided with harm, so a timeout later in the
    tick cannot drop it; when no harm was found, 0 is published once at the end (the alarm needs data).
    """
    summary = CheckSummary(now=now)
    harm_published = False
    slowest = 0.0  # seconds, the slowest experiment of this tick so far
    if experiment_ids is not None:
        pending = list(experiment_ids)
    else:
        pending = list(registry.list_running_by_last_check(service))
        if hand_off is not None and len(pending) > batch_size:
            pending, rest = pending[:batch_size], pending[batch_size:]
            _hand_off(rest, batch_size, hand_off, summary)
    while pending:
        left = remaining_ms() / 1000 if remaining_ms is not None else None
        if left is not None and left < slowest + margin_seconds:
            summary.skipped = pending
            logger.warning(
                "time budget spent: experiments left for the next tick",
                extra={
                    "skipped": pending,
                    "remaining_seconds": left,
                    "slowest_experiment_seconds": slowest,
                    "margin_seconds": margin_seconds,
                },
            )
            break
        experiment_id = pending.pop(0)
        harm = _check_one(experiment_id, now=now, registry=registry, metric_source=metric_source,
                          summary=summary)  # fmt: skip
        if harm and not harm_published:
            harm_published = _publish_harm_now(harm_signal, service, now)
        if left is not None and remaining_ms is not None:
            slowest = max(slowest, left - remaining_ms() / 1000)
    if not harm_published:  # no harm, or its early publish failed: this one may raise (the function errors)
        harm_signal.publish(service, harm=summary.harm, timestamp=now)
    return summary


def _hand_off(
    rest: list[str], batch_size: int, hand_off: Callable[[list[str]], None], summary: CheckSummary
) -> None:
    """Hand `rest` to further invocations, `batch_size` at a time; a refused batch is reported skipped."""
    for start in range(0, len(rest), batch_size):
        batch = rest[start : start + batch_size]
        try:
            hand_off(batch)
        except Exception:
            logger.exception("could not hand a batch to another invocation: skipped", extra={"batch": batch})
            summary.skipped.extend(batch)
        else:
            summary.handed_off.append(batch)


def _check_one(
    experiment_id: str,
    *,
    now: datetime,
    registry: Registry,
    metric_source: MetricSource,
    summary: CheckSummary,
) -> bool:
    """Check one experiment into `summary`; True when it was decided with harm. Never raises: one experiment
    must never stop the others."""
    experiment: Experiment | None = None
    try:
        experiment = registry.get_experiment(experiment_id)
        decision = evaluate(experiment, now=now, registry=registry, metric_source=metric_source)
    except Exception as exc:
        logger.exception("check failed", extra={"experiment_id": experiment_id})
        summary.failed[experiment_id] = f"{type(exc).__name__}: {exc}"
        reason = f"the check failed, holding: {type(exc).__name__}: {exc}"
        _record_hold(
            experiment_id,
            reason,
            now,
            registry,
            seen=None if experiment is None else experiment.check_sequence,
        )
        return False
    summary.decisions[experiment_id] = decision.kind.value
    harm = is_harm(decision)
    summary.harm = summary.harm or harm
    return harm


def _publish_harm_now(harm_signal: HarmSignal, service: str, now: datetime) -> bool:
    """Publish StatisticalHarm = 1 in the middle of the tick; False when it failed (retried at the end)."""
    try:
        harm_signal.publish(service, harm=True, timestamp=now)
    except Exception:
        logger.exception("could not publish StatisticalHarm: retried at the end of the tick")
        return False
    return True


def _unreadable(
    experiment: Experiment, stages: tuple[StageRecord, ...], now: datetime, error: Exception
) -> Decision:
    """CloudWatch cannot be read: HOLD — until the stage in progress passes its ``max_duration``, when the
    spec's inconclusive policy decides (INCONCLUSIVE), so unreadable data cannot hold a rollout forever
    (fault table, row 2). Never ADVANCE: nothing was proven."""
    current = stages[-1].index if stages else -1
    reason = f"metrics unavailable, holding: {error}"
    if stages:
        limit = stage_in_force(experiment.spec, current, experiment.first_stage_multiplier).max_duration
        if (now - stages[-1].started_at).total_seconds() >= limit:
            label = stage_label(current, len(experiment.spec.stages))
            reason = (
                f"{label} reached its maximum duration ({duration(limit)}) while its metrics could not be "
                f"read; the spec's inconclusive policy applies: {error}"
            )
            return Decision(DecisionKind.INCONCLUSIVE, (reason,), (), current, now)
    return Decision(DecisionKind.HOLD, (reason,), (), current, now)


def evaluate(
    experiment: Experiment, *, now: datetime, registry: Registry, metric_source: MetricSource
) -> Decision:
    """Read the experiment's data, decide, and store the check; HOLD when CloudWatch cannot be read."""
    experiment_id = experiment.experiment_id
    stages = stage_records(registry.stage_history(experiment_id))
    stage_cache: dict[str, Any] = {}
    try:
        reading = (
            metric_source.for_slots(experiment.baseline_slot, experiment.candidate_slot).read(
                experiment.spec, stages, now, frozen=_frozen_stages(registry, experiment_id)
            )
            if stages
            else None
        )
    except MetricSourceError as exc:
        logger.warning("metrics unavailable: HOLD", extra={"experiment_id": experiment_id})
        decision = _unreadable(experiment, stages, now, exc)
    else:
        if reading is None:
            decision = Decision(DecisionKind.HOLD, ("no stage has started yet",), (), -1, now)
        else:
            stage_cache = _store_frozen(registry, experiment_id, reading)
            decision = decide(
                experiment.spec,
                stages,
                reading.observations,
                now,
                first_stage_multiplier=experiment.first_stage_multiplier,
                acknowledged=[SliceAcknowledgement.from_dict(a) for a in experiment.slice_acknowledgements],
                temporal_marks=marks_from(
                    experiment.latest_check.details if experiment.latest_check else None
                ),
            )
    # The sequence read with the experiment, before any data: a check that another one overtook meanwhile
    # is kept as history only (fault table, row 4).
    registry.record_check(
        experiment_id,
        check_record(experiment, decision, stage_cache=stage_cache),
        seen=experiment.check_sequence,
    )
    logger.info(
        "decision",
        extra={
            "experiment_id": experiment_id,
            "decision": decision.kind.value,
            "why": decision.reason,
            "stage_cache": stage_cache,
        },
    )
    return decision


def _frozen_stages(registry: Registry, experiment_id: str) -> dict[int, FrozenStage]:
    """The experiment's frozen stages; none when the registry cannot give them (every stage is read)."""
    try:
        return registry.frozen_stages(experiment_id)
    except (*AwsCallError, RegistryError) as exc:
        logger.warning(
            "frozen stages unreadable: reading every stage from CloudWatch",
            extra={"experiment_id": experiment_id, "error": f"{type(exc).__name__}: {exc}"},
        )
        return {}


def _store_frozen(registry: Registry, experiment_id: str, reading: Reading) -> dict[str, Any]:
    """Freeze the stages the reading found complete; a failed write is logged and retried at the next check
    (which reads the stage again). Returns where each stage came from, for the check record."""
    frozen: list[int] = []
    not_frozen = {str(i): why for i, why in sorted(reading.not_frozen.items())}
    for stage in reading.to_freeze:
        try:
            if registry.freeze_stage(experiment_id, stage):
                frozen.append(stage.stage)
            else:  # a copy this check could not read (see _frozen_stages) or a concurrent check's
                not_frozen[str(stage.stage)] = "a frozen copy is already in the registry"
        except (*AwsCallError, RegistryError) as exc:
            not_frozen[str(stage.stage)] = f"could not store it: {type(exc).__name__}: {exc}"
            logger.warning(
                "could not freeze a stage: it is read again next time",
                extra={"experiment_id": experiment_id, "stage_index": stage.stage, "error": str(exc)},
            )
    return {"from_registry": list(reading.cached), "frozen_now": frozen, "not_frozen": not_frozen}


def _record_hold(
    experiment_id: str, reason: str, now: datetime, registry: Registry, *, seen: int | None
) -> None:
    """Replace the gate's view with HOLD so an earlier ADVANCE is not acted on after a failed check (unless
    another check became the latest since `seen`, when one was read)."""
    try:
        stage = max((s.stage_index for s in registry.stage_history(experiment_id)), default=-1)
        check = CheckRecord(
            checked_at=now, stage_index=stage, decision=DecisionKind.HOLD.value, reason=reason
        )
        registry.record_check(experiment_id, check, seen=seen)
    except Exception:
        logger.exception("could not record the HOLD either", extra={"experiment_id": experiment_id})


def is_harm(decision: Decision) -> bool:
    """Harm is proven (a harm test rejected or a hard limit breached) and the decision acts on it."""
    return decision.kind in _HARM_KINDS and any(f.verdict in _HARM_VERDICTS for f in decision.findings)


def check_record(
    experiment: Experiment, decision: Decision, *, stage_cache: Mapping[str, Any] | None = None
) -> CheckRecord:
    """The registry's record of a decision: its kind, reasons and every number behind it, and where the
    closed stages' data came from (`stage_cache`: stage indices taken from the registry, frozen by this
    check, and why the others are not frozen yet)."""
    primary = next((m.name for m in experiment.spec.metrics if m.role is MetricRole.PRIMARY), None)
    pvalue = next(
        (
            f.pvalue
            for f in decision.findings
            if f.metric == primary and f.slice is None and f.pvalue is not None
        ),
        None,
    )
    return CheckRecord(
        checked_at=decision.evaluated_at,
        stage_index=decision.stage_index,
        decision=decision.kind.value,
        reason=decision.reason,
        harm=is_harm(decision),
        details=decision.to_dict() | {"primary_pvalue": pvalue, "stage_cache": dict(stage_cache or {})},
    )
