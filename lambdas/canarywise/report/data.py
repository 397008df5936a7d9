"""What a report is made of, read once from the registry, and the small readings every view of it shares.

Everything comes from the registry (the experiment, its stage history, every check with the numbers behind
its decision, the rollback record), so the same report is written for a demo run, by the stage gate when a
real rollout is ready for approval, and by ``canarywise report EXPERIMENT``.

Example
-------
>>> data = ReportData.read(Registry("canarywise-registry"), "mangaassist-v42-1f1d41d6a7")  # doctest: +SKIP
>>> decision_point(data)  # doctest: +SKIP
(5.58, 'READY FOR APPROVAL')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from canarywise.data.models import CheckRecord, Experiment, RollbackRecord, StageStart
from canarywise.data.registry import Registry
from canarywise.decision.models import SRM_FINDING, MetricFinding, Verdict
from canarywise.spec import MetricKind, MetricRole, RolloutSpec, SpecError


@dataclass(frozen=True)
class ReportData:
    """The experiment, its stage starts, every check and the rollback record (None if not rolled back)."""

    experiment: Experiment
    stages: tuple[StageStart, ...]
    checks: tuple[CheckRecord, ...]
    rollback: RollbackRecord | None

    @classmethod
    def read(cls, registry: Registry, experiment_id: str) -> ReportData:
        return cls(
            experiment=registry.get_experiment(experiment_id),
            stages=registry.stage_history(experiment_id),
            checks=registry.list_checks(experiment_id),
            rollback=registry.get_rollback(experiment_id),
        )

    @property
    def spec(self) -> RolloutSpec:
        return self.experiment.spec

    def hours(self, moment: datetime) -> float:
        """Hours since the experiment started."""
        return (moment - self.experiment.created_at).total_seconds() / 3600


def findings(check: CheckRecord) -> list[MetricFinding]:
    """The numbers behind one check's decision, one finding per test (metric, slice, method)."""
    return [MetricFinding.from_dict(f) for f in check.details.get("findings", [])]


def headline_metric(spec: RolloutSpec) -> str:
    """The metric a one-plot view follows: the A/B primary metric, else the first safety metric."""
    roles = (
        (MetricRole.PRIMARY, MetricRole.SAFETY)
        if spec.mode == "ab"
        else (MetricRole.SAFETY, MetricRole.PRIMARY)
    )
    for role in roles:
        for metric in spec.metrics:
            if metric.role is role:
                return metric.name
    return spec.metrics[0].name


def hold_started(checks: Sequence[CheckRecord]) -> CheckRecord | None:
    """The first check of the current run of HOLDs for the same kind of reason (None if not holding)."""
    if not checks or checks[-1].decision != "HOLD":
        return None
    kind = checks[-1].reason.split(":", 1)[0]
    since = checks[-1]
    for check in reversed(checks):
        if check.decision != "HOLD" or check.reason.split(":", 1)[0] != kind:
            break
        since = check
    return since


def decision_point(data: ReportData) -> tuple[float, str] | None:
    """When (hours) and what was decided: the rollback, the hold, or the check that made the rollout ready."""
    if data.rollback is not None:
        return data.hours(data.rollback.rolled_back_at), f"ROLLBACK ({data.rollback.source})"
    since = hold_started(data.checks)
    if since is not None and data.experiment.status.value == "RUNNING":
        return data.hours(since.checked_at), f"HOLD ({since.reason.split(':', 1)[0]})"
    last_stage = len(data.spec.stages) - 1
    for check in data.checks:
        if check.decision in {"READY_FOR_APPROVAL", "PROMOTE"} or (
            check.decision == "ADVANCE" and check.stage_index == last_stage
        ):
            return data.hours(check.checked_at), check.decision.replace("_", " ")
    return None


@dataclass(frozen=True)
class EffectPoint:
    """One check's view of a metric: estimate, lower and upper confidence bounds (None = unbounded)."""

    hours: float
    estimate: float
    low: float | None
    high: float | None
    low_label: str
    high_label: str


