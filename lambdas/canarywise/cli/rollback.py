"""``canarywise rollback``: every user back on the live slot, on purpose, after saying what will happen.

Before it asks or acts, the command reads the service's lifecycle state and the experiment from the registry:

- no rollout in progress: ``nothing to roll back`` (exit 3), nothing moves; ``--force`` returns all
  traffic to the live slot anyway (the lifecycle's ``force_live``), after confirmation;
- ``--experiment`` that does not exist, belongs to another service, or was promoted: one line (exit 1),
  nothing moves; one that is already rolled back: nothing to roll back (exit 3).

Then it asks (y/N: the service, the experiment, what happens to traffic) unless ``--yes``, and invokes the
rollback function with the experiment it named — never "whatever is running by then" — and the caller's
identity as ``actor``. The function re-checks everything under the lifecycle's fencing (a refusal there is
one line too), stops that experiment's execution, sets the rule, reads it back, and records who acted.
"""

from __future__ import annotations

import argparse
import json
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
from canarywise.cli.main import EXIT_NOTHING_TO_DO, EXIT_OK
from canarywise.cli.output import print_json, print_table

if TYPE_CHECKING:
    from canarywise.data.models import Experiment
    from canarywise.lifecycle.state import ServiceState

NOTHING_TO_ROLL_BACK = "NOTHING_TO_ROLL_BACK"


def register(subparsers: Any) -> None:
    rollback = subparsers.add_parser(
        "rollback",
        help="roll back the rollout in progress: all traffic to the live slot, stop it, record who acted",
    )
    rollback.add_argument("--reason", required=True, help="why (recorded in the registry and the alert)")
    which = rollback.add_mutually_exclusive_group()
    which.add_argument("--experiment", help="the experiment (default: the service's rollout in progress)")
    which.add_argument(
        "--force",
        action="store_true",
        help="with no rollout in progress, return all traffic to the live slot anyway",
    )
    add_confirmation_argument(rollback)
    add_stack_arguments(rollback)
    rollback.set_defaults(func=run_rollback)


def run_rollback(args: argparse.Namespace) -> int:
    stack = Stack.of(args)
    with aws_errors(f"could not roll back {stack.service}"):
        now = stack.snapshot()
        state, rule = now.state, now.rule
        experiment_id = args.experiment or (state.experiment_id if state else None)
        experiment = (
            experiment_of(now.registry, stack.service, experiment_id, refused="rollback refused")
            if experiment_id
            else None
        )
        nothing = _nothing_to_roll_back(stack.service, experiment, state, rule, force=args.force)
        if nothing:
            return _report_nothing(nothing, args.json)
        confirm(_question(stack.service, experiment, state, rule), yes=args.yes)
        event: dict[str, Any] = {
            "source": "cli",
            "reason": args.reason,
            "force": args.force,
            "actor": caller_identity(),
        }
        if experiment is not None:
            event["experiment_id"] = experiment.experiment_id
        payload, error = stack.invoke("RollbackFunctionName", event)
    if error:
        raise OperatorError(_refusal(error, payload))
    if payload.get("outcome") == NOTHING_TO_ROLL_BACK:
        return _report_nothing(str(payload.get("reason")), args.json)
    if args.json:
        print_json(payload)
    else:
        print_table("canarywise rollback", [(k, _text(v)) for k, v in payload.items()])
    return EXIT_OK


def _nothing_to_roll_back(
    service: str,
    experiment: Experiment | None,
    state: ServiceState | None,
    rule: dict[str, int],
    *,
    force: bool,
) -> str | None:
    """Why there is nothing to roll back (None: there is something, or `force` acts anyway)."""
    from canarywise.data.models import ExperimentStatus
    from canarywise.lifecycle.table import TRANSITIONS, Event

    if experiment is None:
        if force:
            return None
        live = f"the live slot is {state.live!r}, " if state else ""
        return (
            f"nothing to roll back: no rollout of {service} is in progress ({live}the rule forwards "
            f"{forward_text(rule, state)}); {UNTOUCHED}; --force returns all traffic to the live slot anyway"
        )
    if experiment.status is ExperimentStatus.PROMOTED:
        raise OperatorError(
            f"rollback refused: experiment {experiment.experiment_id} was promoted ({experiment.candidate} "
            f"is live); release the previous version as a new candidate instead; {UNTOUCHED}"
        )
    can_roll_back = TRANSITIONS[Event.ROLL_BACK].experiment_from | {ExperimentStatus.ROLLING_BACK}
    if experiment.status not in can_roll_back:
        return (
            f"nothing to roll back: experiment {experiment.experiment_id} is {experiment.status}; {UNTOUCHED}"
        )
    return None


def _question(
    service: str, experiment: Experiment | None, state: ServiceState | None, rule: dict[str, int]
) -> str:
    live = repr(state.live) if state else "the slot with the most traffic"
    now = f"the rule now forwards {forward_text(rule, state)}"
    if experiment is None:
        return (
            f"No rollout of {service} is in progress; {now}. Force ALL traffic of {service} to the live "
            f"slot {live}?"
        )
    return (
        f"Roll back {service}: experiment {experiment.experiment_id} (candidate {experiment.candidate}, "
        f"{experiment.status}); {now}. Stop it and send ALL traffic to the live slot {live}?"
    )


def _report_nothing(reason: str, as_json: bool) -> int:
    if as_json:
        print_json({"outcome": NOTHING_TO_ROLL_BACK, "reason": reason})
    else:
        print(reason)
    return EXIT_NOTHING_TO_DO


def _refusal(error_type: str, payload: dict[str, Any]) -> str:
    """The function's error as one line: its own message for a refusal, otherwise the type too."""
    message = " ".join(str(payload.get("errorMessage", "")).split())
    if error_type == "RollbackRefusedError":
        return message
    return f"the rollback function failed: {error_type}: {message}"


def _text(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value
