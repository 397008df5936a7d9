"""Group-sequential boundaries by Lan-DeMets alpha spending, computed by recursive numerical integration.

A group-sequential plan looks at the data a few planned times (the information fractions t_1 < … < t_K, e.g.
the end of each rollout stage) and rejects H0 at look k when the z-statistic crosses the boundary b_k. The
alpha-spending function α(t) says how much of the type-I error may have been used by fraction t; the
boundaries are chosen so that, under H0, the probability of first crossing at look k is exactly
α(t_k) − α(t_{k−1}).

No library in our dependencies computes these (R's gsDesign and ldbounds do); the recursion below is the
standard one of Armitage, McPherson and Rowe (1969) that gsDesign uses (Jennison and Turnbull 2000, ch. 19),
integrated on a grid that follows the looks so that thousands of them work (see `spending_boundaries`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq, newton
from scipy.signal import convolve
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

# The recursion's grid: the score S_k = Z_k sqrt(t_k) on [-_TAIL, _TAIL] (its variance t_k is at most 1),
# spaced at 1/_POINTS_PER_SD of the smallest increment's standard deviation, at most _MAX_SPACING. With 3
# points instead of 4 the boundaries of 10,000 looks moved by 1.5e-5.
_TAIL: Final = 9.0
_POINTS_PER_SD: Final = 4
_MAX_SPACING: Final = 0.02
# Below this increment a look spends nothing: its boundary is +inf (no z can cross it).
_NO_SPEND: Final = 1e-15
_SQRT_2PI: Final = math.sqrt(2.0 * math.pi)


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


def _normal_pdf(x: npt.NDArray[np.float64], sd: float) -> npt.NDArray[np.float64]:
    return np.asarray(np.exp(-0.5 * (x / sd) ** 2) / (sd * _SQRT_2PI), dtype=np.float64)


@dataclass
class _SubDensity:
    """The sub-density of S_k on the paths that have not crossed yet, as Simpson masses (weight x density):
    on the uniform grid up to the last point below the cut, and on two points of the end panel (its midpoint
    and the cut itself), so that the integral stops exactly at the boundary."""

    grid: npt.NDArray[np.float64]
    masses: npt.NDArray[np.float64]
    panel: npt.NDArray[np.float64]
    panel_masses: npt.NDArray[np.float64]

    def crossing(self, cut: float, sd: float) -> float:
        """P(S_{k+1} >= cut) on these paths, S_{k+1} = S_k + N(0, sd^2)."""
        top = self.masses.size
        low = int(np.searchsorted(self.grid[:top], cut - _TAIL * sd))
        inside = self.masses[low:] @ ndtr((self.grid[low:top] - cut) / sd)
        return float(inside + self.panel_masses @ ndtr((self.panel - cut) / sd))

    def crossing_slope(self, cut: float, sd: float) -> float:
        """d `crossing` / d cut: minus the next look's density at `cut`."""
        return -float(self.density_at(np.array([cut]), sd)[0])

    def density_at(self, points: npt.NDArray[np.float64], sd: float) -> npt.NDArray[np.float64]:
        """The next look's density (before its cut) at a few `points`."""
        top = self.masses.size
        low = int(np.searchsorted(self.grid[:top], points.min() - _TAIL * sd))
        inside = _normal_pdf(points[:, None] - self.grid[None, low:top], sd) @ self.masses[low:]
        return np.asarray(inside + _normal_pdf(points[:, None] - self.panel[None, :], sd) @ self.panel_masses)

    def step(self, sd: float, cut: float) -> _SubDensity:
        """Add an N(0, sd^2) increment (a convolution on the grid) and remove the paths at or above `cut`."""
        grid, spacing = self.grid, self.grid[1] - self.grid[0]
        end = (
            grid.size
            if math.isinf(cut)
            else min(grid.size, int(np.searchsorted(grid, cut, side="right")) + 1)
        )
        half = math.ceil(_TAIL * sd / spacing)
        kernel = _normal_pdf(np.arange(-half, half + 1) * spacing, sd)
        density = np.zeros(end)
        spread = convolve(self.masses, kernel, mode="full")[half : half + end]
        density[: spread.size] = spread
        for point, mass in zip(self.panel, self.panel_masses, strict=True):
            low, high = np.searchsorted(grid[:end], [point - _TAIL * sd, point + _TAIL * sd])
            density[low:high] += mass * _normal_pdf(grid[low:high] - point, sd)
        return _cut(grid, density, cut, lambda points: self.density_at(points, sd))


