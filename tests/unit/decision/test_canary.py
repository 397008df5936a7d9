"""Canary mode: every path of the decision rule, the users' situations, and the numbers behind them.

References are independent of canarywise's statistics code: the mixture-SPRT p-value and τ² are re-derived by
hand in `decision_kit` (scipy.stats.norm, scipy.optimize.brentq), SRM against ``scipy.stats.chisquare``, BH
against ``statsmodels.stats.multitest.multipletests``, pooled comparisons with
``statsmodels.stats.proportion.proportions_ztest``.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import ClassVar

import pytest
from decision_kit import (
    ESCALATION,
    T0,
    ac_variance,
    hours,
    make_obs,
    make_spec,
    metric,
    null_variance,
    one_sided_pvalue,
    reference_tau2,
    stage,
)
from numpy.testing import assert_allclose
from scipy import optimize, stats
from score_reference import srm_mixture_pvalue, srm_tau2
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from canarywise.decision.engine import decide
from canarywise.decision.models import (
    SRM_FINDING,
    Decision,
    DecisionInputError,
    DecisionKind,
    Observations,
    ProportionAggregate,
    StageRecord,
    Verdict,
)
from canarywise.spec import load_spec

# 12% escalations, healthy traffic at 5%: 380,000 control and 20,000 canary sessions.
HEALTHY_0 = ((380_000, 45_600), (20_000, 2_400))


def escalation_harm_reference(x_c: int, n_c: int, x_t: int, n_t: int, alpha: float) -> float:
    """One-sided half-normal mixture p-value, by hand, for the escalation metric (mde 0.02, power 0.8)."""
    variance = ac_variance(x_c, n_c) + ac_variance(x_t, n_t)
    tau2 = reference_tau2(0.02, alpha, 0.8)
    z = (x_t / n_t - x_c / n_c) / math.sqrt(variance)
    return one_sided_pvalue(z, tau2 / variance)


class TestEscalationStory:
    """The support team's canary: escalations 12% -> 14% (59,400/495,000 vs 700/5,000)."""

    CELLS: ClassVar = {("escalation_rate", 0): ((495_000, 59_400), (5_000, 700))}

    def test_rolls_back_with_the_numbers(self) -> None:
        spec = make_spec()
        now = hours(2)
        decision = decide(spec, [stage(0, 0, spec)], make_obs(self.CELLS, now), now)
        assert decision.kind is DecisionKind.ROLLBACK
        harm = decision.finding("escalation_rate", verdicts=[Verdict.HARM])
        assert_allclose(harm.estimate, 0.02, rtol=1e-12)
        assert_allclose(harm.pvalue, escalation_harm_reference(59_400, 495_000, 700, 5_000, 0.05), rtol=1e-9)
        assert harm.pvalue <= 0.05
        assert harm.ci_low is not None
        assert harm.ci_low > 0
        assert harm.ci_high is None
        assert (harm.n_control, harm.n_canary) == (495_000, 5_000)
        assert "escalation_rate is worse on the canary" in decision.reasons[0]

    def test_the_ratio_is_off_for_a_5_percent_split_but_harm_still_rolls_back(self) -> None:
        # 5,000 of 500,000 is a 1% share, not the 5% the weights set: SRM. A rollback only reduces exposure,
        # so proven harm is acted on anyway, and the SRM is reported with it.
        spec = make_spec()
        now = hours(2)
        decision = decide(spec, [stage(0, 0, spec)], make_obs(self.CELLS, now), now)
        assert decision.finding(SRM_FINDING).verdict is Verdict.SRM
        assert any(r.startswith("also: sample ratio mismatch") for r in decision.reasons)

    def test_at_the_split_the_numbers_imply_there_is_no_srm(self) -> None:
        spec = make_spec()
        now = hours(2)
        record = StageRecord(0, 1.0, {"control": 99, "canary": 1}, T0)
        decision = decide(spec, [record], make_obs(self.CELLS, now), now)
        assert decision.kind is DecisionKind.ROLLBACK
        assert decision.finding(SRM_FINDING).verdict is Verdict.SRM_OK

    def test_with_the_shipped_mangaassist_spec(self) -> None:
        # Five safety/guardrail metrics share alpha and escalation_rate is sliced by intent: the harm test
        # runs at 0.05 / 5 / 2 = 0.005 and still rejects.
        spec = load_spec("config/mangaassist.yaml")
        now = hours(2)
        decision = decide(spec, [stage(0, 0, spec)], make_obs(self.CELLS, now), now)
        assert decision.kind is DecisionKind.ROLLBACK
        harm = decision.finding("escalation_rate", verdicts=[Verdict.HARM])
        assert harm.alpha == pytest.approx(0.005)
        assert_allclose(harm.pvalue, escalation_harm_reference(59_400, 495_000, 700, 5_000, 0.005), rtol=1e-9)
        # The confidence-sequence bound of docs/decision-rule.md: d - u*·sd, u* the z where the hand-written
        # one-sided p-value reaches the level (scipy.optimize.brentq)
        variance = ac_variance(59_400, 495_000) + ac_variance(700, 5_000)
        ratio = reference_tau2(0.02, 0.005, 0.8) / variance
        u = optimize.brentq(lambda u: one_sided_pvalue(u, ratio) - 0.005, 0.0, 10.0, xtol=1e-14)
        assert_allclose(harm.ci_low, 0.02 - u * math.sqrt(variance), rtol=1e-9)
        assert (round(harm.ci_low, 5), round(u, 2), round(harm.pvalue, 4)) == (
            0.00233,
            3.58,
            0.0009,
        )  # as in the doc


