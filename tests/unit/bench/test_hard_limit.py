"""The backstop benchmark computes the chance of the rule the engine applies, and of the rule it replaced.

References: scipy.stats.binomtest for the exact test's verdict; an exact dynamic program over the error count
(scipy.stats.binom.pmf per look) for the probability of firing over repeated looks; `decide` itself for the
look at which it reports HARD_LIMIT_BREACHED.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.stats import binom, binomtest

from bench import hard_limit
from bench.methods import NEVER
from canarywise.spec import load_spec

SPEC = load_spec("config/mangaassist.yaml")
LEVEL = 0.001 / 2016  # HARD_LIMIT_ALPHA over the shipped spec's 7 days of 5-minute looks


def exact_rejects(k: int, n: int, limit: float, level: float) -> bool:
    """scipy.stats.binomtest(k, n, limit, alternative='greater').pvalue <= level, from 100 units on."""
    return n >= 100 and binomtest(k, n, limit, alternative="greater").pvalue <= level


def test_level_is_the_engines() -> None:
    """0.001 over ceil(7 d / 5 min) = 2,016 looks (hand derivation)."""
    assert_allclose(hard_limit.hard_limit_level(SPEC), LEVEL, rtol=1e-12)


def test_exact_breach_is_the_binomial_test() -> None:
    """Every count from 0 to 60 at a few sizes, around the critical count: the verdict of binomtest."""
    for n, k in itertools.product((99, 100, 137, 400, 1000, 2500), range(61)):
        if k > n:
            continue
        got = bool(hard_limit.exact_breach(n, k, limit=0.02, level=LEVEL))
        assert got == exact_rejects(k, n, 0.02, LEVEL), (n, k)


def test_exact_breach_broadcasts_and_keeps_shape() -> None:
    n = np.array([[400, 400], [400, 50]])
    k = np.array([[25, 26], [40, 50]])
    expected = [[exact_rejects(int(x), int(m), 0.02, LEVEL) for m, x in zip(r, s, strict=True)]
                for r, s in zip(n, k, strict=True)]  # fmt: skip
    assert hard_limit.exact_breach(n, k, limit=0.02, level=LEVEL).tolist() == expected
    assert expected == [[False, True], [True, False]]


def test_raises() -> None:
    with pytest.raises(ValueError, match=r"^`level` must be in \(0, 0.5\), found 0.5$"):
        hard_limit.exact_breach(100, 10, limit=0.02, level=0.5)


def exact_fire_probability(
    units_per_look: int, looks: int, p: float, breaches: Callable[[int, int], bool]
) -> float:
    """P(the rule ever fires on the cumulative counts), by carrying the distribution of the error count over
    the looks (scipy.stats.binom.pmf) and removing, at each look, the mass of the counts that breach."""
    alive = np.zeros(units_per_look * looks + 1)
    alive[0] = 1.0
    step = binom.pmf(np.arange(units_per_look + 1), units_per_look, p)
    for look in range(1, looks + 1):
        alive = np.convolve(alive, step)[: alive.size]
        n = units_per_look * look
        for k in range(n + 1):
            if breaches(k, n):
                alive[k] = 0.0
    return 1.0 - float(alive.sum())


@pytest.mark.parametrize("rule", ["raw", "exact"])
def test_fires_matches_the_exact_probability_over_repeated_looks(rule: str) -> None:
    """30 units a look for 24 looks against a 2% limit (either rule can fire from the 4th look on): the raw
    rule at a 0.5% error rate, the exact test (level 1e-4) at 4%."""
    if rule == "raw":
        p = 0.005
        expected = exact_fire_probability(30, 24, p, lambda k, n: n >= 100 and k / n > 0.02)
    else:
        p = 0.04
        expected = exact_fire_probability(30, 24, p, lambda k, n: exact_rejects(k, n, 0.02, 1e-4))
    replicates = 40_000
    rng = np.random.default_rng(41)
    units = np.full((replicates, 24), 30)
    errors = rng.binomial(units, p)
    looks = (
        hard_limit.fires_raw(units, errors, limit=0.02)
        if rule == "raw"
        else hard_limit.fires(units, errors, limit=0.02, level=1e-4)
    )
    rate = float(np.mean(looks != NEVER))
    se = math.sqrt(expected * (1 - expected) / replicates)
    assert 0.01 < expected < 0.99  # a real chance either way
    assert abs(rate - expected) <= 4 * se


def test_fires_reports_the_first_breaching_look_across_blocks() -> None:
    """Looks are checked in blocks; the first breach is the first True of the elementwise test over the
    cumulative counts, wherever it falls (here up to the 200th look)."""
    rng = np.random.default_rng(44)
    units = rng.poisson(40, (300, 200))
    errors = rng.binomial(units, rng.uniform(0.02, 0.05, (300, 1)))
    n, x = np.cumsum(units, axis=1), np.cumsum(errors, axis=1)
    breach = np.array([[exact_rejects(int(k), int(m), 0.02, LEVEL) for m, k in zip(r, s, strict=True)]
                       for r, s in zip(n, x, strict=True)])  # fmt: skip
    expected = np.where(breach.any(axis=1), breach.argmax(axis=1), NEVER)
    got = hard_limit.fires(units, errors, limit=0.02, level=LEVEL)
    assert got.tolist() == expected.tolist()
    assert (expected > 24).any()
    assert (expected == NEVER).any()
    assert (expected < 24).any()


def test_both_rules_need_one_hundred_units() -> None:
    units = np.array([[50, 49, 1]])
    errors = np.array([[30, 0, 0]])  # 60% errors, but 100 units only at the third look
    assert hard_limit.fires_raw(units, errors, limit=0.02).tolist() == [2]
    assert hard_limit.fires(units, errors, limit=0.02, level=LEVEL).tolist() == [2]


def test_stage_units_run_each_stage_to_its_maximum_duration() -> None:
    """48 h + 48 h + 60 h of 5-minute ticks at 5%, 25%, 50%; the diurnal curve averages out over whole days
    (300,000 a day at 100% -> 15,000 a day at 5%)."""
    stages = hard_limit.stage_units(SPEC, 300_000)
    assert [s.size for s in stages] == [s.max_duration // 300 for s in SPEC.stages]
    assert_allclose(stages[0].sum(), 2 * 15_000, rtol=1e-9)
    assert_allclose(stages[1].sum(), 2 * 75_000, rtol=1e-9)


def test_backstop_fires_where_decide_reports_the_breach() -> None:
    """`decide` on the shipped spec's error rate alone, look by look over a 5% stage with both arms at 4%
    (twice the limit; no harm): the first look with a HARD_LIMIT_BREACHED finding is the look
    `hard_limit.fires` returns, and the raw rule would have fired earlier."""
    from datetime import timedelta

    from bench.engine import T0, MetricStream, _stage_records, observations_at, single_metric_spec
    from bench.scenarios import ladder_schedule
    from canarywise.decision.engine import decide
    from canarywise.decision.models import Variant, Verdict

    spec = single_metric_spec(SPEC, "error_rate", horizon_seconds=7 * 86_400)
    schedule = ladder_schedule(spec)
    level = hard_limit.hard_limit_level(spec)
    looks = 40
    rng = np.random.default_rng(43)
    fired = 0
    for _ in range(6):
        canary_n = rng.poisson(schedule.expected_sessions[:looks] * 0.05)
        canary_x = rng.binomial(canary_n, 0.04)
        control_n = rng.poisson(schedule.expected_sessions[:looks] * 0.95)
        stream = MetricStream(
            n={Variant.CONTROL: control_n, Variant.CANARY: canary_n},
            events={
                Variant.CONTROL: rng.binomial(control_n, 0.04).astype(float),
                Variant.CANARY: canary_x.astype(float),
            },
        )
        expected = int(hard_limit.fires(canary_n[None, :], canary_x[None, :], limit=0.02, level=level)[0])
        found = NEVER
        for look in range(looks):
            now = T0 + timedelta(seconds=(look + 1) * 300)
            stages = _stage_records(schedule, look)
            decision = decide(spec, stages, observations_at({"error_rate": stream}, schedule, look, now), now)
            if any(f.verdict is Verdict.HARD_LIMIT_BREACHED for f in decision.findings):
                found = look
                break
        assert found == expected
        fired += int(found != NEVER)
        raw = int(hard_limit.fires_raw(canary_n[None, :], canary_x[None, :], limit=0.02)[0])
        assert raw != NEVER
        assert found == NEVER or raw < found
    assert 0 < fired < 6  # both outcomes were exercised
