"""One look at one experiment: the spec, the stage in progress, the clock and the data, indexed once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from canarywise.decision.acknowledgement import SliceAcknowledgement
from canarywise.decision.models import (
    Aggregate,
    DecisionInputError,
    MeanAggregate,
    Observations,
    ProportionAggregate,
    StageRecord,
    Variant,
)
from canarywise.spec import AlbSource, Metric, MetricKind, MetricRole, RolloutSpec, Stage

__all__ = ["EvaluationContext", "decisive_metrics", "evaluated_metrics", "is_alarm_only", "stage_label"]


def stage_in_force(spec: RolloutSpec, index: int, first_stage_multiplier: float = 1.0) -> Stage:
    """The spec's stage `index` with the durations it runs with: after a rollback the next try's first stage
    lasts longer (anti-flapping; both bounds, so the maximum can never fall below the minimum)."""
    stage = spec.stages[index]
    if index != 0 or first_stage_multiplier == 1.0:
        return stage
    return stage.model_copy(
        update={
            "min_duration": round(stage.min_duration * first_stage_multiplier),
            "max_duration": round(stage.max_duration * first_stage_multiplier),
        }
    )


def stage_label(index: int, count: int) -> str:
    """A stage as people count it: ``stage_label(2, 3)`` is ``"stage 3 of 3"``.

    Stage indexes are 0-based in data (the registry, the state machine's payloads, `Decision.stage_index`);
    every text a person reads (reasons, alerts, the CLI, the demo) numbers stages from 1.

    Example
    -------
    >>> stage_label(0, 3)
    'stage 1 of 3'
    """
    return f"stage {index + 1} of {count}"


def is_alarm_only(metric: Metric) -> bool:
    """The ALB's target_response_time feeds only a CloudWatch hard-limit alarm (percentiles are not
    sufficient statistics), so the engine neither expects nor tests data for it."""
    return isinstance(metric.source, AlbSource) and metric.source.metric == "target_response_time"


def evaluated_metrics(spec: RolloutSpec) -> tuple[Metric, ...]:
    """The metrics the engine reads from `Observations` (every metric except alarm-only ones), in spec order.

    Example
    -------
    >>> from canarywise.spec import load_spec
    >>> [m.name for m in evaluated_metrics(load_spec("config/mangaassist.yaml"))][:3]
    ['escalation_rate', 'error_rate', 'slow_response_rate']
    """
    return tuple(m for m in spec.metrics if not is_alarm_only(m))


def decisive_metrics(spec: RolloutSpec) -> tuple[Metric, ...]:
    """The metrics whose data must be present and fresh before a rollout moves on: every evaluated safety
    and guardrail metric and, in A/B mode, the primary metric (spec order).

    Example
    -------
    >>> from canarywise.spec import load_spec
    >>> [m.name for m in decisive_metrics(load_spec("config/mangaassist.yaml"))][:2]
    ['escalation_rate', 'error_rate']
    """
    roles = {MetricRole.SAFETY, MetricRole.GUARDRAIL}
    if spec.mode == "ab":
        roles.add(MetricRole.PRIMARY)
    return tuple(m for m in evaluated_metrics(spec) if m.role in roles)


_Cell = tuple[int, Variant, str | None]


@dataclass(frozen=True, slots=True)
class EvaluationContext:
    """Everything a policy needs, with the observations grouped by metric once per look."""

    spec: RolloutSpec
    stages: tuple[StageRecord, ...]  # sorted by index; the last one is in progress
    stage: Stage  # the spec's stage in progress (durations scaled for a retried first stage)
    now: datetime
    observations: Observations
    cells: dict[str, dict[_Cell, Aggregate]]
    metrics: tuple[Metric, ...]
    acknowledged: tuple[SliceAcknowledgement, ...] = ()  # slice findings a person let go
    temporal_marks: tuple[Mapping[str, Any], ...] = ()  # the previous look's day marks (A/B temporal checks)

    @classmethod
    def build(
        cls,
        spec: RolloutSpec,
        stages: Sequence[StageRecord],
        observations: Observations,
        now: datetime,
        *,
        first_stage_multiplier: float = 1.0,
        acknowledged: Sequence[SliceAcknowledgement] = (),
        temporal_marks: Sequence[Mapping[str, Any]] = (),
    ) -> EvaluationContext:
        if now.tzinfo is None:
            raise DecisionInputError(f"`now` must be timezone-aware (UTC), found {now.isoformat()!r}")
        ordered = tuple(sorted(stages, key=lambda s: s.index))
        for record in ordered:
            if not 0 <= record.index < len(spec.stages):
                raise DecisionInputError(
                    f"stage record index {record.index} is outside the spec's {len(spec.stages)} stages"
                )
        if len({r.index for r in ordered}) != len(ordered):
            raise DecisionInputError(f"stage records repeat an index: {[r.index for r in ordered]}")
        if first_stage_multiplier < 1.0:
            raise DecisionInputError(
                f"`first_stage_multiplier` must be >= 1, found {first_stage_multiplier!r}"
            )
        stage = stage_in_force(spec, ordered[-1].index, first_stage_multiplier)
        metrics = evaluated_metrics(spec)
        kinds = {m.name: m.kind for m in metrics}
        cells: dict[str, dict[_Cell, Aggregate]] = {name: {} for name in kinds}
        for key, aggregate in observations.aggregates.items():
            kind = kinds.get(key.metric)
            if kind is None:
                continue  # data for a metric the spec does not evaluate (e.g. an alarm-only one): ignored
            wanted = MeanAggregate if kind is MetricKind.MEAN else ProportionAggregate
            if not isinstance(aggregate, wanted):
                raise DecisionInputError(
                    f"metric {key.metric!r} is {kind.value} and needs {wanted.__name__} data, "
                    f"found {type(aggregate).__name__} for {key}"
                )
            cells[key.metric][(key.stage, key.variant, key.slice)] = aggregate
        return cls(
            spec,
            ordered,
            stage,
            now,
            observations,
            cells,
            metrics,
            tuple(acknowledged),
            tuple(temporal_marks),
        )

    @property
    def current(self) -> StageRecord:
        return self.stages[-1]

    @property
    def stage_name(self) -> str:
        """The stage in progress as people count it (``"stage 1 of 3"``)."""
        return stage_label(self.current.index, len(self.spec.stages))

    @property
    def is_last_stage(self) -> bool:
        return self.current.index == len(self.spec.stages) - 1

    @property
    def stage_elapsed(self) -> float:
        """Seconds since the stage in progress started (0 if the clock is behind its start)."""
        return max((self.now - self.current.started_at).total_seconds(), 0.0)

    @property
    def experiment_elapsed(self) -> float:
        """Seconds since the first recorded stage started."""
        return max((self.now - self.stages[0].started_at).total_seconds(), 0.0)

    def of_role(self, *roles: MetricRole) -> tuple[Metric, ...]:
        return tuple(m for m in self.metrics if m.role in roles)

    def arm(self, metric: str, stage: int, variant: Variant, slice_: str | None = None) -> Aggregate | None:
        return self.cells[metric].get((stage, variant, slice_))

    def pairs(self, metric: str, slice_: str | None = None) -> list[tuple[Aggregate, Aggregate]]:
        """(control, canary) aggregates of every recorded stage that has both."""
        cells = self.cells[metric]
        out = []
        for record in self.stages:
            control = cells.get((record.index, Variant.CONTROL, slice_))
            canary = cells.get((record.index, Variant.CANARY, slice_))
            if control is not None and canary is not None:
                out.append((control, canary))
        return out

    def current_n(self, metric: str, slice_: str | None = None) -> tuple[int, int]:
        """Units per arm (control, canary) in the stage in progress; 0 where there is no aggregate."""
        index = self.current.index
        control = self.arm(metric, index, Variant.CONTROL, slice_)
        canary = self.arm(metric, index, Variant.CANARY, slice_)
        return (control.n if control else 0, canary.n if canary else 0)

    def slices(self, metric: str) -> list[str]:
        """The slice values with data for `metric`, sorted (deterministic BH order and output)."""
        return sorted({s for (_, _, s) in self.cells[metric] if s is not None})
