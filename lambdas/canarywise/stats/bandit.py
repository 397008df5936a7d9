"""Thompson-sampling traffic allocation for a Beta-Bernoulli bandit, with a minimum share per arm.

Used by a bandit mode in place of fixed weights: each arm gets traffic in proportion to the posterior
probability that it is the best, but never less than ``min_share``, so every arm keeps producing the data
that the guardrail tests and the SRM check need.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from canarywise.stats._checks import StatsInputError, check_count, check_successes

__all__ = ["BanditAllocation", "thompson_allocation"]


@dataclass(frozen=True)
class BanditAllocation:
    """Traffic shares from Thompson sampling.

    Attributes
    ----------
    shares : tuple of float
        Traffic share per arm, each >= ``min_share``, summing to 1.
    prob_best : tuple of float
        Monte Carlo estimate of P(arm has the highest success rate | data) under Beta(1, 1) priors.
    posterior_mean : tuple of float
        (successes + 1) / (trials + 2) per arm.
    draws : int
        Posterior draws per arm behind ``prob_best`` (its standard error is at most 0.5/sqrt(draws)).
    min_share : float
        The floor every arm's share respects.
    method : str
    """

    shares: tuple[float, ...]
    prob_best: tuple[float, ...]
    posterior_mean: tuple[float, ...]
    draws: int
    min_share: float
    method: str


def thompson_allocation(
    successes: Sequence[int],
    trials: Sequence[int],
    *,
    min_share: float = 0.05,
    draws: int = 10_000,
    seed: int | np.random.Generator | None = None,
) -> BanditAllocation:
    """Allocate traffic by the posterior probability that each arm is best, with a floor per arm.

    Parameters
    ----------
    successes, trials : sequence of int
        Cumulative successes (e.g. conversions) and trials per arm; at least two arms.
    min_share : float, default 0.05
        Minimum traffic share of every arm, in [0, 1/k] for k arms.
    draws : int, default 10_000
        Posterior draws per arm for the Monte Carlo estimate of P(best).
    seed : int, numpy Generator or None
        Seed (or generator) for `numpy.random.default_rng`; pass one for a reproducible allocation.

    Returns
    -------
    BanditAllocation

    Notes
    -----
    Each arm's success rate has a Beta(1 + s, 1 + n − s) posterior (uniform prior). P(arm i is best) is
    estimated as the share of joint posterior draws in which arm i has the largest rate (Thompson 1933;
    the "probability matching" allocation of Scott 2010). The floor is applied as a mixture with the uniform
    split: ``share_i = min_share + (1 − k·min_share) · P(best_i)``, which keeps every share >= ``min_share``,
    the shares summing to 1, and the ranking of the arms unchanged.

    References
    ----------
    .. [1] Thompson, W. R. (1933). "On the likelihood that one unknown probability exceeds another in view of
           the evidence of two samples." Biometrika 25(3/4), 285-294.
    .. [2] Scott, S. L. (2010). "A modern Bayesian look at the multi-armed bandit." Applied Stochastic Models
           in Business and Industry 26(6), 639-658.

    Example
    -------
    >>> a = thompson_allocation([4200, 4700], [50000, 50000], seed=1)
    >>> [round(s, 3) for s in a.shares]
    [0.05, 0.95]
    """
    if len(successes) != len(trials) or len(trials) < 2:
        raise StatsInputError(
            "`successes` and `trials` must have one entry per arm and at least two arms, "
            f"found {len(successes)} and {len(trials)}"
        )
    counts = [check_count(f"trials[{i}]", n) for i, n in enumerate(trials)]
    wins = [check_count(f"successes[{i}]", s) for i, s in enumerate(successes)]
    for i, (s, n) in enumerate(zip(wins, counts, strict=True)):
        check_successes(f"successes[{i}]", s, n)
    arms = len(counts)
    if not (isinstance(min_share, int | float) and math.isfinite(min_share) and 0 <= min_share <= 1 / arms):
        raise StatsInputError(f"`min_share` must be in [0, 1/{arms}] for {arms} arms, found {min_share!r}")
    draws = check_count("draws", draws, minimum=1)

    rng = np.random.default_rng(seed)
    a = np.asarray(wins, dtype=np.float64) + 1.0
    b = np.asarray(counts, dtype=np.float64) - np.asarray(wins, dtype=np.float64) + 1.0
    samples = rng.beta(a, b, size=(draws, arms))
    prob_best = np.bincount(np.argmax(samples, axis=1), minlength=arms) / draws
    shares = min_share + (1.0 - arms * min_share) * prob_best
    return BanditAllocation(
        shares=tuple(float(x) for x in shares),
        prob_best=tuple(float(x) for x in prob_best),
        posterior_mean=tuple(float(x) for x in a / (a + b)),
        draws=draws,
        min_share=float(min_share),
        method="Thompson sampling, Beta(1, 1) prior, P(best) mixed with a uniform floor",
    )
