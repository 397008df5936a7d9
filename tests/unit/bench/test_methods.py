"""The benchmark's comparison methods do what their names say.

Each behaviour is checked against an independent reference: statsmodels for the z-test and the sample size,
scipy's multivariate normal for the false-positive rate of repeated looks, Wald's identity and his
approximations for the SPRT, GrowthBook's published half-width for its tuning. Monte Carlo checks compare
within 4 standard errors (a false alarm about once in 16,000 runs) with fixed seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import ndtr, ndtri
from scipy.stats import multivariate_normal
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportions_ztest

from bench.methods import (
    NEVER,
    MsprtBoundary,
    bernoulli_sprt,
    first_true,
    fixed_horizon,
    growthbook_rho2,
    growthbook_tau2,
    naive_z,
    obrien_fleming,
    planned_information,
    planned_look,
    planning_information,
    pooled_z,
    wald_asn,
    wald_sprt,
)
from bench.scenarios import (
    Scenario,
    Schedule,
    Streams,
    difference_estimates,
    ladder_schedule,
    simulate,
)
from canarywise.spec import load_spec
from canarywise.stats.sequential import msprt_normal

ALPHA = 0.05
AA = Scenario("aa", "A/A 12%", 0.12, 0.12, mde=0.02)


def within(rate: float, expected: float, replicates: int) -> None:
    se = math.sqrt(expected * (1 - expected) / replicates)
    assert abs(rate - expected) <= 4 * se, f"rate {rate:.4f}, expected {expected:.4f} +- 4 x {se:.4f}"


def batches(looks: int, sessions_per_look: float, share: float) -> Schedule:
    """`looks` equal batches of traffic: equal information increments, the classic repeated-looks setting."""
    return Schedule(
        tick_seconds=300,
        percents=(share * 100,),
        stage_starts=(0,),
        shares=np.full(looks, share),
        stage_index=np.zeros(looks, dtype=np.int64),
        expected_sessions=np.full(looks, sessions_per_look),
    )


def test_first_true() -> None:
    mask = np.array([[False, False, True], [True, True, False], [False, False, False]])
    assert first_true(mask).tolist() == [2, 0, NEVER]


def test_pooled_z_matches_statsmodels() -> None:
    """statsmodels: proportions_ztest([700, 59400], [5000, 495000]) -> z = 4.3306 (pooled variance)."""
    cumulative = Streams(*(np.array([[v]]) for v in (495_000, 59_400, 5_000, 700)))
    z_ref, _ = proportions_ztest([700, 59_400], [5_000, 495_000])
    assert_allclose(pooled_z(cumulative)[0, 0], z_ref, rtol=1e-12)


def test_planned_information_matches_statsmodels_sample_size() -> None:
    """With equal arms at rate p, n per arm = 2 p (1-p) * I; statsmodels: NormalIndPower().solve_power(
    effect_size=0.02/sqrt(0.12*0.88), alpha=0.05, power=0.8, alternative='larger').
    """
    p = 0.12
    n_ref = NormalIndPower().solve_power(
        effect_size=0.02 / math.sqrt(p * (1 - p)), alpha=ALPHA, power=0.8, alternative="larger"
    )
    info = planned_information(0.02, alpha=ALPHA, power=0.8)
    assert_allclose(2 * p * (1 - p) * info, n_ref, rtol=1e-9)


def test_planned_look_is_where_the_expected_information_first_suffices() -> None:
    schedule = ladder_schedule(load_spec("config/mangaassist.yaml"))
    look = planned_look(schedule, 0.12, 0.02, alpha=ALPHA, power=0.8)
    info = planning_information(schedule, 0.12)
    need = planned_information(0.02, alpha=ALPHA, power=0.8)
    assert info[look] >= need > info[look - 1]
    assert schedule.stage_index[look] == 0  # the MDE is within reach of the 5% stage alone


def test_naive_z_at_every_look_of_a_week_rolls_back_far_more_than_alpha() -> None:
    """2,016 looks of a one-sided 5% z-test on A/A data: the false-rollback rate is several times alpha."""
    schedule = ladder_schedule(load_spec("config/mangaassist.yaml"))
    streams = simulate(schedule, AA, 400, np.random.default_rng(11))
    rate = float(np.mean(naive_z(streams.cumulative(), alpha=ALPHA) != NEVER))
    assert rate > 4 * ALPHA


def test_naive_z_at_five_equal_looks_matches_the_multivariate_normal() -> None:
    """Five equally spaced looks: P(max Z_k >= z_0.95) with Corr(Z_i, Z_j) = sqrt(i/j), by
    scipy.stats.multivariate_normal(cov=...).cdf([z_0.95] * 5) (Armitage et al. 1969)."""
    k = np.arange(1, 6)
    cov = np.sqrt(np.minimum.outer(k, k) / np.maximum.outer(k, k))
    crit = ndtri(1 - ALPHA)
    expected = 1 - multivariate_normal(mean=np.zeros(5), cov=cov).cdf(np.full(5, crit))
    replicates = 20_000
    streams = simulate(batches(5, 8000, 0.5), AA, replicates, np.random.default_rng(12))
    rate = float(np.mean(naive_z(streams.cumulative(), alpha=ALPHA) != NEVER))
    assert expected > 2 * ALPHA  # the reference itself shows the inflation
    within(rate, expected, replicates)


def test_fixed_horizon_false_positive_rate_is_alpha_at_its_single_look() -> None:
    schedule = ladder_schedule(load_spec("config/mangaassist.yaml"))
    look = planned_look(schedule, 0.12, 0.02, alpha=ALPHA, power=0.8)
    short = Schedule(
        schedule.tick_seconds,
        schedule.percents,
        (0,),
        schedule.shares[: look + 1],
        schedule.stage_index[: look + 1],
        schedule.expected_sessions[: look + 1],
    )
    replicates = 40_000
    streams = simulate(short, AA, replicates, np.random.default_rng(13))
    rollback = fixed_horizon(streams.cumulative(), look, alpha=ALPHA)
    assert set(np.unique(rollback).tolist()) <= {look, NEVER}
    within(float(np.mean(rollback == look)), ALPHA, replicates)


def test_fixed_horizon_has_the_planned_power_at_the_mde() -> None:
    """The planned look gives 80% power at 12% -> 14% (normal approximation, so within 4 SE of 0.8)."""
    schedule = ladder_schedule(load_spec("config/mangaassist.yaml"))
    look = planned_look(schedule, 0.12, 0.02, alpha=ALPHA, power=0.8)
    short = Schedule(
        schedule.tick_seconds,
        schedule.percents,
        (0,),
        schedule.shares[: look + 1],
        schedule.stage_index[: look + 1],
        schedule.expected_sessions[: look + 1],
    )
    replicates = 10_000
    harm = Scenario("harm", "12% -> 14%", 0.12, 0.14, mde=0.02)
    streams = simulate(short, harm, replicates, np.random.default_rng(14))
    power = float(np.mean(fixed_horizon(streams.cumulative(), look, alpha=ALPHA) == look))
    # The plan assumes the baseline variance in both arms; the exact power of the pooled test at the true
    # rates is Phi((delta - z_a * se0) / se1), se0 from the pooled rate and se1 from the true rates (Fleiss,
    # Statistical Methods for Rates and Proportions, 3rd ed., eq. 4.14).
    n_control, n_canary = (float(a[look]) for a in short.expected_counts())
    pooled = (0.12 * n_control + 0.14 * n_canary) / (n_control + n_canary)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_control + 1 / n_canary))
    se1 = math.sqrt(0.12 * 0.88 / n_control + 0.14 * 0.86 / n_canary)
    expected = float(ndtr((0.02 - ndtri(1 - ALPHA) * se0) / se1))
    assert 0.75 < expected < 0.85  # the plan's 80%, give or take the variance assumption
    within(power, expected, replicates)


def test_obrien_fleming_spends_alpha_over_its_looks() -> None:
    """Lan-DeMets O'Brien-Fleming over ten equal looks up to the planned information: A/A rate ~ alpha."""
    replicates = 20_000
    schedule = batches(10, 4000, 0.5)
    streams = simulate(schedule, AA, replicates, np.random.default_rng(15))
    fractions = np.arange(1, 11) / 10
    rollback = obrien_fleming(difference_estimates(streams.cumulative()), fractions, alpha=ALPHA)
    within(float(np.mean(rollback != NEVER)), ALPHA, replicates)


