"""``canarywise demo``: a whole rollout on an embedded local AWS (moto on 127.0.0.1), in accelerated time.

Without ``--scenario`` it runs the default pair: a regression rolled back, then a healthy candidate promoted.
``--scenario release-train`` plays three releases in a row on one local AWS (promoted, rolled back,
promoted). Exit status 0 when every scenario ended as it should, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from canarywise.cli.output import print_json

HELP = "run a whole rollout on a local AWS (moto on 127.0.0.1) in accelerated time, with a report"


def register(subparsers: Any) -> None:
    from canarywise.demo.drift import NAME as DRIFT
    from canarywise.demo.drift import TITLE as DRIFT_TITLE
    from canarywise.demo.release_train import NAME as TRAIN
    from canarywise.demo.release_train import TITLE as TRAIN_TITLE
    from canarywise.demo.scenarios import DEFAULT_SCENARIOS, SCENARIOS

    parser = subparsers.add_parser(
        "demo",
        help=HELP,
        description=(
            "Starts moto in server mode on a free 127.0.0.1 port, creates the stack's resources from the "
            "synthesized template, starts the real canary state machine and plays simulated traffic in "
            "five-minute ticks; the real handlers run in-process. Nothing reaches the network. Scenarios: "
            + "; ".join(
                [
                    *(f"{name}: {s.title}" for name, s in SCENARIOS.items()),
                    f"{TRAIN}: {TRAIN_TITLE}",
                    f"{DRIFT}: {DRIFT_TITLE}",
                ]
            )
        ),
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted([*SCENARIOS, TRAIN, DRIFT]),
        metavar="NAME",
        help=f"a scenario to run (repeatable; default: {' then '.join(DEFAULT_SCENARIOS)}, with approval)",
    )
    parser.add_argument(
        "--approve",
        action="store_true",
        help="approve a rollout that reaches READY_FOR_APPROVAL (stands in for the CodePipeline approval: "
        "starts the promote state machine)",
    )
    parser.add_argument("--seed", type=int, default=7, help="the simulation's seed (default 7)")
    parser.add_argument(
        "--spec",
        type=Path,
        help="use this rollout spec file as it is (e.g. config/mangaassist.yaml, its full 76-hour ladder) "
        "instead of the scenario's spec with the demo's short ladder",
    )
    parser.add_argument(
        "--reports", type=Path, default=Path("reports"), help="report folder (default reports/)"
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="after the last scenario keep the local AWS running (Ctrl-C stops it) and print how to point "
        "the operator commands (canarywise status / approve / rollback / report) at it",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--plain", action="store_true", help="plain progress lines instead of the live panel")
    output.add_argument("--json", action="store_true", help="no progress; one JSON object with the outcomes")
    parser.set_defaults(func=run)


def _serve(aws: Any, deployment: Any, result: Any) -> None:
    """Keep the local AWS up until Ctrl-C, saying how to reach it."""
    import threading

    print(
        "\nThe local AWS stays up until Ctrl-C. In another shell:\n"
        f"  export AWS_ENDPOINT_URL={aws.endpoint} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        "AWS_DEFAULT_REGION=us-east-1\n"
        f"  canarywise status --service {deployment.service}\n"
        f"  canarywise report {result.experiment_id} --service {deployment.service}\n",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from canarywise.demo.live import LineProgress, LiveProgress
    from canarywise.demo.local_run import QuietProgress
    from canarywise.demo.runner import run_scenario
    from canarywise.demo.scenarios import DEFAULT_SCENARIOS, SCENARIOS

    names = args.scenario or list(DEFAULT_SCENARIOS)
    approve = args.approve or not args.scenario  # the default run shows the healthy candidate promoted
    console = Console(file=sys.stdout)
    if not console.is_terminal:
        console = Console(file=sys.stdout, width=140, highlight=False)
    results = []
    trains_ok = True
    for position, name in enumerate(names):
        serve = _serve if args.serve and position == len(names) - 1 else None
        if args.json:
            progress: Any = QuietProgress()
        elif args.plain or not console.is_terminal:
            progress = LineProgress(console)
        else:
            progress = LiveProgress(console)
        if name == "release-train":
            trains_ok = _release_train(args, progress, console) and trains_ok
            continue
        if name == "drift":
            trains_ok = _drift(args, console) and trains_ok
            continue
        results.append(
            run_scenario(
                SCENARIOS[name],
                seed=args.seed,
                approve=approve,
                spec_path=args.spec,
                progress=progress,
                reports_dir=args.reports,
                after=serve,
            )
        )
    if args.json and results:
        print_json(
            {
                "scenarios": [
                    {
                        "scenario": r.scenario,
                        "outcome": r.outcome,
                        "expected": r.expected,
                        "as_expected": r.as_expected,
                        "experiment_id": r.experiment_id,
                        "decision": r.decision,
                        "reason": r.reason,
                        "decision_hours": r.decision_hours,
                        "simulated_hours": r.simulated_hours,
                        "checks": r.ticks,
                        "wall_seconds": r.wall_seconds,
                        "report": str(r.report_dir) if r.report_dir else None,
                    }
                    for r in results
                ]
            }
        )
    elif len(results) > 1:
        from canarywise.cli.output import print_grid

        print_grid(
            "canarywise demo",
            ["scenario", "outcome", "expected", "decided after (h)", "checks", "wall s", "report"],
            [
                [
                    r.scenario,
                    r.outcome,
                    r.expected,
                    round(r.decision_hours, 1) if r.decision_hours is not None else None,
                    r.ticks,
                    round(r.wall_seconds, 1),
                    str(r.report_dir / "report.md") if r.report_dir else "",
                ]
                for r in results
            ],
            console=console,
        )
    return 0 if trains_ok and all(r.as_expected for r in results) else 1


def _drift(args: argparse.Namespace, console: Any) -> bool:
    """Run the drift scenario (canarywise.demo.drift); print its findings (or one JSON object)."""
    from canarywise.demo.drift import run_drift_demo

    say = (lambda _line: None) if args.json else (lambda line: console.print(line, markup=False))
    result = run_drift_demo(seed=args.seed, say=say)
    summary = {
        "scenario": "drift",
        "ok": result.as_expected,
        "stationary_hours": result.stationary_hours,
        "stationary_alarms": result.stationary_alarms,
        "stationary_findings": result.stationary_findings,
        "alarm_hours_after_onset": result.alarm_hours,
        "findings": result.findings,
        "alert_messages": result.messages,
        "looks": result.looks,
        "wall_seconds": round(result.wall_seconds, 1),
    }
    if args.json:
        print_json(summary)
        return result.as_expected
    for finding in result.findings:
        console.print(f"  drift record {finding['detected_at']}: {finding['summary']}", markup=False)
    console.print(
        f"drift: {'ok' if result.as_expected else 'FAILED'}: {result.stationary_hours} stationary hours, "
        f"{result.stationary_alarms} alarms; the campaign's alarm {result.alarm_hours} h after its onset; "
        f"{result.wall_seconds:.0f} s wall time",
        markup=False,
    )
    return result.as_expected


def _release_train(args: argparse.Namespace, progress: Any, console: Any) -> bool:
    """Run the release train; print each release and each check (or one JSON object); True if it held."""
    from canarywise.cli.output import print_grid
    from canarywise.demo.release_train import run_release_train

    result = run_release_train(seed=args.seed, progress=progress, log_dir=args.reports / "logs")
    if args.json:
        print_json(
            {
                "scenario": "release-train",
                "ok": result.ok,
                "releases": [vars(r) for r in result.releases],
                "rolled_back_sessions": result.rolled_back_sessions,
                "rolled_back_requests": result.rolled_back_requests,
                "checks": [{"check": what, "held": held} for what, held in result.checks],
                "wall_seconds": result.wall_seconds,
            }
        )
        return result.ok
    print_grid(
        "canarywise demo · release train",
        [
            "release",
            "outcome",
            "expected",
            "candidate slot",
            "live slot after",
            "rule forward after",
            "checks",
        ],
        [
            [
                r.release,
                r.outcome,
                r.expected,
                r.candidate_slot,
                r.live_after,
                _forward(r.forward_after),
                r.ticks,
            ]
            for r in result.releases
        ],
        console=console,
    )
    for what, held in result.checks:
        console.print(f"  {'ok  ' if held else 'FAIL'} {what}", markup=False, soft_wrap=True)
    console.print(
        f"release train: {'ok' if result.ok else 'FAILED'} in {result.wall_seconds:.0f} s wall time"
    )
    return result.ok


def _forward(forward: dict[str, int]) -> str:
    from canarywise.demo.local_run import describe_forward

    return describe_forward(forward) + ("" if len(forward) > 1 else " (stickiness off)")
