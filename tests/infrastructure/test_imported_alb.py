"""The normal case: the service's existing listener and target groups, imported by ARN (no demo VPC/ALB).

Two spec shapes: ``target_groups`` (blue/green slots, the form for a new deployment) and the fields from
before blue/green roles, ``control_target_group_arn`` / ``canary_target_group_arn``, which become the slots
``control`` and ``canary``. The dimension values the alarms and the significance check need are the ARNs'
suffixes, written out by hand below from the example ARNs (AWS documents ``app/<name>/<id>`` and
``targetgroup/<name>/<id>``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ELB = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
LISTENER = f"{ELB}:listener/app/shop-alb/50dc6c495c0c9188/f2f7dc8efc522ab2"
LOAD_BALANCER = "app/shop-alb/50dc6c495c0c9188"
# slot -> (target group ARN, its TargetGroup dimension value), for each spec shape
LEGACY = {
    "control": (
        f"{ELB}:targetgroup/chat-control/73e2d6bc24d8a067",
        "targetgroup/chat-control/73e2d6bc24d8a067",
    ),
    "canary": (f"{ELB}:targetgroup/chat-canary/9f0c1b2a3d4e5f60", "targetgroup/chat-canary/9f0c1b2a3d4e5f60"),
}
SLOTS = {
    "blue": (f"{ELB}:targetgroup/chat-blue/0a1b2c3d4e5f6071", "targetgroup/chat-blue/0a1b2c3d4e5f6071"),
    "green": (f"{ELB}:targetgroup/chat-green/8192a3b4c5d6e7f8", "targetgroup/chat-green/8192a3b4c5d6e7f8"),
}
GROUPS = {"legacy": LEGACY, "slots": SLOTS}
# The legacy spec leaves stickiness at its default (7 d); the slots spec sets "1d".
STICKINESS = {"legacy": 7 * 86400, "slots": 86400}


def _synth(tmp_path_factory: pytest.TempPathFactory, synthesize_spec: Any, traffic: dict[str, Any]) -> Any:
    data = yaml.safe_load((ROOT / "config" / "mangaassist.yaml").read_text())
    data["environment"] = {"account": "123456789012", "region": "us-east-1"}
    data["traffic"] = {"listener_arn": LISTENER, "rule_priority": 42, "path_pattern": "/chat/*"} | traffic
    folder = tmp_path_factory.mktemp("imported")
    spec = folder / "imported.yaml"
    spec.write_text(yaml.safe_dump(data))
    return synthesize_spec(spec, folder / "cdk.out")


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory, synthesize_spec: Any) -> Any:
    traffic = {
        "control_target_group_arn": LEGACY["control"][0],
        "canary_target_group_arn": LEGACY["canary"][0],
    }
    return _synth(tmp_path_factory, synthesize_spec, traffic)


@pytest.fixture(scope="module")
def slots(tmp_path_factory: pytest.TempPathFactory, synthesize_spec: Any) -> Any:
    traffic = {"target_groups": {slot: arn for slot, (arn, _) in SLOTS.items()}, "stickiness": "1d"}
    return _synth(tmp_path_factory, synthesize_spec, traffic)


@pytest.fixture(params=sorted(GROUPS))
def shape(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """(spec shape, its synthesized stack), for the tests both shapes must pass."""
    return request.param, request.getfixturevalue(request.param)


def _variables(synth: Any, function: str) -> dict[str, Any]:
    fn = synth.template["Resources"][synth.logical_id("AWS::Lambda::Function", function)]
    return dict(fn["Properties"]["Environment"]["Variables"])


def test_no_network_resources_are_created(shape: tuple[str, Any]) -> None:
    _, synth = shape
    created = {r["Type"] for r in synth.template["Resources"].values()}
    assert not {t for t in created if t.startswith("AWS::EC2::")}
    assert "AWS::ElasticLoadBalancingV2::LoadBalancer" not in created
    assert "AWS::ElasticLoadBalancingV2::TargetGroup" not in created


def test_legacy_rule_keeps_the_action_the_old_template_had(legacy: Any) -> None:
    """Upgrading a deployment from before blue/green roles must not rewrite its live rule: CloudFormation
    would replace the action with whatever the template says, and the old template said control 100,
    canary 0, sticky."""
    _, rule = legacy.one("AWS::ElasticLoadBalancingV2::ListenerRule")
    props = rule["Properties"]
    assert (props["ListenerArn"], props["Priority"]) == (LISTENER, 42)
    assert props["Actions"] == [
        {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": LEGACY["control"][0], "Weight": 100},
                    {"TargetGroupArn": LEGACY["canary"][0], "Weight": 0},
                ],
                "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 7 * 86400},
            },
        }
    ]


def test_new_rule_names_only_the_first_slot_without_stickiness(slots: Any) -> None:
    """A new deployment starts with blue live and green absent from the forward (no cookie can hold a user
    on the idle group)."""
    _, rule = slots.one("AWS::ElasticLoadBalancingV2::ListenerRule")
    props = rule["Properties"]
    assert (props["ListenerArn"], props["Priority"]) == (LISTENER, 42)
    assert props["Actions"] == [
        {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": SLOTS["blue"][0], "Weight": 100}],
                "TargetGroupStickinessConfig": {"Enabled": False},
            },
        }
    ]


def test_metric_dimensions_come_from_the_arns(shape: tuple[str, Any]) -> None:
    name, synth = shape
    groups = GROUPS[name]
    variables = _variables(synth, "SignificanceCheck")
    assert variables["LOAD_BALANCER_FULL_NAME"] == LOAD_BALANCER
    assert synth.json_value(variables["TARGET_GROUP_FULL_NAMES"]) == {
        s: full for s, (_, full) in groups.items()
    }
    alarms = {
        r["Properties"]["AlarmName"]: r["Properties"]
        for r in synth.resources("AWS::CloudWatch::Alarm").values()
    }
    for slot, (_, full_name) in groups.items():
        latency = alarms[f"canarywise-mangaassist-p99_latency-hard-limit-{slot}"]
        assert latency["Dimensions"] == [
            {"Name": "LoadBalancer", "Value": LOAD_BALANCER},
            {"Name": "TargetGroup", "Value": full_name},
        ]


@pytest.mark.parametrize("function", ["StageGate", "Promote", "Rollback"])
def test_traffic_functions_get_the_imported_slots(shape: tuple[str, Any], function: str) -> None:
    name, synth = shape
    variables = _variables(synth, function)
    assert synth.json_value(variables["TARGET_GROUPS"]) == {s: arn for s, (arn, _) in GROUPS[name].items()}
    assert variables["STICKINESS_SECONDS"] == str(STICKINESS[name])


def test_rollback_names_the_state_machine_and_the_pipeline(legacy: Any) -> None:
    variables = _variables(legacy, "Rollback")
    arn = json.dumps(variables["STATE_MACHINE_ARN"])
    assert "arn:aws:states:us-east-1:123456789012:stateMachine:canarywise-mangaassist-canary" in arn
    assert variables["PIPELINE_NAME"] == "canarywise-mangaassist"
