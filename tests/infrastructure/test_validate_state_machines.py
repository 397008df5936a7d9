"""scripts/validate_state_machines.py, the asl-validator step of `make synth`, on small hand-written
templates: it resolves the references, passes a valid definition, fails (exit 1) on a broken one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "validate_state_machines.py"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:Gate"


def _template(folder: Path, states: dict[str, Any], tokens: list[Any]) -> Path:
    """A template with one Lambda function ``Gate`` and one state machine whose definition is `states`
    with `tokens` (CloudFormation references) spliced in where the JSON says ``"@"``."""
    text = json.dumps({"StartAt": "Gate", "States": states})
    pieces = text.split('"@"')
    assert len(pieces) == len(tokens) + 1
    parts: list[Any] = [pieces[0]]
    for token, piece in zip(tokens, pieces[1:], strict=True):
        parts += ['"', token, '"', piece]
    template = {
        "Resources": {
            "Gate": {"Type": "AWS::Lambda::Function", "Properties": {}},
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"DefinitionString": {"Fn::Join": ["", parts]}},
            },
        }
    }
    path = folder / "x.template.json"
    path.write_text(json.dumps(template))
    return path


def _run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, check=False
    )


def test_a_valid_definition_with_references_passes(tmp_path: Path) -> None:
    states = {
        "Gate": {"Type": "Task", "Resource": "@", "Next": "SDK"},
        "SDK": {"Type": "Task", "Resource": "@", "Parameters": {"ExecutionArn.$": "$.arn"}, "End": True},
    }
    describe = {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":states:::aws-sdk:sfn:describeExecution"]]
    }
    result = _run(_template(tmp_path, states, [{"Fn::GetAtt": ["Gate", "Arn"]}, describe]))
    assert (result.returncode, result.stdout) == (
        0,
        f"asl-validator {tmp_path}/x.template.json Machine: ok\n",
    )


def test_a_broken_definition_fails_and_says_why(tmp_path: Path) -> None:
    states = {"Gate": {"Type": "Task", "Resource": FUNCTION_ARN, "Next": "Nowhere"}}
    result = _run(_template(tmp_path, states, []))
    assert result.returncode == 1
    assert "Machine: FAILED" in result.stdout
    assert "MISSING_TRANSITION_TARGET" in result.stdout  # asl-validator's own error code


def test_a_reference_it_cannot_resolve_is_named(tmp_path: Path) -> None:
    states = {"Gate": {"Type": "Task", "Resource": "@", "End": True}}
    result = _run(_template(tmp_path, states, [{"Fn::ImportValue": "elsewhere"}]))
    assert result.returncode == 1
    assert 'cannot resolve {"Fn::ImportValue": "elsewhere"} to a literal' in result.stderr
