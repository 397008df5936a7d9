"""A/B mode: does the primary effect hold on every day, and from the first days to the last?

A novelty effect (users click the new thing because it is new) or a primacy effect (they need time to get
used to it) makes the first days unrepresentative; a weekday effect can reverse on weekends. The engine
keeps **day marks**: at the first look of every new day of the stage in progress (24 h since the stage
began, then 48 h, …) it stores the primary metric's cumulative per-arm aggregates in the decision's data
(``summaries.temporal.marks``); the significance check hands the latest check's marks to the next look
(`marks_from`). Consecutive marks give one window per day of the test — disjoint units, so independent
estimates — each labelled with the weekday it began on (UTC). Then, with `canarywise.stats.temporal`:

- **sign differs across days**: a day whose effect is proven (two-sided z, Holm across the days) on the side
  opposite to the overall effect; Cochran's Q across the days is reported next to it;
- **decay**: the first half of the days against the second half (inverse-variance pooled), H0 "the late
  effect is at least ``temporal.decay_fraction`` (default half) of the early one"; rejected = it faded.

Each flag is tested at ``temporal.alpha / 2`` (Bonferroni over the two). They are fixed-sample tests read at
every look, so over many looks a steady effect can be flagged more often than that; a flag only ever holds a
promotion back (``temporal.hold_promote``, default true: PROMOTE becomes HOLD with the flag as the reason,
INCONCLUSIVE at the stage's maximum), it never promotes or rolls back anything. Only complete days are
tested, from ``temporal.min_days`` (default 2) of them on; the day in progress is reported only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from canarywise.decision.context import EvaluationContext
from canarywise.decision.estimates import stage_difference
from canarywise.decision.evidence import format_value
from canarywise.decision.models import Aggregate, MeanAggregate, ProportionAggregate, Variant
from canarywise.spec import Direction, Metric
from canarywise.stats.temporal import cochran_q, decay_test, window_tests

__all__ = ["DAY", "TemporalReview", "marks_from", "review_temporal"]

DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class TemporalReview:
    """The temporal checks at one look: the flags (reasons; empty = none) and the data for the record."""

    flags: list[str]
    summary: dict[str, Any]


def marks_from(details: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The day marks stored in a check record's details (``[]`` when there are none)."""
    if not details:
        return []
    temporal = (details.get("summaries") or {}).get("temporal") or {}
    return list(temporal.get("marks") or [])


def _to_dict(aggregate: Aggregate) -> dict[str, Any]:
    if isinstance(aggregate, ProportionAggregate):
        return {"n": aggregate.n, "successes": aggregate.successes}
    return {
        "n": aggregate.n,
        "sum": aggregate.sum,
        "sum_squares": aggregate.sum_squares,
        "shift": aggregate.shift,
    }


def _from_dict(data: Mapping[str, Any]) -> Aggregate:
    if "successes" in data:
        return ProportionAggregate(int(data["n"]), int(data["successes"]))
    return MeanAggregate(int(data["n"]), float(data["sum"]), float(data["sum_squares"]), float(data["shift"]))


def _minus(later: Aggregate, earlier: Aggregate | None) -> Aggregate | None:
    """The units between two cumulative aggregates (None when they cannot be subtracted)."""
    if earlier is None:
        return later
    if isinstance(later, ProportionAggregate) and isinstance(earlier, ProportionAggregate):
        n, successes = later.n - earlier.n, later.successes - earlier.successes
        return ProportionAggregate(n, successes) if 0 <= successes <= n else None
    if (
        isinstance(later, MeanAggregate)
        and isinstance(earlier, MeanAggregate)
        and later.shift == earlier.shift
    ):
        n = later.n - earlier.n
        squares = later.sum_squares - earlier.sum_squares
        return (
            MeanAggregate(n, later.sum - earlier.sum, squares, later.shift)
            if n >= 0 and squares >= 0
            else None
        )
    return None


