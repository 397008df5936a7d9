"""A ladder longer than CodePipeline's Step Functions action waits (168 h): the storefront A/B spec, whose one
stage may last 14 days (28 after a rollback, first_stage_multiplier 2). One synth, through the same entry
point as ``cdk synth`` (spec checks and cdk-nag included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

STOREFRONT = ROOT / "lambdas" / "canarywise" / "demo" / "specs" / "storefront-chatbot.yaml"


def test_a_fourteen_day_ab_test_synthesizes_and_the_pipeline_does_not_wait_for_it(
    tmp_path: Path, synthesize_spec: Any
) -> None:
    synth = synthesize_spec(STOREFRONT, tmp_path)
    _, pipeline = synth.one("AWS::CodePipeline::Pipeline")
    stages = {s["Name"]: s["Actions"] for s in pipeline["Properties"]["Stages"]}
    (canary,) = stages["Canary"]
    # A Lambda invoke action starts the execution and reports done; its ExecutionArn variable is in the same
    # namespace the Step Functions action used, so the promote step still finds the canary execution.
    assert canary["ActionTypeId"]["Provider"] == "Lambda"
    assert canary["Namespace"] == "Canary"
    (approval,) = stages["Approval"]
    # 672 h of ladder + 72 h to approve = 744 h = 44,640 minutes (under CodePipeline's 86,400).
    assert approval["TimeoutInMinutes"] == 744 * 60
    (promote,) = stages["Promote"]
    assert "#{Canary.ExecutionArn}" in synth.text(promote["Configuration"]["Input"])
    starter = synth.logical_id("AWS::Lambda::Function", "CanaryStarter")
    assert synth.template["Resources"][starter]["Properties"]["Handler"] == (
        "canarywise.handlers.pipeline_start.handler"
    )

    # The gate polls every 4 check intervals (20 min: 2,016 polls x 9 events = 18,144 over 672 h), the
    # interval doubled twice from the execution input; the stage's poll and pause loops wait that long (a
    # failed gate and a stage held past its maximum keep their own waits, canarywise.spec.poll_waits).
    definition = synth.state_machine_definition("Canary")
    states = definition["States"]
    poll = states["Gate poll interval"]
    twice = "States.MathAdd($.timing.check_interval_seconds, $.timing.check_interval_seconds)"
    assert poll["Parameters"]["gate_poll_seconds.$"] == f"States.MathAdd({twice}, {twice})"
    for name in ("Stage 1 (50%): wait", "Stage 1 (50%): paused"):
        assert states[name]["SecondsPath"] == "$.timing.gate_poll_seconds", name
