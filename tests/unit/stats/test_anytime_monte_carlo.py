"""Seeded Monte Carlo: checked at 500 looks, the anytime-valid tests keep the false-positive rate <= alpha
while a naive z-test at every look does not; under a real effect they still detect it.

The Gaussian part has a known variance, so the variance at look k is 2/n_k and the test's boundary at each
look is the confidence-sequence radius from `msprt_normal` (rejecting exactly when the null is outside the
sequence, which `test_sequential.py` checks against the p-value). The proportions part calls
`msprt_proportions` on every look, with estimated variances, as the significance check does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from canarywise.stats.sequential import mixing_variance, msprt_normal, msprt_proportions

ALPHA = 0.05
LOOKS = 500


def _ceiling(n_sims: int) -> float:
    """alpha plus three Monte Carlo standard errors of a rate estimated from n_sims runs."""
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / n_sims)


@pytest.fixture(scope="module")
def gaussian_design() -> dict[str, np.ndarray | float]:
    batch = 20  # observations per arm per look, unit variance
    n = batch * np.arange(1, LOOKS + 1)
    variance = 2.0 / n
    # MDE sized for 80 % power of a fixed test at the last look: (z_{1-alpha/2} + z_{0.8}) sqrt(V_h).
    mde = (norm.isf(ALPHA / 2) + norm.isf(0.2)) * math.sqrt(variance[-1])
    tau2 = mixing_variance(mde, variance[-1], ALPHA)
    two_sided = np.array([msprt_normal(0.0, v, tau2=tau2, alpha=ALPHA).ci_high for v in variance])
    harm = np.array(
        [-msprt_normal(0.0, v, tau2=tau2, alpha=ALPHA, alternative="greater").ci_low for v in variance]
    )
    return {"batch": batch, "n": n, "variance": variance, "mde": mde, "two_sided": two_sided, "harm": harm}


def _estimates(design: dict[str, np.ndarray | float], effect: float, sims: int, seed: int) -> np.ndarray:
    """Cumulative treatment − control mean differences, one row per simulated rollout, one column per look."""
    rng = np.random.default_rng(seed)
    batch = float(design["batch"])  # type: ignore[arg-type]
    look_sums = rng.normal(effect * batch, math.sqrt(batch), (sims, LOOKS)) - rng.normal(
        0.0, math.sqrt(batch), (sims, LOOKS)
    )
    return np.cumsum(look_sums, axis=1) / design["n"]


@pytest.mark.slow
def test_aa_false_positive_rate_stays_below_alpha_while_naive_peeking_explodes(
    gaussian_design: dict[str, np.ndarray | float],
) -> None:
    sims = 4000
    estimate = _estimates(gaussian_design, 0.0, sims, seed=20261122)
    z = estimate / np.sqrt(gaussian_design["variance"])

    anytime = np.mean(np.any(np.abs(estimate) >= gaussian_design["two_sided"], axis=1))
    harm = np.mean(np.any(estimate >= gaussian_design["harm"], axis=1))
    naive = np.mean(np.any(np.abs(z) >= norm.isf(ALPHA / 2), axis=1))
    fixed_last_look = np.mean(np.abs(z[:, -1]) >= norm.isf(ALPHA / 2))

    assert anytime <= _ceiling(sims)
    assert harm <= _ceiling(sims)
    assert naive > 0.3  # ~0.5 at 500 looks: the reason for anytime-valid tests
    assert abs(fixed_last_look - ALPHA) < 3 * math.sqrt(ALPHA * (1 - ALPHA) / sims)  # the simulation is sound


@pytest.mark.slow
def test_power_and_time_uniform_coverage_under_a_real_effect(
    gaussian_design: dict[str, np.ndarray | float],
) -> None:
    sims = 4000
    mde = float(gaussian_design["mde"])  # type: ignore[arg-type]
    estimate = _estimates(gaussian_design, mde, sims, seed=7)

    detected = np.mean(np.any(np.abs(estimate) >= gaussian_design["two_sided"], axis=1))
    harm_detected = np.mean(np.any(estimate >= gaussian_design["harm"], axis=1))
    missed_at_some_look = np.mean(np.any(np.abs(estimate - mde) >= gaussian_design["two_sided"], axis=1))

    # The price of looking 500 times is some power below the fixed test's 0.8, not most of it.
    assert detected > 0.45
    assert harm_detected > detected  # the one-sided mixture spends everything on the side that matters
    assert missed_at_some_look <= _ceiling(sims)  # the sequence covers the true effect at every look


@pytest.mark.slow
def test_harm_test_holds_its_level_when_the_candidate_is_better(
    gaussian_design: dict[str, np.ndarray | float],
) -> None:
    """H0 of the harm test is composite (diff <= 0): a better candidate must not raise false rollbacks."""
    sims = 4000
    estimate = _estimates(gaussian_design, -float(gaussian_design["mde"]), sims, seed=11)  # type: ignore[arg-type]
    assert np.mean(np.any(estimate >= gaussian_design["harm"], axis=1)) <= _ceiling(sims)


@pytest.mark.slow
def test_proportions_with_estimated_variances_hold_alpha_over_500_looks() -> None:
    sims, batch, rate = 400, 50, 0.1
    rng = np.random.default_rng(5)
    control = np.cumsum(rng.binomial(batch, rate, (sims, LOOKS)), axis=1)
    treatment = np.cumsum(rng.binomial(batch, rate, (sims, LOOKS)), axis=1)
    n = batch * np.arange(1, LOOKS + 1)
    variance_h = 2 * rate * (1 - rate) / n[-1]
    tau2 = mixing_variance((norm.isf(ALPHA / 2) + norm.isf(0.2)) * math.sqrt(variance_h), variance_h, ALPHA)

    def rejected(i: int) -> bool:
        return any(
            msprt_proportions(
                int(control[i, k]), int(n[k]), int(treatment[i, k]), int(n[k]), tau2=tau2
            ).pvalue
            <= ALPHA
            for k in range(LOOKS)
        )

    naive_z = (
        (treatment - control)
        / n
        / np.sqrt((control / n * (1 - control / n) + treatment / n * (1 - treatment / n)) / n)
    )
    assert np.mean([rejected(i) for i in range(sims)]) <= _ceiling(sims)
    assert np.mean(np.any(np.abs(naive_z) >= norm.isf(ALPHA / 2), axis=1)) > 0.3
