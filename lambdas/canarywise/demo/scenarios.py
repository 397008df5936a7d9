"""The demo's scenarios: how the control and the candidate behave, and what canarywise should conclude.

A scenario names a rollout spec and gives, per spec metric, the control's behaviour and the candidate's
changes. Rates can differ by slice (the escalation rate by intent) and swing over the day (the same swing for
both variants: a stratified comparison must not mistake it for an effect).

Example
-------
>>> scenario = SCENARIOS["regression"]
>>> scenario.expected
'ROLLED_BACK'
>>> round(scenario.behaviour("canary", hours_in=1.0)["escalation_rate"].overall(scenario.traffic.intents), 3)
0.14
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from canarywise.demo.shadow import Cells, PairedMean, ShadowBehaviour
from canarywise.demo.traffic import TrafficProfile
from canarywise.spec import RolloutSpec, load_spec, parse_spec

PACKAGE = Path(__file__).resolve().parent
REPOSITORY = PACKAGE.parents[2]


@dataclass(frozen=True)
class Rate:
    """A probability per unit (session, or request for ALB metrics).

    `by_slice` gives it per slice value (weighted by the traffic's mix); `daily_swing` is added at the daily
    peak and subtracted at the trough.
    """

    value: float
    by_slice: Mapping[str, float] | None = None
    daily_swing: float = 0.0

    def overall(self, mix: Mapping[str, float]) -> float:
        if not self.by_slice:
            return self.value
        return sum(share * self.by_slice[name] for name, share in mix.items())

    def shifted(self, delta: float) -> Rate:
        """The same rate plus `delta` (in every slice)."""
        by_slice = {k: v + delta for k, v in self.by_slice.items()} if self.by_slice else None
        return replace(self, value=self.value + delta, by_slice=by_slice)


@dataclass(frozen=True)
class Mean:
    """A continuous value per responding session: normal, clipped to [`low`, `high`]; `by_slice` gives the
    mean per slice value (a sliced metric)."""

    value: float
    sd: float
    response_share: float = 1.0
    low: float | None = None
    high: float | None = None
    by_slice: Mapping[str, float] | None = None


@dataclass(frozen=True)
class Latency:
    """Response time per request in seconds: log-normal with this median and log-scale sigma."""

    median: float
    sigma: float


Model = Rate | Mean | Latency


@dataclass(frozen=True)
class Scenario:
    """One demo run: the spec, both variants' behaviour, what canarywise should conclude.

    Attributes
    ----------
    expected
        The outcome a correct system reaches: ROLLED_BACK, READY_FOR_APPROVAL (PROMOTED with approval; for an
        A/B test the decision is PROMOTE), HELD (on hold, never promoted).
    onset_hours
        The candidate's changes apply from this many simulated hours after the rollout starts (a failure
        that develops, like a leak); 0 = from the start.
    misroute
        Share of the users the weights send to the candidate that land on control (a broken assignment).
    headline_metric
        The metric the report's plot follows.
    max_hours
        The simulated clock stops here whatever happened (the scenario then ends as it stands).
    hold_hours
        Stop after holding this long for the same reason (the SRM scenario: HOLD, never promoted).
    ladder
        A shorter stage ladder than the spec file's, so the whole rollout fits in a minute of wall time
        (None: the file's own ladder).
    shadow
        The two models on the same requests during the spec's shadow phase (None: no shadow phase played).
    fade_hours, faded
        From `fade_hours` simulated hours on, the candidate's models in `faded` replace its changes (a
        novelty lift that wears off); None: no fade.
    """

    name: str
    title: str
    story: str
    spec_path: Path
    control: Mapping[str, Model]
    candidate: Mapping[str, Model]
    expected: str
    headline_metric: str
    onset_hours: float = 0.0
    misroute: float = 0.0
    traffic: TrafficProfile = field(default_factory=TrafficProfile)
    max_hours: float = 14 * 24.0
    hold_hours: float | None = None
    ladder: tuple[Mapping[str, Any], ...] | None = None
    # A shadow phase before the ladder (the spec's `shadow` block): the two models on the same requests.
    shadow: ShadowBehaviour | None = None
    fade_hours: float | None = None
    faded: Mapping[str, Model] = field(default_factory=dict)

    def spec(self, spec_path: Path | None = None) -> RolloutSpec:
        """The rollout spec: `spec_path` as it is, or the scenario's spec file with its demo ladder."""
        if spec_path is not None:
            return load_spec(spec_path)
        spec = load_spec(self.spec_path)
        if self.ladder is None:
            return spec
        data = spec.model_dump(mode="json")
        data["stages"] = [dict(stage) for stage in self.ladder]
        return parse_spec(data, source=f"{self.spec_path} with the demo ladder")

    def behaviour(self, variant: str, *, hours_in: float) -> dict[str, Model]:
        """The models in force for `variant` ("control" or "canary") `hours_in` hours into the rollout."""
        models = dict(self.control)
        if variant == "canary" and hours_in >= self.onset_hours:
            models.update(self.candidate)
            if self.fade_hours is not None and hours_in >= self.fade_hours:
                models.update(self.faded)
        return models


