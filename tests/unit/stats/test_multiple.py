"""Multiple-testing adjustments against statsmodels ``multipletests`` and by hand.

Reference: ``statsmodels.stats.multitest.multipletests(p, alpha,
method='fdr_bh'|'fdr_by'|'holm'|'bonferroni')`` -> (reject, pvals_corrected, ...).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from statsmodels.stats.multitest import multipletests

from canarywise.stats._checks import StatsInputError
from canarywise.stats.multiple import adjust_pvalues

SM_METHOD = {"bh": "fdr_bh", "by": "fdr_by", "holm": "holm", "bonferroni": "bonferroni"}
PVALUE_SETS = [
    [0.041, 0.001, 0.216],  # the CLI example
    [0.01, 0.04, 0.03, 0.005, 0.5, 0.2, 0.04],  # ties and a typical secondary-metric family
    list(np.random.default_rng(3).uniform(0, 0.1, size=25)),
    [1e-16, 0.9, 1.0, 0.0],
]


@pytest.mark.parametrize("method", list(SM_METHOD))
@pytest.mark.parametrize("pvalues", PVALUE_SETS)
@pytest.mark.parametrize("alpha", [0.05, 0.10])
def test_matches_statsmodels_multipletests(method: str, pvalues: list[float], alpha: float) -> None:
    """statsmodels: ``multipletests(pvalues, alpha=alpha, method=SM_METHOD[method])``."""
    reject, corrected, _, _ = multipletests(pvalues, alpha=alpha, method=SM_METHOD[method])
    result = adjust_pvalues(pvalues, method=method, alpha=alpha)
    assert_allclose(result.adjusted, corrected, rtol=1e-12)
    assert_array_equal(result.rejected, reject)
    assert result.method == method


def test_cli_example_by_hand() -> None:
    """BH by hand: sorted 0.001, 0.041, 0.216 -> 3*0.001/1, 3*0.041/2, 3*0.216/3 = 0.003, 0.0615, 0.216.
    Holm: 3*0.001, max(0.003, 2*0.041), max(0.082, 0.216) = 0.003, 0.082, 0.216 (input order)."""
    assert_allclose(adjust_pvalues([0.041, 0.001, 0.216]).adjusted, [0.0615, 0.003, 0.216], rtol=1e-12)
    holm = adjust_pvalues([0.041, 0.001, 0.216], method="holm")
    assert_allclose(holm.adjusted, [0.082, 0.003, 0.216], rtol=1e-12)
    assert holm.rejected == (False, True, False)


def test_empty_family() -> None:
    assert adjust_pvalues([]).adjusted == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "fdr_bh"}, "`method` must be one of ('bh', 'by', 'holm', 'bonferroni'), found 'fdr_bh'"),
        ({"alpha": 2.0}, "`alpha` must be in (0, 1), found 2.0"),
        ({"pvalues": [0.1, 1.5]}, "`pvalues` must all be in [0, 1], found 1.5"),
        ({"pvalues": [float("nan")]}, "`pvalues` must all be in [0, 1], found nan"),
    ],
)
def test_raises(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"pvalues": [0.01, 0.2]}
    args.update(kwargs)
    with pytest.raises(StatsInputError) as info:
        adjust_pvalues(**args)  # type: ignore[arg-type]
    assert str(info.value) == message
