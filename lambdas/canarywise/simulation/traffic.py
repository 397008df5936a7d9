"""Simulated traffic: sessions per check interval around a diurnal curve, and the stage ladder's shares.

- ``daily_sessions`` sessions a day arrive in ticks of the spec's check interval (Poisson counts around a
  diurnal curve: the evening peak is 1.35x the mean, the morning trough 0.65x), from 10:00 on the first day.
- ``ladder_schedule`` holds each stage for its minimum duration (the last one to the horizon); a simulation
  that moves the ladder by decisions (`canarywise.simulation.rollout`) reads only the expected sessions.

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
import numpy.typing as npt

from canarywise.spec import RolloutSpec

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

TICK_SECONDS = 300
HORIZON_TICKS = 2016  # 7 days of 5-minute looks
DAILY_SESSIONS = 300_000
DIURNAL_AMPLITUDE = 0.35
START_HOUR = 10.0  # the rollout starts at 10:00, when a team deploys
TICKS_PER_DAY = 86_400 // TICK_SECONDS


@dataclass(frozen=True)
class Schedule:
    """Who gets what share of traffic, tick by tick.

    ``shares[k]`` is the canary's share during tick ``k``; ``stage_index[k]`` the stage in force;
    ``expected_sessions[k]`` the mean number of sessions in the tick (both arms).
    """

    tick_seconds: int
    percents: tuple[float, ...]
    stage_starts: tuple[int, ...]
    shares: FloatArray
    stage_index: IntArray
    expected_sessions: FloatArray

    @property
    def ticks(self) -> int:
        return int(self.shares.size)

    def hours_at(self, look: IntArray | int) -> FloatArray:
        """Hours since the start when look ``look`` (0-based, after tick ``look``'s data) is taken."""
        return (np.asarray(look, dtype=np.float64) + 1.0) * self.tick_seconds / 3600.0

    def look_at_hours(self, hours: float) -> int:
        """The last look taken at or before ``hours`` since the start."""
        return round(hours * 3600 / self.tick_seconds) - 1

    def expected_counts(self) -> tuple[FloatArray, FloatArray]:
        """Mean cumulative sessions (control, canary) after each look: what a planner can know in advance."""
        canary = np.cumsum(self.expected_sessions * self.shares)
        control = np.cumsum(self.expected_sessions * (1.0 - self.shares))
        return control, canary


def diurnal_sessions(
    ticks: int, daily_sessions: float, amplitude: float, tick_seconds: int = TICK_SECONDS
) -> FloatArray:
    """Mean sessions per tick from 10:00 on: peak at 20:00, trough at 08:00 (a shopping assistant is busiest
    in the evening)."""
    hours = START_HOUR + (np.arange(ticks) + 0.5) * tick_seconds / 3600.0
    curve = 1.0 + amplitude * np.sin(2 * np.pi * (hours - 14.0) / 24.0)
    return np.asarray(curve * daily_sessions / (86_400 / tick_seconds), dtype=np.float64)


def ladder_schedule(
    spec: RolloutSpec,
    *,
    horizon_ticks: int = HORIZON_TICKS,
    daily_sessions: float = DAILY_SESSIONS,
    diurnal_amplitude: float = DIURNAL_AMPLITUDE,
) -> Schedule:
    """The spec's stage ladder, each stage held for its minimum duration and the last one to the horizon.

    Example
    -------
    >>> from canarywise.spec import load_spec
    >>> s = ladder_schedule(load_spec("config/mangaassist.yaml"))
    >>> s.stage_starts, float(s.shares[0]), float(s.shares[-1])
    ((0, 48, 336), 0.05, 0.5)
    """
    tick = spec.check_interval
    starts: list[int] = []
    at = 0
    for stage in spec.stages:
        starts.append(at)
        at += stage.min_duration // tick
    shares = np.empty(horizon_ticks)
    stage_index = np.empty(horizon_ticks, dtype=np.int64)
    bounds = [*starts[1:], horizon_ticks]
    for i, (start, end) in enumerate(zip(starts, bounds, strict=True)):
        shares[start:end] = spec.stages[i].percent / 100.0
        stage_index[start:end] = i
    return Schedule(
        tick_seconds=tick,
        percents=tuple(s.percent for s in spec.stages),
        stage_starts=tuple(starts),
        shares=shares,
        stage_index=stage_index,
        expected_sessions=diurnal_sessions(horizon_ticks, daily_sessions, diurnal_amplitude, tick),
    )
