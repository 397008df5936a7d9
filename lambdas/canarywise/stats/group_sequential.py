"""Group-sequential boundaries by Lan-DeMets alpha spending, computed by recursive numerical integration.

A group-sequential plan looks at the data a few planned times (the information fractions t_1 < … < t_K, e.g.
the end of each rollout stage) and rejects H0 at look k when the z-statistic crosses the boundary b_k. The
alpha-spending function α(t) says how much of the type-I error may have been used by fraction t; the
boundaries are chosen so that, under H0, the probability of first crossing at look k is exactly
α(t_k) − α(t_{k−1}).

No library in our dependencies computes these (R's gsDesign and ldbounds do); the recursion below is the
standard one of Armitage, McPherson and Rowe (1969) in the numerical form of Jennison and Turnbull (2000,
ch. 19), which gsDesign also uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

from canarywise.stats._checks import StatsInputError

__all__ = [
    "SPENDING_FUNCTIONS",
    "GroupSequentialBounds",
    "alpha_spending",
    "lan_demets_bounds",
    "spending_boundaries",
]

SPENDING_FUNCTIONS: Final = ("obf", "pocock")

# Grid size parameter of Jennison & Turnbull's mesh (gsDesign's `r`, default 18 there). 32 keeps the
# crossing probabilities accurate to ~1e-9 at a cost that is still negligible for a handful of looks.
_GRID_R: Final = 32
# Below this increment a look spends nothing: its boundary is +inf (no z can cross it).
_NO_SPEND: Final = 1e-15


@dataclass(frozen=True)
class GroupSequentialBounds:
    """One-sided upper boundaries of a group-sequential test.

    Attributes
    ----------
    boundaries : tuple of float
        z-value b_k per look: reject H0 at the first look with Z_k >= b_k (``inf``: the look spends nothing).
    cumulative_alpha : tuple of float
        α(t_k), the type-I error spent by each look.
    nominal_pvalues : tuple of float
        1 − Φ(b_k): the fixed-sample one-sided p-value that crosses the boundary at each look.
    fractions : tuple of float
        The information fractions t_k.
    alpha : float
        The one-sided type-I error the spending function reaches at t = 1.
    spending : str
        ``'obf'`` or ``'pocock'``.
    method : str
        What was computed.
    """

    boundaries: tuple[float, ...]
    cumulative_alpha: tuple[float, ...]
    nominal_pvalues: tuple[float, ...]
    fractions: tuple[float, ...]
    alpha: float
    spending: str
    method: str


def _shown(values: object) -> str:
    """A sequence as a person typed it (plain floats, not numpy reprs)."""
    try:
        return repr([float(v) for v in values])  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return repr(values)


def _check_fractions(fractions: Sequence[float]) -> npt.NDArray[np.float64]:
    try:
        values = np.asarray(fractions, dtype=np.float64)
    except (TypeError, ValueError):
        values = np.array([np.nan])
    ok = (
        values.ndim == 1
        and values.size >= 1
        and bool(np.all(np.isfinite(values)))
        and bool(np.all((values > 0) & (values <= 1)))
        and bool(np.all(np.diff(values) > 0))
    )
    if not ok:
        raise StatsInputError(
            f"`fractions` must be strictly increasing numbers in (0, 1], found {_shown(fractions)}"
        )
    return values


def _check_one_sided_alpha(alpha: float) -> float:
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and 0 < alpha <= 0.5):
        raise StatsInputError(f"`alpha` must be in (0, 0.5] (one-sided), found {alpha!r}")
    return float(alpha)


def alpha_spending(
    fractions: Sequence[float] | npt.ArrayLike, *, alpha: float = 0.025, spending: str = "obf"
) -> npt.NDArray[np.float64]:
    """The Lan-DeMets spending function α(t): type-I error spent by information fraction t.

    Parameters
    ----------
    fractions : sequence of float
        Information fractions in (0, 1], strictly increasing.
    alpha : float, default 0.025
        One-sided type-I error reached at t = 1.
    spending : {'obf', 'pocock'}
        ``'obf'``: α(t) = 2 − 2Φ(Φ⁻¹(1 − α/2)/√t), O'Brien-Fleming type (gsDesign ``sfLDOF``).
        ``'pocock'``: α(t) = α·ln(1 + (e − 1)t), Pocock type (gsDesign ``sfLDPocock``).

    Example
    -------
    >>> alpha_spending([0.5, 1.0], alpha=0.025, spending="pocock").round(6).tolist()
    [0.015503, 0.025]
    """
    t = _check_fractions(fractions)  # type: ignore[arg-type]
    alpha = _check_one_sided_alpha(alpha)
    if spending == "obf":
        # 2 − 2Φ(x) written as 2Φ(−x) so tiny early spends keep their digits.
        return np.asarray(2.0 * ndtr(-ndtri(1.0 - alpha / 2.0) / np.sqrt(t)), dtype=np.float64)
    if spending == "pocock":
        return np.asarray(alpha * np.log1p((math.e - 1.0) * t), dtype=np.float64)
    raise StatsInputError(f"`spending` must be one of {SPENDING_FUNCTIONS}, found {spending!r}")


def _mesh(upper: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Jennison & Turnbull (2000, §19.2) mesh for a N(0, 1) z-statistic on (−∞, upper], with Simpson weights.

    Points are dense within ±3 of the mean and spread logarithmically into the tails; the region above the
    boundary is cut off and the boundary itself added, then midpoints are inserted so that Simpson's rule
    applies on every pair of intervals.
    """
    r = _GRID_R
    i = np.arange(1, 6 * r, dtype=np.float64)
    base = np.where(
        i < r,
        -3.0 - 4.0 * np.log(r / i),
        np.where(
            i <= 5 * r, -3.0 + 3.0 * (i - r) / (2.0 * r), 3.0 + 4.0 * np.log(r / np.maximum(6 * r - i, 1))
        ),
    )
    if math.isfinite(upper):
        base = np.append(base[base < upper], upper)
    odd = base
    points = np.empty(2 * odd.size - 1)
    points[0::2] = odd
    points[1::2] = (odd[:-1] + odd[1:]) / 2.0
    weights = np.empty_like(points)
    weights[1::2] = 4.0 * (odd[1:] - odd[:-1]) / 6.0
    weights[0] = (odd[1] - odd[0]) / 6.0
    weights[-1] = (odd[-1] - odd[-2]) / 6.0
    weights[2:-1:2] = (odd[2:] - odd[:-2]) / 6.0
    return points, weights


