"""The engine's hard-limit backstop on a healthy canary and on a broken one: the rule before and the rule now.

``decision.evidence.hard_limit_finding`` judges the canary's value over the stage in progress against an
absolute limit at every check, once the canary has ``HARD_LIMIT_MIN_UNITS`` units in the stage:

- **before** (``fires_raw``): breached when the observed rate is above the limit — no test. With a 2% limit
  and a 0.3-0.5% baseline, 100 units carry 0.3-0.5 expected errors and 3 errors already breach: a real
  chance, repeated at every look;
- **now** (``fires``, ``exact_breach``): breached when an exact one-sided binomial test rejects "the canary is
  at the limit or better", ``binom.sf(k - 1, n, limit) <= hard_limit_level(spec)``, the level being
  ``HARD_LIMIT_ALPHA`` split over every look of the horizon (so a canary exactly at the limit trips it with
  probability at most ``HARD_LIMIT_ALPHA`` over the whole horizon).

``backstop`` simulates a healthy canary's units and errors over each stage of the shipped ladder, each stage
run to its maximum duration (the most looks a rollout can have), vectorised over rollouts; ``time_to_fire``
how long each rule takes to catch a canary that really is broken. The CloudWatch alarm on the same limit is
in ``bench.alarm``.

Example
-------
>>> from canarywise.spec import load_spec
>>> level = hard_limit_level(load_spec("config/mangaassist.yaml"))  # 0.001 over 2,016 looks
>>> units, errors = np.array([[100, 100]]), np.array([[3, 15]])  # 3% after one look, 9% after two
>>> fires_raw(units, errors, limit=0.02).tolist(), fires(units, errors, limit=0.02, level=level).tolist()
([0], [1])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.methods import NEVER, first_true
from bench.scenarios import FloatArray, IntArray, fixed_split_schedule
from canarywise.decision.evidence import HARD_LIMIT_MIN_UNITS, hard_limit_level
from canarywise.simulation.arrays import exact_breach
from canarywise.spec import RolloutSpec

BoolArray = npt.NDArray[np.bool_]

__all__ = [
    "BackstopRate",
    "backstop",
    "exact_breach",
    "fires",
    "fires_raw",
    "hard_limit_level",
    "stage_units",
    "time_to_fire",
]

# Looks per block in ``fires``: rollouts that already fired drop out between blocks, so a broken canary
# (which fires within the first hours) costs a few blocks of binomial tails, not the whole stage.
_BLOCK = 24


def fires(
    units: IntArray,
    errors: IntArray,
    *,
    limit: float,
    level: float,
    min_units: int = HARD_LIMIT_MIN_UNITS,
) -> IntArray:
    """The first look at which the backstop as it is now fires, per replicate (NEVER if it does not), from
    per-look ``units`` and ``errors`` of one stage (shape ``(replicates, looks)``)."""
    n = np.cumsum(units, axis=-1)
    x = np.cumsum(errors, axis=-1)
    first = np.full(n.shape[0], NEVER, dtype=np.int64)
    for start in range(0, n.shape[1], _BLOCK):
        open_rows = np.flatnonzero(first == NEVER)
        if open_rows.size == 0:
            break
        block = slice(start, start + _BLOCK)
        hit = first_true(
            exact_breach(
                n[open_rows, block], x[open_rows, block], limit=limit, level=level, min_units=min_units
            )
        )
        first[open_rows[hit != NEVER]] = start + hit[hit != NEVER]
    return first


def fires_raw(
    units: IntArray, errors: IntArray, *, limit: float, min_units: int = HARD_LIMIT_MIN_UNITS
) -> IntArray:
    """The first look at which the backstop as it was fires: the cumulative rate over the stage,
    errors / units, above ``limit`` with at least ``min_units`` units."""
    n = np.cumsum(units, axis=-1)
    x = np.cumsum(errors, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return first_true((n >= min_units) & (x / n > limit))


def stage_units(spec: RolloutSpec, daily_units: float) -> list[FloatArray]:
    """Expected canary units per 5-minute tick of each stage, the stages run back to back, each to its maximum
    duration, on the diurnal curve (``daily_units`` a day at 100% traffic)."""
    ticks = [stage.max_duration // spec.check_interval for stage in spec.stages]
    curve = fixed_split_schedule(
        100, tick_seconds=spec.check_interval, horizon_ticks=sum(ticks), daily_sessions=daily_units
    ).expected_sessions
    out, at = [], 0
    for stage, count in zip(spec.stages, ticks, strict=True):
        out.append(curve[at : at + count] * stage.percent / 100.0)
        at += count
    return out


@dataclass(frozen=True)
class BackstopRate:
    """The chance the backstop fires on a healthy canary, per stage, by the rule before and the rule now."""

    baseline: float
    daily_units: float
    raw: tuple[float, ...]  # per stage, the rule before (observed rate > limit)
    exact: tuple[float, ...]  # per stage, the exact test now
    replicates: int

    @staticmethod
    def _rollout(per_stage: tuple[float, ...]) -> float:
        """P(fires in some stage): the stages hold disjoint, independent data."""
        return 1.0 - math.prod(1.0 - p for p in per_stage)

    @property
    def rollout_raw(self) -> float:
        return self._rollout(self.raw)

    @property
    def rollout_exact(self) -> float:
        return self._rollout(self.exact)

    def se(self, p: float) -> float:
        return math.sqrt(p * (1 - p) / self.replicates)


def backstop(
    spec: RolloutSpec,
    baseline: float,
    daily_units: float,
    *,
    limit: float,
    replicates: int,
    rng: np.random.Generator,
    chunk: int = 5000,
) -> BackstopRate:
    """Simulate a healthy canary (true rate ``baseline``) under both rules, stage by stage, on the same
    draws."""
    level = hard_limit_level(spec)
    raw, exact = [], []
    for expected in stage_units(spec, daily_units):
        hits_raw = hits_exact = 0
        for begin in range(0, replicates, chunk):
            size = min(chunk, replicates - begin)
            units = rng.poisson(np.broadcast_to(expected, (size, expected.size)))
            errors = rng.binomial(units, baseline)
            hits_raw += int(np.sum(fires_raw(units, errors, limit=limit) != NEVER))
            hits_exact += int(np.sum(fires(units, errors, limit=limit, level=level) != NEVER))
        raw.append(hits_raw / replicates)
        exact.append(hits_exact / replicates)
    return BackstopRate(baseline, daily_units, tuple(raw), tuple(exact), replicates)


def time_to_fire(
    spec: RolloutSpec,
    true_rate: float,
    daily_units: float,
    *,
    limit: float,
    replicates: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Median hours into stage 1 until the backstop fires on a canary whose real rate is ``true_rate``:
    (the rule before, the rule now); inf when the median rollout is not caught within the stage's maximum
    duration."""
    expected = stage_units(spec, daily_units)[0]
    units = rng.poisson(np.broadcast_to(expected, (replicates, expected.size)))
    errors = rng.binomial(units, true_rate)
    out = []
    for looks in (
        fires_raw(units, errors, limit=limit),
        fires(units, errors, limit=limit, level=hard_limit_level(spec)),
    ):
        hours = np.sort(np.where(looks == NEVER, np.inf, (looks + 1) * spec.check_interval / 3600))
        out.append(float(hours[(hours.size - 1) // 2]))
    return out[0], out[1]