def _cut(
    grid: npt.NDArray[np.float64],
    density: npt.NDArray[np.float64],
    cut: float,
    density_at: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
) -> _SubDensity:
    """Simpson masses of `density` (given on the first points of `grid`) below `cut`: composite Simpson on the
    grid's points up to the last one below the cut (an even number of intervals; the far lower tail is
    negligible), then one Simpson panel from there to the cut."""
    last = density.size - 1 if math.isinf(cut) else int(np.searchsorted(grid, cut, side="right")) - 1
    spacing = grid[1] - grid[0]
    weights = np.zeros(last + 1)
    first = last % 2
    weights[first : last + 1 : 2] = 2.0
    weights[first + 1 : last : 2] = 4.0
    weights[first] = weights[last] = 1.0
    weights *= spacing / 3.0
    panel = np.empty(0)
    panel_masses = np.empty(0)
    width = cut - grid[last]
    if math.isfinite(cut) and width > 1e-12 * spacing:
        panel = np.array([grid[last] + width / 2.0, cut])
        panel_masses = np.array([4.0, 1.0]) * (width / 6.0) * density_at(panel)
        weights[last] += width / 6.0
    return _SubDensity(grid, weights * density[: last + 1], panel, panel_masses)


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
    The score S_k = Z_k √t_k has independent N(0, Δ_k) increments, Δ_k = t_k − t_{k−1}. With g_{k−1} the
    sub-density of S_{k−1} on the paths that have not crossed yet (g_1 the N(0, t_1) density), the
    probability of first crossing at look k is

        ∫_{−∞}^{c_{k−1}} g_{k−1}(s) Φ̄((c_k − s) / √Δ_k) ds,    c_k = b_k √t_k,

    solved for b_k with `scipy.optimize.brentq`, and the recursion carries the density forward:

        g_k(y) = ∫_{−∞}^{c_{k−1}} g_{k−1}(s) φ((y − s) / √Δ_k) / √Δ_k ds.

    This is the recursion of Armitage, McPherson and Rowe (1969) that gsDesign computes (Jennison and
    Turnbull 2000, ch. 19). In the score it is a convolution, so the integrals use Simpson's rule on a
    uniform grid (`scipy.signal.convolve`) spaced at a quarter of the smallest √Δ_k, with a last panel
    that ends exactly at the boundary. Jennison and Turnbull's fixed mesh cannot resolve the kernel once the
    looks are many (its density grew without bound from ~500 equally spaced looks); this grid follows the
    looks, so 10,000 take seconds.

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
    sds = np.sqrt(np.diff(t, prepend=0.0))  # of S_1 and of each increment S_k - S_{k-1}
    spacing = min(float(sds.min()) / _POINTS_PER_SD, _MAX_SPACING)
    grid = np.arange(-_TAIL, _TAIL + spacing / 2.0, spacing)

    cut = math.inf if increments[0] < _NO_SPEND else float(-ndtri(increments[0])) * sds[0]
    boundaries = [cut / math.sqrt(t[0])]
    alive = _cut(grid, _normal_pdf(grid, sds[0]), cut, lambda points: _normal_pdf(points, sds[0]))
    for k in range(1, t.size):
        sd, target = float(sds[k]), float(increments[k])
        if target < _NO_SPEND:
            cut = math.inf
        else:
            cut = _solve_cut(alive, sd, target, cut, float(-ndtri(target) + 1.0) * math.sqrt(t[k]))
        boundaries.append(cut / math.sqrt(t[k]))
        alive = alive.step(sd, cut)
    return tuple(boundaries)


def _solve_cut(alive: _SubDensity, sd: float, target: float, last_cut: float, ceiling: float) -> float:
    """The score boundary whose crossing probability is `target`.

    Newton's method from the last cut first (the cuts of many looks move little from one to the next, and the
    crossing probability is monotone: a few steps). Otherwise `brentq` on a bracket: crossing is at most
    P(Z_k >= b), so the root lies below that marginal quantile (`ceiling`, +1 absorbing the quadrature's error
    in total mass); far below, the crossing probability is everything not yet spent.
    """

    def gap(cut: float) -> float:
        return alive.crossing(cut, sd) - target

    if math.isfinite(last_cut):
        try:
            root = float(
                newton(gap, last_cut, fprime=lambda cut: alive.crossing_slope(cut, sd), tol=1e-12, maxiter=30)
            )
        except (RuntimeError, ArithmeticError):
            root = math.nan
        if -10.0 < root < ceiling and abs(gap(root)) <= 1e-10 * target:
            return root
    return float(brentq(gap, -10.0, ceiling, xtol=1e-12, rtol=1e-14))


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
