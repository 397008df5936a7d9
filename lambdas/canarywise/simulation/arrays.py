"""The engine's statistics elementwise, on arrays of simulated rollouts: each function is the numpy form of
one piece of ``canarywise.decision`` or ``canarywise.stats`` (named in its docstring), which ``make bench``
checks by replaying simulated rollouts through ``decide`` itself.

Example
-------
>>> round(float(mixture_pvalue(np.array(3.0), np.array(100.0), "greater")), 6)
0.058448
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.special import log_ndtr, xlogy
from scipy.stats import binom

from canarywise.decision.evidence import HARD_LIMIT_MIN_UNITS
from canarywise.simulation.traffic import FloatArray
from canarywise.stats.srm import srm_log_mixture, srm_mixing_variance

BoolArray = npt.NDArray[np.bool_]
# "Never happened": the look index of a decision a rollout did not reach.
NEVER = -1
_LOG2 = math.log(2.0)


def _agresti_caffo_variance(x: FloatArray, n: FloatArray) -> FloatArray:
    p = (x + 1.0) / (n + 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(p * (1.0 - p) / n, dtype=np.float64)


def restricted_rates(
    xc: FloatArray, nc: FloatArray, xt: FloatArray, nt: FloatArray, m: FloatArray | float
) -> tuple[FloatArray, FloatArray]:
    """``stats.proportions.constrained_rates`` elementwise (``m`` broadcast): the rates maximising the
    likelihood under p_t − p_c = m (the closed-form root of Farrington & Manning's cubic; pooled at m = 0)."""
    m = np.asarray(m, dtype=np.float64)
    n, x = nc + nt, xc + xt
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = x / n
        a3 = n
        a2 = (nt + 2 * nc) * m - n - x
        a1 = (nc * m - n - 2 * xc) * m + x
        a0 = xc * m * (1 - m)
        v = (a2 / (3 * a3)) ** 3 - a1 * a2 / (6 * a3**2) + a0 / (2 * a3)
        u = np.copysign(np.sqrt(np.maximum(0.0, (a2 / (3 * a3)) ** 2 - a1 / (3 * a3))), v)
        ratio = np.where(u == 0, 0.0, np.clip(v / u**3, -1.0, 1.0))
        w = (math.pi + np.arccos(ratio)) / 3
        rate_c = np.where(m == 0, pooled, np.clip(2 * u * np.cos(w) - a2 / (3 * a3), 0.0, 1.0))
    return rate_c, np.clip(rate_c + m, 0.0, 1.0)


def stage_variance(
    xc: FloatArray, nc: FloatArray, xt: FloatArray, nt: FloatArray, null: FloatArray | float | None
) -> FloatArray:
    """``decision.estimates.stage_difference``'s variance elementwise: Agresti-Caffo at the observed rates,
    and for a test at ``null`` the larger of that and the variance at the restricted rates
    (``stats.proportions.difference_variance``)."""
    observed = _agresti_caffo_variance(xc, nc) + _agresti_caffo_variance(xt, nt)
    if null is None:
        return observed
    rc, rt = restricted_rates(xc, nc, xt, nt, null)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.maximum(observed, rc * (1 - rc) / nc + rt * (1 - rt) / nt), dtype=np.float64)


def mixture_pvalue(z: FloatArray, ratio: FloatArray, alternative: str) -> FloatArray:
    """The always-valid p-value ``min(1, 1/Λ)`` of ``stats.sequential.msprt_normal``, vectorised.

    With z = (estimate − null)/√V and r = τ²/V (``msprt_normal`` Notes): log Λ = −log(1 + r)/2 +
    r z²/(2(1 + r)), plus log 2Φ(±z √(r/(1 + r))) for the one-sided half-normal mixture.
    """
    log_lr = -0.5 * np.log1p(ratio) + ratio * z * z / (2.0 * (1.0 + ratio))
    if alternative != "two-sided":
        signed = z if alternative == "greater" else -z
        log_lr = log_lr + _LOG2 + log_ndtr(signed * np.sqrt(ratio / (1.0 + ratio)))
    return np.asarray(np.minimum(1.0, np.exp(-log_lr)), dtype=np.float64)