def effect_series(data: ReportData, metric: str) -> tuple[list[EffectPoint], dict[str, float]]:
    """The metric's estimate and confidence sequence at each check, and the thresholds to draw.

    A canary safety metric has two one-sided tests: harm (its lower bound above 0 → rollback) and
    non-inferiority (its upper bound below the margin → may advance); an A/B primary metric has one
    two-sided sequence. The band spans the bounds the decision rule actually uses.
    """
    points: list[EffectPoint] = []
    thresholds: dict[str, float] = {}
    for check in data.checks:
        mine = [
            f for f in findings(check) if f.metric == metric and f.slice is None and f.estimate is not None
        ]
        tested = [f for f in mine if f.ci_low is not None or f.ci_high is not None]
        if not tested:
            continue
        low = next((f for f in tested if f.ci_low is not None), None)
        high = next((f for f in tested if f.ci_high is not None), None)
        estimate = tested[0].estimate
        assert estimate is not None
        points.append(
            EffectPoint(
                hours=data.hours(check.checked_at),
                estimate=estimate,
                low=low.ci_low if low else None,
                high=high.ci_high if high else None,
                low_label=_bound_label(low),
                high_label=_bound_label(high),
            )
        )
        for finding in tested:
            if finding.threshold is None:
                continue
            if finding.method.startswith("non-inferiority"):
                thresholds["non-inferiority margin"] = finding.threshold
            elif finding.method.startswith("primary"):
                thresholds["minimum worthwhile effect"] = finding.threshold
    return points, thresholds


def _bound_label(finding: MetricFinding | None) -> str:
    if finding is None:
        return ""
    method = finding.method.split(":")[0]
    alpha = f", α={finding.alpha:g}" if finding.alpha is not None else ""
    return f"{method}{alpha}"


def percent_scale(spec: RolloutSpec, metric: str) -> bool:
    """True when the metric is a rate (shown in percent / percentage points), False for a mean."""
    try:
        return spec.metric(metric).kind is not MetricKind.MEAN
    except SpecError:
        return metric == SRM_FINDING


def format_value(spec: RolloutSpec, metric: str, value: float | None, *, signed: bool = True) -> str:
    """A number in the metric's units: rates in percentage points (signed) or percent, means as they are."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if metric == SRM_FINDING:
        return f"{value * 100:+.2f} pt"
    try:
        kind = spec.metric(metric).kind
    except SpecError:
        return f"{value:.4g}"
    if kind is MetricKind.MEAN:
        return f"{value:+.3f}" if signed else f"{value:.3f}"
    return f"{value * 100:+.2f} pt" if signed else f"{value * 100:.2f}%"


def registry_events(data: ReportData) -> list[tuple[float, str]]:
    """Stage starts, holds (the first check of each run), hard-limit breaches, the rollback, the verdict."""
    events = [
        (data.hours(s.started_at), f"stage {s.stage_index + 1}: {s.weights.control} / {s.weights.canary}")
        for s in data.stages
    ]
    previous: CheckRecord | None = None
    for check in data.checks:
        kind = check.reason.split(":", 1)[0]
        if check.decision == "HOLD" and (
            previous is None or previous.decision != "HOLD" or previous.reason.split(":", 1)[0] != kind
        ):
            events.append((data.hours(check.checked_at), f"HOLD: {check.reason}"))
        if check.decision in {"READY_FOR_APPROVAL", "PROMOTE"} and (
            previous is None or previous.decision != check.decision
        ):
            events.append((data.hours(check.checked_at), f"{check.decision}: {check.reason}"))
        breached = [f.metric for f in findings(check) if f.verdict is Verdict.HARD_LIMIT_BREACHED]
        if breached:
            events.append((data.hours(check.checked_at), f"hard limit breached: {', '.join(breached)}"))
        previous = check
    if data.rollback is not None:
        r = data.rollback
        events.append((data.hours(r.rolled_back_at), f"rolled back by {r.source}: {r.reason}"))
    if data.experiment.concluded_at is not None:
        events.append(
            (data.hours(data.experiment.concluded_at), f"concluded: {data.experiment.status.value}")
        )
    return sorted(events, key=lambda e: e[0])
