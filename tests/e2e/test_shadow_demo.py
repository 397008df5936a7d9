"""End to end: ``canarywise demo --scenario shadow-retriever`` on moto in server mode.

The seed's retriever change (guardrail pass 98.0% -> 97.2%, prompt tokens 120 -> 195 on the same requests)
ends REJECTED in its shadow phase: the registry holds the look with its numbers and reasons, the ALB rule is
the one the stack created (nothing moved), and no canary execution or experiment was ever started. The healthy
shadow (READY_FOR_CANARY, then the ladder) is covered without a second full run: tests/unit/decision/
test_shadow.py and tests/integration/test_shadow_phase.py (one scenario here keeps CI within its budget).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from local_kit import rule_forward

from canarywise.data.models import CheckRecord
from canarywise.demo.local_run import RunResult
from canarywise.demo.runner import run_scenario
from canarywise.demo.scenarios import SCENARIOS
from canarywise.local.deployment import Deployment
from canarywise.local.server import LocalAws

pytestmark = pytest.mark.slow


def test_shadow_retriever_is_rejected_before_any_user_sees_it(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def inspect(aws: LocalAws, deployment: Deployment, result: RunResult) -> None:
        dynamodb = aws.client("dynamodb")
        items = dynamodb.scan(TableName=deployment.registry_table)["Items"]
        seen["checks"] = [
            CheckRecord.model_validate_json(i["check"]["S"])
            for i in items
            if i["kind"]["S"] == "shadow_check"
        ]
        seen["experiments"] = [i for i in items if i["kind"]["S"] == "experiment"]
        seen["rule"] = rule_forward(aws, deployment)
        seen["executions"] = aws.client("stepfunctions").list_executions(
            stateMachineArn=deployment.canary_state_machine_arn
        )["executions"]

    result = run_scenario(SCENARIOS["shadow-retriever"], seed=7, reports_dir=tmp_path, after=inspect)

    assert (result.outcome, result.expected) == ("REJECTED", "REJECTED")
    assert "the candidate never reached a user" in result.reason
    (check,) = seen["checks"]
    assert check.decision == "REJECTED"
    assert check.stage_index == -1
    assert check.harm
    tokens = next(
        f for f in check.details["findings"] if f["metric"] == "prompt_tokens" and f["verdict"] == "harm"
    )
    assert 70 < tokens["estimate"] < 80  # 120 -> 195 on the same requests
    assert seen["rule"].weights.get("blue") == 100
    assert seen["rule"].weights.get("green", 0) == 0  # the stack's rule as created: nothing moved
    assert seen["executions"] == []
    assert seen["experiments"] == []
