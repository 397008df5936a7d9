"""Simulated 5-minute aggregates of a canary rollout: the traffic schedule and the seeded streams.

The schedule (traffic per tick, the ladder) is `canarywise.simulation.traffic`, shared with `plan`.

The world the benchmark plays:

- 300,000 sessions a day arrive in 5-minute ticks (Poisson counts around a diurnal curve: the evening peak is
  1.35x the mean, the morning trough 0.65x), 2,016 ticks = 7 days from 10:00 on the first day.
- Each session goes to the canary with the share the spec's stage ladder has in force at that tick (5% for the
  first stage's minimum duration, then 25%, then 50% to the end of the horizon: the ladder advancing as soon
  as it is allowed to, so every method sees the same weights at the same time).
- Each session is an escalation with the arm's true rate (constant over time: the comparison is about peeking,
  not about seasonality bias).

Everything is vectorised over replicates: arrays have shape ``(replicates, ticks)``.

Example
-------
>>> from canarywise.spec import load_spec
>>> schedule = ladder_schedule(load_spec("config/mangaassist.yaml"))
>>> schedule.ticks, [float(p) for p in schedule.percents]
(2016, [5.0, 25.0, 50.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from canarywise.simulation.traffic import (
    DAILY_SESSIONS,
    DIURNAL_AMPLITUDE,
    HORIZON_TICKS,
    TICK_SECONDS,
    FloatArray,
    IntArray,
    Schedule,
    diurnal_sessions,
    ladder_schedule,
)

__all__ = [
    "DAILY_SESSIONS",
    "HORIZON_TICKS",
    "TICK_SECONDS",
    "Estimates",
    "FloatArray",
    "IntArray",
    "Scenario",
    "Schedule",
    "Streams",
    "difference_estimates",
    "fixed_split_schedule",
    "ladder_schedule",
    "simulate",
]


def fixed_split_schedule(
    percent: float,
    *,
    tick_seconds: int = TICK_SECONDS,
    horizon_ticks: int = HORIZON_TICKS,
    daily_sessions: float = DAILY_SESSIONS,
    diurnal_amplitude: float = DIURNAL_AMPLITUDE,
) -> Schedule:
    """One stage at ``percent`` for the whole horizon (an A/B test).

    Example
    -------
    >>> float(fixed_split_schedule(50).shares.mean())
    0.5
    """
    return Schedule(
        tick_seconds=tick_seconds,
        percents=(percent,),
        stage_starts=(0,),
        shares=np.full(horizon_ticks, percent / 100.0),
        stage_index=np.zeros(horizon_ticks, dtype=np.int64),
        expected_sessions=diurnal_sessions(horizon_ticks, daily_sessions, diurnal_amplitude, tick_seconds),
    )


@dataclass(frozen=True)
class Scenario:
    """True rates of one metric in each arm, and the MDE the rollout was planned for.

    Example
    -------
    >>> Scenario("harm", "12% -> 14%", 0.12, 0.14, mde=0.02).effect
    0.020000000000000018
    """

    name: str
    label: str
    p_control: float
    p_canary: float
    mde: float

    @property
    def effect(self) -> float:
        return self.p_canary - self.p_control


@dataclass(frozen=True)
class Streams:
    """Per-tick counts, shape ``(replicates, ticks)``: sessions and events in each arm."""

    n_control: IntArray
    x_control: IntArray
    n_canary: IntArray
    x_canary: IntArray

    @property
    def replicates(self) -> int:
        return int(self.n_control.shape[0])

    def cumulative(self) -> Streams:
        """Running totals after each look (pooled over stages)."""
        return Streams(
            *(np.cumsum(a, axis=1) for a in (self.n_control, self.x_control, self.n_canary, self.x_canary))
        )

    def subset(self, rows: slice | IntArray) -> Streams:
        return Streams(self.n_control[rows], self.x_control[rows], self.n_canary[rows], self.x_canary[rows])


def simulate(schedule: Schedule, scenario: Scenario, replicates: int, rng: np.random.Generator) -> Streams:
    """Draw ``replicates`` independent rollouts of per-tick aggregates.

    Sessions per tick are Poisson around the diurnal curve, split Binomially by the share in force (so a
    sample-ratio check sees honest noise), and events are Binomial with each arm's true rate.

    Example
    -------
    >>> s = simulate(fixed_split_schedule(50), Scenario("aa", "A/A", 0.1, 0.1, 0.02), 3,
    ...              np.random.default_rng(1))
    >>> s.n_control.shape
    (3, 2016)
    """
    shape = (replicates, schedule.ticks)
    sessions = rng.poisson(np.broadcast_to(schedule.expected_sessions, shape))
    n_canary = rng.binomial(sessions, np.broadcast_to(schedule.shares, shape))
    n_control = sessions - n_canary
    x_control = rng.binomial(n_control, scenario.p_control)
    x_canary = rng.binomial(n_canary, scenario.p_canary)
    return Streams(
        n_control.astype(np.int64),
        x_control.astype(np.int64),
        n_canary.astype(np.int64),
        x_canary.astype(np.int64),
    )


@dataclass(frozen=True)
class Estimates:
    """The difference canary - control after each look and its (unpooled) variance, shape (R, T)."""

    diff: FloatArray
    variance: FloatArray
    n_total: FloatArray

    @property
    def z(self) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = self.diff / np.sqrt(self.variance)
        return np.where(self.variance > 0, z, 0.0)


def difference_estimates(cumulative: Streams) -> Estimates:
    """Pooled-over-time difference of rates and its Wald variance from cumulative counts.

    Example
    -------
    >>> c = Streams(*(np.array([[v]]) for v in (1000, 120, 1000, 140)))
    >>> e = difference_estimates(c)
    >>> round(float(e.diff[0, 0]), 3), round(float(e.variance[0, 0]), 8)
    (0.02, 0.000226)
    """
    n_c = cumulative.n_control.astype(np.float64)
    n_t = cumulative.n_canary.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_c = np.where(n_c > 0, cumulative.x_control / n_c, 0.0)
        p_t = np.where(n_t > 0, cumulative.x_canary / n_t, 0.0)
        variance = np.where((n_c > 0) & (n_t > 0), p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t, 0.0)
    return Estimates(diff=p_t - p_c, variance=variance, n_total=n_c + n_t)