class TestRollback:
    def test_hard_limit_breach(self) -> None:
        spec = make_spec([ESCALATION, metric("error_rate", margin=0.005, hard_limit=0.02)])
        now = hours(1)
        # Both arms at 3%: no harm relative to control, but the canary is above its absolute limit.
        cells = {
            ("escalation_rate", 0): HEALTHY_0,
            ("error_rate", 0): ((190_000, 5_700), (10_000, 300)),
        }
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is DecisionKind.ROLLBACK
        limit = decision.finding("error_rate", verdicts=[Verdict.HARD_LIMIT_BREACHED])
        assert_allclose(limit.estimate, 300 / 10_000)
        assert limit.threshold == 0.02
        assert decision.finding("error_rate", verdicts=[Verdict.NO_HARM_PROVEN])
        assert decision.reasons[0].startswith(
            "error_rate breached its hard limit: the canary's value in stage 1 of 3 is 3.00%"
        )
        assert limit.method == (
            "hard limit: exact one-sided binomial test of the canary's rate in stage 1 of 3 above the limit, "
            "at 0.001 over the horizon's looks"
        )
        # The level: 0.001 over the 7-day horizon's 2,016 five-minute looks (7 * 24 * 12).
        assert_allclose(limit.alpha, 0.001 / 2016, rtol=1e-12)
        # Reference: scipy.stats.binomtest(300, 10_000, 0.02, alternative="greater").pvalue
        assert_allclose(
            limit.pvalue, stats.binomtest(300, 10_000, 0.02, alternative="greater").pvalue, rtol=1e-9
        )

    @pytest.mark.parametrize("events", [2, 5, 8, 11, 14, 17, 20, 23])
    def test_hard_limit_fires_exactly_when_the_clopper_pearson_bound_passes_it(self, events: int) -> None:
        """Independent reference: the one-sided Clopper-Pearson lower bound at level a,
        scipy.stats.beta.ppf(a, k, n - k + 1), lies above the limit iff the exact test rejects."""
        spec = make_spec([ESCALATION, metric("error_rate", hard_limit=0.02)])
        now = hours(1)
        cells = {("escalation_rate", 0): HEALTHY_0, ("error_rate", 0): ((19_000, 95), (400, events))}
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        level = 0.001 / 2016
        cp_lower = stats.beta.ppf(level, events, 400 - events + 1)
        expected = Verdict.HARD_LIMIT_BREACHED if cp_lower > 0.02 else Verdict.WITHIN_HARD_LIMIT
        assert decision.finding("error_rate", verdicts=[expected])

    def test_a_healthy_low_baseline_canary_above_the_limit_by_chance_is_not_rolled_back(self) -> None:
        """0.5% true error rate, 200 canary requests, 5 errors: 2.5% observed, above the 2% limit, but
        P(X >= 5 | Bin(200, 0.02)) = 0.37 (scipy.stats.binom.sf(4, 200, 0.02)): no evidence of a breach.
        The rule before compared the observed rate with the limit and rolled this back."""
        spec = make_spec([ESCALATION, metric("error_rate", hard_limit=0.02)])
        now = hours(1)
        cells = {("escalation_rate", 0): HEALTHY_0, ("error_rate", 0): ((3_800, 19), (200, 5))}
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is not DecisionKind.ROLLBACK
        limit = decision.finding("error_rate", verdicts=[Verdict.WITHIN_HARD_LIMIT])
        assert_allclose(limit.estimate, 0.025)
        assert_allclose(limit.pvalue, stats.binom.sf(4, 200, 0.02), rtol=1e-12)
        assert round(limit.pvalue, 2) == 0.37

    def test_hard_limit_on_a_mean(self) -> None:
        """A mean against its limit: one-sided one-sample t-test; reference statsmodels'
        _tstat_generic(mean, 0, se, n - 1, alternative="larger", diff=limit)."""
        from statsmodels.stats.weightstats import _tstat_generic

        spec = make_spec([ESCALATION, metric("token_cost", kind="mean", mde=0.05, hard_limit=1.2)])
        now = hours(1)
        control = (20_000, 20_000 * 1.00, 19_999 * 0.50**2 + 20_000 * 1.00**2)
        for mean, expected in ((1.30, Verdict.WITHIN_HARD_LIMIT), (1.40, Verdict.HARD_LIMIT_BREACHED)):
            canary = (400, 400 * mean, 399 * 0.50**2 + 400 * mean**2)
            cells = {("escalation_rate", 0): HEALTHY_0, ("token_cost", 0): (control, canary)}
            decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
            finding = decision.finding("token_cost", verdicts=[expected])
            _, reference = _tstat_generic(mean, 0, 0.50 / 20, 399, alternative="larger", diff=1.2)
            assert_allclose(finding.pvalue, reference, rtol=1e-6)

    def test_hard_limit_needs_100_canary_units(self) -> None:
        spec = make_spec([ESCALATION, metric("error_rate", hard_limit=0.02)])
        now = hours(1)
        cells = {("escalation_rate", 0): HEALTHY_0, ("error_rate", 0): ((1_900, 19), (99, 5))}
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is not DecisionKind.ROLLBACK
        assert decision.finding("error_rate", verdicts=[Verdict.INSUFFICIENT])

    def test_higher_is_better_hard_limit_breaches_below(self) -> None:
        spec = make_spec([ESCALATION, metric("answer_rate", direction="higher_is_better", hard_limit=0.9)])
        now = hours(1)
        cells = {("escalation_rate", 0): HEALTHY_0, ("answer_rate", 0): ((19_000, 16_910), (1_000, 800))}
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is DecisionKind.ROLLBACK
        finding = decision.finding("answer_rate", verdicts=[Verdict.HARD_LIMIT_BREACHED])
        assert finding.estimate == 0.80
        # Reference: scipy.stats.binomtest(800, 1_000, 0.9, alternative="less").pvalue
        assert_allclose(
            finding.pvalue, stats.binomtest(800, 1_000, 0.9, alternative="less").pvalue, rtol=1e-9
        )

    def test_harm_on_a_guardrail_mean(self) -> None:
        token_cost = metric("token_cost", kind="mean", mde=0.05)
        spec = make_spec([ESCALATION, token_cost])
        now = hours(1)
        # control: n=20,000, mean 1.00, sd 0.50; canary: n=2,000, mean 1.10, sd 0.60
        control = (20_000, 20_000 * 1.00, 19_999 * 0.50**2 + 20_000 * 1.00**2)
        canary = (2_000, 2_000 * 1.10, 1_999 * 0.60**2 + 2_000 * 1.10**2)
        cells = {("escalation_rate", 0): HEALTHY_0, ("token_cost", 0): (control, canary)}
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is DecisionKind.ROLLBACK
        harm = decision.finding("token_cost", verdicts=[Verdict.HARM])
        # Welch variance by hand: s_c²/n_c + s_t²/n_t; alpha 0.05 shared by 2 metrics.
        variance = 0.50**2 / 20_000 + 0.60**2 / 2_000
        tau2 = reference_tau2(0.05, 0.025, 0.8)
        z = 0.10 / math.sqrt(variance)
        assert_allclose(harm.estimate, 0.10, rtol=1e-9)
        assert_allclose(harm.pvalue, one_sided_pvalue(z, tau2 / variance), rtol=1e-7)

    def test_higher_is_better_harm_is_a_drop(self) -> None:
        spec = make_spec(
            [metric("task_completion", role="safety", direction="higher_is_better", margin=0.01)]
        )
        now = hours(1)
        cells = {("task_completion", 0): ((95_000, 66_500), (5_000, 3_300))}  # 70% -> 66%
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is DecisionKind.ROLLBACK
        harm = decision.finding("task_completion", verdicts=[Verdict.HARM])
        assert harm.ci_high is not None
        assert harm.ci_high < 0
        assert harm.ci_low is None


