"""Shadow mode's decision quality: false rejects on an A/A shadow, time to reject, and the gain from pairing.

The candidate answers a copy of every request (1,000 paired requests per five-minute look, MangaAssist's
~300,000 a day). Each look applies the shadow gate's harm tests (`canarywise.decision.shadow`): the exact
sequential McNemar on the binary veto metrics and the paired mSPRT on prompt tokens, each at alpha / 4 (four
veto metrics); the first look with harm proven on any of them is a REJECTED. The streams are drawn per look as
the four cells of each binary metric (a multinomial) and per request for the token difference.

Paired versus unpaired: the same streams, tested once as pairs (the shadow gate) and once as if the two models
had answered different requests (the canary's unpaired mSPRT: `msprt_proportions` on the two marginal rates,
`msprt_means` on the two sides' token counts); the ratio of the median requests to reject is the gain from
pairing. The guardrail stream is the seed's 98.0% -> 97.2%; the token stream a small increase, 120 -> 121
(per-request sd 30 on each side, 20 for the difference: the two answers to a request are correlated).

The paired tests are evaluated over all looks at once with numpy (the same closed forms); at each look that
decides, the product's own function is called and must agree (an assertion).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import special

from canarywise.spec import RolloutSpec
from canarywise.stats.means import SummaryStats
from canarywise.stats.paired_sequential import DEFAULT_CONCENTRATION, paired_msprt, sequential_mcnemar
from canarywise.stats.sequential import msprt_means, msprt_proportions

SPEC = (
    Path(__file__).resolve().parents[1]
    / "lambdas"
    / "canarywise"
    / "demo"
    / "specs"
    / "mangaassist-shadow.yaml"
)
PAIRS_PER_LOOK = 1000
LOOK_MINUTES = 5
# Cells (both, current only, candidate only, neither) of the binary veto metrics.
AA_CELLS = {
    "guardrail_pass_rate": (0.969, 0.011, 0.011, 0.009),  # 98.0% both
    "unsupported_answer_rate": (0.025, 0.015, 0.015, 0.945),  # 4.0% both
    "slow_response_rate": (0.008, 0.004, 0.004, 0.984),  # 1.2% both
}
SEED_GUARDRAIL = (0.965, 0.015, 0.007, 0.013)  # 98.0% -> 97.2% on the same requests
TOKENS = (120.0, 30.0)  # the current model's prompt tokens: mean, sd
TOKEN_DIFF_SD = 20.0  # sd of candidate − current on one request when both answer alike
SEED_TOKEN_SHIFT = 75.0  # 120 -> 195
TOKEN_SHIFT_PAIRING = 1.0  # a small token increase (120 -> 121), where the test's power matters


@dataclass(frozen=True)
class Outcome:
    """Per replicate: the look index of the first REJECTED (None = never within the horizon)."""

    label: str
    looks: tuple[int | None, ...]
    look_minutes: float
    pairs_per_look: int

    @property
    def rate(self) -> float:
        return sum(x is not None for x in self.looks) / len(self.looks)

    def quantile_hours(self, q: float) -> float:
        values = sorted(math.inf if x is None else (x + 1) * self.look_minutes / 60 for x in self.looks)
        return float(values[min(len(values) - 1, int(q * len(values)))])

    def median_requests(self) -> float:
        hours = self.quantile_hours(0.5)
        return hours * 60 / self.look_minutes * self.pairs_per_look


@dataclass(frozen=True)
class ShadowReport:
    replicates: int
    horizon_hours: float
    alpha: float
    aa: Outcome
    seed: Outcome
    guardrail_only: Outcome
    pairing: dict[str, tuple[Outcome, Outcome]]  # metric -> (paired, unpaired)


def _veto(spec: RolloutSpec) -> tuple[float, float]:
    assert spec.shadow is not None
    margin = spec.metric("prompt_tokens").margin
    assert margin is not None
    return spec.statistics.alpha / len(spec.shadow.veto), margin


def _mcnemar_log_lr(b: np.ndarray, c: np.ndarray, alternative: str) -> np.ndarray:
    """`sequential_mcnemar`'s log likelihood ratio over many looks at once (checked against it below)."""
    a = DEFAULT_CONCENTRATION
    m = b + c
    log_lr = m * math.log(2.0) + special.betaln(c + a, b + a) - special.betaln(a, a)
    x, y = (c + a, b + a) if alternative == "less" else (b + a, c + a)
    with np.errstate(divide="ignore"):
        return np.asarray(math.log(2.0) + log_lr + np.log(special.betainc(x, y, 0.5)))


