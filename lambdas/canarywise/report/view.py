"""The report's content as plain values the templates lay out: banner, gate checklist, charts, slices, SRM,
stages and events.

:func:`build_view` reads a :class:`~canarywise.report.data.ReportData` (and, for a demo run, the run's own
events); nothing here formats HTML or Markdown, and nothing reads AWS.

Example
-------
>>> view = build_view(data)  # doctest: +SKIP
>>> view.banner.verdict, [row.mark for row in view.checklist]  # doctest: +SKIP
('READY FOR APPROVAL', ['✓', '✓', '✓', '✓'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from canarywise.data.models import ExperimentStatus
from canarywise.decision.models import SRM_FINDING, MetricFinding, Verdict
from canarywise.report.data import (
    ReportData,
    decision_point,
    effect_series,
    findings,
    format_value,
    hold_started,
    percent_scale,
    registry_events,
)
from canarywise.report.svg import Chart, step_chart
from canarywise.spec import MetricRole

if TYPE_CHECKING:
    from canarywise.demo.local_run import RunResult

_PASS = {Verdict.NO_HARM_PROVEN, Verdict.NON_INFERIOR, Verdict.WITHIN_HARD_LIMIT, Verdict.SRM_OK,
         Verdict.IMPROVEMENT, Verdict.EQUIVALENT}  # fmt: skip
_FAIL = {Verdict.HARM, Verdict.HARD_LIMIT_BREACHED, Verdict.SRM}
# The checklist lists each metric's tests in this order (the sample ratio first: trust the data first).
_TEST_ORDER = {"hard limit": 0, "harm": 1, "non-inferiority": 2}
_MARK = {"pass": "✓", "fail": "✗", "pending": "…", "info": "·"}
# The metrics whose tests decide (secondary metrics are reported and decide nothing).
_DECISIVE = (MetricRole.SAFETY, MetricRole.GUARDRAIL, MetricRole.PRIMARY)


def status_of(verdict: Verdict) -> str:
    """pass / fail / pending (not proven yet, data missing) / info (reported only)."""
    if verdict in _PASS:
        return "pass"
    if verdict in _FAIL:
        return "fail"
    return "info" if verdict is Verdict.REPORTED else "pending"


@dataclass(frozen=True)
class Banner:
    verdict: str  # READY FOR APPROVAL, ROLLED BACK, HELD, PROMOTED, RUNNING, ...
    tone: str  # ok, bad, warn, info (the banner's colour)
    why: str


@dataclass(frozen=True)
class GateRow:
    """One test of the last check: the bound the decision compares with its threshold, and the outcome."""

    metric: str
    slice: str | None
    role: str
    test: str
    estimate: str
    bound: str
    threshold: str
    pvalue: str
    n_control: int
    n_canary: int
    verdict: str
    status: str
    critical: bool = False

    @property
    def mark(self) -> str:
        return _MARK[self.status]

    @property
    def name(self) -> str:
        if self.metric == SRM_FINDING:
            return "sample ratio"
        return self.metric + (f" [{self.slice}]" if self.slice else "")

    @property
    def moved(self) -> bool:
        """A slice moved: its test failed or its confidence interval lies wholly on one side of 0."""
        return self.status == "fail" or self.bound.startswith("excludes 0")

    def sentence(self) -> str:
        """One line for the approval message: ``✓ escalation_rate non-inferiority: upper +0.41 pt vs …``."""
        return f"{self.mark} {self.name} {self.test}: {self.bound} vs {self.threshold} ({self.verdict})"


@dataclass(frozen=True)
class MetricChart:
    metric: str
    role: str
    chart: Chart
    last: str  # the last estimate and bounds, in words


@dataclass(frozen=True)
class SrmPanel:
    pvalue: str
    threshold: str
    offset: str  # the canary's share of units minus the weights' share
    n_control: int
    n_canary: int
    method: str
    status: str
    chart: Chart | None


@dataclass(frozen=True)
class StageRow:
    number: int
    control: int
    canary: int
    started: str
    at_hours: float
    lasted_hours: float | None
    minimum_hours: float
    checks: int
    last_decision: str


@dataclass(frozen=True)
class ReportView:
    title: str
    experiment_id: str
    service: str
    candidate: str
    simulated: bool
    hours_unit: str  # "hours" or "simulated hours"
    check_minutes: int
    banner: Banner
    facts: list[tuple[str, str]]
    checklist: list[GateRow]
    reported: list[GateRow]  # secondary metrics
    charts: list[MetricChart]
    slices: list[GateRow]
    srm: SrmPanel | None
    stages: list[StageRow]
    events: list[tuple[float, str]]
    story: str = ""
    stand_ins: list[tuple[str, str]] = field(default_factory=list)
    plot: str | None = None  # the PNG beside the report, if one was drawn

    @property
    def moved_slices(self) -> list[GateRow]:
        return [row for row in self.slices if row.moved]

    @property
    def last_stage(self) -> StageRow | None:
        return self.stages[-1] if self.stages else None


def _bound(spec_metric: str, data: ReportData, f: MetricFinding) -> str:
    def value(v: float | None) -> str:
        return format_value(data.spec, spec_metric, v)

    if f.metric == SRM_FINDING:
        return f"p {_p(f.pvalue)}"
    if "hard limit" in f.method:
        return f"observed {format_value(data.spec, f.metric, f.estimate, signed=False)}"
    if f.ci_low is not None and f.ci_high is not None:
        side = "excludes 0 " if f.ci_low > 0 or f.ci_high < 0 else ""
        return f"{side}[{value(f.ci_low)}, {value(f.ci_high)}]"
    if f.ci_low is not None:
        return f"lower {value(f.ci_low)}"
    if f.ci_high is not None:
        return f"upper {value(f.ci_high)}"
    return "—"


def _threshold(data: ReportData, f: MetricFinding, test: str) -> str:
    if f.metric == SRM_FINDING:
        return f"p < {f.threshold:g}" if f.threshold is not None else "—"
    if "hard limit" in f.method:
        limit = format_value(data.spec, f.metric, f.threshold, signed=False)
        return f"hard limit {limit}"
    if test == "harm":
        return "0"
    if f.threshold is None:
        return "0"
    name = "margin" if test.startswith("non-inferiority") else "minimum effect"
    return f"{name} {format_value(data.spec, f.metric, f.threshold)}"


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.2g}"


def gate_row(data: ReportData, f: MetricFinding) -> GateRow:
    test = "SRM" if f.metric == SRM_FINDING else f.method.split(":")[0].split(";")[0].strip()
    try:
        metric = data.spec.metric(f.metric)
        role, critical = metric.role.value, bool(f.slice and f.slice in metric.critical_slices)
    except Exception:
        role, critical = "trust", False
    return GateRow(
        metric=f.metric,
        slice=f.slice,
        role=role,
        test=test,
        estimate=format_value(data.spec, f.metric, f.estimate, signed="hard limit" not in f.method),
        bound=_bound(f.metric, data, f),
        threshold=_threshold(data, f, test),
        pvalue=_p(f.pvalue),
        n_control=f.n_control,
        n_canary=f.n_canary,
        verdict=f.verdict.value.replace("_", " "),
        status=status_of(f.verdict),
        critical=critical,
    )


def _banner(data: ReportData, hours_unit: str) -> Banner:
    status = data.experiment.status
    last = data.checks[-1] if data.checks else None
    point = decision_point(data)
    after = f" after {point[0]:.1f} {hours_unit}" if point else ""
    if data.rollback is not None or status in {ExperimentStatus.ROLLED_BACK, ExperimentStatus.ROLLING_BACK}:
        why = data.rollback.reason if data.rollback else (last.reason if last else "")
        by = f" by {data.rollback.source}" if data.rollback else ""
        return Banner("ROLLED BACK", "bad", f"Rolled back{by}{after}: {why}")
    if status is ExperimentStatus.REJECTED:
        return Banner("REJECTED", "bad", last.reason if last else "")
    if status in {ExperimentStatus.PROMOTED, ExperimentStatus.APPROVED}:
        return Banner(status.value, "ok", f"Every gate was met{after}; a person approved the 100%.")
    if status is ExperimentStatus.READY_FOR_APPROVAL:
        return Banner(
            "READY FOR APPROVAL", "ok", f"Every stage's gate was met{after}; a person approves the 100%."
        )
    since = hold_started(data.checks)
    if since is not None:
        return Banner("HELD", "warn", f"Held since {data.hours(since.checked_at):.1f} {hours_unit}: "
                      f"{data.checks[-1].reason}")  # fmt: skip
    if last is None:
        return Banner(status.value.replace("_", " "), "info", "No check has run yet.")
    return Banner(status.value.replace("_", " "), "info", f"Latest decision {last.decision}: {last.reason}")


def _metric_charts(
    data: ReportData, stage_hours: list[tuple[float, str]], unit: str, decisive: set[str]
) -> list[MetricChart]:
    out = []
    point = decision_point(data)
    for metric in data.spec.metrics:
        if metric.role not in _DECISIVE or metric.name not in decisive:
            continue
        points, thresholds = effect_series(data, metric.name)
        if not points:
            continue
        factor = 100.0 if percent_scale(data.spec, metric.name) else 1.0
        chart = step_chart(
            [(p.hours, p.estimate * factor, _scaled(p.low, factor), _scaled(p.high, factor)) for p in points],
            hold=data.spec.check_interval / 3600,
            hlines=[(0.0, "0", "zero")]
            + [(v * factor, f"{name} {v * factor:+g}", "threshold") for name, v in thresholds.items()],
            vlines=stage_hours,
            marker=point,
            x_label=unit,
            y_label=f"canary − control ({'pt' if factor == 100 else 'units'})",
        )
        last = points[-1]
        band = f"[{_fmt(last.low, factor)}, {_fmt(last.high, factor)}]"
        out.append(
            MetricChart(metric.name, metric.role.value, chart, f"{last.estimate * factor:+.3g} {band}")
        )
    return out


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _fmt(value: float | None, factor: float) -> str:
    return "∞" if value is None else f"{value * factor:+.3g}"


def _srm_panel(data: ReportData, stage_hours: list[tuple[float, str]], unit: str) -> SrmPanel | None:
    series = [
        (data.hours(check.checked_at), f)
        for check in data.checks
        for f in findings(check)
        if f.metric == SRM_FINDING and f.estimate is not None
    ]
    if not series:
        return None
    last = series[-1][1]
    chart = step_chart(
        [(h, (f.estimate or 0.0) * 100, None, None) for h, f in series],
        hold=data.spec.check_interval / 3600,
        hlines=[(0.0, "the weights' share", "zero")],
        vlines=stage_hours,
        marker=None,
        x_label=unit,
        y_label="canary share − weights (pt)",
        height=180,
    )
    return SrmPanel(
        pvalue=_p(last.pvalue),
        threshold=f"{last.threshold:g}" if last.threshold is not None else "—",
        offset=format_value(data.spec, SRM_FINDING, last.estimate),
        n_control=last.n_control,
        n_canary=last.n_canary,
        method=last.method,
        status=status_of(last.verdict),
        chart=chart,
    )


def _stage_rows(data: ReportData) -> list[StageRow]:
    end = (
        data.rollback.rolled_back_at
        if data.rollback
        else (data.checks[-1].checked_at if data.checks else None)
    )
    rows = []
    for i, stage in enumerate(data.stages):
        until = data.stages[i + 1].started_at if i + 1 < len(data.stages) else end
        mine = [c for c in data.checks if c.stage_index == stage.stage_index]
        spec_stage = data.spec.stages[stage.stage_index]
        minimum = spec_stage.min_duration * (data.experiment.first_stage_multiplier if i == 0 else 1.0)
        rows.append(
            StageRow(
                number=stage.stage_index + 1,
                control=stage.weights.control,
                canary=stage.weights.canary,
                started=stage.started_at.strftime("%Y-%m-%d %H:%M UTC"),
                at_hours=data.hours(stage.started_at),
                lasted_hours=(until - stage.started_at).total_seconds() / 3600 if until else None,
                minimum_hours=minimum / 3600,
                checks=len(mine),
                last_decision=mine[-1].decision if mine else "—",
            )
        )
    return rows


def build_view(data: ReportData, *, story: str = "", result: RunResult | None = None) -> ReportView:
    """The report of `data`; `result` (a demo run) marks hours as simulated and adds the run's own events."""
    experiment = data.experiment
    simulated = result is not None
    unit = "simulated hours" if simulated else "hours"
    stage_hours = [(data.hours(s.started_at), f"{s.weights.canary}%") for s in data.stages]
    last = data.checks[-1] if data.checks else None
    order = {m.name: i for i, m in enumerate(data.spec.metrics)}
    rows = sorted(
        (gate_row(data, f) for f in (findings(last) if last else [])),
        key=lambda r: (order.get(r.metric, -1), r.slice or "", _TEST_ORDER.get(r.test, 9)),
    )
    point = decision_point(data)
    facts = [
        ("experiment", experiment.experiment_id),
        ("service", experiment.service),
        ("candidate", f"{experiment.candidate} (release {experiment.release_id})"),
        ("slots", f"baseline {experiment.baseline_slot}, candidate {experiment.candidate_slot}"),
        ("status", experiment.status.value),
        ("latest decision", f"{last.decision}: {last.reason}" if last else "—"),
        ("decided after", f"{point[0]:.1f} {unit} ({point[1]})" if point else "—"),
        ("checks", f"{len(data.checks)} (every {data.spec.check_interval // 60} min)"),
    ]
    if data.rollback is not None:
        facts.append(("rolled back by", f"{data.rollback.source} {data.rollback.actor}".strip()))
    if experiment.adjusted_pvalue is not None and experiment.pvalue is not None:
        facts.append(
            ("registry-wide BH", f"p {experiment.pvalue:.3g}, adjusted {experiment.adjusted_pvalue:.3g}")
        )
    if result is not None:
        facts.append(("demo outcome", f"{result.outcome} (expected {result.expected})"))
        facts.append(("wall time", f"{result.wall_seconds:.1f} s for {result.simulated_hours:.1f} {unit}"))
    return ReportView(
        title=f"canarywise report: {experiment.service} {experiment.candidate}",
        experiment_id=experiment.experiment_id,
        service=experiment.service,
        candidate=experiment.candidate,
        simulated=simulated,
        hours_unit=unit,
        check_minutes=data.spec.check_interval // 60,
        banner=_banner(data, unit),
        facts=facts,
        checklist=[r for r in rows if r.slice is None and r.status != "info"],
        reported=[r for r in rows if r.slice is None and r.status == "info"],
        charts=_metric_charts(data, stage_hours, unit, {r.metric for r in rows if r.status != "info"}),
        slices=sorted(
            (r for r in rows if r.slice is not None), key=lambda r: (order[r.metric], not r.critical)
        ),
        srm=_srm_panel(data, stage_hours, unit),
        stages=_stage_rows(data),
        events=list(result.events) if result is not None and result.events else registry_events(data),
        story=story,
        stand_ins=sorted(result.stand_ins.items()) if result is not None else [],
    )


def stage_share(stages: Sequence[StageRow]) -> list[float]:
    """Each stage's share of the whole timeline (for the timeline bar), in percent."""
    total = sum(s.lasted_hours or 0.0 for s in stages) or 1.0
    return [100 * (s.lasted_hours or 0.0) / total for s in stages]
