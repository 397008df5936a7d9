"""The slice policy (issue 16) against hand-built aggregates: a proven regression in a slice that is not
critical holds until a person acknowledges it; a critical slice's `max_relative_regression`; the composite.

Expected numbers are derived by hand from the cells in each test (rates, differences, relative changes);
which slices are proven worse follows from the anytime-valid tests checked elsewhere (test_canary.py).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from decision_kit import ESCALATION, T0, hours, make_obs, make_spec, metric, stage
from scipy import stats

from canarywise.decision.acknowledgement import SliceAcknowledgement
from canarywise.decision.engine import decide
from canarywise.decision.models import Decision, DecisionInputError, DecisionKind, Verdict

SLICED = {**ESCALATION, "slice_dimension": "Intent", "critical_slices": ["order_status", "returns"]}
# Stage 1 of 3 at 5% (95/5), 5 h in (past its 4 h minimum). Per slice: (control n, events), (canary n,
# events).
# The canary's escalation rate in `other` is 14.5% against 12.5%: +2 pt, 16% relative (2/12.5); the other
# slices are as good or a little better, so overall the canary is within the 1-point margin.
ISSUE_CASE = {
    "order_status": ((570_000, 85_500), (30_000, 4_500)),  # 15% both
    "returns": ((285_000, 51_300), (15_000, 2_700)),  # 18% both
    "recommendation": ((665_000, 43_225), (35_000, 2_100)),  # 6.5% -> 6.0%
    "other": ((380_000, 47_500), (20_000, 2_900)),  # 12.5% -> 14.5%
}


def sliced_cells(name: str, slices: dict[str, Any], index: int = 0) -> dict[Any, Any]:
    cells: dict[Any, Any] = {(name, index, s): arms for s, arms in slices.items()}
    control = tuple(sum(a[0][i] for a in slices.values()) for i in range(len(next(iter(slices.values()))[0])))
    canary = tuple(sum(a[1][i] for a in slices.values()) for i in range(len(next(iter(slices.values()))[1])))
    cells[(name, index, None)] = (control, canary)
    return cells


def acknowledgement(slice_: str = "other", **fields: Any) -> SliceAcknowledgement:
    values: dict[str, Any] = {
        "metric": "escalation_rate",
        "slice": slice_,
        "by": "arn:aws:iam::123456789012:user/dana",
        "reason": "known: 'other' now includes gift-card questions, escalated by design",
        "at": T0 + timedelta(hours=5),
    }
    return SliceAcknowledgement(**(values | fields))


def issue_decision(**kwargs: Any) -> Decision:
    overrides = {"metrics": [SLICED], **kwargs.pop("spec", {})}
    spec = make_spec(**overrides)
    now = hours(5)
    return decide(
        spec, [stage(0, 0, spec)], make_obs(sliced_cells("escalation_rate", ISSUE_CASE), now), now, **kwargs
    )


class TestNonCriticalSliceHolds:
    def test_the_issue_case_holds_with_slice_effect_and_interval_in_the_reason(self) -> None:
        decision = issue_decision()
        other = decision.finding("escalation_rate", "other")
        assert other.verdict is Verdict.HARM
        assert decision.finding("escalation_rate").verdict is Verdict.NO_HARM_PROVEN
        # overall the gate is met (non-inferior); without the slice policy this look would advance
        assert decision.finding("escalation_rate", verdicts=[Verdict.NON_INFERIOR])
        assert decision.kind is DecisionKind.HOLD
        reason = decision.reasons[0]
        assert reason.startswith("slice regression holds stage 1 of 3 until a person acknowledges it")
        assert "escalation_rate in slice 'other' is worse on the canary" in reason
        # 2,900/20,000 - 47,500/380,000 = 0.145 - 0.125 = +2.00 pt, 16.0% relative to 12.50%
        assert "+2.00 pt, +16.0% relative to 12.50%" in reason
        assert other.ci_low is not None
        assert f"confidence-sequence bound {other.ci_low * 100:+.2f} pt" in reason

    def test_an_acknowledged_slice_no_longer_holds_and_the_stage_advances(self) -> None:
        decision = issue_decision(acknowledged=[acknowledgement()])
        assert decision.kind is DecisionKind.ADVANCE
        note = next(r for r in decision.reasons if r.startswith("slice regression acknowledged"))
        assert "arn:aws:iam::123456789012:user/dana" in note
        assert "gift-card" in note
        assert decision.summaries["acknowledged"][0]["slice"] == "other"

    def test_acknowledging_another_slice_does_not_release_this_one(self) -> None:
        assert issue_decision(acknowledged=[acknowledgement("recommendation")]).kind is DecisionKind.HOLD

    def test_an_unacknowledged_hold_at_the_maximum_duration_is_inconclusive(self) -> None:
        spec = make_spec([SLICED])
        now = hours(24)  # stage 1's maximum
        obs = make_obs(sliced_cells("escalation_rate", ISSUE_CASE), now)
        decision = decide(spec, [stage(0, 0, spec)], obs, now)
        assert decision.kind is DecisionKind.INCONCLUSIVE
        assert "with a slice regression nobody acknowledged" in decision.reasons[0]

    def test_the_report_policy_keeps_a_note_and_advances(self) -> None:
        decision = issue_decision(spec={"slice_policy": {"non_critical_regression": "report"}})
        assert decision.kind is DecisionKind.ADVANCE
        assert any(r.startswith("slice regression (not a critical slice") for r in decision.reasons)


class TestCriticalSliceRelativeLimit:
    TASK: ClassVar = metric(
        "task_completion",
        role="safety",
        direction="higher_is_better",
        slice_dimension="Intent",
        critical_slices=["return_request"],
        max_relative_regression=0.05,
    )

    def decide_with(self, canary_completed: int, **fields: Any) -> Decision:
        spec = make_spec([{**self.TASK, **fields}])
        now = hours(5)
        slices = {
            "return_request": ((570_000, 342_000), (30_000, canary_completed)),  # control 60%
            "browse": ((1_330_000, 798_000), (70_000, 43_050)),  # 60% -> 61.5%: overall no harm
        }
        return decide(spec, [stage(0, 0, spec)], make_obs(sliced_cells("task_completion", slices), now), now)

    def test_six_percent_relative_beyond_a_five_percent_limit_rolls_back(self) -> None:
        decision = self.decide_with(16_920)  # 56.4% = 60% x (1 - 0.06)
        assert decision.kind is DecisionKind.ROLLBACK
        assert decision.reasons[0].startswith(
            "critical slice regression (beyond its max_relative_regression 5%)"
        )
        assert "-6.0% relative to 60.00%" in decision.reasons[0]

    def test_three_percent_relative_within_the_limit_holds_instead(self) -> None:
        decision = self.decide_with(17_460)  # 58.2% = 60% x (1 - 0.03), still proven worse
        assert decision.finding("task_completion", "return_request").verdict is Verdict.HARM
        assert decision.kind is DecisionKind.HOLD
        assert "within the critical slice's max_relative_regression 5%" in decision.reasons[0]

    def test_without_a_limit_any_proven_regression_in_a_critical_slice_rolls_back(self) -> None:
        decision = self.decide_with(17_460, max_relative_regression=None)
        assert decision.kind is DecisionKind.ROLLBACK

    def test_a_limit_per_slice(self) -> None:
        decision = self.decide_with(16_920, max_relative_regression={"return_request": 0.08})
        assert decision.kind is DecisionKind.HOLD  # 6% is within this slice's 8%

    def test_a_limit_for_a_slice_that_is_not_critical_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"max_relative_regression names \['browse'\]"):
            make_spec([{**self.TASK, "max_relative_regression": {"browse": 0.05}}])


class TestCompositeAndConflicts:
    def test_composite_is_the_severity_weighted_mean_of_relative_gains(self) -> None:
        decision = issue_decision(spec={"metrics": [{**SLICED, "slice_severity": {"returns": 3.0}}]})
        (composite,) = decision.summaries["composites"]
        # By hand: gain_s = -(p_t - p_c)/p_c (lower is better), weight_s = severity_s x (n_c + n_t).
        weights = {
            "order_status": 600_000,
            "returns": 3 * 300_000,
            "recommendation": 700_000,
            "other": 400_000,
        }
        gains = {"order_status": 0.0, "returns": 0.0, "recommendation": 0.5 / 6.5, "other": -0.16}
        expected = sum(weights[s] * gains[s] for s in gains) / sum(weights.values())
        assert composite["relative_gain"] == pytest.approx(expected, rel=1e-9)

        # Its interval: +-z_{0.975} sqrt(sum w_s^2 V_s / c_s^2) / sum w_s, V_s = p_c q_c/n_c + p_t q_t/n_t
        # (Agresti-Caffo adjusted rates, one success and one failure added per arm).
        def v(n: int, x: int) -> float:
            p = (x + 1) / (n + 2)
            return p * (1 - p) / n

        var = (
            sum(
                weights[s] ** 2
                * (v(*ISSUE_CASE[s][0]) + v(*ISSUE_CASE[s][1]))
                / (ISSUE_CASE[s][0][1] / ISSUE_CASE[s][0][0]) ** 2
                for s in gains
            )
            / sum(weights.values()) ** 2
        )
        half = stats.norm.ppf(0.975) * math.sqrt(var)
        assert composite["ci_high"] - composite["relative_gain"] == pytest.approx(half, rel=1e-9)
        # shown in the hold's reason, never deciding
        assert any(r.startswith("severity-weighted composite of escalation_rate") for r in decision.reasons)

    def test_a_slice_proven_better_elsewhere_is_named_next_to_the_regression(self) -> None:
        csat = metric(
            "csat",
            kind="mean",
            role="secondary",
            direction="higher_is_better",
            mde=0.1,
            slice_dimension="Intent",
        )
        spec = make_spec([SLICED, csat])
        now = hours(5)

        # CSAT 4.0 (sd 1) on control; +0.12 (+3.0%) in recommendation on the canary, unchanged in `other`.
        def mean_cell(n: int, mean: float) -> tuple[int, float, float]:
            return (n, n * mean, n * (1.0 + mean**2))

        csat_slices = {
            "recommendation": (mean_cell(665_000, 4.0), mean_cell(35_000, 4.12)),
            "other": (mean_cell(380_000, 4.0), mean_cell(20_000, 4.0)),
        }
        cells = sliced_cells("escalation_rate", ISSUE_CASE) | sliced_cells("csat", csat_slices)
        decision = decide(spec, [stage(0, 0, spec)], make_obs(cells, now), now)
        assert decision.kind is DecisionKind.HOLD
        conflict = next(r for r in decision.reasons if r.startswith("conflicting slice:"))
        assert (
            "csat in slice 'recommendation' better on the candidate: +0.12 (+3.0% relative to 4)" in conflict
        )
        assert "+16.0% relative" in decision.reasons[0]


def test_acknowledgement_round_trip_and_bad_input() -> None:
    ack = acknowledgement(estimate=0.02, ci_low=0.01, ci_high=0.03, stage_index=1)
    assert SliceAcknowledgement.from_dict(ack.to_dict()) == ack
    with pytest.raises(DecisionInputError, match="malformed slice acknowledgement"):
        SliceAcknowledgement.from_dict({"metric": "escalation_rate"})
    restored = Decision.from_dict(issue_decision().to_dict())
    assert restored.summaries["composites"][0]["metric"] == "escalation_rate"
