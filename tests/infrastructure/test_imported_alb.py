"""The normal case: the service's existing listener and target groups, imported by ARN (no demo VPC/ALB).

The dimension values the alarms and the significance check need are the ARNs' suffixes, written out by hand
below from the example ARNs (AWS documents ``app/<name>/<id>`` and ``targetgroup/<name>/<id>``).
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
CONTROL = f"{ELB}:targetgroup/chat-control/73e2d6bc24d8a067"
CANARY = f"{ELB}:targetgroup/chat-canary/9f0c1b2a3d4e5f60"


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory, synthesize_spec: Any) -> Any:
    data = yaml.safe_load((ROOT / "config" / "mangaassist.yaml").read_text())
    data["environment"] = {"account": "123456789012", "region": "us-east-1"}
    data["traffic"] = {
        "listener_arn": LISTENER,
        "control_target_group_arn": CONTROL,
        "canary_target_group_arn": CANARY,
        "rule_priority": 42,
        "path_pattern": "/chat/*",
        "stickiness": "1d",
    }
    folder = tmp_path_factory.mktemp("imported")
    spec = folder / "imported.yaml"
    spec.write_text(yaml.safe_dump(data))
    return synthesize_spec(spec, folder / "cdk.out")


def test_no_network_resources_are_created(synth: Any) -> None:
    created = {r["Type"] for r in synth.template["Resources"].values()}
    assert not {t for t in created if t.startswith("AWS::EC2::")}
    assert "AWS::ElasticLoadBalancingV2::LoadBalancer" not in created
    assert "AWS::ElasticLoadBalancingV2::TargetGroup" not in created


def test_rule_goes_on_the_imported_listener(synth: Any) -> None:
    _, rule = synth.one("AWS::ElasticLoadBalancingV2::ListenerRule")
    props = rule["Properties"]
    assert props["ListenerArn"] == LISTENER
    assert props["Priority"] == 42
    forward = props["Actions"][0]["ForwardConfig"]
    assert forward["TargetGroups"] == [
        {"TargetGroupArn": CONTROL, "Weight": 100},
        {"TargetGroupArn": CANARY, "Weight": 0},
    ]
    assert forward["TargetGroupStickinessConfig"] == {"Enabled": True, "DurationSeconds": 86400}


def test_metric_dimensions_come_from_the_arns(synth: Any) -> None:
    fn = synth.template["Resources"][synth.logical_id("AWS::Lambda::Function", "SignificanceCheck")]
    variables = fn["Properties"]["Environment"]["Variables"]
    assert variables["LOAD_BALANCER_FULL_NAME"] == "app/shop-alb/50dc6c495c0c9188"
    assert variables["CONTROL_TARGET_GROUP_FULL_NAME"] == "targetgroup/chat-control/73e2d6bc24d8a067"
    assert variables["CANARY_TARGET_GROUP_FULL_NAME"] == "targetgroup/chat-canary/9f0c1b2a3d4e5f60"
    latency = synth.template["Resources"][synth.logical_id("AWS::CloudWatch::Alarm", "p99latencyhardlimit")]
    assert latency["Properties"]["Dimensions"] == [
        {"Name": "LoadBalancer", "Value": "app/shop-alb/50dc6c495c0c9188"},
        {"Name": "TargetGroup", "Value": "targetgroup/chat-canary/9f0c1b2a3d4e5f60"},
    ]


def test_rollback_gets_the_imported_arns_and_the_named_state_machine(synth: Any) -> None:
    fn = synth.template["Resources"][synth.logical_id("AWS::Lambda::Function", "Rollback")]
    variables = fn["Properties"]["Environment"]["Variables"]
    assert variables["CONTROL_TARGET_GROUP_ARN"] == CONTROL
    assert variables["CANARY_TARGET_GROUP_ARN"] == CANARY
    arn = json.dumps(variables["STATE_MACHINE_ARN"])
    assert "arn:aws:states:us-east-1:123456789012:stateMachine:canarywise-mangaassist-canary" in arn
