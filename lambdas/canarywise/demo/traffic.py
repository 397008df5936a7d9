"""Who arrives, and on which target group: sessions over the day and the ALB's sticky weighted forward.

The ALB forwards a user without a stickiness cookie by the rule's weights and gives them a cookie for that
target group; a user with a cookie goes back to the same target group while the forward action names it.
So after a ramp the candidate's share of *sessions* lags its weight: returning users still hold the cookies
handed out under the old weights. A forward action that names one group sends every request there, cookie
or not (stickiness is off then), and from then on those users are that group's: a rollback that leaves the
candidate's group out of the action takes every user off the candidate at once.

This module keeps, per target group (*slot*), the cookie-holding users who still come back (an exponentially
decaying pool), and splits each tick's sessions into returning ones (by that pool, among the slots the
forward names) and new ones (by the weights in force).

Example
-------
>>> import numpy as np
>>> profile = TrafficProfile()
>>> pool = StickyPool.steady_state(profile, live="blue", idle="green", tick_seconds=300)
>>> split = pool.split(np.random.default_rng(1), 1000, forward={"blue": 95, "green": 5}, idle="green")
>>> sum(split.sessions.values()) == 1000
True
>>> pool.split(np.random.default_rng(1), 1000, forward={"blue": 100}, idle="green").sessions["green"]
0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np


@dataclass(frozen=True)
class TrafficProfile:
    """The service's traffic: volume, daily cycle, how often users come back, what they ask for.

    Attributes
    ----------
    sessions_per_day
        Mean sessions a day (MangaAssist: ~300,000).
    peak_hour_utc, seasonality
        The daily cycle: ``1 + seasonality * cos(2*pi*(hour - peak_hour_utc)/24)`` times the mean rate.
    returning_share
        Share of sessions from users who already hold a stickiness cookie.
    return_hours
        Mean time (hours) a user keeps coming back; their cookie matters only while they do.
    requests_per_session
        Mean requests a session makes (each one an ALB request).
    intents
        Share of sessions per intent (the slice dimension of the escalation rate).
    """

    sessions_per_day: float = 300_000.0
    peak_hour_utc: float = 20.0
    seasonality: float = 0.5
    returning_share: float = 0.4
    return_hours: float = 24.0
    requests_per_session: float = 3.0
    intents: dict[str, float] = field(
        default_factory=lambda: {"order_status": 0.30, "returns": 0.15, "recommendation": 0.35, "other": 0.20}
    )

    def expected_sessions(self, moment: datetime, tick_seconds: int) -> float:
        """Mean sessions in the tick starting at `moment`."""
        hour = moment.hour + moment.minute / 60
        cycle = 1 + self.seasonality * math.cos(2 * math.pi * (hour - self.peak_hour_utc) / 24)
        return self.sessions_per_day * tick_seconds / 86_400 * cycle

    def daily_phase(self, moment: datetime) -> float:
        """Where `moment` sits in the daily cycle, in [-1, 1] (1 at the peak hour)."""
        hour = moment.hour + moment.minute / 60
        return math.cos(2 * math.pi * (hour - self.peak_hour_utc) / 24)


@dataclass(frozen=True)
class Split:
    """One tick's sessions per slot; `new` are the sessions placed by the weights (no cookie that counts)."""

    sessions: dict[str, int]
    new: dict[str, int]


@dataclass
class StickyPool:
    """Cookie-holding users who still return, per slot (a decaying mass, not individuals).

    Parameters
    ----------
    mass
        Returning-user mass per slot.
    decay
        Share of the mass still returning after one tick.
    returning_share
        Share of a tick's sessions that come from the pool.
    misroute
        Share of the users the weights send to the idle slot (the candidate) that land on the live slot
        instead (a broken assignment: 0 in a healthy system).
    """

    mass: dict[str, float]
    decay: float
    returning_share: float
    misroute: float = 0.0

    @classmethod
    def steady_state(
        cls,
        profile: TrafficProfile,
        *,
        live: str,
        idle: str,
        tick_seconds: int,
        stickiness_seconds: int = 7 * 86_400,
    ) -> StickyPool:
        """The pool before the first rollout: every returning user is on the live slot."""
        lifetime = min(profile.return_hours * 3600, stickiness_seconds)
        decay = math.exp(-tick_seconds / lifetime)
        new_per_tick = profile.sessions_per_day * tick_seconds / 86_400 * (1 - profile.returning_share)
        return cls(
            mass={live: new_per_tick / (1 - decay), idle: 0.0},
            decay=decay,
            returning_share=profile.returning_share,
        )

    def split(
        self, rng: np.random.Generator, sessions: int, *, forward: Mapping[str, int], idle: str
    ) -> Split:
        """Split `sessions` over the slots `forward` names: returning ones by the pool, new ones by weight.

        A cookie for a slot the forward does not name counts for nothing: its holders are placed by the
        weights, and from then on belong to the slot they reached.
        """
        named = [slot for slot, weight in forward.items() if weight > 0]
        if not named:
            raise ValueError(f"`forward` must name a slot with a weight above 0, found {dict(forward)!r}")
        self._forget_unnamed(named, forward)
        total_mass = sum(self.mass.values())
        returning = int(rng.binomial(sessions, self.returning_share)) if total_mass > 0 else 0
        by_pool = [self.mass.get(slot, 0.0) / total_mass for slot in named] if total_mass > 0 else None
        back = rng.multinomial(returning, by_pool) if by_pool else np.zeros(len(named), dtype=int)
        total_weight = sum(forward[slot] for slot in named)
        placed = rng.multinomial(sessions - returning, [forward[slot] / total_weight for slot in named])
        new = dict(zip(named, (int(n) for n in placed), strict=True))
        if self.misroute > 0 and new.get(idle) and len(named) > 1:
            lost = int(rng.binomial(new[idle], self.misroute))
            live = next(slot for slot in named if slot != idle)
            new[idle] -= lost
            new[live] += lost
        for slot in set(self.mass) | set(named):
            self.mass[slot] = self.mass.get(slot, 0.0) * self.decay + new.get(slot, 0)
        returned = dict(zip(named, (int(n) for n in back), strict=True))
        slots = list(dict.fromkeys([*self.mass, *named]))
        return Split(
            sessions={slot: returned.get(slot, 0) + new.get(slot, 0) for slot in slots},
            new={slot: new.get(slot, 0) for slot in slots},
        )

    def _forget_unnamed(self, named: list[str], forward: Mapping[str, int]) -> None:
        """Move the mass of slots the forward does not name to the named ones (by weight)."""
        orphaned = sum(mass for slot, mass in self.mass.items() if slot not in named)
        if not orphaned:
            return
        total_weight = sum(forward[slot] for slot in named)
        for slot in list(self.mass):
            if slot not in named:
                self.mass[slot] = 0.0
        for slot in named:
            self.mass[slot] = self.mass.get(slot, 0.0) + orphaned * forward[slot] / total_weight
