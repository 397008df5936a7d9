"""``canarywise status --watch`` and ``--exit-code``, ``canarywise list`` and ``canarywise history``.

    canarywise status --service S --watch [--interval 30]   # the live panel until the rollout ends
    canarywise status --service S --exit-code                # exit code = where the rollout stands
    canarywise list                                          # every canarywise service in the region
    canarywise history --service S [--json]                  # past experiments, outcome, registry FDR

Status exit codes (with ``--exit-code``; a pipeline branches on them):

    0   steady: all traffic on the live slot, the last rollout (if any) promoted
    10  a rollout is in progress (the ladder runs or is paused, or a promotion is moving traffic)
    11  awaiting approval
    12  rolled back: a rollback is moving traffic back, or the last rollout was rolled back
    13  the listener rule does not forward what the registry asks (a transition in flight, or a hand edit)
    1   the state could not be read (the one line says why)
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from canarywise.cli.deployment import OperatorError, Stack, add_stack_arguments, aws_errors, forward_text
from canarywise.cli.output import make_console, print_grid, print_json

if TYPE_CHECKING:
    from canarywise.cli.deployment import Snapshot
    from canarywise.data.models import Experiment

EXIT_STEADY = 0
EXIT_ROLLING_OUT = 10
EXIT_AWAITING_APPROVAL = 11
EXIT_ROLLED_BACK = 12
EXIT_RULE_MISMATCH = 13
STACK_PREFIX = "canarywise-"
_LIST_COLUMNS = ("service", "phase", "live", "forward", "experiment_id", "status", "decision")


def status_code(snapshot: Snapshot) -> int:
    """The ``--exit-code`` of a service's state (module docstring)."""
    from canarywise.lifecycle.table import Event, Phase

    state = snapshot.state
    if state is None:
        return EXIT_STEADY
    asked = {s: w for s, w in state.forward.items() if w > 0}
    if asked != {s: w for s, w in snapshot.rule.items() if w > 0}:
        return EXIT_RULE_MISMATCH
    if state.phase in (Phase.ROLLING_OUT, Phase.PAUSED, Phase.PROMOTING):  # a paused rollout is in progress
        return EXIT_ROLLING_OUT
    if state.phase is Phase.AWAITING_APPROVAL:
        return EXIT_AWAITING_APPROVAL
    if state.phase is Phase.ROLLING_BACK or state.last_event in (Event.ROLL_BACK, Event.ROLLED_BACK):
        return EXIT_ROLLED_BACK
    return EXIT_STEADY


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--exit-code", action="store_true", help="exit 0/10/11/12/13 by where the rollout stands (see docs)"
    )
    parser.add_argument("--watch", action="store_true", help="redraw the live panel until the rollout ends")
    parser.add_argument(
        "--interval", type=float, default=30.0, help="with --watch: seconds between reads (default 30)"
    )


# Between two reads of --watch (a test replaces it).
_sleep = time.sleep


def watch(args: argparse.Namespace) -> int:
    """Redraw the service's panel every ``--interval`` seconds until nothing is in progress; return the
    final state's exit code. Piped, print one line per change instead of a panel."""
    from rich.live import Live

    stack = Stack.of(args)
    console = make_console()
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    if live is not None:
        live.start()
    last_line = ""
    watched: str | None = None
    try:
        while True:
            with aws_errors(f"could not read the state of {stack.service}"):
                snapshot = stack.snapshot()
                experiment = _current(snapshot)
                if experiment is None and watched is not None:  # it ended: say how
                    experiment = snapshot.registry.get_experiment(watched)
            watched = experiment.experiment_id if experiment is not None else None
            code = status_code(snapshot)
            if live is not None:
                live.update(panel(stack.service, snapshot, experiment), refresh=True)
            else:
                line = status_line(stack.service, snapshot, experiment)
                if line != last_line:
                    print(line, flush=True)
                    last_line = line
            if code not in (EXIT_ROLLING_OUT, EXIT_AWAITING_APPROVAL):
                return code
            _sleep(args.interval)
    finally:
        if live is not None:
            live.stop()


def _current(snapshot: Snapshot) -> Experiment | None:
    state = snapshot.state
    if state is None or not state.experiment_id:
        return None
    return snapshot.registry.get_experiment(state.experiment_id)


def status_line(service: str, snapshot: Snapshot, experiment: Experiment | None) -> str:
    """One line: phase, forward, the experiment's stage and latest decision."""
    state = snapshot.state
    if state is None:
        return f"{service}: no rollout yet; rule forwards {forward_text(snapshot.rule)}"
    parts = [f"{service}: {state.phase.value}", f"forward {forward_text(snapshot.rule, state)}"]
    if experiment is not None:
        parts.append(f"experiment {experiment.experiment_id} ({experiment.status.value})")
        check = experiment.latest_check
        if check is not None:
            parts.append(f"stage {check.stage_index + 1}/{len(experiment.spec.stages)}")
            parts.append(f"{check.decision} at {check.checked_at:%Y-%m-%d %H:%M} UTC: {check.reason}")
    return "; ".join(parts)


