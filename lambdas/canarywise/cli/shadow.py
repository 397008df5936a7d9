"""``canarywise shadow``: start a shadow phase before a rollout, and ask whether its gate has passed.

    canarywise shadow start  --service mangaassist --candidate retriever-v2 --spec config/mangaassist.yaml
    canarywise shadow status ID --service mangaassist

A release pipeline starts the phase (the service then mirrors requests to the candidate and reports pairs
through `canarywise.emit.PairedMetrics`), polls ``status`` and starts the rollout only on exit code 0. The
scheduled significance check looks at the phase every check interval (docs/shadow.md).

Exit codes of ``status``: 0 READY_FOR_CANARY (the ladder may start), 5 REJECTED (harm proven on a veto
metric; no user saw the candidate), 6 still deciding (CONTINUE or HOLD: ask again later).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from canarywise.cli.deployment import OperatorError, Stack, add_stack_arguments, aws_errors
from canarywise.cli.output import print_json, print_table
from canarywise.spec import load_spec

EXIT_READY = 0
EXIT_REJECTED = 5
EXIT_DECIDING = 6


def register(subparsers: Any) -> None:
    shadow = subparsers.add_parser(
        "shadow", help="shadow phase before a rollout: start it, read its gate", description=__doc__
    )
    shadow.formatter_class = argparse.RawDescriptionHelpFormatter
    commands = shadow.add_subparsers(dest="shadow_command", metavar="COMMAND")
    commands.required = True
    start = commands.add_parser("start", help="register a shadow phase for a candidate (no traffic moves)")
    start.add_argument("--candidate", required=True, help="the candidate's name (e.g. its model version)")
    start.add_argument("--spec", required=True, help="the rollout spec file, with its shadow block")
    add_stack_arguments(start)
    start.set_defaults(func=run_start)
    status = commands.add_parser("status", help="the shadow gate's latest decision (exit 0 ready, 5, 6)")
    status.add_argument("shadow_id", help="the id `shadow start` printed")
    add_stack_arguments(status)
    status.set_defaults(func=run_status)


def run_start(args: argparse.Namespace) -> int:
    stack = Stack.of(args)
    spec = load_spec(args.spec)
    if spec.shadow is None:
        raise OperatorError(f"{args.spec}: the spec has no shadow block (docs/shadow.md)")
    if spec.service != stack.service:
        raise OperatorError(
            f"{args.spec} is the spec of {spec.service!r}, not of --service {stack.service!r}"
        )
    now = datetime.now(UTC).replace(microsecond=0)
    shadow_id = f"{spec.service}-shadow-{args.candidate}-{int(time.time())}"
    with aws_errors("start the shadow phase"):
        stack.registry().start_shadow(shadow_id, spec, candidate=args.candidate, started_at=now)
    if args.json:
        print_json({"shadow_id": shadow_id, "started_at": now.isoformat()})
    else:
        print(shadow_id)
    return 0


def run_status(args: argparse.Namespace) -> int:
    stack = Stack.of(args)
    with aws_errors("read the shadow phase"):
        registry = stack.registry()
        phase = registry.shadow_phase(args.shadow_id)
        checks = registry.shadow_checks(args.shadow_id) if phase else ()
    if phase is None or phase.get("service") != stack.service:
        raise OperatorError(f"no shadow phase {args.shadow_id!r} of service {stack.service!r}")
    status = str(phase["status"])
    latest = checks[-1] if checks else None
    if args.json:
        print_json(
            {
                "shadow_id": args.shadow_id,
                "status": status,
                "started_at": phase["started_at"],
                "looks": len(checks),
                "latest": latest.model_dump(mode="json") if latest else None,
            }
        )
    else:
        rows: list[tuple[str, Any]] = [
            ("shadow phase", args.shadow_id),
            ("candidate", phase["candidate"]),
            ("started", phase["started_at"]),
            ("decision", status),
            ("looks", len(checks)),
        ]
        if latest is not None:
            rows.append(("why", latest.reason))
        print_table("shadow gate", rows)
    return {"READY_FOR_CANARY": EXIT_READY, "REJECTED": EXIT_REJECTED}.get(status, EXIT_DECIDING)
