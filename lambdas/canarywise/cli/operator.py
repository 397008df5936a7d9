"""The operator commands that only read: ``canarywise status``, ``report`` and ``lifecycle``.

``status`` and ``report`` work against any endpoint: real AWS with your credentials, or the local one of
``canarywise demo --serve`` (``AWS_ENDPOINT_URL=http://127.0.0.1:PORT``); they need the service
(`canarywise.cli.deployment`). ``lifecycle`` needs no AWS: it prints the table of transitions every
service's traffic moves through. The commands that move traffic are ``approve`` and ``rollback``
(`canarywise.cli.approve`, `canarywise.cli.rollback`).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canarywise.cli.deployment import Stack, add_stack_arguments, aws_errors, forward_text
from canarywise.cli.drift_status import drift_rows, drift_status
from canarywise.cli.output import print_json, print_table
from canarywise.cli.watch import add_status_arguments, status_code, watch

if TYPE_CHECKING:
    from canarywise.data.models import Experiment, StageStart
    from canarywise.data.registry import Registry
    from canarywise.lifecycle.state import ServiceState

LIFECYCLE_FIELDS = (
    "event",
    "service_from",
    "service_to",
    "experiment_from",
    "experiment_to",
    "traffic",
    "who",
)


def register(subparsers: Any) -> None:
    status = subparsers.add_parser(
        "status",
        help="the service's lifecycle: live and idle slot, phase, the rule's forward, the rollout going on",
    )
    add_stack_arguments(status)
    add_status_arguments(status)
    status.set_defaults(func=run_status)

    report = subparsers.add_parser(
        "report", help="write an experiment's report (Markdown, HTML, effect plot)"
    )
    report.add_argument("experiment", help="the experiment id")
    report.add_argument("--out", type=Path, default=Path("reports"), help="folder (default reports/)")
    add_stack_arguments(report)
    report.set_defaults(func=run_report)

    lifecycle = subparsers.add_parser(
        "lifecycle", help="the release lifecycle: every allowed transition and what it does to traffic"
    )
    lifecycle.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    lifecycle.set_defaults(func=run_lifecycle)


# -- status ----------------------------------------------------------------------------------------------
def run_status(args: argparse.Namespace) -> int:
    if args.watch:
        code = watch(args)
        return code if args.exit_code else 0
    stack = Stack.of(args)
    if "RollbackFunctionName" not in stack.outputs and "MonitorFunctionName" in stack.outputs:
        return _monitor_only_status(args, stack)  # mode monitor: no traffic, no rollouts
    with aws_errors(f"could not read the state of {stack.service}"):
        now = stack.snapshot()
        state, rule = now.state, now.rule
        experiment = (
            _experiment_row(now.registry, state.experiment_id) if state and state.experiment_id else None
        )
        drift = drift_status(now.registry, stack.service, datetime.now(UTC))
    matches = _same_forward(state.forward, rule) if state else None
    code = status_code(now)
    exit_code = code if args.exit_code else 0
    if args.json:
        print_json(
            {
                "service": stack.service,
                "state": state.model_dump(mode="json") if state else None,
                "rule_forward": rule,
                "forward_matches": matches,
                "experiment": experiment,
                "exit_code": code,
                "drift": drift,
            }
        )
        return exit_code
    print_table(f"canarywise status: {stack.service}", _state_rows(state, rule, matches))
    if experiment is not None:
        print_table("in progress", [(name.replace("_", " "), value) for name, value in experiment.items()])
    if drift is not None:
        print_table("drift monitor", drift_rows(drift))
    if state is not None and not matches:
        print(
            f"the rule forwards {forward_text(rule, state)}, the registry asks for "
            f"{forward_text(state.forward, state)}: "
            "a transition is in flight, or the rule was changed by hand"
        )
    return exit_code


def _monitor_only_status(args: argparse.Namespace, stack: Stack) -> int:
    with aws_errors(f"could not read the drift monitor of {stack.service}"):
        drift = drift_status(stack.registry(), stack.service, datetime.now(UTC))
    if args.json:
        print_json({"service": stack.service, "drift": drift})
    elif drift is None:
        print(f"canarywise status: {stack.service}: the drift monitor has not looked yet")
    else:
        print_table(f"canarywise status: {stack.service} (drift monitor)", drift_rows(drift))
    return 0


def _state_rows(
    state: ServiceState | None, rule: dict[str, int], matches: bool | None
) -> list[tuple[str, Any]]:
    if state is None:
        return [
            ("phase", "no lifecycle state yet (the first rollout takes the live slot from the rule)"),
            ("rule forward", forward_text(rule)),
        ]
    return [
        ("phase", state.phase.value),
        ("live slot", state.live),
        ("idle slot", state.idle),
        ("version", state.version),
        ("registry forward", forward_text(state.forward, state)),
        ("rule forward", forward_text(rule, state)),
        ("rule matches registry", "yes" if matches else "NO"),
        ("last event", f"{state.last_event} by {state.updated_by or 'unknown'}"),
        ("updated at", state.updated_at.isoformat()),
    ]


def _same_forward(asked: dict[str, int], rule: dict[str, int]) -> bool:
    """The rule sends traffic exactly where the registry asked (a slot at weight 0 receives nothing)."""
    return {s: w for s, w in asked.items() if w > 0} == {s: w for s, w in rule.items() if w > 0}


def _experiment_row(registry: Registry, experiment_id: str) -> dict[str, Any]:
    experiment: Experiment = registry.get_experiment(experiment_id)
    stages = registry.stage_history(experiment_id)
    check = experiment.latest_check
    return {
        "experiment_id": experiment.experiment_id,
        "candidate": experiment.candidate,
        "candidate_slot": experiment.candidate_slot,
        "status": experiment.status.value,
        "stage": _stage_text(stages[-1], len(experiment.spec.stages)) if stages else None,
        "decision": check.decision if check else None,
        "reason": check.reason if check else None,
        "checked_at": check.checked_at.isoformat() if check else None,
    }


def _stage_text(stage: StageStart, count: int) -> str:
    return f"{stage.stage_index + 1}/{count} ({stage.weights.canary}% on the candidate)"


# -- report ----------------------------------------------------------------------------------------------
def run_report(args: argparse.Namespace) -> int:
    from canarywise.report import write_report

    stack = Stack.of(args)
    with aws_errors(f"could not read experiment {args.experiment}"):
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


# -- lifecycle -------------------------------------------------------------------------------------------
def run_lifecycle(args: argparse.Namespace) -> int:
    from canarywise.lifecycle.table import table_rows

    rows = table_rows()
    if args.json:
        print_json({"transitions": [dict(zip(LIFECYCLE_FIELDS, row, strict=True)) for row in rows]})
        return 0
    # One block per transition, read top to bottom: seven columns do not fit a terminal's width.
    print("canarywise lifecycle: every allowed transition of a service (phase) and its experiment (status)\n")
    width = max(len(row[0]) for row in rows) + 2
    for event, service_from, service_to, experiment_from, experiment_to, traffic, who in rows:
        print(f"{event:<{width}}service     {service_from} → {service_to}")
        print(f"{'':<{width}}experiment  {experiment_from} → {experiment_to}")
        print(f"{'':<{width}}traffic     {traffic}")
        print(f"{'':<{width}}taken by    {who}\n")
    return 0
