"""``canarywise plan --spec``: what the spec's own sequential gates will do at a given traffic.

    canarywise plan --spec config/mangaassist.yaml --daily-traffic 300000 [--json]
                    [--rate escalation_rate=0.12] [--slice-shares order_status=0.3,returns=0.15,other=0.55]
                    [--replicates 1000] [--harm-replicates 300] [--seed 1]

Runs `canarywise.simulation.plan.plan_rollout` (the engine's rule vectorised, the ladder moved by its
decisions; the same code ``make bench`` measures the shipped spec with) and prints per stage the median and
90th-percentile time a healthy candidate takes to advance, its chance of ending INCONCLUSIVE there and each
margin's chance of being provable by the stage's maximum; then the time to roll back a candidate worse by each
safety/guardrail metric's MDE. A spec that synth would refuse (a ladder longer than CodePipeline waits, ...)
is refused here too (exit 1).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict
from typing import Any

from canarywise.cli.main import UsageError
from canarywise.cli.output import print_grid, print_json
from canarywise.errors import CanarywiseError
from canarywise.spec import SpecError, load_spec


class PlanRefusedError(CanarywiseError):
    """The spec cannot be deployed as it is: planning it would describe a rollout that never runs."""

    exit_code = 1


def _pairs(text: str, what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not name.strip() or not 0 < number < 1:
            raise argparse.ArgumentTypeError(
                f"must be NAME=VALUE pairs with a {what} in (0, 1), e.g. escalation_rate=0.12, found {text!r}"
            )
        out[name.strip()] = number
    return out


def _rates(text: str) -> dict[str, float]:
    return _pairs(text, "rate")


def _shares(text: str) -> dict[str, float]:
    shares = _pairs(text, "share")
    if abs(sum(shares.values()) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f"the shares must add up to 1, found {text!r}")
    return shares


def _count(text: str) -> int:
    if not text.isdigit() or not 10 <= int(text) <= 100_000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 10 to 100000, found {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the spec mode (``--spec`` and ``--daily-traffic`` are the plan command's own)."""
    parser.add_argument(
        "--rate",
        type=_rates,
        action="append",
        metavar="METRIC=RATE",
        help="with --spec: a metric's control rate, overriding its `baseline` (repeatable)",
    )
    parser.add_argument(
        "--slice-shares",
        type=_shares,
        metavar="SLICE=SHARE,...",
        help="with --spec: the sliced metric's slices and their shares (default: its critical slices and "
        "'other', equal shares)",
    )
    parser.add_argument(
        "--replicates", type=_count, default=1000, help="with --spec: healthy rollouts simulated (1000)"
    )
    parser.add_argument(
        "--harm-replicates", type=_count, default=300, help="with --spec: rollouts per harm simulated (300)"
    )
    parser.add_argument("--seed", type=int, default=1, help="with --spec: random seed (default 1)")


def _hours(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} h"


def run(args: argparse.Namespace) -> int:
    from canarywise.simulation.plan import plan_rollout
    from canarywise.spec.deployable import synth_problems

    stray = [
        f for f, v in (("--baseline", args.baseline), ("--mde", args.mde), ("--stages", args.stages)) if v
    ]
    if stray:
        raise UsageError(f"{', '.join(stray)} belong to the plan without --spec (found {' '.join(stray)})")
    if args.daily_traffic is None:
        raise UsageError("--daily-traffic is required with --spec (units a day, both arms, e.g. 300000)")
    spec = load_spec(args.spec)
    if spec.mode != "canary":
        raise UsageError(f"--spec: plan simulates canary ladders, and {args.spec} is mode {spec.mode!r}")
    problems = synth_problems(spec, str(args.spec))
    if problems:
        raise PlanRefusedError("the spec cannot be deployed, so it is not planned:\n" + "\n".join(problems))
    rates: dict[str, float] = {}
    for given in args.rate or ():
        rates.update(given)
    for name in rates:
        spec.metric(name)  # SpecError naming the known metrics
    try:
        plan = plan_rollout(
            spec,
            daily_traffic=args.daily_traffic,
            baselines=rates,
            slice_shares=args.slice_shares,
            replicates=args.replicates,
            harm_replicates=args.harm_replicates,
            seed=args.seed,
        )
    except ValueError as exc:  # a metric without a baseline, a kind the simulation does not model
        hint = "; give it with --rate METRIC=RATE" if "baseline" in str(exc) else ""
        raise SpecError(f"{args.spec}: {exc}{hint}") from None
    if args.json:
        print_json({"spec": str(args.spec), "service": spec.service, **asdict(plan)})
        return 0
    _print(plan, spec.service)
    return 0


def _print(plan: Any, service: str) -> None:
    print_grid(
        f"canarywise plan: {service} at {plan.daily_traffic:,.0f} units/day, a healthy candidate "
        f"({plan.replicates:,} simulated rollouts, seed {plan.seed})",
        [
            "stage",
            "min / max",
            "reached",
            "advance: median",
            "90th pct",
            "INCONCLUSIVE",
            "rolled back",
            "weakest margin by the max",
        ],
        [
            (
                f"{s.index + 1}: {s.percent:g}%",
                f"{s.min_hours:g} / {s.max_hours:g} h",
                f"{100 * s.reached:.1f}%",
                _hours(s.advance_median_hours),
                _hours(s.advance_p90_hours),
                f"{100 * s.inconclusive:.1f}%",
                f"{100 * s.rolled_back:.1f}%",
                _weakest(s.margins),
            )
            for s in plan.stages
        ],
    )
    print(
        f"ready for approval: {100 * plan.ready:.1f}% after a median {_hours(plan.ready_median_hours)} "
        f"(90th pct {_hours(plan.ready_p90_hours)}); INCONCLUSIVE {100 * plan.inconclusive:.1f}%, "
        f"rolled back {100 * plan.rolled_back:.1f}% (false rollbacks)"
    )
    print_grid(
        f"time to roll back a candidate worse by each metric's MDE ({plan.harm_replicates:,} rollouts each)",
        ["metric", "control -> candidate", "rolled back", "median", "90th pct"],
        [
            (
                h.metric,
                f"{100 * h.baseline:.2f}% -> {100 * h.candidate_rate:.2f}%",
                f"{100 * h.rolled_back:.1f}%",
                _hours(h.median_hours),
                _hours(h.p90_hours),
            )
            for h in plan.harms
        ],
    )
    for warning in plan.warnings:
        print(f"warning: {warning}")


def _weakest(margins: Any) -> str:
    """The margin least likely to be provable by the stage's maximum, for a candidate as good as control."""
    if not margins:
        return ""
    m = min(margins, key=lambda m: m.chance)
    return f"{m.metric} {100 * m.chance:.1f}%"