# MangaAssist (config/mangaassist.yaml): an LLM shopping assistant, ~300,000 chats a day.
_ESCALATION = Rate(
    0.12,
    by_slice={"order_status": 0.15, "returns": 0.18, "recommendation": 0.065, "other": 0.125},
    daily_swing=0.01,  # more hand-offs in the evening rush
)
MANGAASSIST: dict[str, Model] = {
    "escalation_rate": _ESCALATION,
    "error_rate": Rate(0.001),
    "p99_latency": Latency(median=1.2, sigma=0.35),
    "slow_response_rate": Rate(0.012),
    "hallucination_rate": Rate(0.03),
    "safety_filter_rate": Rate(0.01),
    "task_completion": Rate(0.62, daily_swing=-0.02),
    "csat": Mean(4.1, 1.0, response_share=0.25, low=1.0, high=5.0),
    "recommendation_ctr": Rate(0.09),
}
MANGAASSIST_SPEC = REPOSITORY / "config" / "mangaassist.yaml"
# The demo's compressed ladder (config/mangaassist.yaml has 5% >= 4 h, 25% >= 24 h, 50% >= 48 h: 76 simulated
# hours, ~900 checks) and a sale-day volume, so that a whole rollout takes a few hundred checks.
DEMO_LADDER = (
    {"percent": 5, "min_duration": "1h", "max_duration": "12h"},
    {"percent": 25, "min_duration": "1h", "max_duration": "12h"},
    {"percent": 50, "min_duration": "2h", "max_duration": "24h"},
)
# Six sessions in ten from returning users, who keep the variant of their stickiness cookie: after each ramp
# the canary's share of sessions lags its weight, while the new assignments (which the sample-ratio check
# counts) follow the weights in force.
DEMO_TRAFFIC = TrafficProfile(sessions_per_day=5_000_000, returning_share=0.6)
CHATBOT_AB_SPEC = PACKAGE / "specs" / "storefront-chatbot.yaml"

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="healthy",
            title="A healthy candidate: 5% → 25% → 50%, then approval",
            story="The new model behaves like the current one (CSAT a touch better). Each stage advances "
            "once non-inferiority is proven on every margin and the stage's minimum time has passed.",
            spec_path=MANGAASSIST_SPEC,
            control=MANGAASSIST,
            candidate={"csat": Mean(4.15, 1.0, response_share=0.25, low=1.0, high=5.0)},
            expected="READY_FOR_APPROVAL",
            headline_metric="escalation_rate",
            traffic=DEMO_TRAFFIC,
            ladder=DEMO_LADDER,
        ),
        Scenario(
            name="regression",
            title="A regression: the escalation rate goes from 12% to 14%",
            story="The new prompt hands two more chats in a hundred to a human agent. The anytime-valid harm "
            "test on the escalation rate proves it at 5% of traffic and the state machine rolls back.",
            spec_path=MANGAASSIST_SPEC,
            control=MANGAASSIST,
            candidate={"escalation_rate": _ESCALATION.shifted(0.02)},
            expected="ROLLED_BACK",
            headline_metric="escalation_rate",
            traffic=DEMO_TRAFFIC,
            ladder=DEMO_LADDER,
        ),
        Scenario(
            name="guardrail",
            title="A hard limit: the candidate's 5xx rate spikes to 8%",
            story="Ninety minutes into the 5% stage the candidate starts failing one request in twelve. The "
            "5xx-rate alarm breaches its hard limit (2%) within minutes; the composite critical alarm "
            "invokes the rollback function without waiting for any p-value.",
            spec_path=MANGAASSIST_SPEC,
            control=MANGAASSIST,
            candidate={"error_rate": Rate(0.08)},
            onset_hours=1.5,
            expected="ROLLED_BACK",
            headline_metric="error_rate",
            traffic=DEMO_TRAFFIC,
            ladder=DEMO_LADDER,
        ),
        Scenario(
            name="srm",
            title="A broken assignment: a third of the candidate's users land on control",
            story="A stale listener rule ahead of the weighted one sends a third of the users the weights "
            "give the candidate to control, so the split is not the one the weights set. The sample-ratio "
            "check on new assignments fails (p < 0.001): canarywise holds and says why, and never promotes "
            "on data it cannot trust.",
            spec_path=MANGAASSIST_SPEC,
            control=MANGAASSIST,
            candidate={},
            misroute=1 / 3,
            expected="HELD",
            headline_metric="escalation_rate",
            hold_hours=3.0,
            traffic=DEMO_TRAFFIC,
            ladder=DEMO_LADDER,
        ),
        Scenario(
            name="ab-conversion",
            title="An A/B test: the storefront with the chatbot vs without",
            story="Half the shoppers get the chatbot. Conversion goes from 8.4% to 9.4%; the pre-registered "
            "primary metric proves the lift with its confidence interval and canarywise recommends PROMOTE.",
            spec_path=CHATBOT_AB_SPEC,
            control={
                "conversion": Rate(0.084, daily_swing=0.01),
                "error_rate": Rate(0.002),
                "order_value": Mean(42.0, 18.0, response_share=0.084, low=5.0),
            },
            candidate={
                "conversion": Rate(0.094, daily_swing=0.01),
                "order_value": Mean(42.5, 18.0, response_share=0.094, low=5.0),
            },
            expected="READY_FOR_APPROVAL",  # the decision is PROMOTE; a person approves the 100%
            headline_metric="conversion",
            traffic=TrafficProfile(sessions_per_day=400_000, returning_share=0.0, intents={"all": 1.0}),
            # The spec file's own stage (a full day at least, 14 days at most) on the accelerated clock.
            max_hours=48.0,
        ),
    )
}

