"""The CloudWatch alarm on the canary's 5xx (``stacks/alarms.py``): the rule before and the rule now, exactly.

The alarm looks at one-minute datapoints of the canary target group and goes off when 2 of the last 3 breach
(missing minutes count as not breaching). A minute is evaluated only with at least
``MIN_REQUESTS_PER_MINUTE`` requests (the math expression is 0 below that). A minute breaches:

- **before** (``RATE``): when its 5xx rate, errors / requests, is above the line;
- **now** (``Z``): when the z-statistic of its 5xx count against the line,
  ``(errors - line * requests) / sqrt(line * (1 - line) * requests)``, is at least ``ALARM_Z`` (3.09, the
  one-sided 0.1% normal tail).

The line is the hard limit for the alarm that rolls back, half of it for the "approaching" warning. Given a
minute's requests, its breach is binomial; ``alarm_probability`` carries the breach pattern of the last two
minutes through a Markov chain, minute by minute, so the chance of the alarm going off over a day, a stage
ladder or a week is exact (minutes independent, requests per minute Poisson around the diurnal curve, or
fixed).

Example
-------
>>> # 100 requests a minute against a 2% line: before, 3 errors breached; now it takes 7
>>> # (2 + 3.09 * sqrt(0.02 * 0.98 * 100) = 6.33)
>>> breach_counts(np.array([99, 100]), 0.02, RATE).tolist(), breach_counts(np.array([100]), 0.02, Z).tolist()
([inf, 3.0], [7.0])
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.stats import binom, poisson

from bench.scenarios import FloatArray, IntArray, fixed_split_schedule
from canarywise.spec import RolloutSpec
from stacks.alarms import (
    ALARM_DATAPOINTS,
    ALARM_PERIODS,
    ALARM_Z,
    APPROACHING_FRACTION,
    MIN_REQUESTS_PER_MINUTE,
)

__all__ = [
    "APPROACHING",
    "DATAPOINTS",
    "PERIODS",
    "RATE",
    "Z",
    "alarm_curve",
    "alarm_probability",
    "breach_counts",
    "fixed_alarm_probability",
    "ladder_alarm_probability",
    "ladder_requests",
    "median_minutes_to_alarm",
    "minute_probability",
    "poisson_minute_probability",
]

RATE, Z = "rate", "z"  # the minute's breach rule: before / now
# The stack's own alarm shape (stacks/alarms.py): DATAPOINTS of the last PERIODS minutes, and the
# "approaching" warning at APPROACHING x the hard limit.
DATAPOINTS, PERIODS = ALARM_DATAPOINTS, ALARM_PERIODS
APPROACHING = APPROACHING_FRACTION


def _breaches(errors: FloatArray, requests: FloatArray, line: float, rule: str) -> npt.NDArray[np.bool_]:
    """Whether a minute with ``errors`` of ``requests`` breaches, computed as the alarm's math does it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if rule == RATE:
            value = errors / requests
            return np.asarray(value > line)
        value = (errors - line * requests) / np.sqrt(line * (1 - line) * requests)
        return np.asarray(value >= ALARM_Z)


def breach_counts(requests: IntArray, line: float, rule: str) -> FloatArray:
    """The fewest 5xx that make a minute of ``requests`` requests breach (inf below the request floor or
    when even all of them would not).

    From the real-valued crossing point, then settled by evaluating the breach itself on the integers
    around it (the rule is monotone in the count), so rounding cannot move the threshold by one.
    """
    if rule not in (RATE, Z):
        raise ValueError(f"`rule` must be 'rate' or 'z', found {rule!r}")
    m = np.asarray(requests, dtype=np.float64)
    cross = line * m if rule == RATE else line * m + ALARM_Z * np.sqrt(line * (1 - line) * m)
    base = np.floor(cross) - 1
    out = np.full(m.shape, np.inf)
    for step in (3, 2, 1, 0):  # downwards: the smallest breaching count is kept
        k = base + step
        ok = (k >= 0) & (k <= m) & _breaches(k, m, line, rule)
        out = np.where(ok, k, out)
    return np.asarray(np.where(m >= MIN_REQUESTS_PER_MINUTE, out, np.inf), dtype=np.float64)


def minute_probability(requests: IntArray, rate: float, line: float, rule: str) -> FloatArray:
    """P(a minute breaches) with ``requests`` requests and a true 5xx rate ``rate``."""
    k = breach_counts(requests, line, rule)
    finite = np.isfinite(k)
    out = np.zeros(k.shape)
    out[finite] = binom.sf(k[finite] - 1, np.asarray(requests)[finite], rate)
    return out


