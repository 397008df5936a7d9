"""A/B mode: PROMOTE with the lift and its confidence sequence, KEEP_CONTROL, NO_DIFFERENCE, guardrail vetoes,
secondary metrics under Benjamini-Hochberg.

The confidence sequence is checked against the normal-mixture formula computed by hand (`decision_kit`) and
against statsmodels' fixed-horizon Wald interval (same centre, and wider by exactly c(r)/z_{0.975}).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from decision_kit import (
    ac_variance,
    hours,
    make_obs,
    make_spec,
    metric,
    reference_tau2,
    stage,
    two_sided_radius,
)
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep

from canarywise.decision.engine import decide
from canarywise.decision.models import Decision, DecisionKind, Verdict
from canarywise.spec import RolloutSpec

CONVERSION = metric("conversion", role="primary", direction="higher_is_better", mde=0.005)
ERRORS = metric("error_rate", margin=0.005)
AB_STAGES = [{"percent": 50, "min_duration": "7d", "max_duration": "28d"}]


def ab_spec(*extra: dict[str, object]) -> RolloutSpec:
    return make_spec([CONVERSION, *extra], mode="ab", stages=AB_STAGES, statistics={"horizon": "14d"})


def days(d: float) -> datetime:
    return hours(24 * d)


class TestConversionStory:
    """Chatbot vs no chatbot: conversion 8.4% -> 9.4% with 50,000 users per arm."""

    CELLS = {("conversion", 0): ((50_000, 4_200), (50_000, 4_700))}  # noqa: RUF012

    def decision(self) -> Decision:
        spec = ab_spec()
        now = days(8)
        return decide(spec, [stage(0, 0, spec)], make_obs(self.CELLS, now), now)

    def test_promotes(self) -> None:
        decision = self.decision()
        assert decision.kind is DecisionKind.PROMOTE
        assert decision.reasons[0].startswith(
            "conversion improved: +1.00 pt (relative +11.9% over control 8.40%)"
        )

    def test_lift_and_confidence_sequence_match_the_formula(self) -> None:
        primary = self.decision().finding("conversion")
        variance = ac_variance(4_200, 50_000) + ac_variance(4_700, 50_000)
        tau2 = reference_tau2(0.005, 0.05, 0.8, two_sided=True)
        radius = two_sided_radius(variance, tau2, 0.05)
        assert_allclose(primary.estimate, 0.01, rtol=1e-9)
        assert_allclose([primary.ci_low, primary.ci_high], [0.01 - radius, 0.01 + radius], rtol=1e-9)
        # two-sided mixture p-value by hand: 1/Λ, Λ = sqrt(V/(V+τ²)) exp(τ² d² / (2V(V+τ²)))
        lam = math.sqrt(variance / (variance + tau2)) * math.exp(
            tau2 * 0.01**2 / (2 * variance * (variance + tau2))
        )
        assert_allclose(primary.pvalue, 1 / lam, rtol=1e-9)
        assert primary.verdict is Verdict.IMPROVEMENT
        assert (primary.n_control, primary.n_canary, primary.threshold) == (50_000, 50_000, 0.005)

    def test_confidence_sequence_is_the_wald_interval_widened(self) -> None:
        primary = self.decision().finding("conversion")
        # statsmodels.stats.proportion.confint_proportions_2indep(4700, 50000, 4200, 50000, method="wald")
        low, high = confint_proportions_2indep(4_700, 50_000, 4_200, 50_000, method="wald", compare="diff")
        sd = (high - low) / 2 / stats.norm.ppf(0.975)  # the unpooled standard error statsmodels used
        tau2 = reference_tau2(0.005, 0.05, 0.8, two_sided=True)
        # Same centre; the half-width is c(r)·sd instead of 1.96·sd. The Agresti-Caffo variance the engine
        # uses differs from the plain one by O(1/n) = 2e-5 relative, hence rtol 1e-4.
        assert_allclose((primary.ci_low + primary.ci_high) / 2, (low + high) / 2, rtol=1e-12)
        assert_allclose(
            (primary.ci_high - primary.ci_low) / 2, two_sided_radius(sd**2, tau2, 0.05), rtol=1e-4
        )
        assert primary.ci_low < low
        assert primary.ci_high > high


class TestPrimaryOutcomes:
    def test_keep_control_when_the_primary_is_proven_worse(self) -> None:
        spec = ab_spec()
        now = days(3)  # no need to wait for the minimum duration to stop a loser
        cells = {("conversion", 0): ((50_000, 4_700), (50_000, 4_200))}
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is DecisionKind.KEEP_CONTROL
        assert decision.finding("conversion").verdict is Verdict.HARM

    def test_continue_before_the_minimum_duration(self) -> None:
        spec = ab_spec()
        now = days(3)
        decision = decide(spec, [stage(0, 0, spec)], make_obs(TestConversionStory.CELLS, now), now)
        assert decision.kind is DecisionKind.CONTINUE
        assert decision.finding("conversion").verdict is Verdict.IMPROVEMENT
        assert "minimum duration: 72 h of 168 h" in decision.reasons

    def test_better_but_not_worth_it_does_not_promote(self) -> None:
        spec = make_spec(
            [{**CONVERSION, "mde": 0.02}], mode="ab", stages=AB_STAGES, statistics={"horizon": "14d"}
        )
        now = days(8)
        decision = decide(spec, [stage(0, 0, spec)], make_obs(TestConversionStory.CELLS, now), now)
        assert decision.kind is DecisionKind.CONTINUE
        assert decision.finding("conversion").verdict is Verdict.IMPROVEMENT_BELOW_MDE

    def test_no_difference_after_the_horizon(self) -> None:
        spec = ab_spec()
        cells = {("conversion", 0): ((500_000, 42_000), (500_000, 42_000))}
        before = decide(spec, [stage(0, 0, spec)], make_obs(cells, days(10)), days(10))
        assert before.kind is DecisionKind.CONTINUE
        assert before.finding("conversion").verdict is Verdict.EQUIVALENT
        after = decide(spec, [stage(0, 0, spec)], make_obs(cells, days(14)), days(14))
        assert after.kind is DecisionKind.NO_DIFFERENCE
        primary = after.finding("conversion")
        assert primary.ci_low > -0.005
        assert primary.ci_high < 0.005

    def test_inconclusive_at_the_maximum_duration(self) -> None:
        spec = ab_spec()
        cells = {("conversion", 0): ((20_000, 1_680), (20_000, 1_700))}
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, days(28)), days(28))
        assert decision.kind is DecisionKind.INCONCLUSIVE
        assert decision.reasons[0] == "stage 1 of 1 reached its maximum duration (672 h)"

    def test_late_primary_holds_instead_of_promoting(self) -> None:
        spec = ab_spec()
        now = days(8)
        obs = make_obs(TestConversionStory.CELLS, now, latest={"conversion": now - timedelta(hours=1)})
        decision = decide(spec, [stage(0, 0, spec)], obs, now)
        assert decision.kind is DecisionKind.HOLD

    def test_srm_holds_instead_of_promoting(self) -> None:
        spec = ab_spec()
        now = days(8)
        cells = {("conversion", 0): ((50_000, 4_200), (52_000, 4_888))}
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is DecisionKind.HOLD
        assert decision.reasons[0].startswith("sample ratio mismatch")


class TestGuardrailsAndSecondaries:
    def test_guardrail_harm_vetoes_a_winner(self) -> None:
        spec = ab_spec(ERRORS)
        now = days(8)
        cells = {
            **TestConversionStory.CELLS,
            ("error_rate", 0): ((50_000, 500), (50_000, 800)),  # 1.0% -> 1.6%
        }
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is DecisionKind.ROLLBACK
        assert decision.finding("conversion").verdict is Verdict.IMPROVEMENT
        assert decision.finding("error_rate").verdict is Verdict.HARM

    def test_secondaries_are_reported_with_bh(self) -> None:
        secondaries = [
            metric("csat_top_box", role="secondary", direction="higher_is_better"),
            metric("recommendation_ctr", role="secondary", direction="higher_is_better"),
            metric("repeat_visit", role="secondary", direction="higher_is_better"),
        ]
        spec = ab_spec(*secondaries)
        now = days(8)
        cells = {
            **TestConversionStory.CELLS,
            ("csat_top_box", 0): ((50_000, 30_000), (50_000, 30_500)),
            ("recommendation_ctr", 0): ((50_000, 2_000), (50_000, 2_150)),
            ("repeat_visit", 0): ((50_000, 10_000), (50_000, 10_020)),
        }
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is DecisionKind.PROMOTE  # secondaries decide nothing
        found = [decision.finding(m["name"]) for m in secondaries]
        assert all(f.verdict is Verdict.REPORTED for f in found)
        # statsmodels.stats.multitest.multipletests(raw, method="fdr_bh")
        _, expected, _, _ = multipletests([f.pvalue for f in found], method="fdr_bh")
        assert_allclose([f.adjusted_pvalue for f in found], expected, rtol=1e-12)