def bh_rejections(pvalues: FloatArray, valid: BoolArray, q: float) -> BoolArray:
    """Benjamini-Hochberg step-up at ``q`` along the last axis, over the ``valid`` entries only.

    Reject every p-value <= k* q / m, k* the largest k with the k-th smallest p-value <= k q / m, m the
    number of valid entries (what ``stats.multiple.adjust_pvalues(method="bh")`` rejects).
    """
    m = valid.sum(axis=-1, keepdims=True)
    ordered = np.sort(np.where(valid, pvalues, np.inf), axis=-1)
    k = np.arange(1, pvalues.shape[-1] + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        passes = (ordered <= k * q / m) & (k <= m)
        k_star = np.where(passes, k, 0).max(axis=-1, keepdims=True)
        return np.asarray(valid & (pvalues <= k_star * q / np.maximum(m, 1)), dtype=np.bool_)


def srm_holds(canary: FloatArray, totals: FloatArray, shares: FloatArray, level: float) -> BoolArray:
    """``decision.evidence.srm_finding``'s verdict per row: ``stats.srm.sequential_srm_test`` p <= level, i.e.
    log Λ >= log(1/level). Λ is computed only where it can reach that: log Λ is at most the sum over stages of
    each stage's largest binomial log-likelihood ratio (the mixture never exceeds the best common tilt, nor
    that the best tilt per stage), X_s log(X_s/(N_s w_s)) + (N_s − X_s) log((N_s − X_s)/(N_s (1 − w_s)))."""
    threshold = math.log(1.0 / level)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = totals * shares
        rest = totals - canary
        bound = xlogy(canary, canary / expected) + xlogy(rest, rest / (totals - expected))
    bound = np.where(totals > 0, bound, 0.0).sum(axis=-1)
    out = np.zeros(canary.shape[0], dtype=np.bool_)
    rows = np.flatnonzero(bound >= threshold)
    if rows.size:
        log_lr = srm_log_mixture(canary[rows].sum(axis=-1), totals[rows], shares, srm_mixing_variance(level))
        out[rows] = log_lr >= threshold
    return out


def exact_breach(
    units: npt.ArrayLike,
    errors: npt.ArrayLike,
    *,
    limit: float,
    level: float,
    min_units: int = HARD_LIMIT_MIN_UNITS,
) -> BoolArray:
    """The hard-limit backstop's verdict for cumulative counts (elementwise): at least ``min_units`` units and
    ``scipy.stats.binom.sf(errors - 1, units, limit) <= level`` (``decision.evidence.hard_limit_finding``'s
    test, lower is better).

    Only counts above the limit's mean are handed to the binomial tail: for ``errors <= units * limit``,
    P(X >= errors) >= P(X >= median) >= 1/2 > ``level`` (the median of Bin(n, p) is floor(np) or ceil(np)).

    Example
    -------
    >>> exact_breach([400, 400], [25, 26], limit=0.02, level=0.001 / 2016).tolist()  # sf 8.2e-7, 2.4e-7
    [False, True]
    """
    if not 0 < level < 0.5:
        raise ValueError(f"`level` must be in (0, 0.5), found {level}")
    n = np.asarray(units, dtype=np.float64)
    x = np.asarray(errors, dtype=np.float64)
    out = np.zeros(np.broadcast(n, x).shape, dtype=np.bool_)
    candidate = (n >= min_units) & (x > n * limit)
    if candidate.any():
        n_c, x_c = np.broadcast_to(n, out.shape)[candidate], np.broadcast_to(x, out.shape)[candidate]
        out[candidate] = binom.sf(x_c - 1, n_c, limit) <= level
    return out
