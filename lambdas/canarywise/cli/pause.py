"""``canarywise pause`` and ``canarywise resume``: hold a rollout's ladder where it is, and let it go on.

Both take a lifecycle transition (``pause``: ROLLING_OUT → PAUSED, ``resume``: back) in the registry, as one
conditional write with the service's version, recording the caller's identity (STS, else the OS user) and
``--reason``. Neither moves traffic: a paused rollout keeps its stage's share, its checks keep running and
the critical alarm still rolls it back; only its stage gate holds ("paused by <who>: <why>") until resumed.
Nothing to pause or resume (no rollout on its ladder, or not paused) is one line and exit 3. ``resume`` also
acknowledges the slice regressions holding the rollout (`canarywise.cli.acknowledge`; ``--slice
METRIC:SLICE`` picks them), recorded with who and why: exit 0 when it resumed or acknowledged anything.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from canarywise.cli.acknowledge import acknowledge_held_slices, picked_slices
from canarywise.cli.deployment import Stack, add_stack_arguments, aws_errors, caller_identity
from canarywise.cli.main import EXIT_NOTHING_TO_DO, EXIT_OK, UsageError
from canarywise.cli.output import print_json


def register(subparsers: Any) -> None:
    for name, help_text, func in (
        ("pause", "hold the rollout in progress at its stage (traffic unchanged) until resumed", run_pause),
        (
            "resume",
            "let a paused rollout go on; acknowledge the slice regressions holding it (recorded with who)",
            run_resume,
        ),
    ):
        parser = subparsers.add_parser(name, help=help_text)
        parser.add_argument("--reason", required=True, help="why (recorded in the registry with who)")
        if name == "resume":
            parser.add_argument(
                "--slice",
                action="append",
                metavar="METRIC:SLICE",
                help="acknowledge only this slice finding (repeatable; default: every one holding it)",
            )
        add_stack_arguments(parser)
        parser.set_defaults(func=func)


def run_pause(args: argparse.Namespace) -> int:
    from canarywise.runtime.pause import pause

    return _run(args, pause)


def run_resume(args: argparse.Namespace) -> int:
    # A slice hold is not a pause: `resume` also acknowledges the slice findings holding the rollout
    # (`canarywise.cli.acknowledge`), whether or not it was paused.
    from canarywise.runtime.pause import resume

    return _run(args, resume, acknowledge=True)


def _run(args: argparse.Namespace, take: Any, *, acknowledge: bool = False) -> int:
    from canarywise.runtime.events import MAX_REASON_CHARS
    from canarywise.runtime.pause import NOTHING

    if not args.reason.strip() or len(args.reason) > MAX_REASON_CHARS:
        raise UsageError(
            f"--reason: say why in 1 to {MAX_REASON_CHARS:,} characters, found {len(args.reason):,}"
        )
    stack = Stack.of(args)
    picked = picked_slices(args.slice) if acknowledge else None
    acknowledged: list[dict[str, Any]] = []
    with aws_errors(f"could not {args.command} {stack.service}"):
        registry, by, now = stack.registry(), caller_identity(), datetime.now(UTC)
        result = take(stack.service, registry, by=by, reason=args.reason, now=now)
        if acknowledge:
            state = registry.service_state(stack.service)
            experiment_id = state.experiment_id if state else None
            acknowledged = acknowledge_held_slices(
                registry, experiment_id, by=by, reason=args.reason, now=now, picked=picked
            )
    if args.json:
        print_json(result.to_dict() | ({"acknowledged": acknowledged} if acknowledge else {}))
    else:
        if result.outcome != NOTHING or not acknowledged:
            print(
                f"{stack.service}: {result.reason}"
                + (f" ({result.experiment_id})" if result.experiment_id else "")
            )
        for entry in acknowledged:
            print(
                f"{stack.service}: acknowledged by {entry['by']}: {entry['metric']} in slice "
                f"{entry['slice']!r} no longer holds the rollout"
            )
    return EXIT_NOTHING_TO_DO if result.outcome == NOTHING and not acknowledged else EXIT_OK
