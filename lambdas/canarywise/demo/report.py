"""The experiment report: Markdown, HTML and a plot of the effect and its confidence sequence over time.

Everything comes from the registry (the experiment, its stage history, every check with the numbers behind
its decision, the rollback record), so the same report is written for a demo run and, with
``canarywise report EXPERIMENT``, for a real rollout.

The plot follows one metric (the spec's safety metric, or the A/B primary one): the estimate (canary −
control) at each check, the anytime-valid confidence sequence around it, the thresholds the decision rule
compares it with, the stage changes and the decision.

Example
-------
>>> registry = Registry("canarywise-registry")  # doctest: +SKIP
>>> write_report(registry, "mangaassist-v42-1f1d41d6a7", Path("reports/x"))  # doctest: +SKIP
PosixPath('reports/x')
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canarywise.data.models import CheckRecord, Experiment, RollbackRecord, StageStart
from canarywise.data.registry import Registry
from canarywise.decision.models import MetricFinding, Verdict
from canarywise.spec import Direction, MetricKind, MetricRole, RolloutSpec

if TYPE_CHECKING:
    from canarywise.demo.local_run import RunResult
    from canarywise.demo.scenarios import Scenario

PLOT_NAME = "effect.png"
_SRM = "(sample ratio)"


@dataclass(frozen=True)
class ReportData:
    """What the report is made of, read once from the registry."""

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


def headline_metric(spec: RolloutSpec) -> str:
    """The metric the plot follows: the A/B primary metric, else the first safety metric, else the first."""
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


def _findings(check: CheckRecord) -> list[MetricFinding]:
    return [MetricFinding.from_dict(f) for f in check.details.get("findings", [])]


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
            f for f in _findings(check) if f.metric == metric and f.slice is None and f.estimate is not None
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


def _scale(spec: RolloutSpec, metric: str) -> tuple[float, str]:
    """Plot proportions in percentage points, means in their own units."""
    kind = spec.metric(metric).kind
    return (1.0, "") if kind is MetricKind.MEAN else (100.0, " (percentage points)")


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
    """When (hours) and what was decided: the rollback, or the check that made the rollout ready."""
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


def _zero_label(spec: RolloutSpec, metric: str) -> str:
    found = spec.metric(metric)
    if found.role is MetricRole.PRIMARY:
        return "0: no difference (a proven effect has the whole band on one side)"
    worse = "above" if found.direction is Direction.LOWER_IS_BETTER else "below"
    return f"0: harm proven once the whole band is {worse} it"


def _threshold_label(name: str, value: float, unit: str) -> str:
    if name == "non-inferiority margin":
        return f"non-inferiority margin ({value:+g}{unit}): may advance once the band's top is below it"
    return f"minimum worthwhile effect ({value:+g}{unit}): promote once the band clears 0, the estimate this"


def plot_effect(data: ReportData, metric: str, path: Path, result: RunResult | None = None) -> Path:
    """Draw the metric's effect and confidence sequence over time (PNG at `path`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points, thresholds = effect_series(data, metric)
    factor, unit = _scale(data.spec, metric)
    short_unit = " pt" if factor == 100.0 else ""
    second = _second_panel(data, metric, result)
    rows = 2 if second else 1
    fig, axes = plt.subplots(
        rows,
        1,
        figsize=(10, 7.4 if rows == 2 else 6.0),
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1.3] if rows == 2 else [1]},
    )
    ax = axes[0][0]
    # Each check's values hold until the next check: the last one is drawn for one check interval.
    interval = data.spec.check_interval / 3600
    hours = [p.hours for p in points] + ([points[-1].hours + interval] if points else [])
    estimate = [p.estimate * factor for p in points] + ([points[-1].estimate * factor] if points else [])
    low = [p.low * factor if p.low is not None else math.nan for p in points]
    high = [p.high * factor if p.high is not None else math.nan for p in points]
    low, high = low + low[-1:], high + high[-1:]
    # The first looks have very wide bands; scale the axis to the later ones (and the thresholds).
    settled = slice(len(points) // 5, None)
    shown = [v for v in low[settled] + high[settled] + estimate + [0.0] if not math.isnan(v)]
    shown += [t * factor for t in thresholds.values()]
    pad = (max(shown) - min(shown)) * 0.12 or 1.0
    y_low, y_high = min(shown) - pad, max(shown) + pad
    if points:
        bottom = [y_low - pad if math.isnan(v) else max(v, y_low - pad) for v in low]
        top = [y_high + pad if math.isnan(v) else min(v, y_high + pad) for v in high]
        ax.fill_between(
            hours,
            bottom,
            top,
            step="post",
            color="#4c78a8",
            alpha=0.2,
            linewidth=0,
            label=_band_label(points),
        )
        ax.step(hours, low, where="post", color="#4c78a8", linewidth=0.9)
        ax.step(hours, high, where="post", color="#4c78a8", linewidth=0.9)
        ax.step(
            hours, estimate, where="post", color="#1f3b63", linewidth=1.8, label="estimate (canary − control)"
        )
    ax.axhline(0.0, color="black", linewidth=1.0, label=_zero_label(data.spec, metric))
    for name, value in thresholds.items():
        ax.axhline(
            value * factor,
            color="#e45756",
            linestyle="--",
            linewidth=1.3,
            label=_threshold_label(name, value * factor, short_unit),
        )
    _mark_stages(ax, data, label=True)
    point = decision_point(data)
    x_max = max([*hours, point[0] if point else 0.0, 0.1])
    if point is not None:
        when, what = point
        ax.axvline(when, color="#b22222", linewidth=2.0)
        nearest = min(points, key=lambda p: abs(p.hours - when)) if points else None
        y = nearest.estimate * factor if nearest else 0.0
        ax.plot([when], [y], marker="o", markersize=9, color="#b22222", zorder=5)
        detail = ""
        if "aws.cloudwatch" in what:
            detail = "\nby the critical alarm"
        elif what.startswith("HOLD") or nearest is None:
            pass
        elif nearest.low is not None and nearest.low > 0:
            detail = f"\nband bottom {nearest.low * factor:+.2f}{short_unit} > 0"
        elif nearest.high is not None and "non-inferiority margin" in thresholds:
            detail = f"\nband top {nearest.high * factor:+.2f}{short_unit}"
        left = when < 0.35 * x_max  # keep the label inside the axes
        ax.annotate(
            f"{what}\nat {when:.1f} h{detail}",
            xy=(when, y),
            xytext=(10 if left else -10, 18),
            textcoords="offset points",
            ha="left" if left else "right",
            color="#b22222",
            fontweight="bold",
            fontsize=10,
            bbox={"boxstyle": "round", "fc": "white", "ec": "#b22222", "alpha": 0.9},
        )
    ax.set_xlim(0, x_max * 1.03)
    ax.set_ylim(y_low, y_high)
    ax.set_ylabel(f"{metric}\ncanary − control{unit}")
    status = data.experiment.status.value
    if status == "RUNNING" and data.checks:
        status = f"RUNNING, latest decision {data.checks[-1].decision}"
    ax.set_title(f"{data.experiment.service} {data.experiment.candidate}: {metric} — {status}", fontsize=12)
    ax.grid(alpha=0.3)
    if second:
        second(axes[1][0])
        _mark_stages(axes[1][0], data, label=False)
        if point is not None:
            axes[1][0].axvline(point[0], color="#b22222", linewidth=2.0)
    axes[-1][0].set_xlabel("hours since the rollout started (simulated time in the demo)")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8.5, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _band_label(points: Sequence[EffectPoint]) -> str:
    labels = {p.low_label for p in points if p.low_label} | {p.high_label for p in points if p.high_label}
    return "confidence sequence (" + "; ".join(sorted(labels)) + ")"


def _mark_stages(ax: Any, data: ReportData, *, label: bool) -> None:
    for stage in data.stages:
        when = data.hours(stage.started_at)
        ax.axvline(when, color="grey", linestyle=":", linewidth=1.1)
        if label:
            ax.text(
                when,
                0.98,
                f" {stage.weights.canary}% canary",
                transform=ax.get_xaxis_transform(),
                va="top",
                ha="left",
                fontsize=9,
                color="dimgrey",
            )


def _second_panel(data: ReportData, metric: str, result: RunResult | None = None) -> Any:
    """A panel for what decided when the headline effect did not: a hard limit, or the sample ratio."""
    limit_points = []
    srm_points = []
    for check in data.checks:
        for finding in _findings(check):
            if finding.metric == metric and finding.verdict in {
                Verdict.HARD_LIMIT_BREACHED,
                Verdict.WITHIN_HARD_LIMIT,
            }:
                limit_points.append((data.hours(check.checked_at), finding.estimate, finding.threshold))
            if finding.metric == _SRM:
                srm_points.append((data.hours(check.checked_at), finding.pvalue, finding.threshold))
    srm_failed = any(p is not None and t is not None and p < t for _, p, t in srm_points)
    if srm_failed:
        shares = [
            (data.hours(check.checked_at), f.estimate, f.pvalue, f.threshold)
            for check in data.checks
            for f in _findings(check)
            if f.metric == _SRM and f.estimate is not None
        ]

        def draw_srm(ax: Any) -> None:
            hours = [h for h, *_ in shares]
            ax.step(
                hours,
                [e * 100 for _, e, _, _ in shares],
                where="post",
                color="#f58518",
                linewidth=1.6,
                label="canary's share of units − the weights' share (pt)",
            )
            flagged = [h for h, _, p, t in shares if p is not None and t is not None and p < t]
            if flagged:
                ax.axvspan(
                    flagged[0],
                    hours[-1],
                    color="#f58518",
                    alpha=0.12,
                    label=f"sample ratio mismatch (chi-square p < {shares[0][3]:g}): HOLD",
                )
            ax.axhline(0.0, color="black", linewidth=0.9)
            ax.set_ylabel("share off\nthe weights (pt)")
            ax.legend(loc="upper right", fontsize=8)
            ax.grid(alpha=0.3)

        return draw_srm
    breached = any(e is not None and t is not None and e > t for _, e, t in limit_points)
    alarmed = data.rollback is not None and data.rollback.source == "aws.cloudwatch"
    if not (breached or alarmed):
        return None
    limit = next((t for _, _, t in limit_points if t is not None), None)
    per_minute = next(
        (
            series
            for name, series in (result.alarm_values if result else {}).items()
            if name.endswith(f"{metric}-hard-limit")
        ),
        None,
    )

    def draw_limit(ax: Any) -> None:
        if per_minute:
            # What the hard-limit alarm compared with its threshold, minute by minute; a minute without a 5XX
            # datapoint has no rate (the alarm treats it as not breaching) and is drawn at 0.
            hours = [h for h, _ in per_minute]
            values = [(v or 0.0) * 100 for _, v in per_minute]
            ax.step(
                hours,
                values,
                where="post",
                color="#f58518",
                linewidth=1.0,
                label=f"canary {metric}, per minute (the alarm's view)",
            )
        else:
            hours = [h for h, e, _ in limit_points if e is not None]
            values = [e * 100 for _, e, _ in limit_points if e is not None]
            ax.step(
                hours,
                values,
                where="post",
                color="#f58518",
                linewidth=1.6,
                label=f"canary {metric} (stage so far)",
            )
        if limit is not None:
            ax.axhline(
                limit * 100, color="#e45756", linestyle="--", label=f"hard limit {limit * 100:g}% (alarm)"
            )
        ax.set_ylabel("canary rate (%)")
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)

    return draw_limit


