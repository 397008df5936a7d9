"""Lan-DeMets group-sequential boundaries against published gsDesign values and an independent multivariate
normal computation (scipy.stats.multivariate_normal.cdf, Genz's algorithm: no shared code with the
recursive integration under test)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.stats import multivariate_normal, norm

from canarywise.stats.group_sequential import alpha_spending, lan_demets_bounds, spending_boundaries


def _first_crossing_probabilities(fractions: list[float], boundaries: tuple[float, ...]) -> np.ndarray:
    """P(Z_1 < b_1, ..., Z_{k-1} < b_{k-1}, Z_k >= b_k) under H0, with Corr(Z_i, Z_j) = sqrt(t_i / t_j).

    Computed as P(no crossing by k-1) - P(no crossing by k), each a multivariate normal CDF (scipy/Genz).
    """
    t = np.asarray(fractions)
    corr = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    b = np.asarray(boundaries)
    stay = [1.0]
    for k in range(1, len(t) + 1):
        if k == 1:
            stay.append(float(norm.cdf(b[0])))
        else:
            mvn = multivariate_normal(
                mean=np.zeros(k), cov=corr[:k, :k], abseps=1e-9, releps=1e-9, maxpts=500_000, seed=1
            )
            stay.append(float(mvn.cdf(b[:k])))
    return -np.diff(stay)


def test_gsdesign_sfldof_k3_equally_spaced() -> None:
    """gsDesign(k=3, test.type=1, alpha=0.025, sfu=sfLDOF)$upper$bound = 3.7103 2.5114 1.9930.

    These classic values (quoted in the issue brief; R is not on this machine) agree with the
    multivariate-normal check below, which is the independent reference for every fraction vector.
    """
    bounds = lan_demets_bounds([1 / 3, 2 / 3, 1.0], alpha=0.025, spending="obf")
    assert_allclose(bounds.boundaries, [3.7103, 2.5114, 1.9930], atol=1e-4)


def test_gsdesign_published_hsd_design_through_spending_boundaries() -> None:
    """The recursion with gsDesign's default spending, sfHSD(gamma = -4), k = 5, equally spaced, alpha 0.025.

    Published in keaven/gsDesign tests/testthat/_snaps/independent-test-gsBoundSummary.md for
    ``gsDesign(nFixSurv = 0, k = 5, test.type = 1, n.fix = 1)``: Z = 3.2527 2.9860 2.6917 2.3737 2.0253.
    sfHSD: alpha * (1 - exp(-gamma t)) / (1 - exp(-gamma)).
    """
    t = np.arange(1, 6) / 5
    gamma = -4.0
    cumulative = 0.025 * (1 - np.exp(-gamma * t)) / (1 - np.exp(-gamma))
    assert_allclose(spending_boundaries(t, cumulative), [3.2527, 2.9860, 2.6917, 2.3737, 2.0253], atol=1e-4)


def test_seqbounds_jl_published_obf_quarters() -> None:
    """SeqBounds.jl README: bounds([0.25, 0.5, 0.75, 1.0], 0.05) (one-sided O'Brien-Fleming-type spending)
    prints Z = 3.74955 2.53993 2.01604 1.72014, computed on a coarser grid (h = 0.05), hence 1e-3."""
    bounds = lan_demets_bounds([0.25, 0.5, 0.75, 1.0], alpha=0.05, spending="obf")
    assert_allclose(bounds.boundaries, [3.74955, 2.53993, 2.01604, 1.72014], atol=1e-3)


@pytest.mark.parametrize("spending", ["obf", "pocock"])
@pytest.mark.parametrize(
    ("fractions", "alpha"),
    [
        ([0.2857, 0.5714, 1.0], 0.025),
        ([1 / 3, 2 / 3, 1.0], 0.025),
        ([0.1, 0.35, 0.5, 0.8, 1.0], 0.025),
        ([0.5, 1.0], 0.05),
        ([0.2, 0.9], 0.01),  # the last look short of full information: alpha(0.9) < alpha
    ],
)
def test_crossing_probabilities_equal_spending_increments(
    fractions: list[float], alpha: float, spending: str
) -> None:
    bounds = lan_demets_bounds(fractions, alpha=alpha, spending=spending)
    expected_increments = np.diff(bounds.cumulative_alpha, prepend=0.0)
    assert_allclose(
        _first_crossing_probabilities(fractions, bounds.boundaries), expected_increments, atol=1e-6
    )


@pytest.mark.parametrize("spending", ["obf", "pocock"])
def test_spending_functions_match_gsdesign_definitions(spending: str) -> None:
    """sfLDOF: 2 - 2 Phi(qnorm(1 - alpha/2) / sqrt(t)); sfLDPocock: alpha log(1 + (e - 1) t)."""
    t = np.array([0.05, 0.2857, 0.5, 0.5714, 0.9, 1.0])
    alpha = 0.025
    if spending == "obf":
        # 2 - 2 Phi(x) evaluated as 2 Phi-bar(x), so the 1e-23 spent by t = 0.05 is not rounded to 0.
        expected = 2 * norm.sf(norm.ppf(1 - alpha / 2) / np.sqrt(t))
    else:
        expected = alpha * np.log(1 + (math.e - 1) * t)
    assert_allclose(alpha_spending(t, alpha=alpha, spending=spending), expected, rtol=1e-10)
    bounds = lan_demets_bounds(t, alpha=alpha, spending=spending)
    assert_allclose(bounds.cumulative_alpha, expected, rtol=1e-10)
    assert_allclose(bounds.nominal_pvalues, norm.sf(bounds.boundaries), rtol=1e-10)


def test_single_look_is_the_fixed_sample_test() -> None:
    bounds = lan_demets_bounds([1.0], alpha=0.025)
    assert_allclose(bounds.boundaries, [norm.isf(0.025)], rtol=1e-12)


def test_look_that_spends_nothing_has_infinite_boundary_and_leaves_the_rest() -> None:
    """With nothing spent at the first look, the second is a fixed-sample test: norm.isf(alpha)."""
    boundaries = spending_boundaries([0.1, 1.0], [0.0, 0.025])
    assert boundaries[0] == math.inf
    assert_allclose(boundaries[1], norm.isf(0.025), rtol=1e-7)


def test_pocock_boundaries_are_nearly_flat_and_obf_decreasing() -> None:
    obf = lan_demets_bounds([0.2, 0.4, 0.6, 0.8, 1.0], spending="obf").boundaries
    pocock = lan_demets_bounds([0.2, 0.4, 0.6, 0.8, 1.0], spending="pocock").boundaries
    assert all(np.diff(obf) < 0)
    assert max(pocock) - min(pocock) < 0.1
    assert obf[-1] < pocock[-1]  # O'Brien-Fleming keeps most of alpha for the last look


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"fractions": [0.5, 0.4]},
            "`fractions` must be strictly increasing numbers in (0, 1], found [0.5, 0.4]",
        ),
        (
            {"fractions": [0.0, 1.0]},
            "`fractions` must be strictly increasing numbers in (0, 1], found [0.0, 1.0]",
        ),
        (
            {"fractions": [0.5, 1.5]},
            "`fractions` must be strictly increasing numbers in (0, 1], found [0.5, 1.5]",
        ),
        ({"fractions": []}, "`fractions` must be strictly increasing numbers in (0, 1], found []"),
        ({"fractions": [1.0], "alpha": 0.6}, "`alpha` must be in (0, 0.5] (one-sided), found 0.6"),
        ({"fractions": [1.0], "alpha": 0.0}, "`alpha` must be in (0, 0.5] (one-sided), found 0.0"),
        (
            {"fractions": [1.0], "spending": "hsd"},
            "`spending` must be one of ('obf', 'pocock'), found 'hsd'",
        ),
    ],
)
def test_raises(kwargs: dict[str, object], message: str) -> None:
    fractions = kwargs.pop("fractions")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        lan_demets_bounds(fractions, **kwargs)  # type: ignore[arg-type]


def test_raises_on_bad_cumulative_alpha() -> None:
    message = (
        "`cumulative_alpha` must be non-decreasing numbers in [0, 1), one per fraction, found [0.02, 0.01]"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        spending_boundaries([0.5, 1.0], [0.02, 0.01])


def _monte_carlo_crossed(
    fractions: np.ndarray, boundaries: tuple[float, ...], checkpoints: list[int], paths: int, seed: int
) -> np.ndarray:
    """Share of simulated paths that crossed some boundary by each checkpoint look (1-based index).

    The z-process itself, simulated: the score S_k = Z_k sqrt(t_k) is Brownian motion observed at t_k, so
    S_k = S_{k-1} + N(0, t_k - t_{k-1}); a path has crossed by look k when some S_j >= b_j sqrt(t_j), j <= k.
    """
    rng = np.random.default_rng(seed)
    sds = np.sqrt(np.diff(fractions, prepend=0.0))
    cuts = np.asarray(boundaries) * np.sqrt(fractions)
    score = np.zeros(paths)
    crossed = np.zeros(paths, dtype=bool)
    shares = []
    for start in range(0, fractions.size, 256):
        stop = min(start + 256, fractions.size)
        steps = np.cumsum(rng.standard_normal((stop - start, paths)) * sds[start:stop, None], axis=0)
        levels = score + steps
        over = levels >= cuts[start:stop, None]
        for look in (c for c in checkpoints if start < c <= stop):
            shares.append((crossed | over[: look - start].any(axis=0)).mean())
        crossed |= over.any(axis=0)
        score = levels[-1]
    return np.array(shares)


@pytest.mark.parametrize(("looks", "paths"), [(500, 100_000), (2016, 40_000), (10_000, 10_000)])
def test_hundreds_to_10000_looks_spend_alpha_as_planned(looks: int, paths: int) -> None:
    """`canarywise bounds` up to 10,000 equally spaced looks (the README's horizon is 2,016 five-minute
    looks; 500 or more used to end in a traceback).

    No gsDesign values for so many looks are at hand (R is not on this machine, and multivariate-normal CDFs
    in thousands of dimensions are out of reach), so the reference is an independent, seeded Monte Carlo of
    the z-process (`_monte_carlo_crossed`, no code shared with the recursion): the share of paths that have
    crossed by t = 1/4, 1/2 and 1 must be the spending function's alpha(t), within 4 standard errors. The
    few-look tests above pin the same recursion to gsDesign and to the multivariate normal."""
    t = np.arange(1, looks + 1) / looks
    bounds = lan_demets_bounds(t, alpha=0.025, spending="obf")
    assert np.all(np.isfinite(bounds.boundaries[-looks // 2 :]))
    checkpoints = [looks // 4, looks // 2, looks]
    shares = _monte_carlo_crossed(t, bounds.boundaries, checkpoints, paths, seed=20261207)
    planned = 2 * norm.sf(norm.isf(0.0125) / np.sqrt(t[np.array(checkpoints) - 1]))
    assert_allclose(shares, planned, atol=4 * np.sqrt(0.025 * 0.975 / paths))
