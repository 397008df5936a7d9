"""The five-minute significance check: every running experiment → metrics → decision → registry.

One experiment failing (a bad spec, a registry hiccup) never stops the others. When CloudWatch cannot be read
the experiment's decision is HOLD with the reason, written like any other, so the stage gate stops on it and
never advances on an older ADVANCE.

Closed stages are read from CloudWatch until their data is complete, then frozen in the registry
(`canarywise.data.metric_source.FrozenStage`) and taken from there: a check reads only the stage in progress
and the freshness probe. The cache only saves money: when it cannot be read or written the check reads
CloudWatch as before. Each check record says where its stages came from (``details["stage_cache"]``).

Example
-------
>>> summary = check_all(now=event_time, service="mangaassist", registry=registry,  # doctest: +SKIP
...                     metric_source=source, harm_signal=signal)
>>> summary.decisions  # doctest: +SKIP
{'mangaassist-v42-686abaf5b4': 'CONTINUE'}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from canarywise.data._aws import AwsCallError
from canarywise.data.executions import HarmSignal
from canarywise.data.metric_source import FrozenStage, MetricSource, MetricSourceError, Reading
from canarywise.data.models import CheckRecord, Experiment, StageStart
from canarywise.data.registry import Registry, RegistryError
from canarywise.decision.engine import decide
from canarywise.decision.models import Decision, DecisionKind, StageRecord, Variant, Verdict
from canarywise.spec import MetricRole

logger = Logger(child=True)

_HARM_VERDICTS = {Verdict.HARM, Verdict.HARD_LIMIT_BREACHED}
_HARM_KINDS = {DecisionKind.ROLLBACK, DecisionKind.KEEP_CONTROL}


@dataclass
class CheckSummary:
    """What one scheduled run did (the handler returns it)."""

    now: datetime
    decisions: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    harm: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "decisions": self.decisions,
            "failed": self.failed,
            "harm": self.harm,
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
) -> CheckSummary:
    """Evaluate every running experiment of `service` at `now`; publish StatisticalHarm once."""
    summary = CheckSummary(now=now)
    for experiment_id in registry.list_running_ids(service):
        try:
            experiment = registry.get_experiment(experiment_id)
            decision = evaluate(experiment, now=now, registry=registry, metric_source=metric_source)
        except Exception as exc:  # one experiment must never stop the others
            logger.exception("check failed", extra={"experiment_id": experiment_id})
            summary.failed[experiment_id] = f"{type(exc).__name__}: {exc}"
            _record_hold(
                experiment_id, f"the check failed, holding: {type(exc).__name__}: {exc}", now, registry
            )
            continue
        summary.decisions[experiment_id] = decision.kind.value
        summary.harm = summary.harm or is_harm(decision)
    harm_signal.publish(service, harm=summary.harm, timestamp=now)
    return summary


def evaluate(
    experiment: Experiment, *, now: datetime, registry: Registry, metric_source: MetricSource
) -> Decision:
    """Read the experiment's data, decide, and store the check; HOLD when CloudWatch cannot be read."""
    experiment_id = experiment.experiment_id
    stages = stage_records(registry.stage_history(experiment_id))
    current = stages[-1].index if stages else -1
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
        decision = Decision(
            kind=DecisionKind.HOLD,
            reasons=(f"metrics unavailable, holding: {exc}",),
            findings=(),
            stage_index=current,
            evaluated_at=now,
        )
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
            )
    registry.record_check(experiment_id, check_record(experiment, decision, stage_cache=stage_cache))
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


def _record_hold(experiment_id: str, reason: str, now: datetime, registry: Registry) -> None:
    """Replace the gate's view with HOLD so an earlier ADVANCE is not acted on after a failed check."""
    try:
        stage = max((s.stage_index for s in registry.stage_history(experiment_id)), default=-1)
        check = CheckRecord(
            checked_at=now, stage_index=stage, decision=DecisionKind.HOLD.value, reason=reason
        )
        registry.record_check(experiment_id, check)
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