class TestSlices:
    SLICED: ClassVar = {**ESCALATION, "slice_dimension": "Intent", "critical_slices": ["returns"]}

    @staticmethod
    def cells(returns_canary: int, browse_canary: int) -> dict[tuple[str, int, str | None], tuple]:
        slices = {
            "order_status": ((100_000, 12_000), (5_000, 600)),
            "returns": ((100_000, 12_000), (5_000, returns_canary)),
            "browse": ((100_000, 12_000), (5_000, browse_canary)),
        }
        out: dict[tuple[str, int, str | None], tuple] = {
            ("escalation_rate", 0, s): v for s, v in slices.items()
        }
        control = (sum(v[0][0] for v in slices.values()), sum(v[0][1] for v in slices.values()))
        canary = (sum(v[1][0] for v in slices.values()), sum(v[1][1] for v in slices.values()))
        out[("escalation_rate", 0, None)] = (control, canary)
        return out

    def test_critical_slice_regression_rolls_back(self) -> None:
        spec = make_spec([self.SLICED])
        now = hours(1)
        # returns 12% -> 15% on the canary, the other slices a little better: overall no proven harm
        decision = decide(spec, [stage(0, 0, spec)], make_obs(self.cells(750, 520), now), now)
        assert decision.finding("escalation_rate").verdict is Verdict.NO_HARM_PROVEN
        assert decision.kind is DecisionKind.ROLLBACK
        assert decision.reasons[0].startswith("critical slice regression: escalation_rate in slice 'returns'")

    def test_slice_pvalues_are_bh_adjusted(self) -> None:
        spec = make_spec([self.SLICED])
        now = hours(1)
        decision = decide(spec, [stage(0, 0, spec)], make_obs(self.cells(750, 520), now), now)
        names = ["browse", "order_status", "returns"]
        found = [decision.finding("escalation_rate", s) for s in names]
        raw = [f.pvalue for f in found]
        # statsmodels.stats.multitest.multipletests(raw, method="fdr_bh")
        _, expected, _, _ = multipletests(raw, method="fdr_bh")
        assert_allclose([f.adjusted_pvalue for f in found], expected, rtol=1e-12)
        assert all(f.alpha == pytest.approx(0.025) for f in found)  # half of alpha for the slice family

    def test_regression_in_a_non_critical_slice_is_reported_under_the_report_policy(self) -> None:
        spec = make_spec([self.SLICED], slice_policy={"non_critical_regression": "report"})
        now = hours(1)
        decision = decide(spec, [stage(0, 0, spec)], make_obs(self.cells(480, 750), now), now)
        assert decision.kind is not DecisionKind.ROLLBACK
        assert decision.finding("escalation_rate", "browse").verdict is Verdict.HARM
        assert any(r.startswith("slice regression (not a critical slice") for r in decision.reasons)

    def test_missing_critical_slice_holds(self) -> None:
        spec = make_spec([self.SLICED])
        now = hours(5)
        cells = {
            ("escalation_rate", 0, None): HEALTHY_0,
            ("escalation_rate", 0, "browse"): HEALTHY_0,
        }
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is DecisionKind.HOLD
        assert decision.finding("escalation_rate", "returns").verdict is Verdict.MISSING


