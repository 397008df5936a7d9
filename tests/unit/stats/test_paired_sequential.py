"""Anytime-valid paired tests (shadow mode) against independent references.

- `sequential_mcnemar`: the mixture likelihood ratio by numerical integration,
  ``scipy.integrate.quad(lambda p: (2p)^c (2(1-p))^b * scipy.stats.beta.pdf(p, a, a), lo, hi)``, and its
  type-I error over every look by a seeded simulation under H0.
- `paired_msprt`: Johari et al.'s closed form by hand, Λ = sqrt(V/(V+τ²)) exp(τ² d̄² / (2V(V+τ²))) with
  V = ``numpy.var(d, ddof=1) / n``.
- `PairedCells.differences`: ``numpy.mean`` / ``numpy.var(ddof=1)`` of the per-request differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate, special, stats

from canarywise.stats._checks import StatsInputError
from canarywise.stats.means import SummaryStats
from canarywise.stats.paired_sequential import PairedCells, paired_msprt, sequential_mcnemar


def _mixture_lr(b: int, c: int, a: float, lo: float, hi: float) -> float:
    weight = integrate.quad(lambda p: stats.beta.pdf(p, a, a), lo, hi)[0]
    value = integrate.quad(
        lambda p: (2 * p) ** c * (2 * (1 - p)) ** b * stats.beta.pdf(p, a, a),
        lo,
        hi,
        points=[0.25],
        limit=200,
    )[0]
    return float(value / weight)


@pytest.mark.parametrize(("b", "c"), [(150, 70), (12, 9), (30, 30), (5, 0), (0, 0), (40, 62)])
@pytest.mark.parametrize("a", [10.0, 2.0])
def test_sequential_mcnemar_is_the_beta_mixture_ratio(b: int, c: int, a: float) -> None:
    for alternative, (lo, hi) in {"two-sided": (0, 1), "less": (0, 0.5), "greater": (0.5, 1)}.items():
        expected = min(1.0, 1.0 / _mixture_lr(b, c, a, lo, hi))
        result = sequential_mcnemar(b, c, alternative=alternative, concentration=a)
        assert_allclose(result.pvalue, expected, rtol=1e-6, atol=1e-300)


def test_sequential_mcnemar_keeps_alpha_over_every_look() -> None:
    """Under H0 (each discordant pair a fair coin) 1,500 seeded runs of 400 discordant pairs, looked at
    after every pair: the share that ever reaches p <= 0.05 stays below 0.05 (one-sided and two-sided)."""
    rng = np.random.default_rng(20261207)
    wins = rng.random((1500, 400)) < 0.5
    c = np.cumsum(wins, axis=1)
    m = np.arange(1, 401)
    b = m - c
    a = 10.0
    log_two = m * math.log(2) + special.betaln(c + a, b + a) - special.betaln(a, a)
    log_less = math.log(2) + log_two + np.log(special.betainc(c + a, b + a, 0.5))
    for log_lr in (log_two, log_less):
        ever = (log_lr >= math.log(20)).any(axis=1).mean()
        assert ever <= 0.05
    # and the function agrees with the vectorised formula on one path
    assert_allclose(
        sequential_mcnemar(int(b[0, -1]), int(c[0, -1]), alternative="less").pvalue,
        min(1.0, math.exp(-log_less[0, -1])),
        rtol=1e-9,
    )


def test_seed_regression_is_caught_in_shadow() -> None:
    """Guardrail pass 98.0% -> 97.2% on 10,000 shared requests (150 only current, 70 only candidate): harm."""
    assert sequential_mcnemar(150, 70, alternative="less").pvalue < 0.05
    assert sequential_mcnemar(150, 70, alternative="greater").pvalue == 1.0


def test_paired_cells_differences_match_numpy() -> None:
    cells = PairedCells(both=9650, current_only=150, candidate_only=70, neither=130)
    d = np.array([0] * 9650 + [-1] * 150 + [1] * 70 + [0] * 130, dtype=float)
    diff = cells.differences()
    assert_allclose([diff.n, diff.mean, diff.variance], [d.size, d.mean(), d.var(ddof=1)], rtol=1e-12)
    assert (cells.current_rate, cells.candidate_rate) == (0.98, 0.972)


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
def test_paired_msprt_is_johari_closed_form(alternative: str) -> None:
    rng = np.random.default_rng(3)
    current = rng.normal(120, 30, 800)
    candidate = current + rng.normal(2.0, 15, 800)
    d = candidate - current
    tau2 = 4.0
    v = d.var(ddof=1) / d.size
    log_lr = 0.5 * math.log(v / (v + tau2)) + tau2 * d.mean() ** 2 / (2 * v * (v + tau2))
    if alternative == "greater":  # half-normal mixture: 2 Φ(z sqrt(r/(1+r))) times the two-sided ratio
        log_lr += math.log(2 * stats.norm.cdf(d.mean() / math.sqrt(v) * math.sqrt(tau2 / (v + tau2))))
    result = paired_msprt(SummaryStats.from_values(d), tau2=tau2, alternative=alternative)
    assert_allclose(result.pvalue, min(1.0, math.exp(-log_lr)), rtol=1e-9)
    assert_allclose(result.diff, d.mean(), rtol=1e-12)


def test_paired_msprt_no_evidence_and_bad_input() -> None:
    none_yet = paired_msprt(SummaryStats.from_values([1.0, 1.0, 1.0]), tau2=1.0)
    assert none_yet.pvalue == 1.0
    assert "no evidence yet" in none_yet.method
    with pytest.raises(StatsInputError, match="`differences` must be SummaryStats, found list"):
        paired_msprt([1.0, 2.0], tau2=1.0)  # type: ignore[arg-type]
    with pytest.raises(StatsInputError, match="`current_only` must be an integer >= 0, found -1"):
        sequential_mcnemar(-1, 3)
