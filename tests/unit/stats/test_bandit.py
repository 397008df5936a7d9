"""Thompson-sampling allocation against P(best) computed by numerical integration with scipy.stats.beta."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.integrate import quad
from scipy.stats import beta

from canarywise.stats.bandit import thompson_allocation


def prob_best_by_quad(successes: list[int], trials: list[int]) -> list[float]:
    """P(arm i has the largest rate) = ∫ f_i(x) ∏_{j≠i} F_j(x) dx, independent Beta(1+s, 1+n−s) posteriors."""
    posteriors = [beta(1 + s, 1 + n - s) for s, n in zip(successes, trials, strict=True)]
    out = []
    for i, own in enumerate(posteriors):
        others = [p for j, p in enumerate(posteriors) if j != i]

        def integrand(x: float, own=own, others=others) -> float:  # type: ignore[no-untyped-def]
            return float(own.pdf(x) * math.prod(p.cdf(x) for p in others))

        # Integrate where the posteriors live; split at their means so quad sees the narrow bumps.
        cuts = sorted({0.0, 1.0, *(float(p.mean()) for p in posteriors)})
        out.append(
            sum(quad(integrand, a, b, limit=200, epsabs=1e-12)[0] for a, b in itertools.pairwise(cuts))
        )
    return out


def _mc_tolerance(p: float, draws: int) -> float:
    return 4 * math.sqrt(max(p * (1 - p), 1e-12) / draws) + 1e-12


@pytest.mark.parametrize(
    ("successes", "trials"),
    [
        ([12, 18], [100, 100]),
        ([3, 5], [40, 35]),
        ([4200, 4700], [50000, 50000]),  # the conversion example: B is clearly better
        ([0, 0], [0, 0]),  # no data: a coin flip
        ([30, 36, 33], [300, 300, 300]),
    ],
)
def test_prob_best_matches_numerical_integration(successes: list[int], trials: list[int]) -> None:
    draws = 200_000
    result = thompson_allocation(successes, trials, min_share=0.0, draws=draws, seed=2026)
    for got, expected in zip(result.prob_best, prob_best_by_quad(successes, trials), strict=True):
        assert abs(got - expected) <= _mc_tolerance(expected, draws)
    assert_allclose(result.shares, result.prob_best, rtol=0, atol=0)
    assert_allclose(sum(result.prob_best), 1.0, rtol=1e-12)
    assert_allclose(
        result.posterior_mean, [(s + 1) / (n + 2) for s, n in zip(successes, trials, strict=True)]
    )


def test_minimum_share_is_a_floor_and_shares_sum_to_one() -> None:
    """share_i = m + (1 − k m) P(best_i): with B far ahead, A keeps exactly the floor."""
    result = thompson_allocation([4200, 4700], [50000, 50000], min_share=0.1, draws=50_000, seed=3)
    assert result.prob_best == (0.0, 1.0)
    assert_allclose(result.shares, [0.1, 0.9], rtol=1e-12)
    three = thompson_allocation([30, 36, 33], [300, 300, 300], min_share=0.2, draws=50_000, seed=3)
    assert min(three.shares) >= 0.2
    assert_allclose(sum(three.shares), 1.0, rtol=1e-12)
    assert_allclose(three.shares, [0.2 + 0.4 * p for p in three.prob_best], rtol=1e-12)
    assert np.argmax(three.shares) == 1


def test_seeded_allocation_is_reproducible() -> None:
    first = thompson_allocation([12, 18], [100, 100], seed=42, draws=5_000)
    assert first == thompson_allocation([12, 18], [100, 100], seed=42, draws=5_000)
    generator = np.random.default_rng(42)
    assert thompson_allocation([12, 18], [100, 100], seed=generator, draws=5_000) == first
    assert thompson_allocation([12, 18], [100, 100], seed=43, draws=5_000) != first


def test_floor_at_one_over_k_is_an_even_split() -> None:
    result = thompson_allocation([1, 90], [100, 100], min_share=0.5, seed=1)
    assert_allclose(result.shares, [0.5, 0.5], rtol=1e-12)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (
            ([1], [10]),
            {},
            "`successes` and `trials` must have one entry per arm and at least two arms, found 1 and 1",
        ),
        (
            ([1, 2], [10]),
            {},
            "`successes` and `trials` must have one entry per arm and at least two arms, found 2 and 1",
        ),
        (([11, 2], [10, 10]), {}, "`successes[0]` must not exceed its number of trials (10), found 11"),
        (([1, 2], [10, -1]), {}, "`trials[1]` must be an integer >= 0, found -1"),
        (([1, 2], [10, 10]), {"min_share": 0.6}, "`min_share` must be in [0, 1/2] for 2 arms, found 0.6"),
        (
            ([1, 2, 3], [10, 10, 10]),
            {"min_share": -0.1},
            "`min_share` must be in [0, 1/3] for 3 arms, found -0.1",
        ),
        (([1, 2], [10, 10]), {"draws": 0}, "`draws` must be an integer >= 1, found 0"),
    ],
)
def test_raises(args: tuple[list[int], list[int]], kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        thompson_allocation(*args, **kwargs)  # type: ignore[arg-type]