# -- text ----------------------------------------------------------------------------------------------------
def format_value(spec: RolloutSpec, metric: str, value: float | None, *, signed: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if metric == _SRM:
        return f"{value * 100:+.2f} pt"
    try:
        kind = spec.metric(metric).kind
    except Exception:
        return f"{value:.4g}"
    if kind is MetricKind.MEAN:
        return f"{value:+.3f}" if signed else f"{value:.3f}"
    return f"{value * 100:+.2f} pt" if signed else f"{value * 100:.2f}%"


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.2g}"


def findings_rows(data: ReportData, check: CheckRecord) -> list[list[str]]:
    """The final check's findings as table rows (slices only when they decided something)."""
    rows = []
    for f in _findings(check):
        if f.slice is not None and f.verdict not in {Verdict.HARM}:
            continue
        method = f.method.split(";")[0]
        interval = (
            f"[{format_value(data.spec, f.metric, f.ci_low)}, {format_value(data.spec, f.metric, f.ci_high)}]"
        )
        rows.append(
            [
                f.metric + (f" ({f.slice})" if f.slice else ""),
                method,
                format_value(data.spec, f.metric, f.estimate, signed="hard limit" not in method),
                interval if f.ci_low is not None or f.ci_high is not None else "—",
                _p(f.pvalue),
                f"{f.n_control:,}",
                f"{f.n_canary:,}",
                f"p < {f.threshold:g}"
                if f.metric == _SRM and f.threshold is not None
                else format_value(data.spec, f.metric, f.threshold, signed="hard limit" not in method),
                f.verdict.value.replace("_", " "),
            ]
        )
    return rows


