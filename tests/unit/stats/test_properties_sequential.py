"""Invariants of the anytime-valid tests, checked with hypothesis."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from canarywise.stats.means import SummaryStats
from canarywise.stats.sequential import (
    always_valid_pvalues,
    msprt_means,
    msprt_normal,
    msprt_proportions,
    running_confidence_sequence,
)

estimates = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)
variances = st.floats(min_value=1e-8, max_value=1e4)
alphas = st.floats(min_value=1e-4, max_value=0.5)
alternatives = st.sampled_from(["two-sided", "greater", "less"])


def _positive_ratio(base: float) -> st.SearchStrategy[float]:
    """τ² within nine orders of magnitude of the variance: the range a planner would pick from."""
    return st.floats(min_value=-4.5, max_value=4.5).map(lambda exponent: base * 10.0**exponent)


@st.composite
def normal_looks(draw: st.DrawFn) -> tuple[float, float, float, float, str, float]:
    variance = draw(variances)
    tau2 = draw(_positive_ratio(variance))
    estimate = draw(estimates)
    null = estimate + draw(st.floats(min_value=-10, max_value=10)) * math.sqrt(variance)
    return estimate, variance, tau2, draw(alphas), draw(alternatives), null


@settings(max_examples=300, deadline=None)
@given(normal_looks())
def test_pvalue_in_unit_interval_and_sequence_contains_its_estimate(
    look: tuple[float, float, float, float, str, float],
) -> None:
    estimate, variance, tau2, alpha, alternative, null = look
    r = msprt_normal(estimate, variance, tau2=tau2, alpha=alpha, alternative=alternative, null=null)
    assert 0.0 <= r.pvalue <= 1.0
    assert r.ci_low <= r.diff <= r.ci_high
    # Rejecting is the same as the null falling outside the sequence (up to rounding at the very edge).
    radius = max(abs(end - r.diff) for end in (r.ci_low, r.ci_high) if math.isfinite(end))
    edge = 1e-9 * (abs(null) + abs(estimate) + radius)
    if r.ci_low + edge < null < r.ci_high - edge:
        assert r.pvalue > alpha * (1 - 1e-9)
    elif null < r.ci_low - edge or null > r.ci_high + edge:
        assert r.pvalue <= alpha * (1 + 1e-9)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=1e-6, max_value=1e3),
    st.floats(min_value=1.0001, max_value=1e3),
    st.floats(min_value=1e-6, max_value=1e3),
    alphas,
)
def test_sequence_narrows_as_the_variance_falls(
    variance: float, shrink: float, tau2: float, alpha: float
) -> None:
    """More data (a smaller variance, the same τ²) never widens the sequence."""
    wide = msprt_normal(0.0, variance, tau2=tau2, alpha=alpha)
    narrow = msprt_normal(0.0, variance / shrink, tau2=tau2, alpha=alpha)
    assert narrow.ci_high - narrow.ci_low <= wide.ci_high - wide.ci_low


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=3, max_value=40),
    st.floats(min_value=-1.0, max_value=1.0),
)
def test_running_intersection_only_shrinks(seed: int, looks: int, effect: float) -> None:
    """A stream of per-look sequences for a difference of means; their running intersection never widens."""
    rng = np.random.default_rng(seed)
    control = SummaryStats(0, 0.0, 0.0)
    treatment = SummaryStats(0, 0.0, 0.0)
    lows, highs = [], []
    for _ in range(looks):
        control = control + SummaryStats.from_values(rng.normal(0.0, 1.0, 25).tolist())
        treatment = treatment + SummaryStats.from_values(rng.normal(effect, 2.0, 25).tolist())
        r = msprt_means(control, treatment, tau2=0.25)
        assert r.ci_low <= r.diff <= r.ci_high
        lows.append(r.ci_low)
        highs.append(r.ci_high)
    low, high = running_confidence_sequence(lows, highs)
    assert np.all(np.diff(low) >= 0)
    assert np.all(np.diff(high) <= 0)
    assert np.all(low >= np.asarray(lows))
    assert np.all(high <= np.asarray(highs))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=1, max_value=10**6),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=1e-6, max_value=1.0),
)
def test_swapping_arms_mirrors_the_result(
    n_c: int, n_t: int, share_c: float, share_t: float, tau2: float
) -> None:
    x_c, x_t = round(share_c * n_c), round(share_t * n_t)
    forward = msprt_proportions(x_c, n_c, x_t, n_t, tau2=tau2)
    swapped = msprt_proportions(x_t, n_t, x_c, n_c, tau2=tau2)
    assert 0.0 <= forward.pvalue <= 1.0
    assert swapped.diff == -forward.diff
    assert math.isclose(swapped.pvalue, forward.pvalue, rel_tol=1e-12, abs_tol=1e-300)
    if math.isfinite(forward.ci_low):
        # the ends are brentq roots of a function built on a cubic's root: 1e-7, not a closed form's 1e-9
        assert math.isclose(swapped.ci_high, -forward.ci_low, rel_tol=1e-7, abs_tol=1e-12)
    harm = msprt_proportions(x_c, n_c, x_t, n_t, tau2=tau2, alternative="greater")
    mirrored = msprt_proportions(x_t, n_t, x_c, n_c, tau2=tau2, alternative="less")
    assert math.isclose(harm.pvalue, mirrored.pvalue, rel_tol=1e-12, abs_tol=1e-300)


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=50))
def test_always_valid_pvalues_are_monotone_and_never_above_the_look(pvalues: list[float]) -> None:
    running = always_valid_pvalues(pvalues)
    assert np.all(np.diff(running) <= 0)
    assert np.all(running <= np.asarray(pvalues))
    assert running[0] == pvalues[0]
