"""Sample size, MDE and stage durations, against hand derivations and statsmodels' power classes.

References:
- by hand: n = (z_{1-a/2} sqrt(2 pbar qbar) + z_{1-b} sqrt(p1 q1 + p2 q2))² / (p2 - p1)² with
  ``scipy.stats.norm.ppf`` quantiles (Fleiss, Levin & Paik 2003, section 4.2)
- ``statsmodels.stats.power.NormalIndPower().solve_power(effect_size=proportion_effectsize(p2, p1), ...)``
  (arcsine transformation: a different approximation, expected to differ by a few units)
- ``NormalIndPower().solve_power(effect_size=mde/sd, ...)`` for means
"""

from __future__ import annotations

import math

import pytest
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from canarywise.stats._checks import StatsInputError
from canarywise.stats.planning import (
    mde_means,
    mde_proportions,
    sample_size_means,
    sample_size_proportions,
    stage_durations,
)


def fleiss_n(p1: float, p2: float, z_a: float, z_b: float) -> float:
    """The formula written out again, independently of the module."""
    pbar = (p1 + p2) / 2
    return (z_a * math.sqrt(2 * pbar * (1 - pbar)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / (
        p2 - p1
    ) ** 2


def test_sample_size_078_to_080_by_hand() -> None:
    """By hand with exact quantiles z_.975 = 1.959964, z_.8 = 0.841621: pbar = 0.79,
    sqrt(2 * 0.79 * 0.21) = 0.576021, sqrt(0.78 * 0.22 + 0.80 * 0.20) = 0.575847,
    n = (1.959964 * 0.576021 + 0.841621 * 0.575847)² / 0.02² = 6509.47 -> 6,510 per arm."""
    result = sample_size_proportions(0.78, 0.02, alpha=0.05, power=0.8)
    expected = fleiss_n(0.78, 0.80, stats.norm.ppf(0.975), stats.norm.ppf(0.8))
    assert_allclose(result.n_exact, expected, rtol=1e-12)
    assert_allclose(result.n_exact, 6509.47, atol=0.005)
    assert result.n_per_arm == 6510
    assert (result.p_control, round(result.p_treatment, 12)) == (0.78, 0.80)


def test_rounded_z_values_give_the_smaller_quoted_figure() -> None:
    """With the textbook-rounded z values 1.96 and 0.84 the same formula gives 6,502.10 -> 6,503 (and the
    all-unpooled variant (1.96 + 0.84)² (p1 q1 + p2 q2) / d² gives 6,499.36): smaller than the exact 6,510,
    because 0.84 < 0.8416. Figures near 6,500 quoted for 0.78 -> 0.80 come from such rounding."""
    rounded = math.ceil(fleiss_n(0.78, 0.80, 1.96, 0.84))
    unpooled_rounded = (1.96 + 0.84) ** 2 * (0.78 * 0.22 + 0.80 * 0.20) / 0.02**2
    assert rounded == 6503
    assert_allclose(unpooled_rounded, 6499.36, rtol=1e-9)
    ours = sample_size_proportions(0.78, 0.02).n_per_arm
    assert ours == 6510
    assert ours > rounded


def test_arcsine_approximation_differs_by_a_few_units() -> None:
    """statsmodels: ``NormalIndPower().solve_power(effect_size=proportion_effectsize(0.80, 0.78),
    alpha=0.05, power=0.8, ratio=1)`` = 6,507.33 -> 6,508 (Cohen's h = 0.049115); ours 6,510."""
    h = proportion_effectsize(0.80, 0.78)
    arcsine = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=1)
    assert_allclose(arcsine, 6507.33, atol=0.005)
    ours = sample_size_proportions(0.78, 0.02)
    assert abs(ours.n_exact - arcsine) / arcsine < 5e-4  # same answer to 0.05%, not identical formulas
    assert ours.n_per_arm - math.ceil(arcsine) == 2


@pytest.mark.parametrize(
    ("baseline", "mde", "relative", "alpha", "power", "alternative", "p2"),
    [
        (0.084, 0.01, False, 0.05, 0.8, "two-sided", 0.094),  # conversion 8.4% -> 9.4%
        (0.12, 0.1, True, 0.05, 0.9, "two-sided", 0.132),  # escalation +10% relative
        (0.98, -0.01, False, 0.025, 0.8, "less", 0.97),  # guardrail, one-sided
        (0.02, 0.25, True, 0.1, 0.8, "greater", 0.025),
    ],
)
def test_sample_size_matches_hand_formula(
    baseline: float, mde: float, relative: bool, alpha: float, power: float, alternative: str, p2: float
) -> None:
    z_a = stats.norm.ppf(1 - alpha / 2) if alternative == "two-sided" else stats.norm.ppf(1 - alpha)
    expected = fleiss_n(baseline, p2, z_a, stats.norm.ppf(power))
    result = sample_size_proportions(
        baseline, mde, relative=relative, alpha=alpha, power=power, alternative=alternative
    )
    assert_allclose(result.n_exact, expected, rtol=1e-9)
    assert result.n_per_arm == math.ceil(expected)


@pytest.mark.parametrize("n", [500, 6510, 200_000])
@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_mde_solves_the_hand_formula(n: int, direction: str) -> None:
    """Plugging the MDE back into the hand-written formula gives n (to 1e-8)."""
    result = mde_proportions(0.78, n, direction=direction)
    assert (result.mde > 0) == (direction == "increase")
    back = fleiss_n(0.78, result.p_treatment, stats.norm.ppf(0.975), stats.norm.ppf(0.8))
    assert_allclose(back, n, rtol=1e-8)
    assert_allclose(result.relative_mde, result.mde / 0.78, rtol=1e-12)


def test_mde_at_6510_is_about_two_points() -> None:
    """n = 6,510 per arm was sized for 0.78 -> 0.80, so the MDE is just under 0.02."""
    result = mde_proportions(0.78, 6510)
    assert 0.0199 < result.mde <= 0.02


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_sample_size_means_one_sided_matches_statsmodels(alternative: str) -> None:
    """statsmodels: ``NormalIndPower().solve_power(effect_size=20/85, alpha=0.05, power=0.8,
    alternative='larger')`` (one-sided: the same formula, so equal to 1e-9)."""
    expected = NormalIndPower().solve_power(effect_size=20 / 85, alpha=0.05, power=0.8, alternative="larger")
    result = sample_size_means(85.0, 20.0 if alternative == "greater" else -20.0, alternative=alternative)
    assert_allclose(result.n_exact, expected, rtol=1e-9)


def test_sample_size_means_two_sided() -> None:
    """By hand: 2 (1.959964 + 0.841621)² 85² / 20² = 283.5408 -> 284. statsmodels' two-sided
    ``NormalIndPower`` (283.5401) also counts power from the far tail, Phi(-4.76) ~ 1e-6, hence 2.5e-6
    relative below ours."""
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    result = sample_size_means(85.0, 20.0)
    assert_allclose(result.n_exact, 2 * z * z * 85**2 / 20**2, rtol=1e-12)
    assert result.n_per_arm == 284
    sm = NormalIndPower().solve_power(effect_size=20 / 85, alpha=0.05, power=0.8)
    assert 0 < result.n_exact - sm < 1e-5 * sm


def test_sample_size_means_unequal_sd_and_mde_round_trip() -> None:
    """By hand: (z_a + z_b)² (85² + 97²) / 7.5²; the MDE formula inverts it."""
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    result = sample_size_means(85.0, 7.5, sd_treatment=97.0)
    assert_allclose(result.n_exact, z * z * (85**2 + 97**2) / 7.5**2, rtol=1e-12)
    assert_allclose(
        mde_means(85.0, 2000, sd_treatment=97.0).mde, z * math.sqrt((85**2 + 97**2) / 2000), rtol=1e-12
    )


def test_stage_durations_by_hand() -> None:
    """300,000 units/day = 12,500/hour. At 5% the canary gets 625/hour: 6,510 / 625 = 10.416 h; at 25%
    3,125/hour: 2.0832 h; at 50% 6,250/hour: 1.0416 h. At 75% the control (25%) is the smaller arm."""
    durations = stage_durations(6510, 300_000, [5, 25, 50, 75])
    assert_allclose(
        [d.hours for d in durations], [6510 / 625, 6510 / 3125, 6510 / 6250, 6510 / 3125], rtol=1e-12
    )
    assert_allclose([d.units_per_hour for d in durations], [625, 3125, 6250, 3125], rtol=1e-12)
    assert [d.percent for d in durations] == [5.0, 25.0, 50.0, 75.0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sample_size_proportions(1.2, 0.02), "`baseline` must be in (0, 1), found 1.2"),
        (lambda: sample_size_proportions(0.78, 0.02, power=1.0), "`power` must be in (0, 1), found 1.0"),
        (lambda: sample_size_proportions(0.78, 0.02, alpha=0.0), "`alpha` must be in (0, 1), found 0.0"),
        (
            lambda: sample_size_proportions(0.78, 0.3),
            "`mde` must be non-zero and keep the treatment rate in (0, 1), found 0.3 (treatment rate 1.08)",
        ),
        (
            lambda: sample_size_proportions(0.78, 0.0),
            "`mde` must be non-zero and keep the treatment rate in (0, 1), found 0.0 (treatment rate 0.78)",
        ),
        (
            lambda: mde_proportions(0.78, 3),
            "`n_per_arm` is too small to detect any increase from 0.78 at alpha 0.05 and power 0.8, found 3",
        ),
        (
            lambda: mde_proportions(0.78, 100, direction="up"),
            "`direction` must be one of ('increase', 'decrease'), found 'up'",
        ),
        (lambda: sample_size_means(0.0, 1.0), "`sd` must be > 0, found 0.0"),
        (lambda: sample_size_means(1.0, 0.0), "`mde` must be non-zero, found 0.0"),
        (lambda: stage_durations(6510, 0, [5]), "`daily_traffic` must be > 0, found 0"),
        (
            lambda: stage_durations(6510, 1000, [5, 100]),
            "`stages` must be percentages in (0, 100), found 100",
        ),
        (
            lambda: stage_durations(6510, 1000, []),
            "`stages` must list at least one canary percentage, found []",
        ),
        (lambda: stage_durations(0, 1000, [5]), "`n_per_arm` must be an integer >= 1, found 0"),
    ],
)
def test_raises(call: object, message: str) -> None:
    with pytest.raises(StatsInputError) as info:
        call()  # type: ignore[operator]
    assert str(info.value) == message
