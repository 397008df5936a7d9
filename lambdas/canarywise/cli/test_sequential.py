"""``canarywise test sequential``: the always-valid p-value and confidence sequence of a difference of rates.

    canarywise test sequential --control 59400/495000 --treatment 700/5000 \\
        --spec config/mangaassist.yaml --metric escalation_rate [--test harm|non-inferiority]
    canarywise test sequential --control 59400/495000 --treatment 700/5000 --mde 0.02 \\
        [--alpha 0.05] [--power 0.8] [--alternative greater] [--null 0]

With ``--spec`` and ``--metric`` the test is the one the engine runs on one stage's counts: its level (the
spec's alpha shared by the safety/guardrail metrics, halved for a sliced one: ``decision.safety.harm_alpha``;
the full alpha for non-inferiority), its mixing variance (``decision.evidence.tau2_for``), its side (from the
metric's direction) and null (0 for harm, the margin for non-inferiority). Without a spec, say them.
The computation is ``stats.sequential.msprt_proportions``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from rich.markup import escape

from canarywise.cli.main import UsageError
from canarywise.cli.output import (
    finite_argument,
    fmt,
    print_json,
    print_table,
    probability_argument,
    read_number,
)
from canarywise.stats._checks import ALTERNATIVES


def register(tests: Any, successes_trials: Any) -> None:
    """Add ``sequential`` to the ``canarywise test`` subcommands (`tests`)."""
    parser = tests.add_parser(
        "sequential",
        help="always-valid p-value and confidence sequence (mixture SPRT) of a difference of rates",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--control", type=successes_trials, required=True, metavar="X/N", help="e.g. 59400/495000"
    )
    parser.add_argument(
        "--treatment", type=successes_trials, required=True, metavar="X/N", help="e.g. 700/5000"
    )
    parser.add_argument("--spec", type=Path, help="take the test from this spec (with --metric)")
    parser.add_argument("--metric", help="a safety/guardrail metric of --spec, e.g. escalation_rate")
    parser.add_argument(
        "--test",
        choices=("harm", "non-inferiority"),
        default="harm",
        help="with --spec: the harm test (default) or the gate's non-inferiority test at the margin",
    )
    parser.add_argument("--mde", type=_positive, help="without --spec: the effect the mixture is tuned for")
    parser.add_argument("--alpha", type=probability_argument, help="without --spec: level (default 0.05)")
    parser.add_argument("--power", type=probability_argument, help="without --spec: power (default 0.8)")
    parser.add_argument("--alternative", choices=ALTERNATIVES, help="without --spec: H1 (default two-sided)")
    parser.add_argument(
        "--null", type=finite_argument, help="without --spec: difference under H0 (default 0)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    parser.set_defaults(func=run)


def _positive(text: str) -> float:
    value = read_number(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number > 0 such as 0.02, found {text!r}")
    return value


def _from_spec(args: argparse.Namespace) -> dict[str, Any]:
    from canarywise.decision.evidence import metric_mde, tau2_for
    from canarywise.decision.safety import harm_alpha
    from canarywise.spec import Direction, MetricKind, MetricRole, load_spec

    given = [
        f"--{n}" for n in ("mde", "alpha", "power", "alternative", "null") if getattr(args, n) is not None
    ]
    if given:
        raise UsageError(f"{', '.join(given)} come from --spec; drop them (found {' '.join(given)})")
    if args.metric is None:
        raise UsageError("--metric is required with --spec (found --spec without --metric)")
    spec = load_spec(args.spec)
    metric = spec.metric(args.metric)
    if metric.role not in (MetricRole.SAFETY, MetricRole.GUARDRAIL) or metric.kind is MetricKind.MEAN:
        raise UsageError(
            f"--metric must be a safety or guardrail rate, found {metric.name!r} "
            f"({metric.role.value}, {metric.kind.value})"
        )
    worse = "greater" if metric.direction is Direction.LOWER_IS_BETTER else "less"
    if args.test == "harm":
        alpha = harm_alpha(spec, metric)
        veto = "shared by the safety/guardrail metrics" + (
            ", halved: sliced" if metric.slice_dimension else ""
        )
        return {
            "test": f"harm test of {metric.name} (is the candidate worse?)",
            "alpha": alpha,
            "alpha_note": f"spec alpha {spec.statistics.alpha:g} {veto}",
            "alternative": worse,
            "null": 0.0,
            "planned_effect": metric_mde(spec, metric),
            "power": spec.statistics.power,
            "tau2": tau2_for(spec, metric, "harm", alpha),
        }
    if metric.margin is None:
        raise UsageError(f"--test non-inferiority needs a margin, and {metric.name!r} has none")
    alpha = spec.statistics.alpha
    return {
        "test": f"non-inferiority of {metric.name} (no worse than the margin {metric.margin:g}?)",
        "alpha": alpha,
        "alpha_note": "the spec's alpha (the gate's level)",
        "alternative": "less" if worse == "greater" else "greater",
        "null": metric.margin if worse == "greater" else -metric.margin,
        "planned_effect": metric.margin,
        "power": spec.statistics.power,
        "tau2": tau2_for(spec, metric, "non_inferiority", alpha),
    }


def _from_flags(args: argparse.Namespace) -> dict[str, Any]:
    from canarywise.decision.evidence import mixing_tau2

    if args.metric is not None:
        raise UsageError(f"--metric needs --spec (found --metric {args.metric})")
    if args.mde is None:
        raise UsageError("--mde is required without --spec (the effect the mixture is tuned for, e.g. 0.02)")
    alpha = 0.05 if args.alpha is None else args.alpha
    power = 0.8 if args.power is None else args.power
    alternative = args.alternative or "two-sided"
    return {
        "test": f"mixture SPRT, H1: treatment − control {_relation(alternative)} the null",
        "alpha": alpha,
        "alpha_note": "as given",
        "alternative": alternative,
        "null": 0.0 if args.null is None else args.null,
        "planned_effect": args.mde,
        "power": power,
        "tau2": mixing_tau2(args.mde, alpha, power, two_sided=alternative == "two-sided"),
    }


def _relation(alternative: str) -> str:
    return {"two-sided": "!=", "greater": ">", "less": "<"}[alternative]


_H0 = {"two-sided": "=", "greater": "<=", "less": ">="}


def run(args: argparse.Namespace) -> int:
    from canarywise.stats.proportions import difference_variance
    from canarywise.stats.sequential import msprt_proportions

    plan = _from_spec(args) if args.spec is not None else _from_flags(args)
    (xc, nc), (xt, nt) = args.control, args.treatment
    if not -1 < plan["null"] < 1:
        raise UsageError(f"--null must be in (-1, 1) for a difference of rates, found {plan['null']!r}")
    r = msprt_proportions(
        xc,
        nc,
        xt,
        nt,
        tau2=plan["tau2"],
        alpha=plan["alpha"],
        alternative=plan["alternative"],
        null=plan["null"],
    )
    variance = difference_variance(xc, nc, xt, nt, plan["null"])
    reject = r.pvalue <= plan["alpha"]
    payload = {
        **plan,
        "control": {"events": xc, "units": nc, "rate": xc / nc},
        "treatment": {"events": xt, "units": nt, "rate": xt / nt},
        "diff": r.diff,
        "variance": variance,
        "z": r.statistic,
        "ratio": plan["tau2"] / variance,
        "likelihood_ratio": 1 / r.pvalue if r.pvalue < 1 else None,
        "pvalue": r.pvalue,
        "ci_low": r.ci_low,
        "ci_high": r.ci_high,
        "reject": reject,
        "method": r.method,
    }
    if args.json:
        print_json(payload)
        return 0
    ends = ("" if math.isinf(r.ci_low) or r.ci_low <= -1 else f"{100 * r.ci_low:+.3f} pt",
            "" if math.isinf(r.ci_high) or r.ci_high >= 1 else f"{100 * r.ci_high:+.3f} pt")  # fmt: skip
    sequence = escape(f"[{ends[0] or '−∞'}, {ends[1] or '+∞'}]") if any(ends) else "everything"
    likelihood = payload["likelihood_ratio"]
    print_table(
        plan["test"],
        [
            ("control rate", f"{100 * xc / nc:.2f}%  ({xc:,}/{nc:,})"),
            ("treatment rate", f"{100 * xt / nt:.2f}%  ({xt:,}/{nt:,})"),
            ("difference (treatment − control)", f"{100 * r.diff:+.2f} pt"),
            ("H0", f"difference {_H0[plan['alternative']]} {plan['null']:g}"),
            ("level alpha", f"{fmt(plan['alpha'])}  ({plan['alpha_note']})"),
            ("variance V (the larger of observed, at H0)", variance),
            ("z", r.statistic),
            (
                "mixing variance τ²",
                f"{plan['tau2']:.4g}  (tuned: effect {plan['planned_effect']:g}, power {plan['power']:g})",
            ),
            ("r = τ²/V", payload["ratio"]),
            ("mixture likelihood ratio Λ", "<= 1" if likelihood is None else f"{likelihood:,.4g}"),
            ("always-valid p = min(1, 1/Λ)", r.pvalue),
            (f"{100 * (1 - plan['alpha']):g}% confidence sequence", sequence),
            ("verdict", f"H0 rejected (p <= {fmt(plan['alpha'])})" if reject else "H0 not rejected (yet)"),
        ],
    )
    return 0