def panel(service: str, snapshot: Snapshot, experiment: Experiment | None) -> Any:
    """The demo's live panel (``demo.live.metric_rows``) for a real rollout: the latest check's metrics."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    from canarywise.decision.models import MetricFinding
    from canarywise.demo.live import metric_rows

    header = Text(status_line(service, snapshot, None))
    parts: list[Any] = [header]
    if experiment is not None and experiment.latest_check is not None:
        check = experiment.latest_check
        findings = [MetricFinding.from_dict(f) for f in check.details.get("findings", [])]
        table = Table(expand=True, show_edge=False, pad_edge=False)
        for column in ("metric", "n control", "n canary", "estimate", "confidence sequence", "verdict"):
            table.add_column(column, justify="left" if column in ("metric", "verdict") else "right")
        for row in metric_rows(experiment.spec, findings):
            table.add_row(*row)
        parts += [
            Text(f"experiment {experiment.experiment_id} ({experiment.status.value}), candidate "
                 f"{experiment.candidate}, stage {check.stage_index + 1}/{len(experiment.spec.stages)}"),
            table,
            Text(f"{check.decision} at {check.checked_at:%H:%M} UTC: {check.reason}", style="bold"),
        ]  # fmt: skip
    return Panel(Group(*parts), title=f"canarywise status --watch: {service}", border_style="blue")


# -- list --------------------------------------------------------------------------------------------------
def run_list(args: argparse.Namespace) -> int:
    """Every ``canarywise-*`` stack in the region: its service's phase, forward and experiment."""
    from canarywise.data._aws import client

    rows = []
    with aws_errors("could not list the stacks"):
        paginator = client("cloudformation").get_paginator("describe_stacks")
        stacks = [s for page in paginator.paginate() for s in page["Stacks"]]
    for described in sorted(stacks, key=lambda s: s["StackName"]):
        name = described["StackName"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
        if not name.startswith(STACK_PREFIX) or "RegistryTableName" not in outputs:
            continue
        service = name.removeprefix(STACK_PREFIX)
        stack = Stack(service=service, name=name)
        stack.__dict__["outputs"] = outputs  # already read: no second DescribeStacks per stack
        try:
            with aws_errors(f"could not read {service}"):
                snapshot = stack.snapshot()
                experiment = _current(snapshot)
            state = snapshot.state
            check = experiment.latest_check if experiment else None
            rows.append(
                {
                    "service": service,
                    "phase": state.phase.value if state else "no rollout yet",
                    "live": state.live if state else None,
                    "forward": forward_text(snapshot.rule, state),
                    "experiment_id": experiment.experiment_id if experiment else None,
                    "status": experiment.status.value if experiment else None,
                    "decision": check.decision if check else None,
                    "exit_code": status_code(snapshot),
                }
            )
        except OperatorError as exc:
            rows.append(dict.fromkeys(_LIST_COLUMNS) | {"service": service, "phase": f"unreadable: {exc}",
                                                        "exit_code": 1})  # fmt: skip
    if args.json:
        print_json({"services": rows})
        return 0
    columns = ["service", "phase", "live", "forward", "experiment_id", "status", "decision"]
    print_grid(
        f"canarywise list: {len(rows)} service(s)", columns, [[r[c] or "" for c in columns] for r in rows]
    )
    return 0


# -- history -----------------------------------------------------------------------------------------------
def run_history(args: argparse.Namespace) -> int:
    """The service's experiments, newest first: outcome, how long, the p-value and the registry's BH."""
    stack = Stack.of(args)
    with aws_errors(f"could not read the history of {stack.service}"):
        experiments = stack.registry().experiments_of(stack.service)
    rows = [_history_row(e) for e in experiments]
    if args.json:
        print_json({"service": stack.service, "experiments": rows})
        return 0
    columns = [
        "experiment_id",
        "candidate",
        "outcome",
        "started",
        "hours",
        "pvalue",
        "bh_adjusted",
        "discovery",
    ]
    print_grid(
        f"canarywise history: {stack.service} ({len(rows)} experiments)",
        columns,
        [["" if r[c] is None else r[c] for c in columns] for r in rows],
    )
    return 0


def _history_row(e: Experiment) -> dict[str, Any]:
    end = e.concluded_at
    return {
        "experiment_id": e.experiment_id,
        "candidate": e.candidate,
        "outcome": e.status.value,
        "started": e.created_at.strftime("%Y-%m-%d %H:%M"),
        "concluded": end.strftime("%Y-%m-%d %H:%M") if end else None,
        "hours": round((end - e.created_at).total_seconds() / 3600, 2) if end else None,
        "pvalue": e.pvalue,
        "bh_adjusted": e.adjusted_pvalue,
        "discovery": None if e.fdr_rejected is None else ("yes" if e.fdr_rejected else "no"),
    }


def register(subparsers: Any) -> None:
    """Add ``canarywise list`` and ``canarywise history`` (``status``'s options: `add_status_arguments`)."""
    listing = subparsers.add_parser("list", help="every canarywise service in the region: phase, rollout")
    listing.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    listing.set_defaults(func=run_list)
    history = subparsers.add_parser(
        "history", help="a service's past experiments: outcome, duration, p-value, registry FDR"
    )
    add_stack_arguments(history)
    history.set_defaults(func=run_history)
