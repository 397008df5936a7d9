"""A/A over a simulated week of five-minute checks (2,016 looks): a good candidate is not rolled back.

Two tests, one chain of evidence:

1. `test_engine_end_to_end` drives `decide` itself at every look of a few seeded streams, with the ladder
   moving as the engine says (ADVANCE starts the next stage) and a time-of-day swing in the escalation rate
   that the ramp coincides with. Few streams, because every look is a full `decide`.
2. `test_false_rollback_rate_over_many_streams` re-implements the engine's harm test by hand (vectorised
   numpy, the half-normal mixture formula of `decision_kit`; the canary tests pin `decide` to that same
   formula) on 1,000 streams, and shows the false-rollback rate is at most alpha within 2 standard errors,
   while a naive z-test at every look rolls back a large share of the same streams.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from decision_kit import ESCALATION, T0, make_spec, metric, reference_tau2
from scipy import special

from canarywise.decision.engine import decide
from canarywise.decision.models import (
    DecisionKind,
    ObservationKey,
    Observations,
    ProportionAggregate,
    StageRecord,
    Variant,
)
from canarywise.spec import RolloutSpec

LOOKS = 2016  # one week of 5-minute checks
INTERVAL = timedelta(minutes=5)
SESSIONS_PER_LOOK = 1_200
REQUESTS_PER_LOOK = 3_000
ALPHA = 0.05


def escalation_rate(look: np.ndarray | int) -> np.ndarray | float:
    """12% on average, ±3 points over the day: the ramp's stages fall at different times of day."""
    return 0.12 + 0.03 * np.sin(2 * np.pi * np.asarray(look) / 288)


def spec() -> RolloutSpec:
    errors = metric("error_rate", margin=0.005, mde=0.005)
    return make_spec([ESCALATION, errors], inconclusive_policy="hold")


def run_stream(seed: int) -> tuple[DecisionKind | None, int]:
    """Play one A/A week through `decide`; the first ROLLBACK (if any) and the last stage reached."""
    rollout = spec()
    rng = np.random.default_rng(seed)
    records = [StageRecord(0, 5.0, {"control": 95, "canary": 5}, T0)]
    totals: dict[tuple[str, int, Variant], list[int]] = {}
    ready = False
    for look in range(1, LOOKS + 1):
        current = records[-1]
        share = current.weights[Variant.CANARY] / 100
        for name, units, rate in (
            ("escalation_rate", SESSIONS_PER_LOOK, float(escalation_rate(look))),
            ("error_rate", REQUESTS_PER_LOOK, 0.01),
        ):
            n_canary = int(rng.binomial(units, share))
            for variant, n in ((Variant.CONTROL, units - n_canary), (Variant.CANARY, n_canary)):
                cell = totals.setdefault((name, current.index, variant), [0, 0])
                cell[0] += n
                cell[1] += int(rng.binomial(n, rate))
        now = T0 + look * INTERVAL
        observations = Observations(
            aggregates={
                ObservationKey(m, s, v): ProportionAggregate(n, x) for (m, s, v), (n, x) in totals.items()
            },
            latest={"escalation_rate": now, "error_rate": now},
        )
        kind = decide(rollout, records, observations, now).kind
        if kind is DecisionKind.ROLLBACK:
            return kind, current.index
        if kind is DecisionKind.ADVANCE:
            records[-1] = StageRecord(
                current.index, current.percent, current.weights, current.started_at, now
            )
            percent = rollout.stages[current.index + 1].percent
            records.append(
                StageRecord(current.index + 1, percent, {"control": 100 - percent, "canary": percent}, now)
            )
        ready = ready or kind is DecisionKind.READY_FOR_APPROVAL
    return (DecisionKind.READY_FOR_APPROVAL if ready else None), records[-1].index


@pytest.mark.slow
def test_engine_end_to_end() -> None:
    streams = 6  # ~3 s each: the SRM chi-square (scipy.stats.chisquare) is two thirds of a look's cost
    outcomes = [run_stream(seed) for seed in range(20261102, 20261102 + streams)]
    rollbacks = sum(kind is DecisionKind.ROLLBACK for kind, _ in outcomes)
    # false-rollback rate <= alpha within 2 SE: at most alpha*R + 2 sqrt(R alpha (1-alpha)) = 1.4 of 6
    assert rollbacks <= ALPHA * streams + 2 * math.sqrt(streams * ALPHA * (1 - ALPHA))
    # ... and the engine is not silent: a healthy candidate climbs the ladder and is ready for approval
    assert sum(kind is DecisionKind.READY_FOR_APPROVAL for kind, _ in outcomes) >= streams - 1


def test_false_rollback_rate_over_many_streams() -> None:
    streams = 1_000
    rng = np.random.default_rng(7)
    looks = np.arange(1, LOOKS + 1)
    # The ladder at the pace the engine takes it on this traffic: 5% for the first day, 25% for two, then 50%.
    stage_of_look = np.where(looks <= 288, 0, np.where(looks <= 864, 1, 2))
    share = np.array([0.05, 0.25, 0.50])[stage_of_look]
    n_canary = rng.binomial(SESSIONS_PER_LOOK, share, size=(streams, LOOKS))
    n_control = SESSIONS_PER_LOOK - n_canary
    rate = escalation_rate(looks)
    x_canary = rng.binomial(n_canary, rate)
    x_control = rng.binomial(n_control, rate)

    # Within-stage cumulative sums, then the inverse-variance combination over the stages started so far.
    weight_sum = np.zeros((streams, LOOKS))
    weighted_diff = np.zeros((streams, LOOKS))
    for s in range(3):
        in_stage = stage_of_look == s
        started = looks >= looks[in_stage][0]
        cum = [
            np.cumsum(np.where(in_stage, a, 0), axis=1) for a in (n_control, x_control, n_canary, x_canary)
        ]
        nc, xc, nt, xt = cum
        with np.errstate(divide="ignore", invalid="ignore"):
            pc, pt = (xc + 1) / (nc + 2), (xt + 1) / (nt + 2)  # Agresti-Caffo variance, as the engine
            variance = pc * (1 - pc) / nc + pt * (1 - pt) / nt
            diff = xt / nt - xc / nc
            ok = started & (nc > 0) & (nt > 0)
            weight_sum += np.where(ok, 1 / variance, 0)
            weighted_diff += np.where(ok, diff / variance, 0)
    estimate = weighted_diff / weight_sum
    variance = 1 / weight_sum
    z = estimate / np.sqrt(variance)

    # Harm test as in the engine: one-sided half-normal mixture, alpha shared by the 2 metrics.
    level = ALPHA / 2
    ratio = reference_tau2(0.02, level, 0.8) / variance
    log_lr = -0.5 * np.log1p(ratio) + ratio * z**2 / (2 * (1 + ratio)) + math.log(2)
    log_lr += special.log_ndtr(z * np.sqrt(ratio / (1 + ratio)))
    rolled_back = (log_lr >= math.log(1 / level)).any(axis=1)
    # a fixed-horizon one-sided z-test at the same level, applied at every look
    naive_rolled_back = (z > special.ndtri(1 - level)).any(axis=1)

    rate_sequential = rolled_back.mean()
    se = math.sqrt(level * (1 - level) / streams)
    assert rate_sequential <= level + 2 * se
    assert naive_rolled_back.mean() > 0.2  # the looks inflate a naive test's error several-fold
