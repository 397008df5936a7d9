"""The drift monitor from a spec: ``mode: monitor`` alone, and a monitor block beside a canary.

Synthesized through the synth entry point (cdk-nag runs: an unacknowledged finding fails synth).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITOR_SPEC = ROOT / "lambdas" / "canarywise" / "demo" / "specs" / "mangaassist-monitor.yaml"


@pytest.fixture(scope="module")
def monitor_only(tmp_path_factory: pytest.TempPathFactory, synthesize_spec: Callable[..., Any]) -> Any:
    return synthesize_spec(MONITOR_SPEC, tmp_path_factory.mktemp("monitor"))


def test_mode_monitor_builds_the_monitor_and_nothing_of_a_rollout(monitor_only: Any) -> None:
    resources = {r["Type"] for r in monitor_only.template["Resources"].values()}
    assert "AWS::ElasticLoadBalancingV2::ListenerRule" not in resources
    assert "AWS::StepFunctions::StateMachine" not in resources
    (function,) = monitor_only.resources("AWS::Lambda::Function").values()
    env = function["Properties"]["Environment"]["Variables"]
    assert function["Properties"]["Handler"] == "canarywise.handlers.monitor.handler"
    own = json.loads(env["MONITOR_SPEC"])
    assert own["mode"] == "monitor"
    assert own["monitor"]["variants"] == ["blue", "green"]
    (_, schedule) = monitor_only.one("AWS::Scheduler::Schedule")
    assert schedule["Properties"]["ScheduleExpression"] in {"rate(1 hour)", "rate(60 minutes)"}


def test_the_drift_alarm_pages_and_never_rolls_back(monitor_only: Any) -> None:
    (_, alarm) = monitor_only.one("AWS::CloudWatch::Alarm")
    props = alarm["Properties"]
    assert props["AlarmName"] == "canarywise-drift-mangaassist"  # outside the rollback's own prefix
    assert (props["Namespace"], props["MetricName"], props["Threshold"]) == ("Canarywise", "Drift", 1)
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    topic = monitor_only.logical_id("AWS::SNS::Topic", "Alerts")
    assert props["AlarmActions"] == [{"Ref": topic}]
    assert props["OKActions"] == [{"Ref": topic}]


def test_the_monitor_writes_only_its_service_items(monitor_only: Any) -> None:
    policies = monitor_only.resources("AWS::IAM::Policy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    writes = [s for s in statements if "dynamodb:PutItem" in s["Action"]]
    assert [s["Condition"] for s in writes] == [
        {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["SERVICE#mangaassist"]}}
    ]


def test_a_canary_spec_with_a_monitor_block_adds_the_monitor(
    tmp_path: Path, write_spec: Callable[[dict[str, Any]], Path], mangaassist: dict[str, Any],
    synthesize_spec: Callable[..., Any],
) -> None:  # fmt: skip
    monitor = yaml.safe_load(MONITOR_SPEC.read_text())["monitor"]
    mangaassist["monitor"] = {
        "rates": [{"metric": "escalation_rate"}],
        "mixes": [{"name": "intent_mix", "metric": "escalation_rate"}],
        "distributions": monitor["distributions"],
    }
    synthesized = synthesize_spec(write_spec(mangaassist), tmp_path / "out")
    handlers = {f["Properties"]["Handler"] for f in synthesized.resources("AWS::Lambda::Function").values()}
    assert {
        "canarywise.handlers.monitor.handler",
        "canarywise.handlers.significance_check.handler",
    } <= handlers
    (dashboard,) = synthesized.resources("AWS::CloudWatch::Dashboard").values()
    assert "Drift monitor" in synthesized.text(dashboard["Properties"]["DashboardBody"])
