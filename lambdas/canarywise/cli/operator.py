"""The operator commands: ``canarywise status``, ``approve``, ``rollback``, ``report``.

They work against any endpoint: real AWS with your credentials, or the local one of
``canarywise demo --serve`` (``AWS_ENDPOINT_URL=http://127.0.0.1:PORT``). They find the stack's resources
from its CloudFormation outputs (stack ``canarywise-<service>``) and call the same code the Lambdas run: the
registry for status and reports, the rollback function for a rollback, the pipeline's approval (or, where
there is no pipeline, as on the local endpoint, the promote state machine it would start) for an approval.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from canarywise.cli.output import print_grid, print_json, print_table
from canarywise.errors import CanarywiseError


class OperatorError(CanarywiseError, RuntimeError):
    """The stack, the experiment or a resource the command needs was not found; the message says which."""


@dataclass
class Stack:
    """The deployed stack's resources, from its outputs (and the rollback function's environment)."""

    service: str
    name: str
    table_override: str | None = None

    @cached_property
    def outputs(self) -> dict[str, str]:
        from canarywise.data._aws import AwsCallError, client, error_code

        try:
            stacks = client("cloudformation").describe_stacks(StackName=self.name)["Stacks"]
        except AwsCallError as exc:
            raise OperatorError(
                f"stack {self.name!r} not found ({error_code(exc)}); pass --service or --stack"
            ) from None
        return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}

    def output(self, key: str) -> str:
        if key not in self.outputs:
            raise OperatorError(f"stack {self.name!r} has no output {key!r}")
        return self.outputs[key]

    @property
    def table(self) -> str:
        return self.table_override or os.environ.get("REGISTRY_TABLE") or self.output("RegistryTableName")

    @cached_property
    def traffic_environment(self) -> dict[str, str]:
        """LISTENER_RULE_ARN and the target groups, as the rollback function is configured."""
        from canarywise.data._aws import client

        config = client("lambda").get_function_configuration(FunctionName=self.output("RollbackFunctionName"))
        variables: dict[str, str] = config.get("Environment", {}).get("Variables", {})
        return variables

    def registry(self) -> Any:
        from canarywise.data.registry import Registry

        return Registry(self.table)


def _stack(args: argparse.Namespace) -> Stack:
    service = args.service or os.environ.get("SERVICE") or "mangaassist"
    return Stack(service=service, name=args.stack or f"canarywise-{service}", table_override=args.table)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", help="the service (default: $SERVICE, else mangaassist)")
    parser.add_argument("--stack", help="the CloudFormation stack (default: canarywise-<service>)")
    parser.add_argument(
        "--table", help="the registry table (default: $REGISTRY_TABLE, else the stack's output)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")


def register(subparsers: Any) -> None:
    status = subparsers.add_parser(
        "status", help="running experiments: stage, weights, latest decision and why"
    )
    _common(status)
    status.set_defaults(func=run_status)

    approve = subparsers.add_parser(
        "approve", help="approve the rollout waiting for approval (all traffic to the candidate, conclude)"
    )
    approve.add_argument("experiment", nargs="?", help="the experiment (default: the one awaiting approval)")
    approve.add_argument(
        "--comment", default="approved with canarywise approve", help="the approval's summary"
    )
    _common(approve)
    approve.set_defaults(func=run_approve)

    rollback = subparsers.add_parser(
        "rollback", help="roll back now: weights 100/0, stop the rollout, record"
    )
    rollback.add_argument("--reason", required=True, help="why (recorded in the registry and the alert)")
    rollback.add_argument("--experiment", help="the experiment (default: the service's running one)")
    _common(rollback)
    rollback.set_defaults(func=run_rollback)

    report = subparsers.add_parser(
        "report", help="write an experiment's report (Markdown, HTML, effect plot)"
    )
    report.add_argument("experiment", help="the experiment id")
    report.add_argument("--out", type=Path, default=Path("reports"), help="folder (default reports/)")
    _common(report)
    report.set_defaults(func=run_report)


# -- status ----------------------------------------------------------------------------------------------
def run_status(args: argparse.Namespace) -> int:
    stack = _stack(args)
    experiments = stack.registry().list_running(stack.service)
    weights = _weights(stack)
    rows = []
    for experiment in experiments:
        check = experiment.latest_check
        rows.append(
            {
                "experiment_id": experiment.experiment_id,
                "candidate": experiment.candidate,
                "status": experiment.status.value,
                "stage": check.stage_index + 1 if check and check.stage_index >= 0 else None,
                "stages": len(experiment.spec.stages),
                "weights": weights,
                "decision": check.decision if check else None,
                "reason": check.reason if check else None,
                "checked_at": check.checked_at.isoformat() if check else None,
            }
        )
    if args.json:
        print_json({"service": stack.service, "experiments": rows})
        return 0
    if not rows:
        print(f"no running experiment for {stack.service}; weights {weights}")
        return 0
    print_grid(
        f"canarywise status: {stack.service}",
        ["experiment", "candidate", "status", "stage", "weights", "decision", "checked at"],
        [
            [r["experiment_id"], r["candidate"], r["status"], f"{r['stage']}/{r['stages']}", r["weights"],
             r["decision"], r["checked_at"]]
            for r in rows
        ],
    )  # fmt: skip
    for row in rows:
        print(f"{row['experiment_id']}: {row['decision']}: {row['reason']}")
    return 0


def _weights(stack: Stack) -> str:
    from canarywise.data.traffic import TrafficSplit

    env = stack.traffic_environment
    split = TrafficSplit(
        env["LISTENER_RULE_ARN"], env["CONTROL_TARGET_GROUP_ARN"], env["CANARY_TARGET_GROUP_ARN"]
    )
    weights = split.current_weights()
    return f"control {weights.control} / canary {weights.canary}"


# -- approve ---------------------------------------------------------------------------------------------
def _awaiting(stack: Stack, experiment_id: str | None) -> str:
    from canarywise.data.models import ExperimentStatus

    if experiment_id:
        return experiment_id
    ready = [
        e.experiment_id
        for e in stack.registry().list_running(stack.service)
        if e.status is ExperimentStatus.READY_FOR_APPROVAL
    ]
    if len(ready) != 1:
        raise OperatorError(
            f"{len(ready)} experiments of {stack.service} await approval ({', '.join(ready) or 'none'}); "
            "name the experiment"
        )
    return str(ready[0])


def run_approve(args: argparse.Namespace) -> int:
    stack = _stack(args)
    experiment_id = _awaiting(stack, args.experiment)
    if "PipelineName" in stack.outputs:
        how = _approve_in_pipeline(stack.output("PipelineName"), args.comment)
    else:
        # No pipeline (the local endpoint has none): start what the approval would, the promote state machine.
        how = _promote(stack.output("PromoteStateMachineArn"), experiment_id)
    result = {"experiment_id": experiment_id, "approved": True, "how": how}
    print_json(result) if args.json else print_table("canarywise approve", list(result.items()))
    return 0


def _approve_in_pipeline(pipeline: str, comment: str) -> str:
    from canarywise.data._aws import client

    codepipeline = client("codepipeline")
    for stage in codepipeline.get_pipeline_state(name=pipeline).get("stageStates", []):
        for action in stage.get("actionStates", []):
            latest = action.get("latestExecution", {})
            if latest.get("status") == "InProgress" and latest.get("token"):
                codepipeline.put_approval_result(
                    pipelineName=pipeline,
                    stageName=stage["stageName"],
                    actionName=action["actionName"],
                    result={"summary": comment[:512], "status": "Approved"},
                    token=latest["token"],
                )
                return f"approved {pipeline}/{stage['stageName']}/{action['actionName']} in CodePipeline"
    raise OperatorError(f"pipeline {pipeline!r} has no approval waiting")


def _promote(state_machine_arn: str, experiment_id: str) -> str:
    import time

    from canarywise.data._aws import client

    stepfunctions = client("stepfunctions")
    execution = stepfunctions.start_execution(
        stateMachineArn=state_machine_arn,
        name=f"approve-{experiment_id}"[:80],
        input=json.dumps({"experiment_id": experiment_id}),
    )["executionArn"]
    for _ in range(600):
        status = stepfunctions.describe_execution(executionArn=execution)["status"]
        if status != "RUNNING":
            if status != "SUCCEEDED":
                raise OperatorError(f"the promote state machine ended {status}: {execution}")
            return f"no pipeline on this endpoint: started the promote state machine ({status})"
        time.sleep(0.1)
    raise OperatorError(f"the promote state machine is still running: {execution}")


# -- rollback --------------------------------------------------------------------------------------------
def run_rollback(args: argparse.Namespace) -> int:
    from canarywise.data._aws import client

    stack = _stack(args)
    event: dict[str, Any] = {"source": "cli", "reason": args.reason}
    if args.experiment:
        event["experiment_id"] = args.experiment
    response = client("lambda").invoke(
        FunctionName=stack.output("RollbackFunctionName"), Payload=json.dumps(event).encode()
    )
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        raise OperatorError(
            f"the rollback function failed: {payload.get('errorType')}: {payload.get('errorMessage')}"
        )
    if args.json:
        print_json(payload)
    else:
        print_table(
            "canarywise rollback",
            [(k, json.dumps(v) if isinstance(v, dict | list) else v) for k, v in payload.items()],
        )
    return 0


# -- report ----------------------------------------------------------------------------------------------
def run_report(args: argparse.Namespace) -> int:
    from canarywise.demo.report import write_report

    stack = _stack(args)
    folder = write_report(stack.registry(), args.experiment, args.out / args.experiment)
    paths = {
        "markdown": str(folder / "report.md"),
        "html": str(folder / "report.html"),
        "plot": str(folder / "effect.png"),
    }
    print_json(paths) if args.json else print_table(
        f"canarywise report: {args.experiment}", list(paths.items())
    )
    return 0
