"""The anytime-valid sample-ratio test: its likelihood-ratio mixture against numerical integration (scipy quad
over ``scipy.stats.binom``), its level under continuous monitoring by a seeded Monte Carlo, and what the
chi-square repeated at every look does instead."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import chdtrc
from score_reference import srm_mixture_pvalue, srm_tau2

from canarywise.stats._checks import StatsInputError
from canarywise.stats.srm import sequential_srm_test, srm_log_mixture, srm_mixing_variance


def test_mixing_variance_is_planned_for_the_mismatch() -> None:
    """τ² = r* mde² / c(r*)² re-derived by bracketing (`score_reference.srm_tau2`)."""
    for alpha in (0.001, 0.01, 0.05):
        assert_allclose(srm_mixing_variance(alpha), srm_tau2(alpha), rtol=1e-10)


@pytest.mark.parametrize(
    "stages",
    [
        [(14_400, 300_000, 0.05)],  # 4.8% of a day of new assignments at a 5% weight
        [(15_000, 300_000, 0.05)],  # exactly on the weights
        [(8_000, 160_000, 0.05), (39_700, 160_000, 0.25)],  # a healthy ramp
        [(8_000, 160_000, 0.05), (26_467, 160_000, 0.25)],  # a broken second stage
        [(3, 20, 0.05)],  # a handful of units
        [(60, 100, 0.5), (10, 40, 0.25)],
    ],
)
def test_pvalue_is_the_integrated_likelihood_ratio(stages: list[tuple[int, int, float]]) -> None:
    observed = [([n - x, x], [1 - w, w]) for x, n, w in stages]
    result = sequential_srm_test(observed, alpha=0.001)
    assert_allclose(result.pvalue, srm_mixture_pvalue(stages, srm_tau2(0.001)), rtol=1e-8, atol=1e-300)
    # the score z, by hand
    z = sum(x - n * w for x, n, w in stages) / math.sqrt(sum(n * w * (1 - w) for _, n, w in stages))
    assert_allclose(result.statistic, z, rtol=1e-12)
    assert result.expected[1] == pytest.approx(sum(n * w for _, n, w in stages))


def test_no_traffic_is_not_a_mismatch() -> None:
    result = sequential_srm_test([([0, 0], [95, 5])], alpha=0.001)
    assert (result.pvalue, result.statistic) == (1.0, 0.0)


def test_level_holds_under_continuous_monitoring_where_the_chi_square_does_not() -> None:
    """400 healthy 95/5 splits, 500 looks of 300 new assignments each: the anytime-valid test at 0.05 holds
    at most alpha + 3 SE of them ever; Pearson's chi-square at 0.05 at every look holds most of them."""
    rng = np.random.default_rng(20261207)
    sims, looks, batch, weight, alpha = 400, 500, 300, 0.05, 0.05
    canary = np.cumsum(rng.binomial(batch, weight, (sims, looks)), axis=1).astype(float)
    total = batch * np.arange(1, looks + 1, dtype=float)
    log_lr = srm_log_mixture(
        canary, np.broadcast_to(total, canary.shape)[..., None], [weight], srm_tau2(alpha)
    )
    held = np.mean((log_lr >= math.log(1 / alpha)).any(axis=1))
    assert held <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / sims)
    chi = (canary - total * weight) ** 2 / (total * weight * (1 - weight))
    assert np.mean((chdtrc(1, chi) < alpha).any(axis=1)) > 0.4


def test_a_real_mismatch_is_caught() -> None:
    """4.8% instead of 5%, 300,000 new assignments: z = −5.0, rejected at 0.001."""
    assert sequential_srm_test([([285_600, 14_400], [95, 5])], alpha=0.001).pvalue < 0.001


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stages": [], "alpha": 0.001},
         "`stages` must hold at least one (observed, weights) pair, found []"),
        ({"stages": [([1, 2, 3], [1, 1, 1])], "alpha": 0.001},
         "`observed` of stage 0 must have 2 arms (control, canary), found [1, 2, 3]"),
        ({"stages": [([1, 2], [1, 1])], "alpha": 1.0}, "`alpha` must be in (0, 1), found 1.0"),
        ({"stages": [([1, 2], [1, 1])], "alpha": 0.01, "mde": 0.0},
         "`mde` must be a finite non-zero number, found 0.0"),
        ({"stages": [([1, -2], [1, 1])], "alpha": 0.01}, "`observed` must be an integer >= 0, found -2"),
    ],
)  # fmt: skip
def test_raises(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(StatsInputError, match=f"^{re.escape(message)}$"):
        sequential_srm_test(**kwargs)  # type: ignore[arg-type]