_FINDING_HEADER = [
    "metric",
    "test",
    "estimate",
    "confidence sequence",
    "p",
    "n control",
    "n canary",
    "threshold",
    "verdict",
]


def _summary(data: ReportData, result: RunResult | None) -> list[tuple[str, str]]:
    experiment = data.experiment
    last = data.checks[-1] if data.checks else None
    point = decision_point(data)
    rows = [
        ("service", experiment.service),
        ("candidate", experiment.candidate),
        ("status", experiment.status.value),
        ("latest decision", f"{last.decision}: {last.reason}" if last else "—"),
        ("decided after", f"{point[0]:.1f} simulated hours ({point[1]})" if point else "—"),
        ("checks", str(len(data.checks))),
    ]
    if data.rollback is not None:
        rows.append(("rolled back by", f"{data.rollback.source}: {data.rollback.reason}"))
    if experiment.adjusted_pvalue is not None:
        rows.append(
            ("registry-wide BH", f"p {experiment.pvalue:.3g}, adjusted {experiment.adjusted_pvalue:.3g}")
        )
    if result is not None:
        rows.append(("demo outcome", f"{result.outcome} (expected {result.expected})"))
        rows.append(
            ("wall time", f"{result.wall_seconds:.1f} s for {result.simulated_hours:.1f} simulated hours")
        )
    return rows