def _marks(
    ctx: EvaluationContext, metric: Metric, previous: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """This stage's marks, with a new one when this look is the first of a new day."""
    index = ctx.current.index
    marks = [dict(m) for m in previous if m.get("stage") == index]
    control = ctx.arm(metric.name, index, Variant.CONTROL)
    canary = ctx.arm(metric.name, index, Variant.CANARY)
    if (
        control is not None
        and canary is not None
        and len(marks) < int(ctx.stage_elapsed // DAY.total_seconds())
    ):
        marks.append(
            {
                "at": ctx.now.isoformat(),
                "stage": index,
                "control": _to_dict(control),
                "canary": _to_dict(canary),
            }
        )
    return marks


def _windows(
    ctx: EvaluationContext, metric: Metric, marks: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One window per pair of consecutive marks (from the stage's start), then the day in progress."""
    index = ctx.current.index
    points: list[tuple[datetime, Aggregate | None, Aggregate | None]] = [
        (datetime.fromisoformat(m["at"]), _from_dict(m["control"]), _from_dict(m["canary"])) for m in marks
    ]
    points.append(
        (ctx.now, ctx.arm(metric.name, index, Variant.CONTROL), ctx.arm(metric.name, index, Variant.CANARY))
    )
    windows: list[dict[str, Any]] = []
    start, before_control, before_canary = ctx.current.started_at, None, None
    for number, (end, control, canary) in enumerate(points):
        if control is None or canary is None:
            break
        window_control, window_canary = _minus(control, before_control), _minus(canary, before_canary)
        difference = (
            stage_difference(window_control, window_canary)
            if window_control is not None and window_canary is not None
            else None
        )
        windows.append(
            {
                "day": number + 1,
                "weekday": start.strftime("%a"),
                "start": start.isoformat(),
                "end": end.isoformat(),
                "complete": number < len(marks),
                "estimate": difference[0] if difference else None,
                "variance": difference[1] if difference else None,
                "n_control": window_control.n if window_control else 0,
                "n_canary": window_canary.n if window_canary else 0,
            }
        )
        start, before_control, before_canary = end, control, canary
    return windows


def _pool(windows: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    weight = math.fsum(1.0 / w["variance"] for w in windows)
    return math.fsum(w["estimate"] / w["variance"] for w in windows) / weight, 1.0 / weight


def review_temporal(
    ctx: EvaluationContext, metric: Metric, previous: Sequence[Mapping[str, Any]]
) -> TemporalReview:
    """The day marks, the windows, and the flags (see the module docs) for the primary `metric`."""
    policy = ctx.spec.temporal
    marks = _marks(ctx, metric, previous)
    windows = _windows(ctx, metric, marks)
    days = [w for w in windows if w["complete"] and w["variance"]]
    summary: dict[str, Any] = {"metric": metric.name, "marks": marks, "windows": windows, "flags": []}
    if len(days) < policy.min_days:
        summary["status"] = f"{len(days)} complete day(s), the checks need {policy.min_days}"
        return TemporalReview([], summary)
    level = policy.alpha / 2
    estimates = [w["estimate"] for w in days]
    variances = [w["variance"] for w in days]
    overall, _ = _pool(days)
    q = cochran_q(estimates, variances)
    per_day = window_tests(estimates, variances)
    for window, z, adjusted in zip(days, per_day.statistic, per_day.adjusted, strict=True):
        window["z"], window["holm_pvalue"] = z, adjusted
    half = len(days) // 2
    early, late = days[:half], days[len(days) - half :]
    (early_e, early_v), (late_e, late_v) = _pool(early), _pool(late)
    decay = decay_test(early_e, early_v, late_e, late_v, fraction=policy.decay_fraction)
    summary |= {
        "heterogeneity": {"q": q.statistic, "df": q.df, "pvalue": q.pvalue, "method": q.method},
        "decay": {
            "early_days": [w["day"] for w in early],
            "late_days": [w["day"] for w in late],
            "early": early_e,
            "late": late_e,
            "ratio": decay.ratio,
            "z": decay.statistic,
            "pvalue": decay.pvalue,
            "fraction": policy.decay_fraction,
            "method": decay.method,
        },
        "level": level,
    }
    flags: list[str] = []
    opposite = [
        w
        for w in days
        if w["holm_pvalue"] <= level
        and overall != 0
        and math.copysign(1, w["estimate"]) != math.copysign(1, overall)
    ]
    if opposite:
        named = ", ".join(
            f"day {w['day']} ({w['weekday']}) {format_value(metric, w['estimate'], signed=True)} "
            f"(Holm p {w['holm_pvalue']:.2g})"
            for w in opposite
        )
        flags.append(
            f"{metric.name}'s effect changes sign across days: {named} against "
            f"{format_value(metric, overall, signed=True)} over all {len(days)} days (Cochran's Q "
            f"{q.statistic:.3g}, p {q.pvalue:.2g}; Holm across days at {level:g})"
        )
    if decay.pvalue <= level:
        flags.append(
            f"{metric.name}'s effect decays: days {early[0]['day']}-{early[-1]['day']} "
            f"{format_value(metric, early_e, signed=True)}, days {late[0]['day']}-{late[-1]['day']} "
            f"{format_value(metric, late_e, signed=True)} ({_ratio(decay.ratio)} of it; proven below "
            f"{policy.decay_fraction:.0%} of the early effect, one-sided p {decay.pvalue:.2g} <= {level:g}): "
            f"a novelty effect that wears off{_direction_note(metric, early_e)}"
        )
    summary["flags"] = flags
    return TemporalReview(flags, summary)


def _ratio(ratio: float) -> str:
    return "n/a" if not math.isfinite(ratio) else f"{ratio:.0%}"


def _direction_note(metric: Metric, early: float) -> str:
    better = (early > 0) == (metric.direction is Direction.HIGHER_IS_BETTER)
    return "" if better else " (here: an early harm that fades, a primacy effect)"
