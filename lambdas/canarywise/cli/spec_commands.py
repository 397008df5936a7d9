"""``canarywise validate`` and ``canarywise schema``: check a rollout spec before ``cdk synth``; describe one.

    canarywise validate config/mangaassist.yaml [--json]
    canarywise schema [--reference]      # the JSON Schema, or docs/spec-reference.md

``validate`` runs the model's checks and the ones synth adds (`canarywise.spec.deployable`) and prints one
line per problem, each naming the file, the field and the value; it exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from canarywise.cli.output import print_json
from canarywise.cli.spec_reference import reference_markdown, schema_json
from canarywise.spec import RolloutSpec, SpecError, load_spec, worst_case_stage_seconds
from canarywise.spec.deployable import synth_problems


def register(subparsers: Any) -> None:
    """Add ``canarywise validate`` and ``canarywise schema``."""
    validate = subparsers.add_parser(
        "validate",
        help="check a rollout spec (the model's checks and synth's); one line per problem",
        description="Check a rollout spec file as `cdk synth` would, without CDK or AWS: one line per "
        "problem naming the field and the value, exit 1 if there is any.",
    )
    validate.add_argument(
        "spec", type=Path, metavar="SPEC", help="the spec file, e.g. config/mangaassist.yaml"
    )
    validate.add_argument("--json", action="store_true", help="one JSON object: valid, problems, summary")
    validate.set_defaults(func=run_validate)

    schema = subparsers.add_parser(
        "schema", help="the rollout spec's JSON Schema (or, with --reference, its Markdown reference)"
    )
    schema.add_argument(
        "--reference", action="store_true", help="the field reference (docs/spec-reference.md) instead"
    )
    schema.set_defaults(func=run_schema)


def _summary(spec: RolloutSpec) -> dict[str, Any]:
    return {
        "service": spec.service,
        "mode": spec.mode,
        "stages": [s.percent for s in spec.stages],
        "worst_case_hours": sum(worst_case_stage_seconds(spec)) / 3600,
        "metrics": [m.name for m in spec.metrics],
    }


def run_validate(args: argparse.Namespace) -> int:
    try:
        spec = load_spec(args.spec)
        problems = synth_problems(spec, str(args.spec))
    except SpecError as exc:
        spec, problems = None, str(exc).splitlines()
    if args.json:
        print_json(
            {
                "spec": str(args.spec),
                "valid": not problems,
                "problems": problems,
                "summary": _summary(spec) if spec is not None and not problems else None,
            }
        )
        return 1 if problems else 0
    if problems:
        for line in problems:
            print(f"canarywise validate: {line}", file=sys.stderr)
        return 1
    assert spec is not None
    summary = _summary(spec)
    ladder = " -> ".join(f"{p:g}%" for p in summary["stages"])
    print(
        f"{args.spec}: valid: service {spec.service}, {spec.mode}, stages {ladder} (at most "
        f"{summary['worst_case_hours']:g} h), {len(spec.metrics)} metrics"
    )
    return 0


def run_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(reference_markdown() if args.reference else schema_json())
    return 0