def _stage_rows(data: ReportData) -> list[list[str]]:
    rows = []
    end = (
        data.rollback.rolled_back_at
        if data.rollback
        else (data.checks[-1].checked_at if data.checks else None)
    )
    for i, stage in enumerate(data.stages):
        until = data.stages[i + 1].started_at if i + 1 < len(data.stages) else end
        length = f"{(until - stage.started_at).total_seconds() / 3600:.1f} h" if until else "—"
        rows.append(
            [
                str(stage.stage_index + 1),
                f"{stage.weights.control} / {stage.weights.canary}",
                stage.started_at.strftime("%Y-%m-%d %H:%M UTC"),
                f"{data.hours(stage.started_at):.1f} h",
                length,
            ]
        )
    return rows


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #ddd}code{background:#f3f3f3;padding:1px 4px}"""


def write_report(
    registry: Registry,
    experiment_id: str,
    out_dir: Path,
    *,
    scenario: Scenario | None = None,
    result: RunResult | None = None,
) -> Path:
    """Write ``report.md``, ``report.html`` and ``effect.png`` for the experiment into `out_dir`."""
    data = ReportData.read(registry, experiment_id)
    metric = scenario.headline_metric if scenario is not None else headline_metric(data.spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_effect(data, metric, out_dir / PLOT_NAME, result)
    summary = _summary(data, result)
    stages = _stage_rows(data)
    findings = findings_rows(data, data.checks[-1]) if data.checks else []
    events = result.events if result is not None else []
    title = f"canarywise report: {experiment_id}"
    intro = f"**{scenario.title}.** {scenario.story}" if scenario is not None else ""
    reading = (
        f"The plot follows `{metric}`: the line is the estimate (canary − control) at each five-minute "
        "check, the band the anytime-valid confidence sequence the decision uses (valid at every look, so "
        "checking every five minutes does not inflate false alarms). Dotted lines mark the stage changes, "
        "the red line the decision."
    )
    md = [f"# {title}", ""]
    if intro:
        md += [intro, ""]
    md += [
        _markdown_table(["", ""], [list(r) for r in summary]),
        "",
        f"![effect]({PLOT_NAME})",
        "",
        reading,
        "",
    ]
    md += [
        "## Stages",
        "",
        _markdown_table(["stage", "control / canary", "started", "at", "lasted"], stages),
        "",
    ]
    md += ["## The last check", "", _markdown_table(_FINDING_HEADER, findings), ""]
    if events:
        md += ["## What happened", ""] + [f"- {h:5.2f} h — {text}" for h, text in events] + [""]
    if result is not None and result.stand_ins:
        md += [
            "## Local mode",
            "",
            "Resources the local AWS (moto) does not create, and what stood in for them:",
            "",
        ]
        md += [f"- `{kind}`: {why}" for kind, why in sorted(result.stand_ins.items())] + [""]
    (out_dir / "report.md").write_text("\n".join(md))

    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    if scenario is not None:
        parts.append(f"<p><strong>{html.escape(scenario.title)}.</strong> {html.escape(scenario.story)}</p>")
    parts.append(_html_table(["", ""], [list(r) for r in summary]))
    parts.append(f"<p><img src='{PLOT_NAME}' alt='effect over time'></p><p>{html.escape(reading)}</p>")
    parts.append(
        "<h2>Stages</h2>" + _html_table(["stage", "control / canary", "started", "at", "lasted"], stages)
    )
    parts.append("<h2>The last check</h2>" + _html_table(_FINDING_HEADER, findings))
    if events:
        parts.append("<h2>What happened</h2><ul>")
        parts += [f"<li>{h:5.2f} h — {html.escape(text)}</li>" for h, text in events]
        parts.append("</ul>")
    if result is not None and result.stand_ins:
        parts.append("<h2>Local mode</h2><ul>")
        parts += [
            f"<li><code>{html.escape(k)}</code>: {html.escape(v)}</li>"
            for k, v in sorted(result.stand_ins.items())
        ]
        parts.append("</ul>")
    parts.append("</body></html>")
    (out_dir / "report.html").write_text("\n".join(parts))
    return out_dir
