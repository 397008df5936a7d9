"""The hard-limit benchmark computes the chance of a rule the engine and the alarms actually apply.

References: an exact dynamic program over the error count (scipy.stats.binom) for the backstop's repeated
looks, brute-force enumeration of breach sequences for the alarm's 2-of-3 rule, statsmodels' Clopper-Pearson
interval for the "with evidence" rule.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.testing import assert_allclose
from scipy.stats import binom
from statsmodels.stats.proportion import proportion_confint

from bench import hard_limit
from bench.methods import NEVER


def exact_backstop_probability(units_per_look: int, looks: int, p: float, limit: float) -> float:
    """P(the cumulative rate ever exceeds `limit` with >= 100 units), by carrying the distribution of the
    error count over the looks and removing the mass that fires (scipy.stats.binom.pmf per look)."""
    alive = np.zeros(units_per_look * looks + 1)
    alive[0] = 1.0
    step = binom.pmf(np.arange(units_per_look + 1), units_per_look, p)
    for look in range(1, looks + 1):
        alive = np.convolve(alive, step)[: alive.size]
        n = units_per_look * look
        if n >= 100:
            alive[np.arange(alive.size) / n > limit] = 0.0
    return 1.0 - float(alive.sum())


def test_backstop_matches_the_exact_probability_over_repeated_looks() -> None:
    """30 units a look for 24 looks at a 0.5% error rate against a 2% limit (fires from the 4th look on)."""
    expected = exact_backstop_probability(30, 24, 0.005, 0.02)
    replicates = 40_000
    rng = np.random.default_rng(41)
    units = np.full((replicates, 24), 30)
    errors = rng.binomial(units, 0.005)
    rate = float(np.mean(hard_limit.fires(units, errors, limit=0.02) != NEVER))
    se = math.sqrt(expected * (1 - expected) / replicates)
    assert expected > 0.01  # a real risk, not a rounding error
    assert abs(rate - expected) <= 4 * se


def test_backstop_needs_one_hundred_units() -> None:
    units = np.array([[50, 49, 1]])
    errors = np.array([[10, 0, 0]])  # 20% errors, but 100 units only at the third look
    assert hard_limit.fires(units, errors, limit=0.02).tolist() == [2]


def test_evidence_rule_is_the_clopper_pearson_lower_bound() -> None:
    """statsmodels proportion_confint(x, n, alpha=2 * level, method='beta')[0]: the one-sided lower bound."""
    for n, x in itertools.product((20, 100, 400), range(0, 30, 3)):
        lower = proportion_confint(x, n, alpha=2 * hard_limit.EVIDENCE_LEVEL, method="beta")[0]
        fired = hard_limit.fires_with_evidence(np.array([[n]]), np.array([[x]]), limit=0.02)[0]
        assert (fired == 0) == (lower > 0.02), (n, x, lower)


def brute_force_alarm(q: float, minutes: int) -> float:
    """Every breach sequence of `minutes` minutes: alarm if 2 of 3 consecutive minutes breach (minutes before
    the first do not)."""
    total = 0.0
    for seq in itertools.product((0, 1), repeat=minutes):
        padded = (0, 0, *seq)
        if any(sum(padded[t : t + 3]) >= 2 for t in range(minutes)):
            total += math.prod(q if b else 1 - q for b in seq)
    return total


def test_alarm_probability_matches_enumeration() -> None:
    # One minute of 150 requests breaches a 2% limit with more than 3 errors.
    q = 1 - sum(math.comb(150, k) * 0.005**k * 0.995 ** (150 - k) for k in range(4))
    assert_allclose(hard_limit.minute_breach_probability(150, 0.005, limit=0.02), q, rtol=1e-10)
    for minutes in (2, 3, 7):
        assert_allclose(
            hard_limit.alarm_probability(150, 0.005, limit=0.02, minutes=minutes),
            brute_force_alarm(q, minutes),
            rtol=1e-10,
        )


def test_alarm_ignores_minutes_below_its_request_floor() -> None:
    assert hard_limit.alarm_probability(99, 0.5, limit=0.02, minutes=1440) == 0.0


def test_backstop_fires_where_decide_reports_the_breach() -> None:
    """`decide` on the shipped spec's error rate alone, look by look over a 5% stage: the first look with a
    HARD_LIMIT_BREACHED finding is the look `hard_limit.fires` returns."""
    from datetime import timedelta

    from bench.engine import T0, MetricStream, _stage_records, observations_at, single_metric_spec
    from bench.scenarios import ladder_schedule
    from canarywise.decision.engine import decide
    from canarywise.decision.models import Variant, Verdict
    from canarywise.spec import load_spec

    spec = single_metric_spec(load_spec("config/mangaassist.yaml"), "error_rate", horizon_seconds=7 * 86_400)
    schedule = ladder_schedule(spec)
    looks = 36  # three hours of the 5% stage
    rng = np.random.default_rng(43)
    checked = fired = 0
    for _ in range(6):
        canary_n = rng.poisson(schedule.expected_sessions[:looks] * 0.05)
        canary_x = rng.binomial(canary_n, 0.012)
        control_n = rng.poisson(schedule.expected_sessions[:looks] * 0.95)
        stream = MetricStream(
            n={Variant.CONTROL: control_n, Variant.CANARY: canary_n},
            events={
                Variant.CONTROL: rng.binomial(control_n, 0.012).astype(float),
                Variant.CANARY: canary_x.astype(float),
            },
        )
        expected = int(hard_limit.fires(canary_n[None, :], canary_x[None, :], limit=0.02)[0])
        found = NEVER
        for look in range(looks):
            now = T0 + timedelta(seconds=(look + 1) * 300)
            stages = _stage_records(schedule, look)
            decision = decide(spec, stages, observations_at({"error_rate": stream}, schedule, look, now), now)
            if any(f.verdict is Verdict.HARD_LIMIT_BREACHED for f in decision.findings):
                found = look
                break
        assert found == expected
        checked += 1
        fired += int(found != NEVER)
    assert checked == 6
    assert 0 < fired < 6  # both outcomes were exercised
