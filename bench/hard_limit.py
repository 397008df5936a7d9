"""Hard limits on a healthy canary: how often do they fire by chance?

Two rules roll a candidate back on a hard limit without any statistical test:

- **the engine's backstop** (``decision.evidence.hard_limit_finding``): at every 5-minute check, the canary's
  rate over the stage in progress, once it has ``HARD_LIMIT_MIN_UNITS`` (100) units, against the limit;
- **the CloudWatch alarm** (``stacks/alarms.py``): the canary target group's 5xx rate per minute (0 while it
  serves fewer than 100 requests a minute), above the limit in 2 of the last 3 minutes.

Both compare a raw rate with the limit. With a 2% limit and a 0.3-0.5% baseline, 100 units carry 0.3-0.5
expected errors, and 3 errors (3%) already breach: a real chance, repeated at every look. ``backstop``
simulates the canary's units and errors over each stage of the shipped ladder (vectorised); ``alarm`` gives
the alarm's probability exactly, from a Markov chain over the last minutes' breaches.

For comparison, ``backstop`` also reports the same rule with evidence: fire only when the one-sided 99.9%
Clopper-Pearson lower bound of the canary's rate is above the limit.

Example
-------
>>> round(alarm_probability(100, 0.005, limit=0.02, minutes=3), 6)  # 2 of 3 minutes with > 2 errors
0.000591
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import betaincinv
from scipy.stats import binom

from bench.methods import NEVER, first_true
from bench.scenarios import FloatArray, IntArray, ladder_schedule
from canarywise.decision.evidence import HARD_LIMIT_MIN_UNITS
from canarywise.spec import RolloutSpec

# The CloudWatch 5xx alarm of stacks/alarms.py: per-minute rate, 0 below 100 requests, 2 of 3 minutes.
ALARM_MIN_REQUESTS = 100
ALARM_DATAPOINTS, ALARM_PERIODS = 2, 3
# How long into each stage the backstop is simulated: later, the stage holds so many units that a chance
# breach is negligible (``backstop`` reports the bound).
STAGE_HOURS = 24.0
EVIDENCE_LEVEL = 0.001  # the one-sided Clopper-Pearson level of the "with evidence" rule


def fires(
    units: IntArray, errors: IntArray, *, limit: float, min_units: int = HARD_LIMIT_MIN_UNITS
) -> IntArray:
    """The first look at which the backstop fires, per replicate (NEVER if it does not): the cumulative
    rate over the stage, errors / units, above ``limit`` with at least ``min_units`` units."""
    n = np.cumsum(units, axis=-1)
    x = np.cumsum(errors, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return first_true((n >= min_units) & (x / n > limit))


def fires_with_evidence(
    units: IntArray, errors: IntArray, *, limit: float, level: float = EVIDENCE_LEVEL
) -> IntArray:
    """The first look at which the one-sided (1 - level) Clopper-Pearson lower bound of the canary's rate,
    ``Beta(level; x, n - x + 1)``, is above ``limit``."""
    n = np.cumsum(units, axis=-1).astype(np.float64)
    x = np.cumsum(errors, axis=-1).astype(np.float64)
    lower = np.zeros_like(n)
    # The lower bound is below the observed rate: only looks whose rate is above the limit can fire.
    with np.errstate(divide="ignore", invalid="ignore"):
        above = (x > 0) & (x / n > limit)
    lower[above] = betaincinv(x[above], n[above] - x[above] + 1, level)
    return first_true(lower > limit)


def stage_units(spec: RolloutSpec, daily_units: float, *, hours: float = STAGE_HOURS) -> list[FloatArray]:
    """Expected canary units per 5-minute tick for the first ``hours`` of each stage (capped at its maximum
    duration), each stage starting where the shipped ladder starts it (minimum durations, diurnal traffic)."""
    schedule = ladder_schedule(spec, daily_sessions=daily_units, horizon_ticks=4 * 2016)
    out = []
    for index, start in enumerate(schedule.stage_starts):
        ticks = min(round(hours * 3600 / schedule.tick_seconds), spec.stages[index].max_duration // 300)
        share = spec.stages[index].percent / 100.0
        out.append(schedule.expected_sessions[start : start + ticks] * share)
    return out


@dataclass(frozen=True)
class BackstopRate:
    """The chance the backstop fires on a healthy canary, per stage and over the ladder."""

    baseline: float
    daily_units: float
    per_stage: tuple[float, ...]
    with_evidence: tuple[float, ...]
    replicates: int
    tail_bound: float  # P(one look breaching) at the end of the simulated part of each stage, the largest

    @property
    def rollout(self) -> float:
        """P(fires in some stage): the stages hold disjoint, independent data."""
        return 1.0 - math.prod(1.0 - p for p in self.per_stage)

    @property
    def rollout_with_evidence(self) -> float:
        return 1.0 - math.prod(1.0 - p for p in self.with_evidence)

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
    """Simulate a healthy canary (true rate ``baseline``) under the backstop, stage by stage."""
    per_stage, with_evidence, tails = [], [], []
    for expected in stage_units(spec, daily_units):
        hits = evidence_hits = 0
        for begin in range(0, replicates, chunk):
            size = min(chunk, replicates - begin)
            units = rng.poisson(np.broadcast_to(expected, (size, expected.size)))
            errors = rng.binomial(units, baseline)
            hits += int(np.sum(fires(units, errors, limit=limit) != NEVER))
            evidence_hits += int(np.sum(fires_with_evidence(units, errors, limit=limit) != NEVER))
        per_stage.append(hits / replicates)
        with_evidence.append(evidence_hits / replicates)
        n_end = int(expected.sum())
        tails.append(float(binom.sf(math.floor(limit * n_end), n_end, baseline)))
    return BackstopRate(baseline, daily_units, tuple(per_stage), tuple(with_evidence), replicates, max(tails))


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
    (the plain rule, the rule with evidence); inf when the median rollout is not caught in 24 h."""
    expected = stage_units(spec, daily_units)[0]
    units = rng.poisson(np.broadcast_to(expected, (replicates, expected.size)))
    errors = rng.binomial(units, true_rate)
    out = []
    for looks in (fires(units, errors, limit=limit), fires_with_evidence(units, errors, limit=limit)):
        hours = np.sort(np.where(looks == NEVER, np.inf, (looks + 1) * 300 / 3600))
        out.append(float(hours[(hours.size - 1) // 2]))
    return out[0], out[1]


# --- the CloudWatch alarm -----------------------------------------------------------------------------------


def minute_breach_probability(
    requests: int, baseline: float, *, limit: float, min_requests: int = ALARM_MIN_REQUESTS
) -> float:
    """P(one minute's 5xx rate > limit) with ``requests`` requests that minute (0 below ``min_requests``)."""
    if requests < min_requests:
        return 0.0
    # errors / requests > limit  <=>  errors > limit * requests
    return float(binom.sf(math.floor(limit * requests), requests, baseline))


def alarm_probability(
    requests_per_minute: int,
    baseline: float,
    *,
    limit: float,
    minutes: int,
    datapoints: int = ALARM_DATAPOINTS,
    periods: int = ALARM_PERIODS,
) -> float:
    """P(the alarm goes off at least once within ``minutes``): ``datapoints`` of the last ``periods``
    minutes breaching, each minute independently with ``minute_breach_probability``.

    Exact, by a Markov chain whose state is the breach pattern of the last ``periods - 1`` minutes (the
    minutes before the first count as not breaching, as with ``treat_missing_data: notBreaching``).
    """
    q = minute_breach_probability(requests_per_minute, baseline, limit=limit)
    states = list(itertools.product((0, 1), repeat=periods - 1))
    index = {s: i for i, s in enumerate(states)}
    stay: npt.NDArray[np.float64] = np.zeros((len(states), len(states)))  # transitions without an alarm
    for state in states:
        for bit, p in ((0, 1.0 - q), (1, q)):
            if sum(state) + bit >= datapoints:
                continue  # this minute raises the alarm: the mass leaves the chain
            stay[index[state], index[(*state[1:], bit)]] += p
    start = np.zeros(len(states))
    start[index[tuple([0] * (periods - 1))]] = 1.0
    survive = start @ np.linalg.matrix_power(stay, minutes)
    return float(1.0 - survive.sum())
