"""Who arrives, and on which variant: sessions over the day and the ALB's sticky weighted split.

The ALB forwards a user without a stickiness cookie by the rule's weights and gives them a cookie for that
target group; a user with a cookie goes back to the same target group until it expires. So after a ramp the
candidate's share of *sessions* lags its weight: returning users still hold the cookies handed out under the
old weights. This module keeps, per variant, the cookie-holding users who still come back (an exponentially
decaying pool), and splits each tick's sessions into returning ones (by that pool) and new ones (by the
weights in force).

Example
-------
>>> import numpy as np
>>> from datetime import UTC, datetime
>>> profile = TrafficProfile()
>>> pool = StickyPool.steady_state(profile, tick_seconds=300)
>>> split = pool.split(np.random.default_rng(1), 1000, canary_percent=5.0)
>>> split.sessions.sum() == 1000
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

CONTROL, CANARY = 0, 1  # index of each variant in the arrays below


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
    """One tick's sessions per variant ([control, canary]); `new` are first visits (assigned by weight)."""

    sessions: np.ndarray
    new: np.ndarray


@dataclass
class StickyPool:
    """Cookie-holding users who still return, per variant (a decaying mass, not individuals).

    Parameters
    ----------
    mass
        Returning-user mass per variant ([control, canary]).
    decay
        Share of the mass still returning after one tick.
    returning_share
        Share of a tick's sessions that come from the pool.
    misroute
        Share of the users the weights send to the canary that land on control instead (a broken
        assignment: 0 in a healthy system).
    """

    mass: np.ndarray
    decay: float
    returning_share: float
    misroute: float = 0.0

    @classmethod
    def steady_state(
        cls, profile: TrafficProfile, *, tick_seconds: int, stickiness_seconds: int = 7 * 86_400
    ) -> StickyPool:
        """The pool before the rollout: every returning user holds a control cookie."""
        lifetime = min(profile.return_hours * 3600, stickiness_seconds)
        decay = math.exp(-tick_seconds / lifetime)
        new_per_tick = profile.sessions_per_day * tick_seconds / 86_400 * (1 - profile.returning_share)
        return cls(
            mass=np.array([new_per_tick / (1 - decay), 0.0]),
            decay=decay,
            returning_share=profile.returning_share,
        )

    def split(self, rng: np.random.Generator, sessions: int, *, canary_percent: float) -> Split:
        """Split `sessions` into control/canary: returning ones by the pool, new ones by the weights."""
        total_mass = float(self.mass.sum())
        returning = int(rng.binomial(sessions, self.returning_share)) if total_mass > 0 else 0
        returning_canary = int(rng.binomial(returning, self.mass[CANARY] / total_mass)) if returning else 0
        new_total = sessions - returning
        new_canary = int(rng.binomial(new_total, canary_percent / 100))
        if self.misroute > 0 and new_canary:
            new_canary -= int(rng.binomial(new_canary, self.misroute))
        new = np.array([new_total - new_canary, new_canary])
        self.mass = self.mass * self.decay + new
        return Split(
            sessions=np.array([returning - returning_canary, returning_canary]) + new,
            new=new,
        )