def _crossing_gap(
    bound: float,
    mass: npt.NDArray[np.float64],
    shifted: npt.NDArray[np.float64],
    root_now: float,
    scale: float,
    target: float,
) -> float:
    """P(first crossing at this look | boundary) − target, by Simpson's rule over the previous look's mesh."""
    return float(mass @ ndtr((shifted - bound * root_now) / scale)) - target


def spending_boundaries(
    fractions: Sequence[float] | npt.ArrayLike, cumulative_alpha: Sequence[float] | npt.ArrayLike
) -> tuple[float, ...]:
    """Upper z-boundaries that spend exactly the given cumulative alpha at each look (under H0).

    Parameters
    ----------
    fractions : sequence of float
        Information fractions t_k in (0, 1], strictly increasing.
    cumulative_alpha : sequence of float
        α(t_k), non-decreasing, in [0, 1).

    Returns
    -------
    tuple of float
        b_k with P(Z_1 < b_1, …, Z_{k−1} < b_{k−1}, Z_k >= b_k) = α(t_k) − α(t_{k−1}) under H0, where
        (Z_1, …, Z_K) is multivariate normal with Cov(Z_i, Z_j) = sqrt(t_i/t_j), i <= j.

    Notes
    -----
    The score S_k = Z_k √t_k has independent N(0, t_k − t_{k−1}) increments. With h_{k−1} the sub-density of
    Z_{k−1} on the paths that have not crossed yet (h_1 = φ), the probability of first crossing at look k is

        ∫_{−∞}^{b_{k−1}} h_{k−1}(z) Φ̄((b_k √t_k − z √t_{k−1}) / √Δ_k) dz,    Δ_k = t_k − t_{k−1},

    solved for b_k with `scipy.optimize.brentq`, and the recursion carries the density forward:

        h_k(y) = ∫_{−∞}^{b_{k−1}} h_{k−1}(z) (√t_k / √Δ_k) φ((y √t_k − z √t_{k−1}) / √Δ_k) dz.

    The integrals use Simpson's rule on the Jennison-Turnbull mesh (Armitage, McPherson and Rowe 1969;
    Jennison and Turnbull 2000, ch. 19).

    References
    ----------
    .. [1] Armitage, P., McPherson, C. K., Rowe, B. C. (1969). "Repeated significance tests on accumulating
           data." JRSS A 132(2), 235-244.
    .. [2] Jennison, C., Turnbull, B. W. (2000). Group Sequential Methods with Applications to Clinical
           Trials, ch. 19. Chapman & Hall/CRC.
    .. [3] Lan, K. K. G., DeMets, D. L. (1983). "Discrete sequential boundaries for clinical trials."
           Biometrika 70(3), 659-663.

    Example
    -------
    >>> [round(b, 4) for b in spending_boundaries([0.5, 1.0], [0.005, 0.025])]
    [2.5758, 2.0027]
    """
    t = _check_fractions(fractions)  # type: ignore[arg-type]
    cumulative = np.asarray(cumulative_alpha, dtype=np.float64)
    if (
        cumulative.shape != t.shape
        or not np.all(np.isfinite(cumulative))
        or np.any(cumulative < 0)
        or np.any(cumulative >= 1)
        or np.any(np.diff(cumulative) < 0)
    ):
        raise StatsInputError(
            "`cumulative_alpha` must be non-decreasing numbers in [0, 1), one per fraction, "
            f"found {_shown(cumulative_alpha)}"
        )
    increments = np.diff(cumulative, prepend=0.0)

    first = math.inf if increments[0] < _NO_SPEND else float(-ndtri(increments[0]))
    boundaries = [first]
    points, weights = _mesh(first)
    mass = weights * np.exp(-0.5 * points**2) / math.sqrt(2.0 * math.pi)  # Simpson weight × h_1(z)
    for k in range(1, t.size):
        scale = math.sqrt(t[k] - t[k - 1])
        root_now = math.sqrt(t[k])
        shifted = points * math.sqrt(t[k - 1])
        if increments[k] < _NO_SPEND:
            bound = math.inf
        else:
            # Crossing at look k is at most P(Z_k >= b), so the root lies below that marginal quantile (+1
            # absorbs the quadrature's ~1e-8 error in total mass); far below, the crossing probability is
            # everything not yet spent, more than the increment.
            bound = float(
                brentq(
                    _crossing_gap,
                    -10.0,
                    float(-ndtri(increments[k])) + 1.0,
                    args=(mass, shifted, root_now, scale, increments[k]),
                    xtol=1e-12,
                    rtol=1e-14,
                )
            )
        boundaries.append(bound)
        new_points, new_weights = _mesh(bound)
        kernel = (
            (root_now / scale)
            * np.exp(-0.5 * ((new_points[:, None] * root_now - shifted[None, :]) / scale) ** 2)
            / math.sqrt(2.0 * math.pi)
        )
        mass = new_weights * (kernel @ mass)
        points = new_points
    return tuple(boundaries)