def _msprt_log_lr(n: np.ndarray, s: np.ndarray, ss: np.ndarray, tau2: float) -> np.ndarray:
    """`paired_msprt`'s one-sided ('greater') log likelihood ratio over many looks (Johari's closed form)."""
    mean = s / n
    v = (ss - s * s / n) / (n - 1) / n
    ratio = tau2 / v
    z = mean / np.sqrt(v)
    two = -0.5 * np.log1p(ratio) + ratio * z * z / (2 * (1 + ratio))
    return np.asarray(math.log(2.0) + two + special.log_ndtr(z * np.sqrt(ratio / (1 + ratio))))


def _first(log_lr: np.ndarray, alpha: float) -> int | None:
    hits = np.flatnonzero(log_lr >= math.log(1 / alpha))
    return int(hits[0]) if hits.size else None


def _first_reject(
    cells: Mapping[str, tuple[float, ...]],
    token_shift: float,
    looks: int,
    alpha: float,
    tau2_tokens: float,
    rng: np.random.Generator,
) -> int | None:
    """The first look at which any veto metric's harm test rejects (None: never within `looks`)."""
    worse = {
        "guardrail_pass_rate": "less",
        "unsupported_answer_rate": "greater",
        "slow_response_rate": "greater",
    }
    firsts: list[int] = []
    for name, probs in cells.items():
        totals = np.cumsum(rng.multinomial(PAIRS_PER_LOOK, probs, size=looks), axis=0)
        b, c = totals[:, 1].astype(float), totals[:, 2].astype(float)
        first = _first(_mcnemar_log_lr(b, c, worse[name]), alpha)
        if first is not None:
            # The product's own function agrees at the look that decides.
            assert (
                sequential_mcnemar(int(b[first]), int(c[first]), alpha=alpha, alternative=worse[name]).pvalue
                <= alpha
            )
            firsts.append(first)
    d = rng.normal(token_shift, TOKEN_DIFF_SD, (looks, PAIRS_PER_LOOK))
    n = PAIRS_PER_LOOK * np.arange(1, looks + 1, dtype=float)
    s, ss = np.cumsum(d.sum(axis=1)), np.cumsum((d * d).sum(axis=1))
    first = _first(_msprt_log_lr(n, s, ss, tau2_tokens), alpha)
    if first is not None:
        look = d[: first + 1].ravel()
        assert paired_msprt(
            SummaryStats.from_values(look), tau2=tau2_tokens, alpha=alpha, alternative="greater"
        ).pvalue <= alpha * (1 + 1e-9)
        firsts.append(first)
    return min(firsts) if firsts else None


