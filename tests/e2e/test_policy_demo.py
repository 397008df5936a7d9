"""End to end (issue 16): the conflicting-intents scenario on the local AWS — the stage holds on a regression
proven in an intent that is not critical, naming it and the intent that improved, and nothing advances."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from local_kit import RuleForward, rule_forward

from canarywise.data.registry import Registry
from canarywise.demo.local_run import RunResult
from canarywise.demo.runner import run_scenario
from canarywise.demo.scenarios import SCENARIOS
from canarywise.local.deployment import Deployment
from canarywise.local.server import LocalAws

pytestmark = pytest.mark.slow


def test_conflicting_intents_hold_at_the_25_percent_stage_with_both_effects_in_the_reason(
    tmp_path: Path,
) -> None:
    seen: dict[str, Any] = {}

    def inspect(aws: LocalAws, deployment: Deployment, result: RunResult) -> None:
        seen["rule"] = rule_forward(aws, deployment)
        registry = Registry(deployment.registry_table, boto3_client=aws.client("dynamodb"))
        assert result.experiment_id is not None
        seen["stages"] = registry.stage_history(result.experiment_id)
        seen["checks"] = registry.list_checks(result.experiment_id)

    result = run_scenario(SCENARIOS["conflicting-intents"], seed=7, reports_dir=tmp_path, after=inspect)

    assert result.outcome == "HELD"
    assert [s.weights.canary for s in seen["stages"]] == [5, 25]  # held at 25%, never moved to 50%
    assert seen["rule"] == RuleForward({"blue": 75, "green": 25}, sticky=True)
    last = seen["checks"][-1]
    assert last.decision == "HOLD"
    assert last.stage_index == 1
    reasons = last.details["reasons"]
    hold = reasons[0]
    assert hold.startswith("slice regression holds stage 2 of 3 until a person acknowledges it")
    assert "task_completion in slice 'return_request' is worse on the canary" in hold
    conflict = next(r for r in reasons if r.startswith("conflicting slice:"))
    assert "csat in slice 'recommendation' better on the candidate" in conflict
    # both numbers: the regression and the improvement, each relative to control in its slice
    regression = float(hold.split("% relative to")[0].rsplit(", ", 1)[1])
    improvement = float(conflict.split("% relative to")[0].rsplit("(", 1)[1])
    assert -12.0 < regression < -3.0  # the scenario's -7% (60% -> 55.8%)
    assert 1.0 < improvement < 5.0  # the scenario's +3% (4.0 -> 4.12)
    composite = last.details["summaries"]["composites"]
    assert {c["metric"] for c in composite} == {"escalation_rate", "task_completion", "csat"}
