"""``canarywise approve``: promote a candidate, after checking it may be promoted and asking.

The command names one experiment (the argument, or the single one of the service awaiting approval) and
checks its status in the registry first: anything but READY_FOR_APPROVAL — held, rolled back, unknown,
another service's, or already approved — is refused with one line (exit 1) before anything is started, so
traffic is untouched. Then it asks (y/N: the service, the experiment, where all traffic goes) unless
``--yes``, and approves as the caller (STS identity, else the OS user): in CodePipeline when the stack has
a pipeline (the summary names the approver), otherwise — as on the local endpoint — by starting the promote
state machine the approval would start, with ``approved_by``. The promote function takes ``approve``
conditionally again before it moves any traffic, so a rollback in between still wins.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from canarywise.cli.deployment import (
    UNTOUCHED,
    OperatorError,
    Stack,
    add_confirmation_argument,
    add_stack_arguments,
    aws_errors,
    caller_identity,
    confirm,
    experiment_of,
    forward_text,
)
from canarywise.cli.main import EXIT_OK
from canarywise.cli.output import print_json, print_table

if TYPE_CHECKING:
    from canarywise.data.models import Experiment
    from canarywise.data.registry import Registry

# How long the command waits for the promote state machine (it sets the rule and reads it back: seconds).
PROMOTE_TIMEOUT_SECONDS = 120.0


def register(subparsers: Any) -> None:
    approve = subparsers.add_parser(
        "approve",
        help="promote the rollout awaiting approval: all traffic to the candidate's slot, which becomes live",
    )
    approve.add_argument(
        "experiment", nargs="?", help="the experiment (default: the service's one awaiting approval)"
    )
    approve.add_argument(
        "--comment", default="approved with canarywise approve", help="the approval's summary"
    )
    add_confirmation_argument(approve)
    add_stack_arguments(approve)
    approve.set_defaults(func=run_approve)


def run_approve(args: argparse.Namespace) -> int:
    stack = Stack.of(args)
    with aws_errors(f"could not approve for {stack.service}"):
        now = stack.snapshot()
        experiment = _awaiting_approval(now.registry, stack.service, args.experiment)
        rule = forward_text(now.rule, now.state)
        confirm(
            f"Approve {stack.service}: experiment {experiment.experiment_id} (candidate "
            f"{experiment.candidate})? The rule now forwards {rule}; ALL traffic moves to slot "
            f"{experiment.candidate_slot!r}, which becomes live.",
            yes=args.yes,
        )
        approver = caller_identity()
        if "PipelineName" in stack.outputs:
            summary = f"{args.comment} (approved by {approver})"
            how = _approve_in_pipeline(stack.output("PipelineName"), summary)
        else:
            # No pipeline (the local endpoint has none): start what the approval would, the promote machine.
            how = _promote(stack.output("PromoteStateMachineArn"), experiment.experiment_id, approver)
        state = now.registry.service_state(stack.service)
    result = {
        "experiment_id": experiment.experiment_id,
        "candidate": experiment.candidate,
        "approved_by": approver,
        "how": how,
        "live": state.live if state else None,
        "forward": forward_text(state.forward, state) if state else None,
    }
    print_json(result) if args.json else print_table("canarywise approve", list(result.items()))
    return EXIT_OK


def _awaiting_approval(registry: Registry, service: str, experiment_id: str | None) -> Experiment:
    """The experiment to approve, re-read (consistently) and checked: READY_FOR_APPROVAL, or refused."""
    from canarywise.data.models import ExperimentStatus
    from canarywise.lifecycle.table import TRANSITIONS, Event

    if experiment_id is None:
        ready = [
            e.experiment_id
            for e in registry.list_running(service)
            if e.status is ExperimentStatus.READY_FOR_APPROVAL
        ]
        if len(ready) != 1:
            which = f"{len(ready)} experiments ({', '.join(ready)}); name one" if ready else "none"
            raise OperatorError(f"approve refused: awaiting approval in {service}: {which}; {UNTOUCHED}")
        experiment_id = ready[0]
    experiment = experiment_of(registry, service, experiment_id, refused="approve refused")
    allowed = TRANSITIONS[Event.APPROVE].experiment_from
    if experiment.status not in allowed:
        needs = "/".join(sorted(allowed))
        raise OperatorError(
            f"approve refused: experiment {experiment_id} is {experiment.status} (needs {needs}); {UNTOUCHED}"
        )
    return experiment


def _approve_in_pipeline(pipeline: str, summary: str) -> str:
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
                    result={"summary": summary[:512], "status": "Approved"},
                    token=latest["token"],
                )
                return f"approved {pipeline}/{stage['stageName']}/{action['actionName']} in CodePipeline"
    raise OperatorError(f"approve refused: pipeline {pipeline!r} has no approval waiting; {UNTOUCHED}")


def _promote(state_machine_arn: str, experiment_id: str, approver: str) -> str:
    from canarywise.data._aws import client

    stepfunctions = client("stepfunctions")
    # A name per attempt: a retry after a failed promotion must not collide with the first execution.
    name = f"approve-{experiment_id}"[:64] + datetime.now(UTC).strftime("-%Y%m%dT%H%M%S")
    execution = stepfunctions.start_execution(
        stateMachineArn=state_machine_arn,
        name=name,
        input=json.dumps({"experiment_id": experiment_id, "approved_by": approver[:512]}),
    )["executionArn"]
    deadline = time.monotonic() + PROMOTE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        described = stepfunctions.describe_execution(executionArn=execution)
        if described["status"] == "SUCCEEDED":
            return "no pipeline on this endpoint: the promote state machine ran (SUCCEEDED)"
        if described["status"] != "RUNNING":
            raise OperatorError(_promote_failure(described))
        time.sleep(0.1)
    raise OperatorError(
        f"the promote state machine is still running after {PROMOTE_TIMEOUT_SECONDS:g} s: {execution}"
    )


def _promote_failure(described: dict[str, Any]) -> str:
    """One line: the promote function's own refusal, or how the execution ended."""
    error, cause = described.get("error", ""), described.get("cause", "")
    try:
        details = json.loads(cause)
    except ValueError:
        details = None
    if isinstance(details, dict):  # a Lambda error: {"errorType": ..., "errorMessage": ..., ...}
        error, cause = details.get("errorType", error), details.get("errorMessage", cause)
    message = " ".join(str(cause).split())
    if error == "PromoteRefusedError":
        return message
    return f"the promote state machine ended {described['status']}: {error}: {message}"