class TestDataQuality:
    def test_srm_holds_and_never_advances(self) -> None:
        spec = make_spec()
        now = hours(6)  # past the minimum duration, non-inferiority clearly shown
        cells = {("escalation_rate", 0): ((380_000, 45_600), (21_000, 2_520))}
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is DecisionKind.HOLD
        assert decision.finding("escalation_rate", verdicts=[Verdict.NON_INFERIOR])
        srm = decision.finding(SRM_FINDING)
        # the anytime-valid test: the mixture of binomial likelihood ratios, integrated by scipy (quad)
        expected = srm_mixture_pvalue([(21_000, 401_000, 0.05)], srm_tau2(0.001))
        assert_allclose(srm.pvalue, expected, rtol=1e-7)
        assert srm.verdict is Verdict.SRM
        assert decision.reasons[0].startswith("sample ratio mismatch")

    def test_srm_uses_the_weights_of_each_stage(self) -> None:
        spec = make_spec()
        now = hours(30)
        records = [stage(0, 0, spec, ended_hours=5), stage(1, 5, spec)]
        cells = {
            ("escalation_rate", 0): ((380_000, 45_600), (20_000, 2_400)),
            ("escalation_rate", 1): ((300_000, 36_000), (100_000, 12_000)),
        }
        decision = decide(spec, records, make_obs(cells, now), now)
        srm = decision.finding(SRM_FINDING)
        assert srm.verdict is Verdict.SRM_OK
        assert srm.pvalue == pytest.approx(1.0)
        assert decision.kind is DecisionKind.ADVANCE

    def test_srm_reads_explicit_assignment_counts(self) -> None:
        spec = make_spec()
        now = hours(6)
        assignments = {(0, "control"): 95_000, (0, "canary"): 6_000}
        decision = decide(
            spec,
            [stage(0, 0, spec)],
            make_obs({("escalation_rate", 0): HEALTHY_0}, now, assignments=assignments),
            now,
        )
        srm = decision.finding(SRM_FINDING)
        assert (srm.n_control, srm.n_canary) == (95_000, 6_000)
        assert decision.kind is DecisionKind.HOLD

    # A ramp with sticky returning users: in stage 2 (75/25) the sessions lag the weights (17.5% canary,
    # returning users keep the control cookie they got before), the new assignments follow them.
    RAMP_SESSIONS: ClassVar = {
        ("escalation_rate", 0): ((380_000, 45_600), (20_000, 2_400)),
        ("escalation_rate", 1): ((330_000, 39_600), (70_000, 8_400)),
    }
    RAMP_NEW: ClassVar = {
        (0, "control"): 152_000,
        (0, "canary"): 8_000,
        (1, "control"): 120_300,
        (1, "canary"): 39_700,
    }

    def ramp(self, assignments: dict[tuple[int, str], int] | None) -> Decision:
        spec = make_spec()
        now = hours(8)
        records = [stage(0, 0, spec, ended_hours=5), stage(1, 5, spec)]
        return decide(spec, records, make_obs(self.RAMP_SESSIONS, now, assignments=assignments), now)

    def test_srm_on_new_assignments_stays_quiet_after_a_ramp(self) -> None:
        decision = self.ramp(self.RAMP_NEW)
        srm = decision.finding(SRM_FINDING)
        # Each stage against its own weights, one likelihood ratio over both (the anytime-valid test, by quad)
        reference = srm_mixture_pvalue([(8_000, 160_000, 0.05), (39_700, 160_000, 0.25)], srm_tau2(0.001))
        assert_allclose(srm.pvalue, reference, rtol=1e-7)
        assert srm.verdict is Verdict.SRM_OK
        assert (srm.n_control, srm.n_canary) == (272_300, 47_700)
        assert "counting new assignments per variant" in srm.method
        assert decision.kind is DecisionKind.CONTINUE  # stage 2 needs 24 h; nothing held

    def test_without_assignment_counts_sessions_are_counted_and_the_ramp_looks_like_srm(self) -> None:
        decision = self.ramp(None)
        srm = decision.finding(SRM_FINDING)
        # sessions, not new assignments: 17.5% canary in stage 2 against a 25% weight (anytime-valid, by quad)
        reference = srm_mixture_pvalue([(20_000, 400_000, 0.05), (70_000, 400_000, 0.25)], srm_tau2(0.001))
        assert_allclose(srm.pvalue, reference, rtol=1e-7)
        assert srm.verdict is Verdict.SRM
        assert "counting units of escalation_rate (fallback: no new-assignment counts" in srm.method
        assert decision.kind is DecisionKind.HOLD

    def test_a_real_mismatch_in_new_assignments_still_holds(self) -> None:
        # A third of the candidate's new users land on control in stage 2 (a broken assignment).
        broken = {**self.RAMP_NEW, (1, "control"): 133_533, (1, "canary"): 26_467}
        decision = self.ramp(broken)
        srm = decision.finding(SRM_FINDING)
        reference = srm_mixture_pvalue([(8_000, 160_000, 0.05), (26_467, 160_000, 0.25)], srm_tau2(0.001))
        assert_allclose(srm.pvalue, reference, rtol=1e-7)
        assert srm.verdict is Verdict.SRM
        assert decision.kind is DecisionKind.HOLD
        assert decision.reasons[0].startswith("sample ratio mismatch: the canary's share is -4.23 pt off")

    def test_late_data_holds(self) -> None:
        spec = make_spec()
        now = hours(6)
        obs = make_obs(
            {("escalation_rate", 0): HEALTHY_0}, now, latest={"escalation_rate": now - timedelta(minutes=11)}
        )
        decision = decide(spec, [stage(0, 0, spec)], obs, now)
        assert decision.kind is DecisionKind.HOLD
        late = decision.finding("escalation_rate", verdicts=[Verdict.LATE])
        assert (late.estimate, late.threshold) == (660.0, 600.0)

    def test_data_exactly_two_intervals_old_is_not_late(self) -> None:
        spec = make_spec()
        now = hours(6)
        obs = make_obs(
            {("escalation_rate", 0): HEALTHY_0}, now, latest={"escalation_rate": now - timedelta(minutes=10)}
        )
        assert decide(spec, [stage(0, 0, spec)], obs, now).kind is DecisionKind.ADVANCE

    def test_a_missing_guardrail_holds(self) -> None:
        spec = make_spec([ESCALATION, metric("error_rate", margin=0.005)])
        now = hours(6)
        decision = decide(spec, [stage(0, 0, spec)], make_obs({("escalation_rate", 0): HEALTHY_0}, now), now)
        assert decision.kind is DecisionKind.HOLD
        assert decision.finding("error_rate", verdicts=[Verdict.MISSING])
        assert "error_rate: missing data: no datapoint at all" in decision.reasons

    def test_an_empty_arm_in_the_current_stage_holds(self) -> None:
        spec = make_spec()
        now = hours(30)
        records = [stage(0, 0, spec, ended_hours=5), stage(1, 5, spec)]
        cells = {("escalation_rate", 0): HEALTHY_0, ("escalation_rate", 1): ((0, 0), (0, 0))}
        decision = decide(spec, records, make_obs(cells, now), now)
        assert decision.kind is DecisionKind.HOLD
        assert decision.reasons == ("escalation_rate: missing data: no units in an arm of stage 2 of 3",)

    def test_no_stage_started(self) -> None:
        decision = decide(make_spec(), [], Observations({}), hours(0))
        assert (decision.kind, decision.stage_index) == (DecisionKind.HOLD, -1)

    def test_alarm_only_latency_is_not_expected_as_data(self) -> None:
        p99 = {
            "name": "p99_latency",
            "kind": "proportion",
            "role": "guardrail",
            "hard_limit": 8.0,
            "source": {"type": "alb", "metric": "target_response_time"},
        }
        spec = make_spec([ESCALATION, p99])
        now = hours(6)
        decision = decide(spec, [stage(0, 0, spec)], make_obs({("escalation_rate", 0): HEALTHY_0}, now), now)
        assert decision.kind is DecisionKind.ADVANCE
        assert all(f.metric != "p99_latency" for f in decision.findings)


