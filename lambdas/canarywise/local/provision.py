"""Provision the stack on the local AWS: from the synthesized template, the way CloudFormation would.

1. :func:`synthesize` runs the CDK app in-process for a rollout spec (bundling skipped: the handlers run
   in-process, no code is uploaded) and caches the template under ``build/local/`` by a hash of its inputs.
2. :func:`provision` hands moto's CloudFormation the resources it supports (table, functions, roles, state
   machines with their real definitions, ALB, target groups, listener rule, topic, queues, ...). Lambda code
   becomes a stub (it runs in-process), the CDK bootstrap check is dropped, references to resources moto
   cannot create become placeholders.
3. The resources moto's CloudFormation lacks are created by the same API calls (metric alarms with
   PutMetricAlarm) or handed to the local bridges (composite alarms to :mod:`canarywise.local.alarms`); the
   rest are listed in :attr:`Deployment.not_provisioned` with what stands in for them.

Example
-------
>>> with LocalAws() as aws:  # doctest: +SKIP
...     template = synthesize(load_spec("config/mangaassist.yaml"))
...     deployment = provision(aws, template, stack_name="canarywise-mangaassist")
...     deployment.canary_state_machine_arn
'arn:aws:states:us-east-1:123456789012:stateMachine:canarywise-mangaassist-canary'
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from canarywise.local.alarms import CompositeAlarm
from canarywise.local.deployment import Deployment, LocalFunction, ProvisionError
from canarywise.local.server import ACCOUNT_ID, REGION, LocalAws
from canarywise.spec import RolloutSpec

REPOSITORY = Path(__file__).resolve().parents[3]
CACHE = REPOSITORY / "build" / "local"
# What synth reads: a change to any of these is a new template.
_SYNTH_INPUTS = ("app.py", "cdk.json", "stacks", "lambdas/canarywise/spec")
_HANDLER_PREFIX = "canarywise.handlers."

# Resource types moto's CloudFormation does not create, and what stands in for them locally.
STAND_INS = {
    "AWS::StepFunctions::StateMachine": "created with CreateStateMachine from the template's definition",
    "AWS::CloudWatch::Alarm": "created with PutMetricAlarm; evaluated by canarywise.local.alarms",
    "AWS::CloudWatch::CompositeAlarm": "evaluated by canarywise.local.alarms (moto has no PutCompositeAlarm)",
    "AWS::Scheduler::Schedule": "the demo invokes the significance check at every simulated 5-minute tick",
    "AWS::CodePipeline::Pipeline": "approval is `--approve`: the demo starts the promote state machine; a "
    "rollback has no pending approval to reject (PIPELINE_NAME is left out)",
    "AWS::Lambda::EventInvokeConfig": "in-process invocations are synchronous: no retries, no destination",
}


# A variable that names a resource moto does not create, by the resource's type: the function is told
# nothing rather than a name that leads nowhere (the rollback rejects no pipeline approval locally).
_NAMES_LEFT_OUT = {"AWS::CodePipeline::Pipeline": "PIPELINE_NAME"}


def _without_left_out(lambda_client: Any, function: Mapping[str, Any], left_out: set[str]) -> dict[str, str]:
    """`function`'s environment without the variables of `_NAMES_LEFT_OUT` (updated on the function too)."""
    environment = dict(function.get("Environment", {}).get("Variables", {}))
    dropped = [_NAMES_LEFT_OUT[kind] for kind in left_out if _NAMES_LEFT_OUT.get(kind) in environment]
    if dropped:
        for name in dropped:
            environment.pop(name)
        lambda_client.update_function_configuration(
            FunctionName=function["FunctionName"], Environment={"Variables": environment}
        )
    return environment


