"""SRM chi-square, plain and stage-aware, against scipy / numpy / by hand.

References: ``scipy.stats.chisquare(observed, f_exp=total * w / sum(w))``; ``scipy.stats.chi2.sf``.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from canarywise.stats._checks import StatsInputError
from canarywise.stats.srm import srm_test, staged_srm_test


@pytest.mark.parametrize(
    ("observed", "weights"),
    [
        ([94700, 5300], [95, 5]),  # the users' example: 5.3% in a 5% canary
        ([50210, 49790], [50, 50]),
        ([33000, 33500, 33100], [1, 1, 1]),
        ([7400, 2600], [0.75, 0.25]),
    ],
)
def test_srm_matches_scipy_chisquare(observed: list[int], weights: list[float]) -> None:
    """scipy: ``chisquare(observed, f_exp=sum(observed) * w / sum(w))``."""
    expected_counts = np.sum(observed) * np.asarray(weights) / np.sum(weights)
    expected = stats.chisquare(observed, f_exp=expected_counts)
    result = srm_test(observed, weights)
    assert_allclose([result.statistic, result.pvalue], [expected.statistic, expected.pvalue], rtol=1e-10)
    assert result.df == len(observed) - 1
    assert_allclose(result.expected, expected_counts, rtol=1e-12)


def test_srm_example_by_hand() -> None:
    """By hand: E = (95000, 5000); X² = 300²/95000 + 300²/5000 = 18.947; p = chi2(1).sf(X²) ~ 1.3e-5."""
    result = srm_test([94700, 5300], [95, 5])
    x2 = 300**2 / 95000 + 300**2 / 5000
    assert_allclose(result.statistic, x2, rtol=1e-12)
    assert_allclose(result.pvalue, stats.chi2.sf(x2, 1), rtol=1e-10)
    assert result.pvalue < 0.001  # an SRM at the usual threshold


def test_staged_srm_sums_expected_counts_over_stages() -> None:
    """By hand: stage 1 (5%) 10,000 units -> E = (9500, 500); stage 2 (25%) 40,000 -> E = (30000, 10000);
    pooled O = (39420, 10580), E = (39500, 10500); X² = 80²/39500 + 80²/10500 on 1 df."""
    stages = [([9480, 520], [95, 5]), ([29940, 10060], [75, 25])]
    result = staged_srm_test(stages)
    assert_allclose(result.expected, [39500, 10500], rtol=1e-12)
    assert result.observed == (39420.0, 10580.0)
    x2 = 80**2 / 39500 + 80**2 / 10500
    assert_allclose(result.statistic, x2, rtol=1e-12)
    assert_allclose(result.pvalue, stats.chi2.sf(x2, 1), rtol=1e-10)
    assert result.df == 1


def test_a_healthy_ramp_is_not_flagged_but_naive_pooling_is() -> None:
    """Exactly on-weight stages: the stage-aware test sees no mismatch, one set of weights would."""
    stages = [([9500, 500], [95, 5]), ([30000, 10000], [75, 25]), ([20000, 20000], [50, 50])]
    assert staged_srm_test(stages).statistic == pytest.approx(0.0, abs=1e-9)
    assert srm_test([59500, 30500], [50, 50]).pvalue < 1e-100


def test_staged_srm_with_one_stage_is_srm() -> None:
    one = staged_srm_test([([94700, 5300], [95, 5])])
    plain = srm_test([94700, 5300], [95, 5])
    assert_allclose([one.statistic, one.pvalue], [plain.statistic, plain.pvalue], rtol=1e-12)


def test_staged_srm_is_conservative_on_healthy_ramps() -> None:
    """Seeded Monte Carlo: 2,000 healthy 5/25/50 ramps; rejections at 0.05 stay <= 0.05 (+3 MC s.e.).
    Expected rate ~0.035: the assumed variance overstates the true one by ~16% here."""
    rng = np.random.default_rng(11)
    sizes, shares = [2000, 4000, 4000], [0.05, 0.25, 0.5]
    rejections = 0
    draws = 2000
    for _ in range(draws):
        stages = []
        for n, share in zip(sizes, shares, strict=True):
            canary = int(rng.binomial(n, share))
            stages.append(([n - canary, canary], [1 - share, share]))
        rejections += staged_srm_test(stages).pvalue <= 0.05
    assert rejections / draws <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / draws)


def test_no_traffic_is_not_a_mismatch() -> None:
    result = srm_test([0, 0], [95, 5])
    assert (result.statistic, result.pvalue) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: srm_test([100], [1]), "`observed` must have at least 2 arms, found [100]"),
        (
            lambda: srm_test([100, 5], [95, 4, 1]),
            "`weights` must have one weight per arm (2), found [95, 4, 1]",
        ),
        (lambda: srm_test([100, 5], [95, 0]), "`weights` must all be finite and > 0, found [95, 0]"),
        (lambda: srm_test([100, -5], [95, 5]), "`observed` must be an integer >= 0, found -5"),
        (lambda: staged_srm_test([]), "`stages` must hold at least one (observed, weights) pair, found []"),
        (
            lambda: staged_srm_test([([9500, 500], [95, 5]), ([1, 2, 3], [1, 1])]),
            "`weights` of stage 1 must have one weight per arm (3), found [1, 1]",
        ),
        (
            lambda: staged_srm_test([([9500, 500], [95, 5]), ([1, 2, 3], [1, 1, 1])]),
            "`observed` of stage 1 must have 2 arms like stage 0, found [1, 2, 3]",
        ),
    ],
)
def test_raises(call: object, message: str) -> None:
    with pytest.raises(StatsInputError) as info:
        call()  # type: ignore[operator]
    assert str(info.value) == message