class TestProgression:
    def test_advance_when_non_inferior_after_the_minimum_duration(self) -> None:
        spec = make_spec()
        now = hours(5)
        decision = decide(spec, [stage(0, 0, spec)], make_obs({("escalation_rate", 0): HEALTHY_0}, now), now)
        assert decision.kind is DecisionKind.ADVANCE
        ni = decision.finding("escalation_rate", verdicts=[Verdict.NON_INFERIOR])
        # H0: diff >= margin, one-sided half-normal mixture on -(diff - margin), by hand; planned for the
        # margin (0.01): a candidate as good as control sits one margin from this null
        # the variance: the larger of the one under diff = 0.01 (restricted rates) and the observed one
        variance = null_variance(45_600, 380_000, 2_400, 20_000, 0.01)
        tau2 = reference_tau2(0.01, 0.05, 0.8)
        z = -(0.0 - 0.01) / math.sqrt(variance)
        assert_allclose(ni.pvalue, one_sided_pvalue(z, tau2 / variance), rtol=1e-9)
        assert ni.ci_high is not None
        assert ni.ci_high < 0.01
        assert ni.threshold == 0.01

    def test_continue_before_the_minimum_duration(self) -> None:
        spec = make_spec()
        now = hours(3.5)
        decision = decide(spec, [stage(0, 0, spec)], make_obs({("escalation_rate", 0): HEALTHY_0}, now), now)
        assert decision.kind is DecisionKind.CONTINUE
        assert "minimum duration: 3.5 h of 4 h in stage 1 of 3" in decision.reasons[0]

    def test_continue_below_the_minimum_sample(self) -> None:
        spec = make_spec(statistics={"min_samples_per_arm": 25_000})
        now = hours(5)
        decision = decide(spec, [stage(0, 0, spec)], make_obs({("escalation_rate", 0): HEALTHY_0}, now), now)
        assert decision.kind is DecisionKind.CONTINUE
        assert "20000 canary units in stage 1 of 3, needs 25000 per arm" in decision.reasons[0]

    def test_continue_until_non_inferiority_is_shown(self) -> None:
        spec = make_spec()
        now = hours(5)
        cells = {("escalation_rate", 0): ((95_000, 11_400), (5_000, 600))}
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is DecisionKind.CONTINUE
        assert "non-inferiority not yet shown" in decision.reasons[0]

    def test_inconclusive_at_the_maximum_duration(self) -> None:
        spec = make_spec()
        now = hours(24)
        cells = {("escalation_rate", 0): ((95_000, 11_400), (5_000, 600))}
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is DecisionKind.INCONCLUSIVE
        assert decision.reasons[0].startswith("stage 1 of 3 reached its maximum duration (24 h)")

    def test_inconclusive_rather_than_holding_forever(self) -> None:
        spec = make_spec()
        now = hours(25)
        obs = make_obs({("escalation_rate", 0): HEALTHY_0}, now, latest={"escalation_rate": hours(2)})
        decision = decide(spec, [stage(0, 0, spec)], obs, now)
        assert decision.kind is DecisionKind.INCONCLUSIVE
        assert any("late data" in r for r in decision.reasons)

    def test_ready_for_approval_on_the_last_stage(self) -> None:
        spec = make_spec()
        now = hours(80)
        records = [stage(0, 0, spec, 5), stage(1, 5, spec, 30), stage(2, 30, spec)]
        cells = {
            ("escalation_rate", 0): HEALTHY_0,
            ("escalation_rate", 1): ((300_000, 36_000), (100_000, 12_000)),
            ("escalation_rate", 2): ((200_000, 24_000), (200_000, 24_000)),
        }
        decision = decide(spec, records, make_obs(cells, now), now)
        assert decision.kind is DecisionKind.READY_FOR_APPROVAL
        assert decision.stage_index == 2  # 0-based in data
        assert decision.reasons[0].startswith("stage 3 of 3: gate met after 50 h: no harm proven")

    def test_a_retried_first_stage_lasts_longer(self) -> None:
        spec = make_spec()
        now = hours(5)
        obs = make_obs({("escalation_rate", 0): HEALTHY_0}, now)
        assert (
            decide(spec, [stage(0, 0, spec)], obs, now, first_stage_multiplier=2).kind
            is DecisionKind.CONTINUE
        )
        later = make_obs({("escalation_rate", 0): HEALTHY_0}, hours(8))
        assert (
            decide(spec, [stage(0, 0, spec)], later, hours(8), first_stage_multiplier=2).kind
            is DecisionKind.ADVANCE
        )