# Shadow mode (docs/shadow.md): MangaAssist with a shadow phase before the ladder. The current model's paired
# behaviour on the shadow metrics, with the discordant requests a real pair of models has (they disagree on a
# few requests even when neither is better).
SHADOW_SPEC = PACKAGE / "specs" / "mangaassist-shadow.yaml"
_SHADOW_ALIKE: dict[str, Cells | PairedMean] = {
    "guardrail_pass_rate": Cells(0.969, 0.011, 0.011, 0.009),  # 98.0% both
    "unsupported_answer_rate": Cells(0.025, 0.015, 0.015, 0.945),  # 4.0% both
    "slow_response_rate": Cells(0.008, 0.004, 0.004, 0.984),  # 1.2% both
    "prompt_tokens": PairedMean(120.0, 30.0, 0.0, 20.0),
}
_SHADOW_LADDER_MODELS: dict[str, Model] = {
    "escalation_rate": _ESCALATION,
    "error_rate": Rate(0.001),
    "guardrail_pass_rate": Rate(0.98),
    "unsupported_answer_rate": Rate(0.04),
    "slow_response_rate": Rate(0.012),
    "prompt_tokens": Mean(120.0, 30.0, low=1.0),
    "csat": Mean(4.1, 1.0, response_share=0.25, low=1.0, high=5.0),
}
SCENARIOS.update(
    {
        s.name: s
        for s in (
            Scenario(
                name="shadow-retriever",
                title="Shadow mode: a retriever change that costs guardrail passes and tokens",
                story="The new retriever answers a copy of every request; users only see the current "
                "model. On the same requests the guardrail pass rate goes 98.0% → 97.2% and prompt tokens "
                "120 → 195. The shadow gate proves harm on a veto metric and rejects the candidate: the "
                "ALB's forward action is never touched, no user ever gets its answer.",
                spec_path=SHADOW_SPEC,
                control=_SHADOW_LADDER_MODELS,
                candidate={},
                expected="REJECTED",
                headline_metric="guardrail_pass_rate",
                traffic=DEMO_TRAFFIC,
                ladder=DEMO_LADDER,
                shadow=ShadowBehaviour(
                    {
                        **_SHADOW_ALIKE,
                        "guardrail_pass_rate": Cells(0.965, 0.015, 0.007, 0.013),
                        "prompt_tokens": PairedMean(120.0, 30.0, 75.0, 40.0),
                    }
                ),
            ),
            Scenario(
                name="shadow-healthy",
                title="Shadow mode, then the ladder: a candidate alike on every veto metric",
                story="The candidate answers copies of live requests for an hour; it is shown non-inferior "
                "on every veto metric (guardrail pass, unsupported answers, slow responses, prompt tokens), "
                "the shadow gate says READY_FOR_CANARY, and only then does the ladder send it 5% of users.",
                spec_path=SHADOW_SPEC,
                control=_SHADOW_LADDER_MODELS,
                candidate={},
                expected="READY_FOR_APPROVAL",
                headline_metric="escalation_rate",
                traffic=DEMO_TRAFFIC,
                ladder=DEMO_LADDER,
                shadow=ShadowBehaviour(_SHADOW_ALIKE),
            ),
        )
    }
)