def test_wald_sprt_never_rolls_back_good_releases_more_than_alpha() -> None:
    """One-boundary SPRT: P(ever rolling back | A/A) <= alpha over a whole week of looks (Ville)."""
    schedule = ladder_schedule(load_spec("config/mangaassist.yaml"))
    replicates = 1000
    streams = simulate(schedule, AA, replicates, np.random.default_rng(16))
    rate = float(np.mean(wald_sprt(difference_estimates(streams.cumulative()), 0.02, alpha=ALPHA) != NEVER))
    assert rate <= ALPHA + 4 * math.sqrt(ALPHA * (1 - ALPHA) / replicates)


@pytest.mark.parametrize("truth", ["h0", "h1"])
def test_bernoulli_sprt_matches_wald(truth: str) -> None:
    """Wald's SPRT of p0 = 0.10 against p1 = 0.15 at alpha = 0.05, beta = 0.2.

    Checked against (1) Wald's identity E[S_N] = E[z] E[N], S_N the log LR at stopping, z one observation's
    log LR (an exact equality); (2) Wald's error bounds P(accept H1 | p0) <= alpha / (1 - beta) and
    P(accept H0 | p1) <= beta / (1 - alpha); (3) Wald's approximate ASN, which ignores the overshoot of the
    boundary: the simulated mean lies between the ASN computed with the simulated exit probabilities and no
    overshoot, and the same plus the largest possible overshoot (one observation's log LR).
    """
    p0, p1, beta = 0.10, 0.15, 0.2
    p_true = p0 if truth == "h0" else p1
    replicates, horizon = 20_000, 3000
    outcomes = (np.random.default_rng(17).random((replicates, horizon)) < p_true).astype(np.int8)
    n, accept_h1 = bernoulli_sprt(outcomes, p0, p1, alpha=ALPHA, beta=beta)
    assert n.max() <= horizon  # every path stopped

    up, down = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    steps = np.where(outcomes == 1, up, down)
    used = np.arange(horizon)[None, :] < n[:, None]
    s_n = (steps * used).sum(axis=1)
    drift = p_true * up + (1 - p_true) * down
    identity_gap = s_n - drift * n  # mean zero by Wald's identity
    assert abs(identity_gap.mean()) <= 4 * identity_gap.std() / math.sqrt(replicates)

    if truth == "h0":
        assert accept_h1.mean() <= ALPHA / (1 - beta) + 4 * math.sqrt(ALPHA * (1 - ALPHA) / replicates)
    else:
        assert (~accept_h1).mean() <= beta / (1 - ALPHA) + 4 * math.sqrt(beta * (1 - beta) / replicates)

    log_a, log_b = math.log((1 - beta) / ALPHA), math.log(beta / (1 - ALPHA))
    p_up = accept_h1.mean()
    no_overshoot = (p_up * log_a + (1 - p_up) * log_b) / drift
    full_overshoot = (p_up * (log_a + up) + (1 - p_up) * (log_b + down)) / drift
    low, high = sorted((no_overshoot, full_overshoot))
    mean_se = n.std() / math.sqrt(replicates)
    assert low - 4 * mean_se <= n.mean() <= high + 4 * mean_se
    # Wald's textbook ASN (nominal exit probabilities) is within that overshoot band of the simulated mean.
    textbook = wald_asn(p_true, p0, p1, alpha=ALPHA, beta=beta)
    assert abs(n.mean() - textbook) <= (high - low) + 4 * mean_se


