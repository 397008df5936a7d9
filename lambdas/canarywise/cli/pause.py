"""``canarywise pause`` and ``canarywise resume``: hold a rollout's ladder where it is, and let it go on.

Both take a lifecycle transition (``pause``: ROLLING_OUT → PAUSED, ``resume``: back) in the registry, as one
conditional write with the service's version, recording the caller's identity (STS, else the OS user) and
``--reason``. Neither moves traffic: a paused rollout keeps its stage's share, its checks keep running and
the critical alarm still rolls it back; only its stage gate holds ("paused by <who>: <why>") until resumed.
Nothing to pause or resume (no rollout on its ladder, or not paused) is one line and exit 3.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from canarywise.cli.deployment import Stack, add_stack_arguments, aws_errors, caller_identity
from canarywise.cli.main import EXIT_NOTHING_TO_DO, EXIT_OK, UsageError
from canarywise.cli.output import print_json


def register(subparsers: Any) -> None:
    for name, help_text, func in (
        ("pause", "hold the rollout in progress at its stage (traffic unchanged) until resumed", run_pause),
        ("resume", "let a paused rollout go on: its stage gate reads the decisions again", run_resume),
    ):
        parser = subparsers.add_parser(name, help=help_text)
        parser.add_argument("--reason", required=True, help="why (recorded in the registry with who)")
        add_stack_arguments(parser)
        parser.set_defaults(func=func)


def run_pause(args: argparse.Namespace) -> int:
    from canarywise.runtime.pause import pause

    return _run(args, pause)


def run_resume(args: argparse.Namespace) -> int:
    # Issue 16's slice holds: once canarywise.runtime has the acknowledgement of a held slice, `resume` is
    # where a person acknowledges them too (the hold is not a pause; a resume with nothing paused then still
    # records the acknowledgement).
    from canarywise.runtime.pause import resume

    return _run(args, resume)


def _run(args: argparse.Namespace, take: Any) -> int:
    from canarywise.runtime.events import MAX_REASON_CHARS
    from canarywise.runtime.pause import NOTHING

    if not args.reason.strip() or len(args.reason) > MAX_REASON_CHARS:
        raise UsageError(
            f"--reason: say why in 1 to {MAX_REASON_CHARS:,} characters, found {len(args.reason):,}"
        )
    stack = Stack.of(args)
    with aws_errors(f"could not {args.command} {stack.service}"):
        result = take(
            stack.service, stack.registry(), by=caller_identity(), reason=args.reason, now=datetime.now(UTC)
        )
    if args.json:
        print_json(result.to_dict())
    else:
        print(
            f"{stack.service}: {result.reason}"
            + (f" ({result.experiment_id})" if result.experiment_id else "")
        )
    return EXIT_NOTHING_TO_DO if result.outcome == NOTHING else EXIT_OK