class TestStratification:
    """A ramp that coincides with a time-of-day swing must not fake an effect (Simpson's paradox)."""

    # Stage 0 (5%) ran at night: 8% escalations in both arms. Stage 1 (50%) in the afternoon: 16% in both.
    NIGHT = ((95_000, 7_600), (5_000, 400))
    DAY = ((50_000, 8_000), (50_000, 8_000))

    def test_pooled_comparison_is_fooled(self) -> None:
        control = (95_000 + 50_000, 7_600 + 8_000)
        canary = (5_000 + 50_000, 400 + 8_000)
        # statsmodels.stats.proportion.proportions_ztest([8400, 15600], [55000, 145000], alternative="larger")
        _, pvalue = proportions_ztest([canary[1], control[1]], [canary[0], control[0]], alternative="larger")
        assert canary[1] / canary[0] - control[1] / control[0] > 0.04  # pooled: canary 4.5 points "worse"
        assert pvalue < 1e-100

    def test_engine_compares_within_stages(self) -> None:
        spec = make_spec()
        now = hours(6)
        records = [stage(0, 0, spec, ended_hours=5), stage(1, 5, spec)]
        cells = {("escalation_rate", 0): self.NIGHT, ("escalation_rate", 1): self.DAY}
        decision = decide(spec, records, make_obs(cells, now), now)
        assert decision.kind is not DecisionKind.ROLLBACK
        harm = decision.finding("escalation_rate")
        assert harm.verdict is Verdict.NO_HARM_PROVEN
        assert harm.estimate == pytest.approx(0.0, abs=1e-15)

    def test_combined_estimate_is_inverse_variance_weighted(self) -> None:
        spec = make_spec()
        now = hours(10)
        records = [stage(0, 0, spec, ended_hours=5), stage(1, 5, spec)]
        s0 = ((95_000, 7_600), (5_000, 450))
        s1 = ((50_000, 8_000), (50_000, 8_300))
        decision = decide(
            spec, records, make_obs({("escalation_rate", 0): s0, ("escalation_rate", 1): s1}, now), now
        )
        d, w = [], []
        for (n_c, x_c), (n_t, x_t) in (s0, s1):
            d.append(x_t / n_t - x_c / n_c)
            w.append(1 / (ac_variance(x_c, n_c) + ac_variance(x_t, n_t)))
        expected = sum(di * wi for di, wi in zip(d, w, strict=True)) / sum(w)
        finding = decision.finding("escalation_rate")
        assert_allclose(finding.estimate, expected, rtol=1e-12)
        assert (finding.n_control, finding.n_canary) == (145_000, 55_000)
        variance = 1 / sum(w)
        tau2 = reference_tau2(0.02, 0.05, 0.8)
        assert_allclose(
            finding.pvalue, one_sided_pvalue(expected / math.sqrt(variance), tau2 / variance), rtol=1e-9
        )


