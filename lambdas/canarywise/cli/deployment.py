"""What the operator commands share: the deployed stack, the service, who is acting, and asking first.

Every command that touches AWS names its service (``--service``, else ``$CANARYWISE_SERVICE``, else
``$SERVICE``): there is no default, so an operator can never act on a service they did not mean. The stack's
resources come from its CloudFormation outputs (stack ``canarywise-<service>``) and from the rollback
function's environment (the listener rule and the target groups, ``TARGET_GROUPS``). Commands that move
traffic ask for confirmation unless ``--yes``, and refuse without a terminal to ask on.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, TextIO

from canarywise.cli.main import EXIT_NOT_CONFIRMED, UsageError
from canarywise.errors import CanarywiseError

if TYPE_CHECKING:
    from canarywise.data.models import Experiment
    from canarywise.data.registry import Registry
    from canarywise.data.traffic import TrafficSplit
    from canarywise.lifecycle.state import ServiceState

SERVICE_VARIABLES = ("CANARYWISE_SERVICE", "SERVICE")
UNTOUCHED = "traffic untouched"  # how every refusal ends: a refused command moved nothing


class OperatorError(CanarywiseError, RuntimeError):
    """The stack, the experiment or a resource the command needs was not found, or AWS refused the call;
    or the command refused to act. The message is one line and says which."""


class NotConfirmedError(OperatorError):
    """The operator did not confirm (or could not be asked): nothing was done."""

    exit_code = EXIT_NOT_CONFIRMED


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """``--service``, ``--stack``, ``--table``, ``--json``: the options of every command that touches AWS."""
    parser.add_argument("--service", help="the service (required; or set $CANARYWISE_SERVICE, or $SERVICE)")
    parser.add_argument("--stack", help="the CloudFormation stack (default: canarywise-<service>)")
    parser.add_argument(
        "--table", help="the registry table (default: $REGISTRY_TABLE, else the stack's output)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")


def add_confirmation_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation (scripts, CI)")


def service_of(args: argparse.Namespace) -> str:
    """The service the command acts on: ``--service``, else the first of `SERVICE_VARIABLES` that is set."""
    service = args.service or next(
        (os.environ[name] for name in SERVICE_VARIABLES if os.environ.get(name)), None
    )
    if not service:
        raise UsageError("--service is required (or set $CANARYWISE_SERVICE)")
    return str(service)


@dataclass(frozen=True)
class Snapshot:
    """Where a service stands: its registry, its lifecycle state (None before the first rollout), the rule."""

    registry: Registry
    state: ServiceState | None
    rule: dict[str, int]  # slot → weight, as ELBv2 says now


@dataclass
class Stack:
    """The deployed stack's resources, from its outputs (and the rollback function's environment)."""

    service: str
    name: str
    table_override: str | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> Stack:
        service = service_of(args)
        return cls(service=service, name=args.stack or f"canarywise-{service}", table_override=args.table)

    @cached_property
    def outputs(self) -> dict[str, str]:
        from canarywise.data._aws import AwsCallError, client, error_code

        try:
            stacks = client("cloudformation").describe_stacks(StackName=self.name)["Stacks"]
        except AwsCallError as exc:
            if error_code(exc) == "ValidationError":  # CloudFormation's "Stack with id ... does not exist"
                raise OperatorError(
                    f"stack {self.name!r} not found; check --service, or pass --stack"
                ) from None
            raise OperatorError(f"could not read stack {self.name!r}: {error_code(exc)}: {exc}") from None
        return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}

    def output(self, key: str) -> str:
        if key not in self.outputs:
            raise OperatorError(f"stack {self.name!r} has no output {key!r}")
        return self.outputs[key]

    @property
    def table(self) -> str:
        return self.table_override or os.environ.get("REGISTRY_TABLE") or self.output("RegistryTableName")

    def registry(self) -> Registry:
        from canarywise.data.registry import Registry

        return Registry(self.table)

    @cached_property
    def rollback_environment(self) -> dict[str, str]:
        """The rollback function's environment: LISTENER_RULE_ARN and TARGET_GROUPS (slot → ARN)."""
        from canarywise.data._aws import client

        config = client("lambda").get_function_configuration(FunctionName=self.output("RollbackFunctionName"))
        variables: dict[str, str] = config.get("Environment", {}).get("Variables", {})
        return variables

    def traffic(self) -> TrafficSplit:
        """The listener rule and its slots, as the rollback function is configured."""
        from canarywise.data.traffic import TrafficSplit

        env = self.rollback_environment
        missing = [name for name in ("LISTENER_RULE_ARN", "TARGET_GROUPS") if not env.get(name)]
        if missing:
            raise OperatorError(
                f"the rollback function has no {' or '.join(missing)} in its environment: redeploy the stack"
            )
        return TrafficSplit(env["LISTENER_RULE_ARN"], json.loads(env["TARGET_GROUPS"]))

    def snapshot(self) -> Snapshot:
        """The registry, the service's lifecycle state and the rule's forward, read now."""
        registry = self.registry()
        return Snapshot(registry, registry.service_state(self.service), self.traffic().current())

    def invoke(self, output_key: str, event: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        """Invoke the function the output names; (its JSON answer, the error type when it raised)."""
        from canarywise.data._aws import client

        response = client("lambda").invoke(
            FunctionName=self.output(output_key), Payload=json.dumps(event).encode()
        )
        payload = json.loads(response["Payload"].read() or b"null") or {}
        error = (payload.get("errorType") or "Error") if response.get("FunctionError") else None
        return payload, error


def caller_identity() -> str:
    """Who is acting: the caller's ARN from STS, else (no credentials, no network) the OS user name."""
    from canarywise.data._aws import AwsCallError, client

    try:
        return str(client("sts").get_caller_identity()["Arn"])
    except AwsCallError:
        try:
            return getpass.getuser()
        except (KeyError, OSError):  # no user name in the environment nor in the password database
            return "unknown"


def confirm(question: str, *, yes: bool, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
    """Ask `question` with a y/N prompt unless `yes`; `NotConfirmedError` unless the answer is yes.

    Without a terminal (a script, CI, a pipe) there is nobody to ask: refuse rather than act.
    """
    if yes:
        return
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    if not stdin.isatty():
        raise NotConfirmedError("not confirmed: no terminal to ask on; pass --yes to act without asking")
    stdout.write(f"{question} [y/N] ")
    stdout.flush()
    if stdin.readline().strip().lower() not in {"y", "yes"}:
        raise NotConfirmedError("not confirmed: nothing changed")


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """AWS refusing a call (or being unreachable) becomes one line naming what was being done."""
    from canarywise.data._aws import AwsCallError, error_code

    try:
        yield
    except AwsCallError as exc:
        raise OperatorError(f"{what}: {error_code(exc)}: {exc}") from None


def forward_text(forward: Mapping[str, int], state: ServiceState | None = None) -> str:
    """``control 95 / canary 5``: a forward as a person reads it, the live slot first when `state` says."""
    first = [slot for slot in ((state.live, state.idle) if state else ()) if slot in forward]
    order = first + [slot for slot in forward if slot not in first]
    return " / ".join(f"{slot} {forward[slot]}" for slot in order) or "nothing"


def experiment_of(registry: Registry, service: str, experiment_id: str, *, refused: str) -> Experiment:
    """`experiment_id` of `service`, else `OperatorError`: "<refused>: why; traffic untouched"."""
    from canarywise.data.registry import ExperimentNotFoundError

    try:
        experiment = registry.get_experiment(experiment_id)
    except ExperimentNotFoundError:
        raise OperatorError(f"{refused}: no experiment {experiment_id!r}; {UNTOUCHED}") from None
    if experiment.service != service:
        raise OperatorError(
            f"{refused}: experiment {experiment_id} belongs to {experiment.service}, not {service}; "
            f"{UNTOUCHED}"
        )
    return experiment
