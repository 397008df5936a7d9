"""Simulated production traffic for the drift monitor: hourly counts with daily and weekly cycles; a drift.

MangaAssist (~300,000 chats a day) in production: the volume, the intent mix and the thumbs-down rate follow
the hour of the day and the day of the week (more recommendation chats on weekend evenings, more order-status
ones on weekday mornings), the same every week. A campaign (`Drift`) moves the mix and the rate from its
onset: the seed's drift is the recommendation share 32% -> 21% and thumbs-down 6% -> 9%.

`hour_counts` draws one hour (Poisson volume, multinomial intents, binomial events, multinomial token bins);
`to_metric_data` turns it into the CloudWatch statistic sets the emit helper's EMF lines add up to (the
demo and the integration tests write them), `to_window` into the monitor's `WindowCounts` (the bench).

Example
-------
>>> import numpy as np
>>> from datetime import UTC, datetime
>>> counts = hour_counts(MonitorTraffic(), datetime(2026, 11, 2, 20, tzinfo=UTC), np.random.default_rng(1))
>>> sorted(counts.intents)
['order_status', 'other', 'recommendation', 'returns']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from canarywise.data.monitor_source import WindowCounts
from canarywise.emit import VARIANT_DIMENSION, bin_metric_name

NAMESPACE = "MangaAssist"
TOKEN_EDGES = (50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 600.0)
# The intent mix over the week (its mean); the hourly and weekday swings below move it around these.
INTENTS = {"order_status": 0.30, "recommendation": 0.32, "returns": 0.18, "other": 0.20}
ESCALATION = {"order_status": 0.15, "recommendation": 0.065, "returns": 0.18, "other": 0.125}


@dataclass(frozen=True)
class Drift:
    """From `onset` on, the recommendation share becomes `recommendation_share` (the other intents keep their
    proportions) and the thumbs-down rate `thumbs_down`."""

    onset: datetime
    recommendation_share: float = 0.21
    thumbs_down: float = 0.09


@dataclass(frozen=True)
class MonitorTraffic:
    """The service's traffic: volume, mix, rates and their cycles (see the module docs)."""

    sessions_per_day: float = 300_000
    thumbs_down: float = 0.06
    out_of_scope: float = 0.04
    variant: str = "blue"
    drift: Drift | None = None
    intents: Mapping[str, float] = field(default_factory=lambda: dict(INTENTS))

    def at(self, moment: datetime) -> tuple[float, dict[str, float], float]:
        """Expected sessions in the hour starting at `moment`, its intent mix and its thumbs-down rate."""
        hour, weekend = moment.hour + moment.minute / 60, moment.weekday() >= 5
        daily = 1 + 0.6 * math.sin(2 * math.pi * (hour - 9) / 24)  # busiest mid-afternoon, quiet at night
        volume = self.sessions_per_day / 24 * daily * (1.25 if weekend else 0.9)
        evening = math.sin(2 * math.pi * (hour - 12) / 24)  # +1 at 18:00, -1 at 06:00
        swing = 0.04 * evening + (0.03 if weekend else -0.012)
        shares = dict(self.intents)
        shares["recommendation"] += swing
        shares["order_status"] -= swing
        thumbs = self.thumbs_down + 0.008 * evening
        if self.drift is not None and moment >= self.drift.onset:
            rest = 1 - shares["recommendation"]
            scale = (1 - self.drift.recommendation_share) / rest
            shares = {k: v * scale for k, v in shares.items()}
            shares["recommendation"] = self.drift.recommendation_share
            thumbs = self.drift.thumbs_down + 0.008 * evening
        return volume, shares, thumbs


@dataclass(frozen=True)
class HourCounts:
    """One hour of one variant: sessions per intent, escalations per intent, thumbs-down, out-of-scope,
    token counts per bin."""

    intents: dict[str, int]
    escalations: dict[str, int]
    thumbs_down: int
    out_of_scope: int
    token_bins: tuple[int, ...]

    @property
    def sessions(self) -> int:
        return sum(self.intents.values())


def _token_bin_shares(scale: float) -> np.ndarray:
    """Answer length in tokens: gamma(shape 4, `scale`), as shares of the `TOKEN_EDGES` bins."""
    from scipy import stats

    cdf = stats.gamma.cdf(np.array(TOKEN_EDGES), 4.0, scale=scale)
    return np.diff(np.concatenate([[0.0], cdf, [1.0]]))


_TOKENS = _token_bin_shares(35.0)


def hour_counts(traffic: MonitorTraffic, moment: datetime, rng: np.random.Generator) -> HourCounts:
    """Draw the hour starting at `moment`."""
    volume, shares, thumbs = traffic.at(moment)
    sessions = int(rng.poisson(volume))
    names = list(shares)
    per_intent = rng.multinomial(sessions, np.array([shares[k] for k in names]) / sum(shares.values()))
    intents = dict(zip(names, (int(v) for v in per_intent), strict=True))
    return HourCounts(
        intents=intents,
        escalations={k: int(rng.binomial(n, ESCALATION[k])) for k, n in intents.items()},
        thumbs_down=int(rng.binomial(sessions, min(max(thumbs, 0.0), 1.0))),
        out_of_scope=int(rng.binomial(sessions, traffic.out_of_scope)),
        token_bins=tuple(int(v) for v in rng.multinomial(sessions, _TOKENS)),
    )


def to_window(counts: HourCounts) -> WindowCounts:
    """The monitor's view of one hour (the watches of ``demo/specs/mangaassist-monitor.yaml``)."""
    n = counts.sessions
    return WindowCounts(
        rates={
            "thumbs_down_rate": (counts.thumbs_down, n),
            "escalation_rate": (sum(counts.escalations.values()), n),
            "out_of_scope_rate": (counts.out_of_scope, n),
        },
        mixes={"intent_mix": dict(counts.intents)},
        distributions={"response_tokens": counts.token_bins},
    )


def to_metric_data(counts: HourCounts, variant: str, moment: datetime) -> list[dict[str, Any]]:
    """The hour as CloudWatch statistic sets (namespace `NAMESPACE`), as the emit helper's lines add up."""

    def stat(name: str, dims: Mapping[str, str], n: int, total: int) -> dict[str, Any]:
        return {
            "MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
            "Timestamp": moment,
            "StatisticValues": {"SampleCount": float(n), "Sum": float(total), "Minimum": 0.0, "Maximum": 1.0},
        }

    base = {VARIANT_DIMENSION: variant}
    n = counts.sessions
    data = [
        stat("ThumbsDown", base, n, counts.thumbs_down),
        stat("OutOfScope", base, n, counts.out_of_scope),
        stat("Escalation", base, n, sum(counts.escalations.values())),
    ]
    data += [
        stat("Escalation", {**base, "Intent": intent}, sessions, counts.escalations[intent])
        for intent, sessions in counts.intents.items()
        if sessions
    ]
    data += [
        stat(bin_metric_name("ResponseTokens", k), base, count, count)
        for k, count in enumerate(counts.token_bins)
        if count
    ]
    return data