def lan_demets_bounds(
    fractions: Sequence[float] | npt.ArrayLike, *, alpha: float = 0.025, spending: str = "obf"
) -> GroupSequentialBounds:
    """One-sided group-sequential boundaries from a Lan-DeMets spending function.

    Parameters
    ----------
    fractions : sequence of float
        Information fractions of the planned looks, strictly increasing in (0, 1]; the last is normally 1.
    alpha : float, default 0.025
        One-sided type-I error (gsDesign's convention: a two-sided 0.05 test is 0.025 per side).
    spending : {'obf', 'pocock'}
        O'Brien-Fleming-type (``sfLDOF``) or Pocock-type (``sfLDPocock``) spending; see `alpha_spending`.

    Returns
    -------
    GroupSequentialBounds

    Notes
    -----
    H0: θ <= 0 against H1: θ > 0 for a z-statistic whose information grows in proportion to t. For a
    symmetric two-sided test use ``alpha/2`` and reject when |Z_k| >= b_k; the probability of crossing one
    side after nearly crossing the other is ignored, which is conservative and below 1e-6 in practice.
    The boundaries come from `spending_boundaries` (recursive numerical integration).

    Example
    -------
    >>> b = lan_demets_bounds([1 / 3, 2 / 3, 1.0], alpha=0.025, spending="obf")
    >>> [round(z, 3) for z in b.boundaries]
    [3.71, 2.511, 1.993]
    """
    t = _check_fractions(fractions)  # type: ignore[arg-type]
    alpha = _check_one_sided_alpha(alpha)
    cumulative = alpha_spending(t, alpha=alpha, spending=spending)
    boundaries = spending_boundaries(t, cumulative)
    name = "O'Brien-Fleming" if spending == "obf" else "Pocock"
    return GroupSequentialBounds(
        boundaries=boundaries,
        cumulative_alpha=tuple(float(a) for a in cumulative),
        nominal_pvalues=tuple(float(ndtr(-b)) for b in boundaries),
        fractions=tuple(float(x) for x in t),
        alpha=alpha,
        spending=spending,
        method=f"Lan-DeMets {name}-type alpha spending (recursive numerical integration)",
    )
