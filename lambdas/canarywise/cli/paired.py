"""``canarywise test paired --file GOLDEN``: is the candidate's drop on the same golden set real?

    canarywise test paired --file config/golden/intent-golden-set.csv [--alpha 0.05] [--kind auto] [--json]

Exit code 5 when a regression is proven (the whole set or a slice, after Benjamini-Hochberg), so a release
pipeline can gate on it before shadow mode; 0 otherwise; 2 for a file that cannot be read (one line says
which line and why).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from rich.console import Console
from rich.markup import escape

from canarywise.cli.output import print_grid, print_json, print_table, probability_argument
from canarywise.data.golden_set import KINDS, read_golden_set
from canarywise.decision.offline import OfflineComparison, PairedGroup, compare_golden_set

EXIT_REGRESSION = 5


def add_paired(tests: Any) -> None:
    """Add ``paired`` to the ``canarywise test`` subcommands."""
    help_text = "paired comparison on a golden set (exact McNemar / paired t, slices with BH)"
    p = tests.add_parser("paired", help=help_text, description=__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.set_defaults(func=run_paired)
    p.add_argument(
        "--file",
        required=True,
        metavar="GOLDEN",
        help=".csv or .jsonl with id, slice, current, candidate per example (outcome 1/0 or a score)",
    )
    p.add_argument(
        "--kind",
        choices=KINDS,
        default="auto",
        help="outcome (1/0), score, or auto (default: outcomes if all 0/1)",
    )
    p.add_argument(
        "--alpha",
        type=probability_argument,
        default=0.05,
        help="level of the tests, FDR q across slices, 1 − interval confidence (default 0.05)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of tables")


def _row(g: PairedGroup, kind: str) -> tuple[Any, ...]:
    interval = escape(f"[{g.ci_low:+.3f}, {g.ci_high:+.3f}]")
    discordant = (f"{g.current_only:,}/{g.candidate_only:,}",) if kind == "outcome" else ()
    return (
        g.name,
        g.n,
        f"{g.current:.4g}",
        f"{g.candidate:.4g}",
        f"{g.diff:+.4f}",
        interval,
        *discordant,
        f"{g.pvalue:.3g}",
        f"{g.adjusted:.3g}",
        g.verdict,
    )


def _print(result: OfflineComparison) -> None:
    measure = "accuracy" if result.kind == "outcome" else "mean score"
    level = f"{100 * (1 - result.alpha):g}% CI"
    columns = ["group", "n", "current", "candidate", "diff", level]
    if result.kind == "outcome":
        columns.append("only cur/cand")
    columns += ["p", "p (BH)", "verdict"]
    rows = [_row(result.overall, result.kind), *(_row(g, result.kind) for g in result.slices)]
    title = f"{measure}: {result.overall.method}, diff = candidate − current, slices BH at {result.alpha:g}"
    # A pipeline's log is not a terminal: rich would squeeze the ten columns into 80 characters.
    console = Console()
    if not console.is_terminal:
        console = Console(width=130)
    print_grid(title, columns, rows, console=console)
    notes = [(g.name, g.message) for g in (result.overall, *result.slices) if g.message]
    answer = (
        "yes: a regression is proven (exit code 5)"
        if result.regression_proven
        else "no regression proven at this alpha"
    )
    print_table("", [("is the drop real?", answer), *notes], console=console)


def run_paired(args: argparse.Namespace) -> int:
    result = compare_golden_set(read_golden_set(args.file, kind=args.kind), alpha=args.alpha)
    if args.json:
        print_json(
            {
                "kind": result.kind,
                "alpha": result.alpha,
                "regression_proven": result.regression_proven,
                "overall": dataclasses.asdict(result.overall),
                "slices": [dataclasses.asdict(g) for g in result.slices],
            }
        )
    else:
        _print(result)
    return EXIT_REGRESSION if result.regression_proven else 0
