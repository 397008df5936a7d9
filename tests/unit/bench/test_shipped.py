"""The vectorised re-implementation of the canary engine decides what ``decide`` decides.

The benchmark's shipped-spec numbers (and ``canarywise plan``'s) come from
``canarywise.simulation.rollout.simulate``, which re-writes the engine's rule
in numpy to play thousands of rollouts. These tests hold it to the real thing: its p-values against
``msprt_normal``, its Benjamini-Hochberg against statsmodels, and its per-look decisions against
``canarywise.decision.engine.decide`` replayed on the same simulated ticks.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from statsmodels.stats.multitest import multipletests

from bench import shipped
from canarywise.simulation import arrays
from canarywise.spec import RolloutSpec, load_spec, parse_spec
from canarywise.stats.sequential import msprt_normal

SPEC = load_spec("config/mangaassist.yaml")


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_mixture_pvalue_is_msprt_normal_pvalue(alternative: str) -> None:
    rng = np.random.default_rng(21)
    z = rng.uniform(-6, 6, 300)
    ratio = np.exp(rng.uniform(np.log(1e-3), np.log(1e6), 300))
    reference = [
        msprt_normal(float(zz), 1.0, tau2=float(r), alternative=alternative).pvalue
        for zz, r in zip(z, ratio, strict=True)
    ]
    assert_allclose(arrays.mixture_pvalue(z, ratio, alternative), reference, rtol=1e-9, atol=1e-300)


def test_bh_rejections_match_statsmodels() -> None:
    """statsmodels.stats.multitest.multipletests(p, alpha=q, method='fdr_bh')[0], row by row, over the
    valid entries only."""
    rng = np.random.default_rng(22)
    p = rng.uniform(0, 0.02, (500, 4)) ** rng.uniform(0.5, 2, (500, 1))
    valid = rng.uniform(size=(500, 4)) > 0.1
    got = arrays.bh_rejections(p, valid, 0.005)
    for row in range(500):
        expected = np.zeros(4, dtype=bool)
        if valid[row].any():
            expected[valid[row]] = multipletests(p[row, valid[row]], alpha=0.005, method="fdr_bh")[0]
        assert got[row].tolist() == expected.tolist(), row


def short_ladder(max_hours: float) -> RolloutSpec:
    """The shipped spec on a ladder of 1-hour stages (so a replay is a few dozen looks)."""
    data = SPEC.model_dump(mode="json")
    data["stages"] = [
        {"percent": p, "min_duration": 3600, "max_duration": int(max_hours * 3600)} for p in (5, 25, 50)
    ]
    return parse_spec(data, source="test spec")


@pytest.mark.parametrize(
    ("max_hours", "daily", "baselines", "canary_rates", "seed"),
    [
        (2.0, 300_000, None, None, 31),  # A/A: gates met or INCONCLUSIVE at 2 h
        (2.0, 3_000_000, None, None, 34),  # A/A with 10x the traffic: the gates are met, stages advance
        (2.0, 300_000, {"error_rate": 0.05}, None, 32),  # both arms far above the 2% hard limit: it fires
        (3.0, 300_000, None, {"escalation_rate": 0.20}, 33),  # real harm on the sliced metric
    ],
)
def test_vectorised_engine_agrees_with_decide_look_by_look(
    max_hours: float,
    daily: float,
    baselines: dict[str, float] | None,
    canary_rates: dict[str, float] | None,
    seed: int,
) -> None:
    world = shipped.shipped_world(
        short_ladder(max_hours), baselines=baselines, canary_rates=canary_rates, daily_sessions=daily
    )
    result = shipped.simulate(world, 40, np.random.default_rng(seed), label="test", record=6)
    replay = shipped.replay(world, result, np.random.default_rng(seed + 100))
    assert replay.rollouts == 6
    assert replay.agree == 6, replay.first_disagreement
    assert replay.looks > 6 * 12  # every rollout ran at least its first hour
    kinds = set(result.outcome[:6].tolist())
    if baselines:
        assert (result.causes & shipped.CAUSE_HARD_LIMIT).any()
    if daily > 300_000:
        # most replayed rollouts advanced twice (the error rate's margin is proven with the variance of a
        # canary at the margin, 2.7x the observed one at 0.3%: one in six may time out in a 2 h stage)
        assert (result.stage_starts[:6, 1:] != shipped.NEVER).all(axis=1).sum() >= 4
    if canary_rates:
        assert kinds == {shipped.ROLLBACK}
    else:
        assert kinds <= {shipped.READY, shipped.INCONCLUSIVE, shipped.ROLLBACK}
