"""``canarywise bounds``: group-sequential boundaries (Lan-DeMets alpha spending) for planned looks."""

from __future__ import annotations

import argparse
import math
from typing import Any

from canarywise.cli.main import UsageError
from canarywise.cli.output import print_grid, print_json, read_numbers
from canarywise.stats.group_sequential import SPENDING_FUNCTIONS, lan_demets_bounds

# The recursion takes seconds at 10,000 looks (its grid follows the smallest step between looks).
MAX_LOOKS = 10_000
HELP = "group-sequential boundaries (Lan-DeMets O'Brien-Fleming or Pocock alpha spending)"


def _fractions(text: str) -> list[float]:
    fractions = read_numbers(text)
    if not fractions:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated numbers such as 0.2857,0.5714,1, found {text!r}"
        )
    return fractions


def _looks(text: str) -> int:
    try:
        looks = int(text)
    except ValueError:
        looks = 0
    if not 1 <= looks <= MAX_LOOKS:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of looks from 1 to {MAX_LOOKS:,}, found {text!r}"
        )
    return looks


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bounds",
        help=HELP,
        description=(
            "z-boundaries for a test looked at the given information fractions, spending alpha with a "
            "Lan-DeMets function (boundaries by recursive numerical integration, as R gsDesign)."
        ),
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help=(
            "total type-I error over all looks (default 0.05). With --sides 2 (default) it is two-sided and "
            "split equally, alpha/2 per side: --alpha 0.05 gives gsDesign's sfLDOF bounds at 0.025 per side. "
            "With --sides 1 it is all on one side (e.g. a harm test)."
        ),
    )
    looks = parser.add_mutually_exclusive_group(required=True)
    looks.add_argument(
        "--fractions",
        type=_fractions,
        help="information fractions of the looks, strictly increasing in (0, 1], e.g. 0.2857,0.5714,1",
    )
    looks.add_argument(
        "--looks",
        type=_looks,
        help=f"that many equally spaced looks, 1/N, 2/N, ..., 1 (up to {MAX_LOOKS:,}; e.g. 2016: every 5 "
        "minutes for 7 days)",
    )
    parser.add_argument(
        "--spending",
        choices=SPENDING_FUNCTIONS,
        default="obf",
        help="obf: O'Brien-Fleming type (gsDesign sfLDOF, default); pocock: Pocock type (sfLDPocock)",
    )
    parser.add_argument("--sides", type=int, choices=(1, 2), default=2, help="2: reject on |z| (default); 1")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    alpha, sides = args.alpha, args.sides
    upper = 1.0 if sides == 2 else 0.5
    if not (math.isfinite(alpha) and 0 < alpha < upper):
        raise UsageError(f"--alpha must be in (0, {upper:g}) with --sides {sides}, found {alpha!r}")
    fractions = args.fractions if args.looks is None else [i / args.looks for i in range(1, args.looks + 1)]
    bounds = lan_demets_bounds(fractions, alpha=alpha / sides, spending=args.spending)
    # Reported in the same sidedness as --alpha: two-sided totals and p-values when --sides 2.
    cumulative = [sides * a for a in bounds.cumulative_alpha]
    nominal = [sides * p for p in bounds.nominal_pvalues]
    if args.json:
        print_json(
            {
                "boundaries": bounds.boundaries,
                "cumulative_alpha": cumulative,
                "nominal_pvalues": nominal,
                "fractions": bounds.fractions,
                "alpha": alpha,
                "alpha_per_side": bounds.alpha,
                "sides": sides,
                "spending": bounds.spending,
                "method": bounds.method,
            }
        )
        return 0
    name = "O'Brien-Fleming" if bounds.spending == "obf" else "Pocock"
    if sides == 2:
        title = f"Lan-DeMets {name}, alpha {alpha:g} two-sided ({bounds.alpha:g} per side)"
        columns = ["look", "fraction", "boundary |z|", "nominal p (2-sided)", "cumulative alpha"]
    else:
        title = f"Lan-DeMets {name}, alpha {alpha:g} one-sided"
        columns = ["look", "fraction", "boundary z", "nominal p", "cumulative alpha"]
    rows = zip(bounds.fractions, bounds.boundaries, nominal, cumulative, strict=True)
    print_grid(title, columns, [(i + 1, *row) for i, row in enumerate(rows)])
    return 0
