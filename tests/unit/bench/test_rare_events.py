"""The rare-event benchmark's vectorised pieces compute what the library computes, element by element: the
restricted rates and the test variance (against ``stats.proportions``), the anytime-valid SRM verdict
(against ``stats.srm.sequential_srm_test``), and the gate replayed through ``decide`` on a short cell. The
library itself is held to independent references in tests/unit/stats."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from bench import rare_events
from canarywise.simulation.arrays import restricted_rates, srm_holds, stage_variance
from canarywise.spec import load_spec
from canarywise.stats.proportions import constrained_rates, difference_variance
from canarywise.stats.srm import sequential_srm_test

SPEC = load_spec("config/mangaassist.yaml")


def _counts(rng: np.random.Generator, size: int) -> tuple[np.ndarray, ...]:
    nc = rng.integers(1, 50_000, size).astype(float)
    nt = rng.integers(1, 3_000, size).astype(float)
    xc = rng.binomial(nc.astype(int), rng.uniform(0, 0.05, size)).astype(float)
    xt = rng.binomial(nt.astype(int), rng.uniform(0, 0.05, size)).astype(float)
    return xc, nc, xt, nt


@pytest.mark.parametrize("null", [0.0, 0.005, -0.01])
def test_restricted_rates_and_variance_match_the_library(null: float) -> None:
    xc, nc, xt, nt = _counts(np.random.default_rng(5), 300)
    rc, rt = restricted_rates(xc, nc, xt, nt, null)
    variance = stage_variance(xc, nc, xt, nt, null)
    for i in range(xc.size):
        counts = (int(xc[i]), int(nc[i]), int(xt[i]), int(nt[i]))
        assert_allclose((rc[i], rt[i]), constrained_rates(*counts, null), rtol=1e-9, atol=1e-15)
        assert_allclose(variance[i], difference_variance(*counts, null), rtol=1e-9)


def test_srm_verdicts_match_the_library() -> None:
    rng = np.random.default_rng(6)
    totals = rng.integers(0, 60_000, (400, 2)).astype(float)
    shares = np.array([0.05, 0.25])
    canary = rng.binomial(totals.astype(int), shares * rng.choice([1.0, 0.96, 0.9], (400, 1))).astype(float)
    held = srm_holds(canary, totals, shares, 0.001)
    for i in range(400):
        stages = [([int(totals[i, s] - canary[i, s]), int(canary[i, s])], [100 - 100 * w, 100 * w])
                  for s, w in enumerate(shares)]  # fmt: skip
        assert held[i] == (sequential_srm_test(stages, alpha=0.001).pvalue <= 0.001), i
    assert 0 < held.sum() < 400


def test_gate_cell_agrees_with_decide() -> None:
    """A 1-hour gate at a 1% baseline, 20 rollouts of 12 hours: the vectorised first decision and ``decide``
    look by look agree on the first rollouts."""
    spec = rare_events.gate_spec(SPEC, min_hours=1.0, min_units=100)
    schedule = rare_events.fixed_split_schedule(5, horizon_ticks=144)
    streams = rare_events._draw(schedule, 0.01, 0.015, 20, np.random.default_rng(7))
    advance, rollback, _ = rare_events._gate_looks(spec, streams, schedule, "now")
    assert all(rare_events._replay(spec, schedule, streams, row, advance, rollback) for row in range(4))