class TestShadowGuardrail:
    """Shadow run: the candidate answers the same 50,000 requests; guardrail pass rate 98.0% -> 97.2%."""

    def test_candidate_is_blocked(self) -> None:
        guardrail = metric("guardrail_pass_rate", direction="higher_is_better", margin=0.005, mde=0.005)
        spec = make_spec([guardrail], stages=[{"percent": 50, "min_duration": "1h", "max_duration": "2d"}])
        now = hours(2)
        cells = {("guardrail_pass_rate", 0): ((50_000, 49_000), (50_000, 48_600))}
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        # Treating paired requests as independent overstates the variance (the pairs are positively
        # correlated), so a harm proven here is proven for the paired comparison too.
        assert decision.kind is DecisionKind.ROLLBACK
        assert decision.kind not in (DecisionKind.ADVANCE, DecisionKind.READY_FOR_APPROVAL)
        harm = decision.finding("guardrail_pass_rate", verdicts=[Verdict.HARM])
        assert_allclose(harm.estimate, -0.008, rtol=1e-9)
        ni = decision.finding("guardrail_pass_rate", verdicts=[Verdict.NOT_YET_NON_INFERIOR])
        assert ni.ci_low is not None
        assert ni.ci_low < -0.005


class TestRaises:
    def test_naive_now(self) -> None:
        spec = make_spec()
        naive = hours(1).replace(tzinfo=None)
        with pytest.raises(
            DecisionInputError, match=r"^`now` must be timezone-aware \(UTC\), found '2026-11-02T01:00:00'$"
        ):
            decide(spec, [stage(0, 0, spec)], Observations({}), naive)

    def test_stage_outside_the_spec(self) -> None:
        spec = make_spec()
        record = StageRecord(3, 75.0, {"control": 25, "canary": 75}, T0)
        with pytest.raises(
            DecisionInputError, match=r"^stage record index 3 is outside the spec's 3 stages$"
        ):
            decide(spec, [record], Observations({}), hours(1))

    def test_wrong_aggregate_kind(self) -> None:
        spec = make_spec()
        obs = make_obs({("escalation_rate", 0): ((10, 5.0, 3.0), (10, 5.0, 3.0))}, hours(1))
        with pytest.raises(
            DecisionInputError,
            match=r"^metric 'escalation_rate' is proportion and needs ProportionAggregate data",
        ):
            decide(spec, [stage(0, 0, spec)], obs, hours(1))

    def test_multiplier_below_one(self) -> None:
        spec = make_spec()
        with pytest.raises(DecisionInputError, match=r"^`first_stage_multiplier` must be >= 1, found 0.5$"):
            decide(spec, [stage(0, 0, spec)], Observations({}), hours(1), first_stage_multiplier=0.5)

    def test_proportion_aggregate(self) -> None:
        with pytest.raises(
            DecisionInputError,
            match=r"^ProportionAggregate needs 0 <= successes <= n, found n=5, successes=6$",
        ):
            ProportionAggregate(5, 6)


