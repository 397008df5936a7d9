"""The methods canarywise is compared with, run on the same simulated streams.

Every method answers the harm question (H0: canary rate <= control rate; H1: canary is worse) one-sided at
the same ``alpha`` and returns, per replicate, the first look at which it would roll back (``NEVER`` if it
never does within the horizon). All are vectorised over replicates and looks.

- ``naive_z``: the textbook pooled two-proportion z-test, applied at every 5-minute look.
- ``fixed_horizon``: the same z-test applied once, at the look where the planned sample is reached.
- ``obrien_fleming``: Lan-DeMets O'Brien-Fleming alpha spending up to the planned information, with the
  boundaries from ``canarywise.stats.group_sequential.lan_demets_bounds``.
- ``msprt_growthbook``: a normal-mixture mSPRT at GrowthBook's default tuning (N* = 5000), the rejection
  region taken from ``canarywise.stats.sequential.msprt_normal`` itself (see ``MsprtBoundary``).
- ``wald_sprt``: Wald's SPRT told the true alternative: the lower bound on the expected sample size.

Example
-------
>>> first_true(np.array([[False, True, True], [False, False, False]])).tolist()
[1, -1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

from bench.scenarios import Estimates, FloatArray, IntArray, Schedule, Streams
from canarywise.simulation.arrays import NEVER
from canarywise.stats.sequential import msprt_normal

BoolArray = npt.NDArray[np.bool_]

# GrowthBook's default sequential-testing tuning parameter N* (total units where the sequence is tightest).
GROWTHBOOK_N_STAR = 5000.0


def first_true(mask: BoolArray) -> IntArray:
    """Index of the first True along the last axis, ``NEVER`` (-1) where there is none."""
    hit = mask.any(axis=-1)
    return np.where(hit, mask.argmax(axis=-1), NEVER).astype(np.int64)


# --- planning: how much information the MDE needs and when the schedule delivers it ---


def planned_information(mde: float, *, alpha: float, power: float) -> float:
    """Fisher information 1/Var(diff) a one-sided level-``alpha`` z-test needs for ``power`` at ``mde``.

    ``((z_{1-alpha} + z_{power}) / mde)**2``: the usual sample-size formula written for any allocation (with
    equal arms of n and rate p it gives n = 2 p (1 - p) (z_a + z_b)**2 / mde**2).

    Example
    -------
    >>> round(planned_information(0.02, alpha=0.05, power=0.8))
    15456
    """
    return float(((ndtri(1 - alpha) + ndtri(power)) / mde) ** 2)


def planning_information(schedule: Schedule, baseline: float) -> FloatArray:
    """The information after each look a planner expects: both arms at the baseline rate, mean traffic."""
    n_control, n_canary = schedule.expected_counts()
    variance = baseline * (1 - baseline) * (1 / n_control + 1 / n_canary)
    return np.asarray(1.0 / variance, dtype=np.float64)


def planned_look(schedule: Schedule, baseline: float, mde: float, *, alpha: float, power: float) -> int:
    """The first look at which the planned information is reached (the fixed-horizon test's only look)."""
    info = planning_information(schedule, baseline)
    need = planned_information(mde, alpha=alpha, power=power)
    reached = np.flatnonzero(info >= need)
    if reached.size == 0:
        raise ValueError(
            f"the schedule never reaches the planned information {need:.0f} (max {info[-1]:.0f})"
        )
    return int(reached[0])


# --- the comparison methods ---


def pooled_z(cumulative: Streams) -> FloatArray:
    """Pooled two-proportion z statistic (canary - control) after each look; 0 where it is undefined."""
    n_c = cumulative.n_control.astype(np.float64)
    n_t = cumulative.n_canary.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (cumulative.x_control + cumulative.x_canary) / (n_c + n_t)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
        z = (cumulative.x_canary / n_t - cumulative.x_control / n_c) / se
    return np.where(np.isfinite(z), z, 0.0)


def naive_z(cumulative: Streams, *, alpha: float) -> IntArray:
    """Roll back at the first look where the one-sided pooled z-test is significant at ``alpha``."""
    return first_true(pooled_z(cumulative) >= ndtri(1 - alpha))


def fixed_horizon(cumulative: Streams, look: int, *, alpha: float) -> IntArray:
    """The pooled z-test once, at ``look``: rolls back there or never."""
    z = pooled_z(Streams(*(a[:, look : look + 1] for a in _arrays(cumulative))))[:, 0]
    return np.where(z >= ndtri(1 - alpha), look, NEVER).astype(np.int64)


def obrien_fleming(estimates: Estimates, fractions: FloatArray, *, alpha: float) -> IntArray:
    """Lan-DeMets O'Brien-Fleming: the Wald z at look k against boundary k, for the looks in ``fractions``.

    ``fractions`` are the information fractions of the looks (the last one is 1: the planned information);
    the boundaries come from the statistics package.
    """
    from canarywise.stats.group_sequential import lan_demets_bounds

    bounds = np.asarray(lan_demets_bounds(fractions.tolist(), alpha=alpha, spending="obf").boundaries)
    looks = fractions.size
    return first_true(estimates.z[:, :looks] >= bounds)


def growthbook_rho2(alpha: float, n_star: float = GROWTHBOOK_N_STAR) -> float:
    """GrowthBook's mixing parameter rho**2 from its tuning parameter N*.

    ``rho**2 = (-2 ln(alpha) + ln(-2 ln(alpha) + 1)) / N*`` (gbstats ``sequential_rho``; Waudby-Smith et al.
    2024, the choice that makes the asymptotic confidence sequence tightest at N* units). Its half-width at n
    units with per-unit variance s2 is ``sqrt(s2) * sqrt(2 (n rho2 + 1) / (n rho2)**2 * ln(sqrt(n rho2 + 1) /
    alpha))``, which is the normal-mixture sequence of ``msprt_normal`` with ``tau2 = rho2 * s2`` and
    ``V = s2 / n`` (so ``tau2 / V = n * rho2``).

    Example
    -------
    >>> round(growthbook_rho2(0.05), 8)
    0.00158723
    """
    log_alpha = math.log(alpha)
    return (-2 * log_alpha + math.log(-2 * log_alpha + 1)) / n_star


@dataclass(frozen=True)
class MsprtBoundary:
    """The z above which ``msprt_normal`` rejects, as a function of r = tau2 / V, tabulated from the function.

    The mixture test's rejection region at one look depends on the data only through z = estimate / sqrt(V)
    and r = tau2 / V, and is ``z >= u(r)``. Rather than re-deriving u, the table is read off
    ``msprt_normal`` (estimate 0, V = 1, tau2 = r: u = the distance from 0 to the confidence-sequence bound)
    on a fine grid of log r and interpolated. ``bench.decision_quality`` re-checks every decision against
    ``msprt_normal`` itself.
    """

    alternative: str
    alpha: float
    log_r: FloatArray
    u: FloatArray

    @classmethod
    def tabulate(
        cls, *, alpha: float, alternative: str = "greater", r_min: float = 1e-4, r_max: float = 1e8
    ) -> MsprtBoundary:
        log_r = np.linspace(math.log(r_min), math.log(r_max), 4001)
        u = np.empty_like(log_r)
        for i, value in enumerate(log_r):
            result = msprt_normal(0.0, 1.0, tau2=math.exp(value), alpha=alpha, alternative=alternative)
            u[i] = result.ci_high if alternative == "two-sided" else -result.ci_low
        return cls(alternative, alpha, log_r, u)

    def __call__(self, ratio: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore"):
            log_ratio = np.log(ratio)
        if np.any((log_ratio < self.log_r[0]) & (ratio > 0)) or np.any(log_ratio > self.log_r[-1]):
            low, high = math.exp(self.log_r[0]), math.exp(self.log_r[-1])
            raise ValueError(f"tau2/V outside the tabulated range [{low:g}, {high:g}]")
        return np.asarray(np.interp(log_ratio, self.log_r, self.u), dtype=np.float64)

    def rejects(self, estimates: Estimates, tau2: FloatArray | float) -> BoolArray:
        """Where ``msprt_normal(diff, V, tau2=tau2, alternative=...)`` has pvalue <= alpha (harm side)."""
        valid = estimates.variance > 0
        ratio = np.where(valid, np.asarray(tau2) / np.where(valid, estimates.variance, 1.0), 1.0)
        return np.asarray(valid & (estimates.z >= self(ratio)), dtype=np.bool_)


def growthbook_tau2(estimates: Estimates, *, alpha: float, n_star: float = GROWTHBOOK_N_STAR) -> FloatArray:
    """tau2 = rho2 * s2 with s2 = V * n the per-unit variance, as GrowthBook computes it at every look."""
    return growthbook_rho2(alpha, n_star) * estimates.variance * estimates.n_total


def msprt_growthbook(
    estimates: Estimates, boundary: MsprtBoundary, *, n_star: float = GROWTHBOOK_N_STAR
) -> IntArray:
    """Roll back at the first look where the GrowthBook-tuned mSPRT rejects 'no harm'."""
    tau2 = growthbook_tau2(estimates, alpha=boundary.alpha, n_star=n_star)
    return first_true(boundary.rejects(estimates, tau2))


def sprt_log_lr(estimates: Estimates, effect: float) -> FloatArray:
    """Log-likelihood ratio of 'diff = effect' against 'diff = 0' for the normal estimate at each look.

    With diff ~ N(theta, V): log LR = effect * diff / V - effect**2 / (2 V).
    """
    valid = estimates.variance > 0
    v = np.where(valid, estimates.variance, 1.0)
    return np.where(valid, effect * estimates.diff / v - effect**2 / (2 * v), 0.0)


def wald_sprt(estimates: Estimates, effect: float, *, alpha: float) -> IntArray:
    """Wald's SPRT told the true effect, stopping only to roll back: log LR >= log(1/alpha).

    With one boundary the test has power one and, by Ville's inequality, P(ever rolling back | no harm)
    <= alpha; against the simple alternative it is told, no level-alpha test stops sooner on average
    (Wald and Wolfowitz 1948), so its time to rollback is the bound the other methods are measured against.
    """
    return first_true(sprt_log_lr(estimates, effect) >= math.log(1 / alpha))


def sprt_expected_information(effect: float, *, alpha: float) -> float:
    """Wald's approximation of the information the one-boundary SPRT needs under the alternative.

    The log LR drifts by effect**2 / 2 per unit of information, so it reaches log(1/alpha) after
    ``2 log(1/alpha) / effect**2`` (ignoring the overshoot).

    Example
    -------
    >>> round(sprt_expected_information(0.02, alpha=0.05))
    14979
    """
    return 2 * math.log(1 / alpha) / effect**2


# --- a single-stream Bernoulli SPRT, to check the SPRT machinery against Wald's textbook formulas ---


def bernoulli_sprt(
    outcomes: npt.NDArray[np.int8], p0: float, p1: float, *, alpha: float, beta: float
) -> tuple[IntArray, BoolArray]:
    """Wald's two-boundary SPRT of p0 against p1 on 0/1 outcomes of shape (replicates, n).

    Returns the number of observations used (n + 1 where no boundary was crossed) and whether H1 was accepted.
    """
    step1 = math.log(p1 / p0)
    step0 = math.log((1 - p1) / (1 - p0))
    llr = np.cumsum(np.where(outcomes == 1, step1, step0), axis=1)
    upper = llr >= math.log((1 - beta) / alpha)
    lower = llr <= math.log(beta / (1 - alpha))
    first_up = first_true(upper)
    first_low = first_true(lower)
    n = outcomes.shape[1]
    up = np.where(first_up == NEVER, n, first_up)
    low = np.where(first_low == NEVER, n, first_low)
    stop = np.minimum(up, low)
    return (stop + 1).astype(np.int64), np.asarray(up < low, dtype=np.bool_)


def wald_asn(p_true: float, p0: float, p1: float, *, alpha: float, beta: float) -> float:
    """Wald's approximate expected sample size of the Bernoulli SPRT when the true rate is ``p_true``.

    E[N] = (P(accept H1) log A + P(accept H0) log B) / E[z], z the per-observation log LR,
    A = (1 - beta)/alpha, B = beta/(1 - alpha); P(accept H1) = 1 - beta under p1 and alpha under p0.
    """
    if p_true not in (p0, p1):
        raise ValueError(f"`p_true` must be p0 or p1, found {p_true!r}")
    log_a = math.log((1 - beta) / alpha)
    log_b = math.log(beta / (1 - alpha))
    drift = p_true * math.log(p1 / p0) + (1 - p_true) * math.log((1 - p1) / (1 - p0))
    accept_h1 = 1 - beta if p_true == p1 else alpha
    return (accept_h1 * log_a + (1 - accept_h1) * log_b) / drift


def _arrays(streams: Streams) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    return streams.n_control, streams.x_control, streams.n_canary, streams.x_canary
