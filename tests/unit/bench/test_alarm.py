"""The alarm benchmark computes the chance of the alarm the stack deploys, and of the one it replaced.

References: the stack's own math expression (``stacks.alarms.error_excess``), evaluated count by count;
brute-force enumeration of breach sequences for the 2-of-3 rule; direct sums of scipy.stats.binom and
scipy.stats.poisson probabilities.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.stats import binom, poisson

from bench import alarm
from canarywise.local.alarms import evaluate_expression
from stacks import alarms as stack_alarms


def stack_value(expression: str, errors: int, requests: int) -> float:
    """The deployed metric-math expression for one minute's counts, evaluated by the local CloudWatch
    emulation (``canarywise.local.alarms.evaluate_expression``)."""
    value = evaluate_expression(
        expression, {"errors_canary": float(errors), "requests_canary": float(requests)}
    )
    assert value is not None
    return value


@pytest.mark.parametrize("line", [0.02, 0.01])
def test_breach_counts_follow_the_deployed_expression(line: float) -> None:
    """The smallest count whose deployed z-value is at least ALARM_Z (the alarm compares with
    GREATER_THAN_OR_EQUAL_TO_THRESHOLD), by trying every count; the rule before: the smallest count whose
    rate errors / requests is above the line (GREATER_THAN_THRESHOLD)."""
    expression = stack_alarms.error_excess({"LoadBalancer": "lb", "TargetGroup": "tg"}, line, "x").expression
    assert expression.startswith(f"IF(requests_canary >= {stack_alarms.MIN_REQUESTS_PER_MINUTE}, ")
    requests = np.array([1, 50, 99, 100, 101, 150, 250, 333, 1000, 2500])
    z_counts = alarm.breach_counts(requests, line, alarm.Z)
    rate_counts = alarm.breach_counts(requests, line, alarm.RATE)
    for m, z_count, rate_count in zip(requests.tolist(), z_counts, rate_counts, strict=True):
        if m < 100:
            assert math.isinf(z_count)
            assert math.isinf(rate_count)
            continue
        z_first = next(k for k in range(m + 1) if stack_value(expression, k, m) >= stack_alarms.ALARM_Z)
        rate_first = next(k for k in range(m + 1) if k / m > line)
        assert (z_count, rate_count) == (z_first, rate_first), m


def test_breach_count_by_hand() -> None:
    """100 requests, 2% line: 2 + 3.09 * sqrt(0.02 * 0.98 * 100) = 6.326, so 7 errors (z = 3.57; 6 give
    2.86); before, 3 errors (3%)."""
    assert alarm.breach_counts(np.array([100]), 0.02, alarm.Z).tolist() == [7.0]
    assert alarm.breach_counts(np.array([100]), 0.02, alarm.RATE).tolist() == [3.0]


def test_minute_probability_is_the_binomial_tail() -> None:
    """P(X >= 7 | Bin(100, 0.005)) = scipy.stats.binom.sf(6, 100, 0.005); 0 below the request floor."""
    got = alarm.minute_probability(np.array([100, 99]), 0.005, 0.02, alarm.Z)
    assert_allclose(got, [binom.sf(6, 100, 0.005), 0.0], rtol=1e-12)


def test_poisson_minute_probability_is_the_mixture() -> None:
    """sum over m of poisson.pmf(m, lam) * binom.sf(c(m) - 1, m, p), the counts c(m) by brute force."""
    lam = np.array([80.0, 120.0, 120.0, 400.0])
    got = alarm.poisson_minute_probability(lam, 0.01, 0.02, alarm.RATE)
    for value, p in zip(lam, got, strict=True):
        expected = sum(
            poisson.pmf(m, value) * binom.sf(next(k for k in range(m + 1) if k / m > 0.02) - 1, m, 0.01)
            for m in range(100, 1200)
        )
        assert_allclose(p, expected, rtol=1e-9)


def brute_force_alarm(q: list[float]) -> list[float]:
    """P(alarm by minute t) for every t: every breach sequence, alarm once 2 of 3 consecutive minutes
    breach (minutes before the first do not)."""
    out = []
    for minutes in range(1, len(q) + 1):
        total = 0.0
        for seq in itertools.product((0, 1), repeat=minutes):
            padded = (0, 0, *seq)
            if any(sum(padded[t : t + 3]) >= 2 for t in range(minutes)):
                total += math.prod(qq if b else 1 - qq for qq, b in zip(q, seq, strict=False))
        out.append(total)
    return out


def test_alarm_curve_matches_enumeration() -> None:
    q = [0.3, 0.05, 0.6, 0.2, 0.0, 0.45, 0.1, 0.7]
    assert_allclose(alarm.alarm_curve(q), brute_force_alarm(q), rtol=1e-12, atol=1e-15)
    assert_allclose(alarm.alarm_probability(q), brute_force_alarm(q)[-1], rtol=1e-12)


def test_fixed_alarm_probability_reproduces_the_rule_before() -> None:
    """150 requests a minute, 0.5% errors: a minute breaches 2% with more than 3 errors (hand-written
    binomial sum); over 7 minutes, the enumeration."""
    q = 1 - sum(math.comb(150, k) * 0.005**k * 0.995 ** (150 - k) for k in range(4))
    assert_allclose(
        alarm.fixed_alarm_probability(150, 0.005, 0.02, alarm.RATE, 7),
        brute_force_alarm([q] * 7)[-1],
        rtol=1e-10,
    )
    assert alarm.fixed_alarm_probability(99, 0.5, 0.02, alarm.Z, 1440) == 0.0


def test_median_minutes_to_alarm() -> None:
    """The first minute whose P(alarm by then) is at least 1/2, from the enumeration; inf when never."""
    q = float(alarm.minute_probability(np.array([100]), 0.04, 0.02, alarm.Z)[0])
    curve = brute_force_alarm([q] * 12)
    expected = next((t + 1 for t, p in enumerate(curve) if p >= 0.5), None)
    got = alarm.median_minutes_to_alarm(100, 0.04, 0.02, alarm.Z, horizon=12)
    assert got == (expected if expected is not None else math.inf)
    assert alarm.median_minutes_to_alarm(100, 0.5, 0.02, alarm.RATE) == 2.0  # every minute breaches
    assert math.isinf(alarm.median_minutes_to_alarm(99, 0.5, 0.02, alarm.RATE))


def test_ladder_requests_per_minute() -> None:
    """Each 5-minute tick's mean spread over its minutes: 300,000 a day at 5% is 15,000 a day over 1,440
    minutes, averaged over the first stage's two whole days."""
    from canarywise.spec import load_spec

    spec = load_spec("config/mangaassist.yaml")
    lam = alarm.ladder_requests(spec, 300_000)
    assert lam.size == sum(s.max_duration for s in spec.stages) // 60
    assert_allclose(lam[: 2 * 1440].mean(), 15_000 / 1440, rtol=1e-9)