def _pairing(
    metric: str, looks: int, alpha: float, tau2: float, rng: np.random.Generator, replicates: int
) -> tuple[Outcome, Outcome]:
    """Paired and unpaired harm tests on the same streams (a look every 5 minutes, 1,000 pairs each)."""
    paired: list[int | None] = []
    unpaired: list[int | None] = []
    for _ in range(replicates):
        if metric == "guardrail_pass_rate":
            cells = np.cumsum(rng.multinomial(PAIRS_PER_LOOK, SEED_GUARDRAIL, size=looks), axis=0)
            both, b, c = cells[:, 0], cells[:, 1], cells[:, 2]
            n = cells.sum(axis=1)
            paired.append(_first(_mcnemar_log_lr(b.astype(float), c.astype(float), "less"), alpha))

            unpaired.append(
                next(
                    (
                        look
                        for look in range(looks)
                        if msprt_proportions(
                            int(both[look] + b[look]),
                            int(n[look]),
                            int(both[look] + c[look]),
                            int(n[look]),
                            tau2=tau2,
                            alpha=alpha,
                            alternative="less",
                        ).pvalue
                        <= alpha
                    ),
                    None,
                )
            )
        else:
            mean, sd = TOKENS
            current = rng.normal(mean, sd, (looks, PAIRS_PER_LOOK))
            candidate = current + rng.normal(TOKEN_SHIFT_PAIRING, TOKEN_DIFF_SD, (looks, PAIRS_PER_LOOK))
            d = candidate - current
            pairs = PAIRS_PER_LOOK * np.arange(1, looks + 1, dtype=float)
            s, ss = np.cumsum(d.sum(axis=1)), np.cumsum((d * d).sum(axis=1))
            paired.append(_first(_msprt_log_lr(pairs, s, ss, tau2), alpha))
            running = [(SummaryStats.from_values(current[0]), SummaryStats.from_values(candidate[0]))]
            for look in range(1, looks):
                cur, cand = running[-1]
                running.append(
                    (
                        cur + SummaryStats.from_values(current[look]),
                        cand + SummaryStats.from_values(candidate[look]),
                    )
                )

            unpaired.append(
                next(
                    (
                        look
                        for look, (cur, cand) in enumerate(running)
                        if msprt_means(cur, cand, tau2=tau2, alpha=alpha, alternative="greater").pvalue
                        <= alpha
                    ),
                    None,
                )
            )
    return (
        Outcome(f"{metric}, paired", tuple(paired), LOOK_MINUTES, PAIRS_PER_LOOK),
        Outcome(f"{metric}, unpaired", tuple(unpaired), LOOK_MINUTES, PAIRS_PER_LOOK),
    )


def run_shadow(
    spec: RolloutSpec, *, replicates: int, rng: np.random.Generator, log: Callable[[str], None]
) -> ShadowReport:
    """The shadow section of ``make bench`` on `spec` (its shadow phase's veto metrics and maximum)."""
    assert spec.shadow is not None
    alpha, token_margin = _veto(spec)
    horizon_looks = spec.shadow.max_duration // (LOOK_MINUTES * 60)
    tau2_tokens = token_margin**2

    def runs(cells: Mapping[str, tuple[float, ...]], shift: float, label: str, n: int) -> Outcome:
        looks = tuple(_first_reject(cells, shift, horizon_looks, alpha, tau2_tokens, rng) for _ in range(n))
        return Outcome(label, looks, LOOK_MINUTES, PAIRS_PER_LOOK)

    aa = runs(AA_CELLS, 0.0, "A/A", replicates)
    log(f"shadow A/A: {aa.rate:.2%} rejected over {spec.shadow.max_duration / 3600:g} h")
    seed_cells = {**AA_CELLS, "guardrail_pass_rate": SEED_GUARDRAIL}
    seed = runs(seed_cells, SEED_TOKEN_SHIFT, "the seed's retriever change", max(50, replicates // 4))
    guardrail = runs(seed_cells, 0.0, "guardrail pass 98.0% -> 97.2% alone", max(50, replicates // 4))
    log("shadow: time to reject measured")
    guard_margin = spec.metric("guardrail_pass_rate").margin
    assert guard_margin is not None
    pairing = {
        "guardrail_pass_rate": _pairing(
            "guardrail_pass_rate", horizon_looks, alpha, guard_margin**2, rng, max(30, replicates // 8)
        ),
        "prompt_tokens": _pairing(
            "prompt_tokens", horizon_looks, alpha, tau2_tokens, rng, max(30, replicates // 8)
        ),
    }
    log("shadow: paired vs unpaired measured")
    return ShadowReport(replicates, spec.shadow.max_duration / 3600, alpha, aa, seed, guardrail, pairing)