def test_growthbook_tuning_is_its_published_confidence_sequence() -> None:
    """GrowthBook (gbstats sequential_interval_halfwidth; Waudby-Smith et al. 2024 eq. 9):
    half-width = sqrt(s2) * sqrt(2 (n rho2 + 1) / (n rho2)**2 * log(sqrt(n rho2 + 1) / alpha)), s2 = V * n."""
    rho2 = (-2 * math.log(ALPHA) + math.log(-2 * math.log(ALPHA) + 1)) / 5000
    assert_allclose(growthbook_rho2(ALPHA, 5000), rho2, rtol=1e-15)
    cumulative = Streams(*(np.array([[v]]) for v in (190_000, 22_800, 10_000, 1_260)))
    estimates = difference_estimates(cumulative)
    n = 200_000
    s2 = float(estimates.variance[0, 0]) * n
    half_width = math.sqrt(s2) * math.sqrt(
        2 * (n * rho2 + 1) / (n * n * rho2) * math.log(math.sqrt(n * rho2 + 1) / ALPHA)
    )
    tau2 = float(growthbook_tau2(estimates, alpha=ALPHA)[0, 0])
    result = msprt_normal(
        float(estimates.diff[0, 0]), float(estimates.variance[0, 0]), tau2=tau2, alpha=ALPHA
    )
    assert_allclose(result.ci_high - result.diff, half_width, rtol=1e-10)


@pytest.mark.parametrize("alternative", ["greater", "two-sided"])
def test_msprt_boundary_agrees_with_msprt_normal(alternative: str) -> None:
    """The tabulated rejection region decides as msprt_normal does, away from a 1e-6 band at the boundary."""
    boundary = MsprtBoundary.tabulate(alpha=ALPHA, alternative=alternative)
    rng = np.random.default_rng(18)
    ratio = np.exp(rng.uniform(math.log(1e-3), math.log(1e6), 400))
    z = rng.uniform(0, 6, 400)
    for r, zz in zip(ratio, z, strict=True):
        reference = msprt_normal(zz, 1.0, tau2=r, alpha=ALPHA, alternative=alternative)
        if abs(zz - boundary(np.array([r]))[0]) < 1e-6:
            continue
        estimates = difference_estimates(Streams(*(np.array([[v]]) for v in (1, 0, 1, 0))))
        estimates = type(estimates)(np.array([[zz]]), np.array([[1.0]]), np.array([[2.0]]))
        assert bool(boundary.rejects(estimates, r)[0, 0]) == (reference.pvalue <= ALPHA), (r, zz)