class TestRareEvents:
    """Error rate 0.3% with a 0.5 pt margin, a 30-minute first stage and 100 units per arm (a spec synth
    accepts): a canary with no error yet in its first 500 units must not be declared non-inferior. With the
    variance at the observed rates its side of the variance is ~0 and the gate advanced it; the test is now
    judged with the variance a canary exactly at the margin would have (Farrington-Manning)."""

    ERRORS = metric("error_rate", margin=0.005)
    STAGES: ClassVar = [{"percent": 5, "min_duration": "30m", "max_duration": "48h"}]
    CELLS: ClassVar = {("error_rate", 0): ((9_500, 30), (500, 0))}

    def _decide(self, canary: tuple[int, int] = (500, 0)) -> Decision:
        spec = make_spec([self.ERRORS], stages=self.STAGES, statistics={"min_samples_per_arm": 100})
        now = hours(1)
        cells = {("error_rate", 0): ((9_500, 30), canary)}
        return decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)

    def test_no_canary_error_yet_does_not_advance(self) -> None:
        decision = self._decide()
        assert decision.kind is DecisionKind.CONTINUE
        ni = decision.finding("error_rate", verdicts=[Verdict.NOT_YET_NON_INFERIOR])
        # H0: diff >= 0.005; one-sided half-normal mixture on -(diff - 0.005), by hand, with the variance at
        # the rates that maximise the likelihood under diff = 0.005 (scipy, `score_reference`), here larger
        # than the observed one
        variance = null_variance(30, 9_500, 0, 500, 0.005)
        z = -(0.0 - 30 / 9_500 - 0.005) / math.sqrt(variance)
        tau2 = reference_tau2(0.005, 0.05, 0.8)
        assert_allclose(ni.pvalue, one_sided_pvalue(z, tau2 / variance), rtol=1e-7)
        assert ni.pvalue > 0.05
        # the observed rates' variance (the canary's side 0) would have called it non-inferior
        observed = (30 / 9_500) * (1 - 30 / 9_500) / 9_500
        assert one_sided_pvalue(-(0.0 - 30 / 9_500 - 0.005) / math.sqrt(observed), tau2 / observed) < 0.05

    def test_harm_keeps_the_observed_variance_when_the_canary_has_more_events(self) -> None:
        """6/500 canary errors against 30/9,500. At the harm test's null (diff = 0) the restricted rates are
        the pooled one, p = 36/10,000, variance p(1 − p)(1/9,500 + 1/500) = 7.6e-6; the canary's own spread
        is larger, (7/502)(495/502)/500 + (31/9,502)(9,471/9,502)/9,500 = 2.8e-5 (Agresti-Caffo), and the
        test takes the larger: with the pooled one an A/A harm test at 0.1% errors rolled back 9.5% of
        rollouts (make bench)."""
        harm = self._decide(canary=(500, 6)).finding("error_rate")
        pooled = 36 / 10_000
        at_null = pooled * (1 - pooled) * (1 / 9_500 + 1 / 500)
        observed = ac_variance(30, 9_500) + ac_variance(6, 500)
        assert observed > at_null
        z = (6 / 500 - 30 / 9_500) / math.sqrt(observed)
        tau2 = reference_tau2(0.02, 0.05, 0.8)
        assert_allclose(harm.pvalue, one_sided_pvalue(z, tau2 / observed), rtol=1e-9)
