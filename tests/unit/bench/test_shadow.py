"""bench/shadow.py: its vectorised tests are the product's tests, and the section renders."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from bench import report, shadow
from canarywise.spec import load_spec
from canarywise.stats.means import SummaryStats
from canarywise.stats.paired_sequential import paired_msprt, sequential_mcnemar


@pytest.mark.parametrize("alternative", ["less", "greater"])
def test_vectorised_mcnemar_is_the_products(alternative: str) -> None:
    b, c = np.array([150.0, 12.0, 40.0]), np.array([70.0, 9.0, 62.0])
    expected = [
        -np.log(sequential_mcnemar(int(x), int(y), alternative=alternative).pvalue)
        for x, y in zip(b, c, strict=True)
    ]
    got = shadow._mcnemar_log_lr(b, c, alternative)
    assert_allclose(np.maximum(got, 0.0), expected, rtol=1e-9)


def test_vectorised_msprt_is_the_products() -> None:
    d = np.random.default_rng(5).normal(0.3, 20.0, 4000)
    s, ss = np.cumsum(d), np.cumsum(d * d)
    n = np.arange(1, d.size + 1, dtype=float)
    for k in (999, 3999):
        p = paired_msprt(SummaryStats.from_values(d[: k + 1]), tau2=225.0, alternative="greater").pvalue
        log_lr = shadow._msprt_log_lr(n[k : k + 1], s[k : k + 1], ss[k : k + 1], 225.0)[0]
        assert_allclose(min(1.0, np.exp(-log_lr)), p, rtol=1e-6)


def test_a_short_run_renders_the_rows() -> None:
    spec = load_spec(shadow.SPEC)
    short = spec.model_copy(update={"shadow": spec.shadow.model_copy(update={"max_duration": 3600})})  # type: ignore[union-attr]
    result = shadow.run_shadow(short, replicates=8, rng=np.random.default_rng(1), log=lambda _: None)
    lines = report.shadow_tables(result)
    assert any(line.startswith("| A/A (both models alike on every veto metric) | 8 |") for line in lines)
    assert result.seed.rate == 1.0  # 120 -> 195 tokens is rejected within the hour, every time
