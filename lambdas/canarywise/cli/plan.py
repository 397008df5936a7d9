"""``canarywise plan``: what a spec's sequential gates will do at a traffic, or a fixed-horizon sample size.

canarywise plan --spec config/mangaassist.yaml --daily-traffic 300000 [--json]     # canarywise.cli.plan_spec
canarywise plan --baseline 0.78 --mde 0.02 [--relative] [--alpha 0.05] [--power 0.8]
                [--daily-traffic 300000 --stages 5,25,50]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from canarywise.cli import plan_spec
from canarywise.cli.main import UsageError
from canarywise.cli.output import (
    fmt,
    print_grid,
    print_json,
    print_table,
    probability_argument,
    read_number,
    read_numbers,
)
from canarywise.stats._checks import ALTERNATIVES
from canarywise.stats.planning import sample_size_proportions, stage_durations


def _mde(text: str) -> float:
    value = read_number(text)
    if not math.isfinite(value) or value == 0:
        raise argparse.ArgumentTypeError(f"must be a non-zero number such as 0.02, found {text!r}")
    return value


def _traffic(text: str) -> float:
    value = read_number(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"must be a number of units per day > 0, e.g. 300000, found {text!r}"
        )
    return value


def _stages(text: str) -> list[float]:
    values = read_numbers(text)
    if not values or not all(0 < v < 100 for v in values):
        raise argparse.ArgumentTypeError(
            f"must be comma-separated canary percentages in (0, 100), e.g. 5,25,50, found {text!r}"
        )
    return values


def register(subparsers: Any) -> None:
    """Add ``canarywise plan``."""
    parser = subparsers.add_parser(
        "plan",
        help="what a spec's gates will do at a traffic (--spec), or a fixed-horizon sample size",
        description=(
            "With --spec: simulate the spec's own sequential gates at --daily-traffic and print per stage "
            "the median and 90th-percentile time to advance, the chance of ending INCONCLUSIVE, the time to "
            "roll back at each metric's MDE. Without: units per arm a two-proportion z-test needs to detect "
            "the MDE with the given power (pooled variance under H0, unpooled under H1, exact normal "
            "quantiles, rounded up), and with --daily-traffic and --stages how many hours each stage needs "
            "for its smaller arm to get there."
        ),
    )
    parser.add_argument("--spec", type=Path, help="plan this rollout spec (its gates, margins and ladder)")
    parser.add_argument(
        "--baseline", type=probability_argument, help="without --spec: control rate, e.g. 0.78"
    )
    parser.add_argument(
        "--mde", type=_mde, help="without --spec: minimum detectable effect, absolute (0.02 = 2 points)"
    )
    parser.add_argument("--relative", action="store_true", help="read --mde as relative (0.02 = +2%%)")
    parser.add_argument(
        "--alpha", type=probability_argument, default=0.05, help="type-I error (default 0.05)"
    )
    parser.add_argument("--power", type=probability_argument, default=0.8, help="power (default 0.8)")
    parser.add_argument(
        "--alternative",
        choices=ALTERNATIVES,
        default="two-sided",
        help="sidedness of the test (default two-sided)",
    )
    parser.add_argument(
        "--daily-traffic",
        type=_traffic,
        metavar="UNITS",
        help="units per day entering the experiment, both arms together (needs --stages)",
    )
    parser.add_argument(
        "--stages", type=_stages, metavar="P1,P2,...", help="canary percentages of the ladder, e.g. 5,25,50"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    plan_spec.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.spec is not None:
        return plan_spec.run(args)
    absent = [flag for flag, value in (("--baseline", args.baseline), ("--mde", args.mde)) if value is None]
    if absent:
        raise UsageError(f"{' and '.join(absent)} required without --spec (or plan a spec with --spec FILE)")
    if (args.daily_traffic is None) != (args.stages is None):
        given, missing = (
            ("--daily-traffic", "--stages") if args.stages is None else ("--stages", "--daily-traffic")
        )
        value = fmt(args.daily_traffic) if args.stages is None else ",".join(fmt(s) for s in args.stages)
        raise UsageError(f"{missing} is required with {given} (found {given} {value})")
    target = args.baseline * (1 + args.mde) if args.relative else args.baseline + args.mde
    if not 0 < target < 1:
        raise UsageError(
            f"--mde must keep the treatment rate in (0, 1), found {args.mde!r} (treatment rate {target:.6g})"
        )
    size = sample_size_proportions(
        args.baseline,
        args.mde,
        relative=args.relative,
        alpha=args.alpha,
        power=args.power,
        alternative=args.alternative,
    )
    durations = (
        stage_durations(size.n_per_arm, args.daily_traffic, args.stages)
        if args.daily_traffic is not None
        else ()
    )
    warnings = _ladder_warnings(durations)
    if args.json:
        payload: dict[str, Any] = {
            "n_per_arm": size.n_per_arm,
            "n_exact": size.n_exact,
            "p_control": size.p_control,
            "p_treatment": size.p_treatment,
            "diff": size.diff,
            "alpha": size.alpha,
            "power": size.power,
            "alternative": size.alternative,
            "method": size.method,
        }
        if durations:
            payload["daily_traffic"] = args.daily_traffic
            payload["stage_hours"] = [d.hours for d in durations]
            payload["stages"] = [
                {"percent": d.percent, "units_per_hour": d.units_per_hour, "hours": d.hours}
                for d in durations
            ]
            payload["warnings"] = warnings
        print_json(payload)
        return 0
    print_table(
        "Sample size, two-proportion z-test",
        [
            ("baseline rate", size.p_control),
            ("target rate", size.p_treatment),
            ("effect (absolute / relative)", f"{size.diff:+.6g} / {100 * size.diff / size.p_control:+.3g}%"),
            ("alpha / power", f"{fmt(size.alpha)} ({size.alternative}) / {fmt(size.power)}"),
            ("n per arm", size.n_per_arm),
        ],
    )
    if durations:
        rows: list[tuple[Any, ...]] = [
            (f"{fmt(d.percent)}%", f"{d.units_per_hour * 24:,.0f}", d.hours, d.hours / 24) for d in durations
        ]
        total = sum(d.hours for d in durations)
        rows.append(("whole ladder", "", total, total / 24))
        print_grid(
            f"Stage durations at {args.daily_traffic:,.0f} units/day",
            ["canary share", "smaller arm per day", f"hours to {size.n_per_arm:,}/arm", "days"],
            rows,
        )
    for warning in warnings:
        print(f"warning: {warning}")
    return 0


def _ladder_warnings(durations: Any) -> list[str]:
    """A ladder longer than a rollout can run: CodePipeline's approval waits at most 60 days, 72 h of which
    are for the person approving (`canarywise.spec.deployable`)."""
    from canarywise.spec.deployable import APPROVAL_TIMEOUT_MAX, APPROVAL_WINDOW

    total = sum(d.hours for d in durations)
    limit = (APPROVAL_TIMEOUT_MAX - APPROVAL_WINDOW).total_seconds() / 3600
    if total <= limit:
        return []
    return [
        f"the ladder needs {total:,.0f} h at this traffic, more than the {limit:g} h CodePipeline's approval "
        "can wait for a canary: no deployable spec can run it (raise the traffic or the stage shares, or "
        "test a larger MDE); `canarywise plan --spec` simulates a spec's own sequential gates"
    ]
