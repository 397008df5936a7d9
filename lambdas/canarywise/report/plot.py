"""The headline metric's effect and confidence sequence over time as a PNG (matplotlib; CLI and demo only).

The HTML report draws every decisive metric itself (inline SVG); this plot is the picture for the Markdown
report and the docs. One metric (the spec's safety metric, or the A/B primary one): the estimate (canary −
control) at each check, the anytime-valid confidence sequence around it, the thresholds the decision rule
compares it with, the stage changes and the decision; a second panel when a hard-limit alarm or a sample
ratio mismatch decided instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canarywise.decision.models import SRM_FINDING, Verdict
from canarywise.report.data import EffectPoint, ReportData, decision_point, effect_series
from canarywise.report.data import findings as _findings
from canarywise.spec import AlbSource, Direction, MetricKind, MetricRole, RolloutSpec

if TYPE_CHECKING:
    from canarywise.demo.local_run import RunResult

_SRM = SRM_FINDING


def _scale(spec: RolloutSpec, metric: str) -> tuple[float, str]:
    """Plot proportions in percentage points, means in their own units."""
    kind = spec.metric(metric).kind
    return (1.0, "") if kind is MetricKind.MEAN else (100.0, " (percentage points)")


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
    # The candidate's own hard-limit alarm (alarm names end in "-<metric>-hard-limit-<slot>").
    suffix = f"-{metric}-hard-limit-{data.experiment.candidate_slot}"
    alarm = next((name for name in (result.alarm_values if result else {}) if name.endswith(suffix)), None)

    def draw_limit(ax: Any) -> None:
        if result is not None and alarm is not None:
            # What the alarm compared with its threshold, minute by minute: for a 5xx limit that is a
            # z-statistic (the 5xx count's excess over what the limit allows, in standard errors), not a
            # rate. A minute without a datapoint is drawn at 0 (the alarm treats it as not breaching).
            per_minute = result.alarm_values[alarm]
            ax.step(
                [h for h, _ in per_minute],
                [v or 0.0 for _, v in per_minute],
                where="post",
                color="#f58518",
                linewidth=1.0,
                label=f"{alarm.removeprefix('canarywise-')}: the alarm's statistic per minute",
            )
            threshold = result.alarm_thresholds.get(alarm)
            if threshold is not None:
                ax.axhline(threshold, color="#e45756", linestyle="--", label=f"alarm threshold {threshold:g}")
            source = data.spec.metric(metric).source
            is_5xx = isinstance(source, AlbSource) and source.metric == "http_5xx"
            ax.set_ylabel("5xx excess over\nthe limit (z)" if is_5xx else "alarm statistic")
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
                ax.axhline(limit * 100, color="#e45756", linestyle="--", label=f"hard limit {limit * 100:g}%")
            ax.set_ylabel("canary rate (%)")
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)

    return draw_limit
