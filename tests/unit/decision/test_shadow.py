"""The shadow gate's rule: REJECTED on proven harm, HOLD on missing/late data or a harmed slice,
READY_FOR_CANARY once every veto metric is non-inferior, CONTINUE otherwise. Aggregates are built by hand
so each case is clear-cut; the tests' p-values themselves are checked against independent references in
tests/unit/stats/test_paired_sequential.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from canarywise.decision.models import DecisionKind, Verdict
from canarywise.decision.shadow import PairedNumeric, ShadowObservations, decide_shadow
from canarywise.spec import RolloutSpec, load_spec
from canarywise.stats.means import SummaryStats
from canarywise.stats.paired_sequential import PairedCells

SPEC = (
    Path(__file__).resolve().parents[3]
    / "lambdas"
    / "canarywise"
    / "demo"
    / "specs"
    / "mangaassist-shadow.yaml"
)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
N = 20_000


@pytest.fixture(scope="module")
def spec() -> RolloutSpec:
    return load_spec(SPEC)


def _equal(n: int = N) -> dict[tuple[str, str | None], PairedCells | PairedNumeric]:
    """Both models alike on every veto metric (discordant pairs split evenly, differences centred on 0)."""
    tokens = PairedNumeric(
        SummaryStats.from_mean_sd(n, 0.0, 20.0),
        SummaryStats.from_mean_sd(n, 120.0, 30.0),
        SummaryStats.from_mean_sd(n, 120.0, 30.0),
    )
    scale = n // N or 1
    return {
        ("guardrail_pass_rate", None): PairedCells(19_500 * scale, 100 * scale, 100 * scale, 300 * scale),
        ("unsupported_answer_rate", None): PairedCells(600 * scale, 100 * scale, 100 * scale, 19_200 * scale),
        ("slow_response_rate", None): PairedCells(200 * scale, 20 * scale, 20 * scale, 19_760 * scale),
        ("prompt_tokens", None): tokens,
    }


def test_equal_models_are_ready_for_canary_after_min_pairs_and_duration(spec: RolloutSpec) -> None:
    decision = decide_shadow(spec, T0, ShadowObservations(_equal()), T0 + timedelta(hours=2))
    assert decision.kind is DecisionKind.READY_FOR_CANARY
    assert decision.stage_index == -1
    ni = [f for f in decision.findings if f.verdict is Verdict.NON_INFERIOR]
    assert sorted(f.metric for f in ni) == sorted(spec.shadow.veto)  # type: ignore[union-attr]
    # too early: the same data before the minimum duration keeps collecting
    early = decide_shadow(spec, T0, ShadowObservations(_equal()), T0 + timedelta(minutes=30))
    assert early.kind is DecisionKind.CONTINUE
    assert "0.5 h of the 1 h minimum" in early.reason


def test_seed_retriever_change_is_rejected_on_guardrail_and_tokens(spec: RolloutSpec) -> None:
    """Guardrail pass 98.0% -> 97.2% and prompt tokens 120 -> 195 on the same 10,000 requests."""
    aggs = _equal()
    aggs[("guardrail_pass_rate", None)] = PairedCells(9_650, 150, 70, 130)
    aggs[("prompt_tokens", None)] = PairedNumeric(
        SummaryStats.from_mean_sd(10_000, 75.0, 40.0),
        SummaryStats.from_mean_sd(10_000, 120.0, 30.0),
        SummaryStats.from_mean_sd(10_000, 195.0, 45.0),
    )
    decision = decide_shadow(spec, T0, ShadowObservations(aggs), T0 + timedelta(minutes=40))
    assert decision.kind is DecisionKind.REJECTED
    assert "guardrail_pass_rate: harm proven, 98.00% -> 97.20% on 10,000 shared requests" in decision.reason
    assert "prompt_tokens: harm proven, 120 -> 195" in decision.reason
    assert "never reached a user" in decision.reason
    harm = decision.finding("guardrail_pass_rate", verdicts=[Verdict.HARM])
    assert harm.alpha == pytest.approx(0.05 / 4)  # Bonferroni over the four veto metrics
    assert harm.estimate == pytest.approx(-0.008)


def test_a_better_candidate_is_never_rejected(spec: RolloutSpec) -> None:
    aggs = _equal()
    aggs[("guardrail_pass_rate", None)] = PairedCells(19_500, 40, 160, 300)  # the candidate passes more
    decision = decide_shadow(spec, T0, ShadowObservations(aggs), T0 + timedelta(hours=2))
    assert decision.kind is DecisionKind.READY_FOR_CANARY


def test_missing_metric_and_late_data_hold(spec: RolloutSpec) -> None:
    aggs = _equal()
    del aggs[("slow_response_rate", None)]
    missing = decide_shadow(spec, T0, ShadowObservations(aggs), T0 + timedelta(hours=2))
    assert missing.kind is DecisionKind.HOLD
    assert missing.reason == "slow_response_rate: no paired data yet"
    now = T0 + timedelta(hours=2)
    late = decide_shadow(
        spec, T0, ShadowObservations(_equal(), latest={"prompt_tokens": now - timedelta(minutes=30)}), now
    )
    assert late.kind is DecisionKind.HOLD
    assert "prompt_tokens: no paired data for 30 min" in late.reason


def test_too_few_pairs_continue_and_max_duration_holds(spec: RolloutSpec) -> None:
    small = {
        k: (replace(v, both=v.both // 10, neither=v.neither // 10) if isinstance(v, PairedCells) else v)
        for k, v in _equal().items()
    }
    small[("guardrail_pass_rate", None)] = PairedCells(1_900, 10, 10, 30)
    decision = decide_shadow(spec, T0, ShadowObservations(small), T0 + timedelta(hours=2))
    assert decision.kind is DecisionKind.CONTINUE
    assert "1,950 paired requests of the 5,000 required" in decision.reason
    late = decide_shadow(spec, T0, ShadowObservations(small), T0 + timedelta(hours=25))
    assert late.kind is DecisionKind.HOLD
    assert late.reason.startswith("the shadow phase reached its maximum 24 h without a gate")


def test_a_harmed_slice_holds_after_bh(spec: RolloutSpec) -> None:
    aggs = _equal()
    aggs[("guardrail_pass_rate", "faq")] = PairedCells(9_800, 50, 50, 100)
    aggs[("guardrail_pass_rate", "policy")] = PairedCells(4_800, 50, 50, 100)
    aggs[("guardrail_pass_rate", "recommendation")] = PairedCells(4_700, 150, 20, 130)
    decision = decide_shadow(spec, T0, ShadowObservations(aggs), T0 + timedelta(hours=2))
    assert decision.kind is DecisionKind.HOLD
    assert decision.reason.startswith("guardrail_pass_rate in slice recommendation: harm proven after BH")
    faq = decision.finding("guardrail_pass_rate", "faq")
    assert faq.verdict is Verdict.NO_HARM_PROVEN
    assert faq.adjusted_pvalue is not None
    assert faq.adjusted_pvalue >= faq.pvalue  # type: ignore[operator]


def test_quality_hypothesis_must_be_shown(spec: RolloutSpec) -> None:
    shadow = spec.shadow.model_copy(update={"quality": "csat"})  # type: ignore[union-attr]
    with_quality = spec.model_copy(update={"shadow": shadow})
    aggs = _equal()
    flat = PairedNumeric(
        SummaryStats.from_mean_sd(N, 0.0, 1.0),
        SummaryStats.from_mean_sd(N, 4.1, 1.0),
        SummaryStats.from_mean_sd(N, 4.1, 1.0),
    )
    aggs[("csat", None)] = flat
    decision = decide_shadow(with_quality, T0, ShadowObservations(aggs), T0 + timedelta(hours=2))
    assert decision.kind is DecisionKind.CONTINUE
    assert decision.reason == "csat (the quality hypothesis) not yet shown better"
    aggs[("csat", None)] = replace(flat, differences=SummaryStats.from_mean_sd(N, 0.15, 1.0))
    better = decide_shadow(with_quality, T0, ShadowObservations(aggs), T0 + timedelta(hours=2))
    assert better.kind is DecisionKind.READY_FOR_CANARY
    assert better.reason.endswith("csat better")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"veto": ["nope"]}, "shadow names the unknown metric 'nope'"),
        ({"veto": ["csat"]}, "shadow veto metric 'csat' needs a margin"),
        ({"veto": ["error_rate"]}, "shadow metric 'error_rate' must be emitted by the service"),
        (
            {"min_duration": "2h", "max_duration": "1h"},
            "shadow.max_duration (3600 s) is below shadow.min_duration",
        ),
    ],
)
def test_a_wrong_shadow_phase_fails_with_the_field(
    spec: RolloutSpec, change: dict[str, object], message: str
) -> None:
    from canarywise.spec import SpecError, parse_spec

    data = spec.model_dump(mode="json")
    data["shadow"].update(change)
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_spec(data, source="shadow.yaml")