def poisson_minute_probability(mean_requests: FloatArray, rate: float, line: float, rule: str) -> FloatArray:
    """P(a minute breaches) when its requests are Poisson with mean ``mean_requests`` (elementwise)."""
    lam = np.asarray(mean_requests, dtype=np.float64)
    top = int(poisson.isf(1e-15, max(float(lam.max()), 1.0))) + 1
    counts = np.arange(MIN_REQUESTS_PER_MINUTE, max(top, MIN_REQUESTS_PER_MINUTE) + 1)
    if counts.size == 0:
        return np.zeros(lam.shape)
    q = minute_probability(counts, rate, line, rule)
    out = np.zeros(lam.shape)
    for value in np.unique(lam):  # the diurnal curve repeats each mean five times (one per minute of a tick)
        out[lam == value] = float(poisson.pmf(counts, value) @ q)
    return out


def alarm_curve(breach: Sequence[float] | FloatArray) -> FloatArray:
    """P(the alarm has gone off by the end of each minute), the minutes' breach probabilities ``breach``
    (``DATAPOINTS`` of the last ``PERIODS`` minutes breaching).

    Exact, by a Markov chain whose state is the breach pattern of the last ``PERIODS - 1`` minutes (the
    minutes before the first count as not breaching, as with ``treat_missing_data: notBreaching``); the
    mass of every path that raises the alarm leaves the chain.

    Example
    -------
    >>> [round(p, 6) for p in alarm_curve([0.1, 0.1, 0.1]).tolist()]  # 2 of 3: from the second minute on
    [0.0, 0.01, 0.028]
    """
    states = list(itertools.product((0, 1), repeat=PERIODS - 1))
    moves = [
        (i, states.index((*state[1:], bit)), bit)
        for i, state in enumerate(states)
        for bit in (0, 1)
        if sum(state) + bit < DATAPOINTS
    ]
    # Plain floats: a 4-state chain stepped ~10,000 times is faster without numpy's per-call overhead.
    alive = [1.0 if not any(s) else 0.0 for s in states]
    fired = []
    for q in np.asarray(breach, dtype=np.float64).tolist():
        step = [0.0] * len(states)
        for src, dst, bit in moves:
            step[dst] += alive[src] * (q if bit else 1.0 - q)
        alive = step
        fired.append(1.0 - math.fsum(alive))
    return np.asarray(fired, dtype=np.float64)


def alarm_probability(breach: Sequence[float] | FloatArray) -> float:
    """P(the alarm goes off at least once) over the minutes whose breach probabilities are ``breach``."""
    curve = alarm_curve(breach)
    return float(curve[-1]) if curve.size else 0.0


def median_minutes_to_alarm(
    requests_per_minute: int, rate: float, line: float, rule: str, *, horizon: int = 7 * 1440
) -> float:
    """The median minute at which the alarm first goes off, with a fixed number of requests every minute and
    a true 5xx rate ``rate``; inf if the alarm is less likely than not within ``horizon`` minutes."""
    q = float(minute_probability(np.array([requests_per_minute]), rate, line, rule)[0])
    reached = np.flatnonzero(alarm_curve(np.full(horizon, q)) >= 0.5)
    return float(reached[0] + 1) if reached.size else math.inf


def ladder_requests(spec: RolloutSpec, daily_requests: float) -> FloatArray:
    """Mean canary requests in each minute of the stage ladder, the stages run back to back to their maximum
    durations (``daily_requests`` a day at 100% traffic, on the diurnal curve)."""
    ticks = [stage.max_duration // spec.check_interval for stage in spec.stages]
    per_tick = fixed_split_schedule(
        100, tick_seconds=spec.check_interval, horizon_ticks=sum(ticks), daily_sessions=daily_requests
    ).expected_sessions
    share = np.repeat([stage.percent / 100.0 for stage in spec.stages], ticks)
    minutes_per_tick = spec.check_interval // 60
    return np.asarray(np.repeat(per_tick * share / minutes_per_tick, minutes_per_tick), dtype=np.float64)


def ladder_alarm_probability(
    spec: RolloutSpec, daily_requests: float, rate: float, line: float, rule: str
) -> float:
    """P(the alarm goes off at least once) while the canary runs the ladder (``ladder_requests``, Poisson
    requests each minute) with a true 5xx rate ``rate``."""
    lam = ladder_requests(spec, daily_requests)
    return alarm_probability(poisson_minute_probability(lam, rate, line, rule))


def fixed_alarm_probability(
    requests_per_minute: int, rate: float, line: float, rule: str, minutes: int
) -> float:
    """P(the alarm goes off at least once within ``minutes``) with ``requests_per_minute`` every minute."""
    q = float(minute_probability(np.array([requests_per_minute]), rate, line, rule)[0])
    return alarm_probability(np.full(minutes, q))