# -- synth -------------------------------------------------------------------------------------------------
def _input_hash(spec: RolloutSpec) -> str:
    digest = hashlib.sha256(spec.model_dump_json().encode())
    for name in _SYNTH_INPUTS:
        path = REPOSITORY / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            if file.exists():
                digest.update(str(file.relative_to(REPOSITORY)).encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def synthesize(spec: RolloutSpec, *, cache: Path | None = CACHE) -> dict[str, Any]:
    """The stack's CloudFormation template for `spec`, synthesized in-process (bundling skipped).

    Synth takes tens of seconds (the CDK runs in a Node process), so the template is cached by a hash of
    the spec and the synth code; None as `cache` always synthesizes.
    """
    cached = cache / f"{spec.service}-{_input_hash(spec)}.template.json" if cache else None
    if cached is not None and cached.exists():
        template: dict[str, Any] = json.loads(cached.read_text())
        return template
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    os.environ.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")
    if str(REPOSITORY) not in sys.path:  # stacks/ is a top-level folder of the repository, not a package
        sys.path.insert(0, str(REPOSITORY))
    from aws_cdk import App

    from stacks.stack import CanarywiseStack
    from stacks.synth import cdk_json_context

    with tempfile.TemporaryDirectory(prefix="canarywise-synth-") as outdir:
        # cdk-nag is left out: it checks the template, it does not change it, and it doubles the time.
        app = App(context={**cdk_json_context(), "aws:cdk:bundling-stacks": []}, outdir=outdir)
        CanarywiseStack(app, f"canarywise-{spec.service}", spec=spec)
        template = app.synth().stacks[0].template
    if cached is not None:
        # Written aside, then renamed: a parallel test worker (pytest -n) never reads half a template.
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(json.dumps(template))
        os.replace(partial, cached)
    return template


# -- template for moto -------------------------------------------------------------------------------------
def _supported_types() -> set[str]:
    from moto.cloudformation.parsing import get_model_map

    return set(get_model_map())


def _references(value: Any) -> Iterator[str]:
    """Logical ids a template value refers to (Ref, Fn::GetAtt, ${X} in Fn::Sub)."""
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            yield value["Ref"]
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            yield target[0] if isinstance(target, list) else str(target).split(".")[0]
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _replace_references(value: Any, dropped: set[str], literal: Mapping[tuple[str, str], str]) -> Any:
    """`value` with references to `dropped` resources taken from `literal`, else placeholders."""
    if isinstance(value, dict):
        ref = value.get("Ref")
        if isinstance(ref, str) and ref in dropped and len(value) == 1:
            return literal.get((ref, "Ref"), f"local-not-provisioned:{ref}")
        get_att = value.get("Fn::GetAtt")
        if isinstance(get_att, list) and get_att[0] in dropped and len(value) == 1:
            return literal.get((get_att[0], get_att[1]), f"local-not-provisioned:{get_att[0]}.{get_att[1]}")
        return {key: _replace_references(item, dropped, literal) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_references(item, dropped, literal) for item in value]
    return value


def _physical_names(stack_name: str, left_out: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """Ref and Arn of the left-out resources that are created by API calls under a known name."""
    literal: dict[tuple[str, str], str] = {}
    for logical_id, resource in left_out.items():
        props = resource.get("Properties", {})
        if resource["Type"] in {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"}:
            name = props.get("AlarmName") or f"{stack_name}-{logical_id}"
            literal[(logical_id, "Ref")] = name
            literal[(logical_id, "Arn")] = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{name}"
        elif resource["Type"] == "AWS::StepFunctions::StateMachine":
            name = props.get("StateMachineName") or f"{stack_name}-{logical_id}"
            arn = f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{name}"
            literal[(logical_id, "Ref")] = literal[(logical_id, "Arn")] = arn
            literal[(logical_id, "Name")] = name
    return literal


# Created by API calls rather than by moto's CloudFormation, although it knows the type: it puts state
# machines in a store that its executing Step Functions does not read.
_BY_API = {"AWS::StepFunctions::StateMachine"}


def template_for_moto(
    template: Mapping[str, Any], *, stack_name: str
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[tuple[str, str], str]]:
    """(the template moto's CloudFormation can create, the resources left out by logical id, the Ref/Arn
    values of the left-out resources that are created by API calls under a known name)."""
    supported = _supported_types() - _BY_API
    resources = template["Resources"]
    kept = {k: copy.deepcopy(r) for k, r in resources.items() if r["Type"] in supported}
    left_out = {k: r for k, r in resources.items() if k not in kept}
    dropped = set(left_out)
    literal = _physical_names(stack_name, left_out)
    for resource in kept.values():
        if resource["Type"] == "AWS::Lambda::Function":
            # The handler runs in this process; moto only needs something to store.
            resource["Properties"]["Code"] = {"ZipFile": "# canarywise local mode: runs in-process\n"}
        # Tags mean nothing locally, and moto's CloudFormation mis-reads some (KMS expects TagKey).
        resource.get("Properties", {}).pop("Tags", None)
        depends = resource.get("DependsOn")
        if depends:
            depends = [depends] if isinstance(depends, str) else depends
            resource["DependsOn"] = [d for d in depends if d not in dropped]
        resource["Properties"] = _replace_references(resource.get("Properties", {}), dropped, literal)
    outputs = {}
    for name, output in template.get("Outputs", {}).items():
        resolved = _replace_references(output, dropped, literal)
        # An output that still names a left-out resource (the pipeline) is dropped with it.
        if "local-not-provisioned:" not in json.dumps(resolved):
            outputs[name] = resolved
    local = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": template.get("Description", "canarywise (local)"),
        "Resources": kept,
        "Outputs": outputs,
    }
    return local, left_out, literal


# -- provision ---------------------------------------------------------------------------------------------
def _moto_resource_map(stack_name: str) -> Any:
    from moto.cloudformation.models import cloudformation_backends

    backend = cloudformation_backends[ACCOUNT_ID][REGION]
    for stack in backend.stacks.values():
        if stack.name == stack_name and stack.status == "CREATE_COMPLETE":
            return stack.resource_map
    raise ProvisionError(f"stack {stack_name!r} was not created")


def _resolve(value: Any, resource_map: Any, literal: Mapping[tuple[str, str], str]) -> Any:
    """Resolve intrinsics with moto's own resolver, after substituting what moto cannot know (`literal`)."""
    from moto.cloudformation.parsing import clean_json

    def substitute(item: Any) -> Any:
        if isinstance(item, dict):
            if len(item) == 1 and isinstance(item.get("Ref"), str) and (item["Ref"], "Ref") in literal:
                return literal[(item["Ref"], "Ref")]
            get_att = item.get("Fn::GetAtt")
            if len(item) == 1 and isinstance(get_att, list) and (get_att[0], get_att[1]) in literal:
                return literal[(get_att[0], get_att[1])]
            return {key: substitute(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [substitute(inner) for inner in item]
        return item

    return clean_json(substitute(value), resource_map)


_ALARM_PARAMETERS = (
    "AlarmName",
    "AlarmDescription",
    "ActionsEnabled",
    "AlarmActions",
    "OKActions",
    "InsufficientDataActions",
    "MetricName",
    "Namespace",
    "Statistic",
    "ExtendedStatistic",
    "Dimensions",
    "Period",
    "Unit",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "Metrics",
    "ThresholdMetricId",
)


def provision(aws: LocalAws, template: Mapping[str, Any], *, stack_name: str) -> Deployment:
    """Create the stack on `aws` from `template`; see the module docs for what moto creates and what not."""
    local, left_out, literal = template_for_moto(template, stack_name=stack_name)
    cloudformation = aws.client("cloudformation")
    cloudformation.create_stack(StackName=stack_name, TemplateBody=json.dumps(local))
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise ProvisionError(
            f"stack {stack_name!r}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}"
        )
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resource_map = _moto_resource_map(stack_name)

    cloudwatch = aws.client("cloudwatch")
    stepfunctions = aws.client("stepfunctions")
    metric_alarms, composites = [], []
    for logical_id, resource in left_out.items():
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            # The real definition from the template, with the ARNs of the functions moto created.
            props = _resolve(resource["Properties"], resource_map, literal)
            definition = props.get("DefinitionString") or json.dumps(props["Definition"])
            stepfunctions.create_state_machine(
                name=literal[(logical_id, "Name")],
                definition=definition if isinstance(definition, str) else json.dumps(definition),
                roleArn=props["RoleArn"],
                type=props.get("StateMachineType", "STANDARD"),
            )
        elif resource["Type"] == "AWS::CloudWatch::Alarm":
            props = _resolve(resource["Properties"], resource_map, literal)
            props.setdefault("AlarmName", literal[(logical_id, "Ref")])
            cloudwatch.put_metric_alarm(**{k: props[k] for k in _ALARM_PARAMETERS if k in props})
            metric_alarms.append(props["AlarmName"])
        elif resource["Type"] == "AWS::CloudWatch::CompositeAlarm":
            props = _resolve(resource["Properties"], resource_map, literal)
            composites.append(
                CompositeAlarm(
                    name=props.get("AlarmName") or literal[(logical_id, "Ref")],
                    rule=props["AlarmRule"],
                    actions=tuple(props.get("AlarmActions", [])),
                    actions_enabled=bool(props.get("ActionsEnabled", True)),
                )
            )

    functions: dict[str, LocalFunction] = {}
    lambda_client = aws.client("lambda")
    for page in lambda_client.get_paginator("list_functions").paginate():
        for fn in page["Functions"]:
            handler = fn.get("Handler", "")
            if handler.startswith(_HANDLER_PREFIX):
                role = handler.removeprefix(_HANDLER_PREFIX).rsplit(".", 1)[0]
                environment = _without_left_out(
                    lambda_client, fn, {resource["Type"] for resource in left_out.values()}
                )
                functions[role] = LocalFunction(
                    name=fn["FunctionName"], arn=fn["FunctionArn"], handler=handler, environment=environment
                )
    not_provisioned = {
        resource["Type"]: STAND_INS.get(resource["Type"], "not needed locally")
        for resource in left_out.values()
    }
    return Deployment(
        stack_name=stack_name,
        outputs=outputs,
        functions=functions,
        composites=tuple(composites),
        metric_alarms=tuple(metric_alarms),
        not_provisioned=not_provisioned,
    )
