"""Independent references: the Farrington-Manning score test of p_t − p_c = m, and the anytime-valid
sample-ratio test by numerical integration; scipy only, none of canarywise's statistics code.

The restricted rates maximise the log-likelihood under H0 numerically (``scipy.optimize.brentq`` on its score)
instead of through the closed-form cubic, so a slip in a coefficient shows. statsmodels 0.15's
``score_test_proportions_2indep(..., compare="diff", value=m)`` cannot serve for m != 0: its cubic has ``x_c``
where ``n_c`` belongs (statsmodels issue #10269), so its restricted rates do not maximise the likelihood
(for 3/10 vs 7/10 at m = −0.4 it gives p̃_c = 0.606 where the maximum is at 0.7). At m = 0 it is the pooled
test and agrees.
"""

from __future__ import annotations

import itertools
import math

from scipy.integrate import quad
from scipy.optimize import brentq
from scipy.stats import binom, norm


def restricted_rates(x_c: int, n_c: int, x_t: int, n_t: int, m: float) -> tuple[float, float]:
    """argmax over p = p_c of x_t log(p + m) + (n_t − x_t) log(1 − p − m) + x_c log p + (n_c − x_c) log(1 − p)

    The log-likelihood is concave in p on (max(0, −m), min(1, 1 − m)), so the maximum is where its derivative
    x_t/(p + m) − (n_t − x_t)/(1 − p − m) + x_c/p − (n_c − x_c)/(1 − p) crosses 0 (``scipy.optimize.brentq``),
    or an end of the interval when it does not.
    """
    if m == 0:
        pooled = (x_c + x_t) / (n_c + n_t)
        return pooled, pooled

    def score(p: float) -> float:
        q = p + m
        return x_t / q - (n_t - x_t) / (1 - q) + x_c / p - (n_c - x_c) / (1 - p)

    low, high = max(0.0, -m), min(1.0, 1.0 - m)
    width = high - low
    a, b = low + 1e-15 * width, high - 1e-15 * width
    if score(a) <= 0:
        rate = low
    elif score(b) >= 0:
        rate = high
    else:
        rate = brentq(score, a, b, xtol=1e-16, rtol=1e-15, maxiter=500)
    return float(rate), float(rate) + m


def score_z_and_variance(x_c: int, n_c: int, x_t: int, n_t: int, m: float) -> tuple[float, float]:
    """z = (p̂_t − p̂_c − m) / sqrt(V) with V = p̃_c(1 − p̃_c)/n_c + p̃_t(1 − p̃_t)/n_t at the restricted rates."""
    rate_c, rate_t = restricted_rates(x_c, n_c, x_t, n_t, m)
    variance = rate_c * (1 - rate_c) / n_c + rate_t * (1 - rate_t) / n_t
    return (x_t / n_t - x_c / n_c - m) / math.sqrt(variance), variance


def guarded_variance(x_c: int, n_c: int, x_t: int, n_t: int, m: float) -> float:
    """The larger of the score variance at m and the Agresti-Caffo variance at the observed rates, by hand:
    p(1 − p)/n per arm with p = (x + 1)/(n + 2)."""
    adjusted = [(x + 1) / (n + 2) for x, n in ((x_c, n_c), (x_t, n_t))]
    observed = adjusted[0] * (1 - adjusted[0]) / n_c + adjusted[1] * (1 - adjusted[1]) / n_t
    return max(observed, score_z_and_variance(x_c, n_c, x_t, n_t, m)[1])


def srm_tau2(alpha: float, mde: float = 0.04) -> float:
    """τ² = r* mde² / c(r*)², r* the root of r − log(1 + r) = 2 log(1/α) (by bracketing) and
    c(r)² = (1 + r)/r (2 log(1/α) + log(1 + r)): the normal mixture's boundary is tightest where a log-odds
    mismatch of `mde` first crosses it (Howard et al. 2021, §3.5)."""
    r = brentq(lambda r: r - math.log1p(r) - 2 * math.log(1 / alpha), 1e-6, 1e4, xtol=1e-14)
    c2 = (1 + r) / r * (2 * math.log(1 / alpha) + math.log1p(r))
    return float(r * mde**2 / c2)


def srm_mixture_pvalue(stages: list[tuple[int, int, float]], tau2: float) -> float:
    """min(1, 1/Λ), Λ = ∫ Π_s Bin(x_s; n_s, q_s(θ)) / Bin(x_s; n_s, w_s) φ(θ/τ)/τ dθ with
    q_s(θ) = w_s e^θ / (1 − w_s + w_s e^θ), by ``scipy.integrate.quad`` over ``scipy.stats.binom.logpmf``.
    `stages`: (canary units x_s, all units n_s, canary weight w_s)."""
    info = sum(n * w * (1 - w) for _, n, w in stages)
    score = sum(x - n * w for x, n, w in stages)
    peak = score / (info + 1 / tau2)  # the integrand's peak, to within its width
    width = 1 / math.sqrt(info + 1 / tau2)

    def log_ratio(theta: float) -> float:
        total = 0.0
        for x, n, w in stages:
            q = w * math.exp(theta) / (1 - w + w * math.exp(theta))
            total += binom.logpmf(x, n, q) - binom.logpmf(x, n, w)
        return total

    shift = log_ratio(peak)
    edges = [peak + k * width for k in (-40, -10, -3, 0, 3, 10, 40)]
    value = sum(
        quad(lambda t: math.exp(log_ratio(t) - shift) * norm.pdf(t, scale=math.sqrt(tau2)), a, b,
             epsabs=0, epsrel=1e-12, limit=200)[0]
        for a, b in itertools.pairwise(edges)
    )  # fmt: skip
    log_lr = math.log(value) + shift
    return min(1.0, math.exp(-log_lr))
