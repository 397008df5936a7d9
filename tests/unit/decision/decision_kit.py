"""Builders for decision-engine tests (imported as `decision_kit`): specs, stage histories, observations,
and independent reference formulas."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from scipy import optimize, stats
from score_reference import score_z_and_variance

from canarywise.decision.models import MeanAggregate, Observations, ProportionAggregate, StageRecord
from canarywise.spec import RolloutSpec, parse_spec

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)

ESCALATION = {
    "name": "escalation_rate",
    "kind": "proportion",
    "role": "safety",
    "direction": "lower_is_better",
    "margin": 0.01,
    "mde": 0.02,
    "source": {"type": "service", "namespace": "MangaAssist", "metric_name": "Escalation"},
}

BASE_SPEC: dict[str, Any] = {
    "service": "mangaassist",
    "mode": "canary",
    "traffic": {"create_demo": True},
    "stages": [
        {"percent": 5, "min_duration": "4h", "max_duration": "24h"},
        {"percent": 25, "min_duration": "24h", "max_duration": "72h"},
        {"percent": 50, "min_duration": "48h", "max_duration": "96h"},
    ],
    "check_interval": "5m",
    "statistics": {"alpha": 0.05, "power": 0.8, "mde": 0.02, "horizon": "7d", "min_samples_per_arm": 1000},
    "metrics": [ESCALATION],
    "inconclusive_policy": "rollback",
}


def metric(name: str, **fields: Any) -> dict[str, Any]:
    """A proportion guardrail metric from a service source, with `fields` overriding."""
    base = {
        "name": name,
        "kind": "proportion",
        "role": "guardrail",
        "direction": "lower_is_better",
        "source": {"type": "service", "namespace": "MangaAssist", "metric_name": name.title()},
    }
    return {**base, **fields}


def make_spec(metrics: list[dict[str, Any]] | None = None, **overrides: Any) -> RolloutSpec:
    data = copy.deepcopy(BASE_SPEC)
    if metrics is not None:
        data["metrics"] = metrics
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_spec(data)


def stage(
    index: int, started_hours: float, spec: RolloutSpec, ended_hours: float | None = None
) -> StageRecord:
    percent = spec.stages[index].percent
    return StageRecord(
        index=index,
        percent=percent,
        weights={"control": 100 - percent, "canary": percent},
        started_at=T0 + timedelta(hours=started_hours),
        ended_at=None if ended_hours is None else T0 + timedelta(hours=ended_hours),
    )


Cell = tuple[int, int] | tuple[int, float, float]  # (n, successes) or (n, sum, sum_squares)


def make_obs(
    cells: Mapping[tuple[str, int] | tuple[str, int, str | None], tuple[Cell, Cell]],
    now: datetime,
    *,
    latest: Mapping[str, datetime] | None = None,
    assignments: Mapping[tuple[int, str], int] | None = None,
) -> Observations:
    """Observations from ``{(metric, stage[, slice]): ((control...), (canary...))}``; every metric's newest
    datapoint is `now` unless `latest` says otherwise."""
    aggregates = {}
    for key, arms in cells.items():
        name, index = key[0], key[1]
        slice_ = key[2] if len(key) == 3 else None
        for variant, values in zip(("control", "canary"), arms, strict=True):
            agg = ProportionAggregate(*values) if len(values) == 2 else MeanAggregate(*values)
            aggregates[(name, index, variant, slice_)] = agg
    fresh = {key[0]: now for key in cells}
    return Observations.build(aggregates, latest={**fresh, **(latest or {})}, assignments=assignments)


def hours(h: float) -> datetime:
    return T0 + timedelta(hours=h)


# ---- independent references (scipy only; none of canarywise's statistics code) ----------------------------


def reference_tau2(mde: float, alpha: float, power: float, *, two_sided: bool = False) -> float:
    """τ² re-derived independently: V_h from the z-test power formula (two-sided: z_{1-α/2}); r* as the root
    of r − log(1 + r) = 2 log(1/α) by bracketing (the code uses Lambert W); τ² = r* max(V_h, mde²/c(r*)²)."""
    z_alpha = stats.norm.ppf(1 - alpha / 2) if two_sided else stats.norm.ppf(1 - alpha)
    v_h = (mde / (z_alpha + stats.norm.ppf(power))) ** 2
    r = optimize.brentq(lambda r: r - math.log1p(r) - 2 * math.log(1 / alpha), 1e-6, 1e4, xtol=1e-14)
    c2 = (1 + r) / r * (2 * math.log(1 / alpha) + math.log1p(r))
    return float(r * max(v_h, mde**2 / c2))


def ac_variance(x: int, n: int) -> float:
    """Agresti-Caffo adjusted variance of one rate: p = (x+1)/(n+2), p(1-p)/n."""
    p = (x + 1) / (n + 2)
    return p * (1 - p) / n


def null_variance(x_c: int, n_c: int, x_t: int, n_t: int, null: float) -> float:
    """The variance a one-sided test of p_t − p_c = null uses: the larger of the one at the rates that
    maximise the likelihood under H0 (Farrington-Manning; maximised numerically by scipy in
    `score_reference`; the pooled one at 0) and the Agresti-Caffo one at the observed rates."""
    return max(
        score_z_and_variance(x_c, n_c, x_t, n_t, null)[1], ac_variance(x_c, n_c) + ac_variance(x_t, n_t)
    )


def one_sided_pvalue(z: float, ratio: float) -> float:
    """Half-normal mixture SPRT p-value for H1: diff > null (Johari et al.; Howard et al.), by hand:
    Λ = 2 Φ(z √(r/(1+r))) · (1+r)^(-1/2) · exp(r z² / (2 (1+r)))."""
    lam = 2 * stats.norm.cdf(z * math.sqrt(ratio / (1 + ratio))) / math.sqrt(1 + ratio)
    lam *= math.exp(ratio * z * z / (2 * (1 + ratio)))
    return min(1.0, 1 / lam)


def two_sided_radius(variance: float, tau2: float, alpha: float) -> float:
    """Half-width of the normal-mixture confidence sequence (Robbins 1970; Johari et al. 2022, eq. 11):
    sqrt(V (V + τ²) / τ² · (2 log(1/α) + log((V + τ²)/V)))."""
    return math.sqrt(
        variance
        * (variance + tau2)
        / tau2
        * (2 * math.log(1 / alpha) + math.log((variance + tau2) / variance))
    )
