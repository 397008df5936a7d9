"""Validate every Step Functions state machine in the synthesized templates with asl-validator, offline.

``make synth`` runs it after cfn-lint. In a template a definition is an ``Fn::Join`` of strings and
references; asl-validator (npm, pinned in package.json) needs plain ASL, so each reference is first replaced
by a literal of the shape CloudFormation would give it: an ARN where ``Ref`` / ``Fn::GetAtt … Arn`` returns
an ARN (so the validator's check of each task's ``Resource`` ARN still applies), the logical id where it
returns a name, and fixed literal values for the pseudo parameters.

Usage::

    python scripts/validate_state_machines.py cdk.out/*.template.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
REGION, ACCOUNT = "us-east-1", "123456789012"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "canarywise",
}
# The ARN (after "arn:aws:") of a resource type, for the references a definition may hold.
ARNS = {
    "AWS::Lambda::Function": f"lambda:{REGION}:{ACCOUNT}:function:{{}}",
    "AWS::StepFunctions::StateMachine": f"states:{REGION}:{ACCOUNT}:stateMachine:{{}}",
    "AWS::SNS::Topic": f"sns:{REGION}:{ACCOUNT}:{{}}",
    "AWS::SQS::Queue": f"sqs:{REGION}:{ACCOUNT}:{{}}",
    "AWS::DynamoDB::Table": f"dynamodb:{REGION}:{ACCOUNT}:table/{{}}",
    "AWS::ElasticLoadBalancingV2::ListenerRule": (
        f"elasticloadbalancing:{REGION}:{ACCOUNT}:listener-rule/app/alb/0123456789abcdef/0123456789abcdef/{{}}"
    ),
}
# Types whose Ref is their ARN; for any other type Ref is a name.
REF_IS_ARN = {
    "AWS::StepFunctions::StateMachine",
    "AWS::SNS::Topic",
    "AWS::ElasticLoadBalancingV2::ListenerRule",
}


class UnresolvedError(ValueError):
    """A definition holds a reference this script cannot turn into a literal."""


def resolve(value: Any, resources: dict[str, Any]) -> str:
    """`value` (a string, ``Ref``, ``Fn::GetAtt … Arn`` or ``Fn::Join``) as a literal string."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"}:
        name = value["Ref"]
        if name in PSEUDO:
            return PSEUDO[name]
        return _arn(name, resources) if _type(name, resources) in REF_IS_ARN else name
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"} and value["Fn::GetAtt"][1] == "Arn":
        return _arn(value["Fn::GetAtt"][0], resources)
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return str(separator).join(resolve(part, resources) for part in parts)
    raise UnresolvedError(f"cannot resolve {json.dumps(value)} to a literal")


def _type(logical_id: str, resources: dict[str, Any]) -> str:
    if logical_id not in resources:
        raise UnresolvedError(f"Ref to {logical_id!r}, which is not a resource of the template")
    return str(resources[logical_id]["Type"])


def _arn(logical_id: str, resources: dict[str, Any]) -> str:
    type_ = _type(logical_id, resources)
    if type_ not in ARNS:
        raise UnresolvedError(f"no example ARN for {logical_id!r} ({type_}): add its type to ARNS")
    return "arn:aws:" + ARNS[type_].format(logical_id)


def definitions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id → the resolved ASL of each state machine in `template`."""
    resources = template.get("Resources", {})
    found = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::StepFunctions::StateMachine":
            continue
        props = resource["Properties"]
        if "Definition" in props:
            found[logical_id] = props["Definition"]
        else:
            found[logical_id] = json.loads(resolve(props["DefinitionString"], resources))
    return found


def validate(definition: dict[str, Any], folder: Path, name: str) -> tuple[bool, str]:
    """Run asl-validator on `definition`; (passed, what it printed)."""
    path = folder / f"{name}.asl.json"
    path.write_text(json.dumps(definition, indent=2))
    result = subprocess.run(
        [str(VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, check=False
    )
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    if not VALIDATOR.exists():
        print(f"validate_state_machines: {VALIDATOR} not found: run make setup", file=sys.stderr)
        return 2
    failed = checked = 0
    with tempfile.TemporaryDirectory() as folder:
        for template_file in argv:
            template = json.loads(Path(template_file).read_text())
            try:
                machines = definitions(template)
            except UnresolvedError as exc:
                print(f"validate_state_machines: {template_file}: {exc}", file=sys.stderr)
                return 1
            for logical_id, definition in machines.items():
                passed, output = validate(definition, Path(folder), logical_id)
                checked += 1
                failed += not passed
                print(f"asl-validator {template_file} {logical_id}: {'ok' if passed else 'FAILED'}")
                if not passed:
                    print(output)
    if checked == 0:
        print("validate_state_machines: no state machine in the templates", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