# What `make demo` runs: a regression rolled back, then a healthy candidate promoted.
DEFAULT_SCENARIOS = ("regression", "healthy")

# Issue 16: the rollout policies teams run.
# MangaAssist by intent (demo/specs/mangaassist-intents.yaml): task completion and CSAT are read per intent.
INTENTS_SPEC = PACKAGE / "specs" / "mangaassist-intents.yaml"
_INTENT_MIX = {"order_status": 0.30, "return_request": 0.10, "recommendation": 0.40, "other": 0.20}
_TASK_COMPLETION = Rate(
    0.62, by_slice={"order_status": 0.64, "return_request": 0.60, "recommendation": 0.62, "other": 0.60}
)
_CSAT = Mean(4.0, 1.0, response_share=0.25, low=1.0, high=5.0, by_slice=dict.fromkeys(_INTENT_MIX, 4.0))
_STOREFRONT: dict[str, Model] = {
    "conversion": Rate(0.084),
    "error_rate": Rate(0.002),
    "order_value": Mean(42.0, 18.0, response_share=0.084, low=5.0),
}
SCENARIOS |= {
    s.name: s
    for s in (
        Scenario(
            name="conflicting-intents",
            title="Conflicting intents: CSAT +3% in recommendations, task completion -7% in return requests",
            story="The new prompt pleases shoppers asking for recommendations (CSAT 4.0 -> 4.12) but "
            "completes fewer return requests (60% -> 55.8%), a slice that is not critical. Overall both "
            "metrics look fine. Once the return-request regression is proven the stage holds, naming both "
            "effects, until a person acknowledges it (canarywise resume) or rolls back.",
            spec_path=INTENTS_SPEC,
            control={
                "escalation_rate": replace(
                    _ESCALATION,
                    by_slice={
                        "order_status": 0.15,
                        "return_request": 0.18,
                        "recommendation": 0.065,
                        "other": 0.125,
                    },
                ),
                "error_rate": Rate(0.001),
                "task_completion": _TASK_COMPLETION,
                "csat": _CSAT,
            },
            candidate={
                "task_completion": replace(
                    _TASK_COMPLETION, by_slice={**(_TASK_COMPLETION.by_slice or {}), "return_request": 0.558}
                ),
                "csat": replace(_CSAT, by_slice={**(_CSAT.by_slice or {}), "recommendation": 4.12}),
            },
            expected="HELD",
            headline_metric="task_completion",
            hold_hours=1.0,
            traffic=replace(DEMO_TRAFFIC, intents=_INTENT_MIX),
            # The demo ladder with three hours at 25%: the return-request drop (a tenth of the chats) is
            # proven there, not at 5%.
            ladder=(DEMO_LADDER[0], {**DEMO_LADDER[1], "min_duration": "3h"}, DEMO_LADDER[2]),
            max_hours=24.0,
        ),
        Scenario(
            name="novelty",
            title="A novelty lift: conversion +1.5 pt for two days, then almost nothing",
            story="Shoppers try the chatbot because it is new: conversion 8.4% -> 9.9% on the first two "
            "days, then 8.5%. Over four days the lift is still proven and above the half-point minimum, but "
            "the temporal check sees it decay (days 1-2 against days 3-4) and holds PROMOTE.",
            spec_path=CHATBOT_AB_SPEC,
            control=_STOREFRONT,
            candidate={"conversion": Rate(0.099)},
            fade_hours=48.0,
            faded={"conversion": Rate(0.085)},
            expected="HELD",
            headline_metric="conversion",
            hold_hours=1.0,
            traffic=TrafficProfile(sessions_per_day=400_000, returning_share=0.0, intents={"all": 1.0}),
            # Four days at least: the temporal check compares the first two days with the last two.
            ladder=({"percent": 50, "min_duration": "4d", "max_duration": "14d"},),
            max_hours=5 * 24.0,
        ),
    )
}
