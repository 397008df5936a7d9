"""`canarywise.stats.temporal` against independent references.

- Cochran's Q: ``statsmodels.stats.meta_analysis.combine_effects(eff, var).test_homogeneity()``.
- Per-window z-tests: ``2 * scipy.stats.norm.sf(abs(d / sqrt(v)))``, Holm with
  ``statsmodels.stats.multitest.multipletests(p, method="holm")``.
- Decay: ``scipy.stats.norm.cdf(z)`` with z derived by hand in the test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests

from canarywise.stats import StatsInputError
from canarywise.stats.temporal import cochran_q, decay_test, window_tests

# A novelty effect: +1.2 pt on the first two days, then about nothing (rates ~8.4%, ~60,000 per arm a day).
DAYS = [0.012, 0.011, 0.002, 0.001, -0.001, 0.0015]
VARIANCES = [2 * 0.084 * 0.916 / 60_000 * f for f in (1.0, 1.1, 0.9, 1.0, 1.2, 0.8)]


@pytest.mark.parametrize(
    ("estimates", "variances"),
    [(DAYS, VARIANCES), ([0.010, 0.012, -0.004], [1e-5, 2e-5, 4e-5]), ([1.5, 1.4], [0.2, 0.3])],
)
def test_cochran_q_matches_statsmodels(estimates: list[float], variances: list[float]) -> None:
    result = cochran_q(estimates, variances)
    # statsmodels.stats.meta_analysis.combine_effects(eff, var).test_homogeneity()
    reference = combine_effects(np.array(estimates), np.array(variances))
    homogeneity = reference.test_homogeneity()
    assert_allclose(result.statistic, homogeneity.statistic, rtol=1e-10)
    assert_allclose(result.pvalue, homogeneity.pvalue, rtol=1e-9)
    assert result.df == homogeneity.df == len(estimates) - 1
    assert_allclose(result.pooled, reference.mean_effect_fe, rtol=1e-10)
    assert_allclose(result.pooled_variance, reference.var_eff_w_fe, rtol=1e-10)


def test_window_tests_are_holm_adjusted_two_sided_z() -> None:
    result = window_tests(DAYS, VARIANCES)
    raw = [2 * stats.norm.sf(abs(d / math.sqrt(v))) for d, v in zip(DAYS, VARIANCES, strict=True)]
    assert_allclose(result.pvalue, raw, rtol=1e-10)
    _, holm, _, _ = multipletests(raw, method="holm")
    assert_allclose(result.adjusted, holm, rtol=1e-10)


def test_decay_of_a_novelty_effect_is_proven_and_a_steady_one_is_not() -> None:
    early_e, early_v = 0.0115, 0.5 * 2.565e-6  # mean of two days, half the variance
    late_e, late_v = 0.00088, 0.25 * 1.0e-5
    result = decay_test(early_e, early_v, late_e, late_v)
    z = (late_e - 0.5 * early_e) / math.sqrt(late_v + 0.25 * early_v)  # by hand
    assert_allclose(result.statistic, z, rtol=1e-12)
    assert_allclose(result.pvalue, stats.norm.cdf(z), rtol=1e-10)
    assert result.pvalue < 0.01
    assert_allclose(result.ratio, late_e / early_e)
    steady = decay_test(0.01, 1e-6, 0.0098, 1e-6)
    assert steady.pvalue > 0.5
    # a negative effect that fades is oriented by its own sign
    negative = decay_test(-0.0115, early_v, -0.00088, late_v)
    assert_allclose(negative.pvalue, result.pvalue, rtol=1e-12)


def test_raises() -> None:
    with pytest.raises(StatsInputError, match=r"`estimates` needs at least 2 windows, found 1"):
        cochran_q([0.1], [0.01])
    with pytest.raises(StatsInputError, match=r"`variances\[1\]` must be > 0, found 0.0"):
        window_tests([0.1, 0.2], [0.01, 0.0])
    with pytest.raises(StatsInputError, match=r"same length, found 2 and 1"):
        cochran_q([0.1, 0.2], [0.01])
    with pytest.raises(StatsInputError, match=r"`fraction` must be in \(0, 1\), found 1.5"):
        decay_test(0.1, 0.01, 0.05, 0.01, fraction=1.5)
