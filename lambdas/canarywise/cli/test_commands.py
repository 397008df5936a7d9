"""``canarywise test …``: the tests on numbers typed at the prompt.

    canarywise test sequential  --control 59400/495000 --treatment 700/5000 --mde 0.02   # test_sequential.py
    canarywise test proportions --control 59400/495000 --treatment 700/5000 [--alternative greater]
    canarywise test means       --control 1200,212.4,85.3 --treatment 1150,219.9,97.1   # n,mean,sd
    canarywise test srm         --observed 94700,5300 --weights 95,5
    canarywise test fisher      --control 3/1000 --treatment 11/1000 [--alternative greater]
    canarywise test fdr         --pvalues 0.041,0.001,0.216 [--method bh|by|holm|bonferroni]
    canarywise test paired      --file config/golden/intent-golden-set.csv   # exit 5 on a regression

Arguments are parsed here (not by the statistics functions) so that a typo is reported against the flag
the user typed, in one line, with the value shown.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from rich.markup import escape

from canarywise.cli import test_sequential
from canarywise.cli.main import UsageError
from canarywise.cli.output import (
    finite_argument,
    fmt,
    print_grid,
    print_json,
    print_table,
    probability_argument,
    read_numbers,
)
from canarywise.cli.paired import add_paired
from canarywise.stats._checks import ALTERNATIVES
from canarywise.stats.means import MeansResult, SummaryStats, welch_ttest
from canarywise.stats.multiple import METHODS, adjust_pvalues
from canarywise.stats.proportions import (
    FisherResult,
    ProportionsResult,
    fisher_exact_test,
    two_proportion_ztest,
)
from canarywise.stats.srm import srm_test

_FRACTION = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def _successes_trials(text: str) -> tuple[int, int]:
    match = _FRACTION.match(text)
    if not match or int(match.group(2)) == 0 or int(match.group(1)) > int(match.group(2)):
        raise argparse.ArgumentTypeError(
            f"must be SUCCESSES/TRIALS with 0 <= SUCCESSES <= TRIALS and TRIALS > 0, "
            f"e.g. 59400/495000, found {text!r}"
        )
    return int(match.group(1)), int(match.group(2))


def _numbers(text: str, example: str) -> list[float]:
    values = read_numbers(text)
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers such as {example}, found {text!r}")
    return values


def _n_mean_sd(text: str) -> SummaryStats:
    values = _numbers(text, "1200,212.4,85.3")
    if len(values) != 3 or values[0] != int(values[0]) or values[0] < 1 or values[2] < 0:
        raise argparse.ArgumentTypeError(
            f"must be N,MEAN,SD with an integer N >= 1 and SD >= 0, e.g. 1200,212.4,85.3, found {text!r}"
        )
    return SummaryStats.from_mean_sd(int(values[0]), values[1], values[2])


def _counts(text: str) -> list[int]:
    values = _numbers(text, "94700,5300")
    if len(values) < 2 or any(v != int(v) or v < 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"must be two or more comma-separated counts >= 0, e.g. 94700,5300, found {text!r}"
        )
    return [int(v) for v in values]


def _weights(text: str) -> list[float]:
    values = _numbers(text, "95,5")
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"must be comma-separated weights > 0, e.g. 95,5, found {text!r}")
    return values


def _pvalues(text: str) -> list[float]:
    values = _numbers(text, "0.041,0.001,0.216")
    if any(not 0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"must be comma-separated p-values in [0, 1], found {text!r}")
    return values


_number = finite_argument


def _interval(low: float, high: float) -> str:
    # Escaped: rich would read "[nan, nan]" as a markup tag and print nothing.
    return escape(f"[{fmt(low)}, {fmt(high)}]")


def _percent(value: float) -> str:
    return "undefined" if math.isnan(value) else f"{100 * value:+.2f}%"


def _level(alpha: float, alternative: str) -> str:
    sided = "" if alternative == "two-sided" else ", one-sided"
    return f"{100 * (1 - alpha):g}% CI{sided}"


def _rate_rows(
    r: ProportionsResult | FisherResult, control: tuple[int, int], treatment: tuple[int, int]
) -> list[tuple[str, Any]]:
    """The two rates with their counts, then the difference: how both tests of proportions open."""
    (x_c, n_c), (x_t, n_t) = control, treatment
    return [
        ("control rate", f"{fmt(r.rate_control)}  ({x_c:,}/{n_c:,})"),
        ("treatment rate", f"{fmt(r.rate_treatment)}  ({x_t:,}/{n_t:,})"),
        ("difference (treatment − control)", r.diff),
    ]


def _print_test(r: ProportionsResult | MeansResult, rows: list[tuple[str, Any]]) -> int:
    """Print a test with a margin: the margin after the difference when set, the p-value, any note."""
    rows.append((f"p-value ({r.alternative})", r.pvalue))
    if r.margin != 0:
        rows.insert(3, ("margin (difference under H0)", r.margin))
    if r.message:
        rows.append(("note", r.message))
    print_table(r.method, rows)
    return 0


def _add_command(
    tests: Any, name: str, help_text: str, run: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = tests.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(func=run)
    return parser


def _add_common(parser: argparse.ArgumentParser, *, alternative: bool = True, alpha: bool = True) -> None:
    if alternative:
        parser.add_argument(
            "--alternative",
            choices=ALTERNATIVES,
            default="two-sided",
            help="H1 for treatment − control: two-sided (default), greater, less",
        )
    if alpha:
        parser.add_argument(
            "--alpha", type=probability_argument, default=0.05, help="1 − confidence level (default 0.05)"
        )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")


def register(subparsers: Any) -> None:
    """Add ``canarywise test`` and its seven tests."""
    test = subparsers.add_parser(
        "test",
        help="statistical tests on typed numbers: sequential, proportions, means, srm, fisher, fdr, paired",
        description=__doc__,
    )
    test.formatter_class = argparse.RawDescriptionHelpFormatter
    tests = test.add_subparsers(dest="test_name", metavar="TEST")
    tests.required = True
    test_sequential.register(tests, _successes_trials)

    p = _add_command(
        tests, "proportions", "two-proportion z-test with Newcombe, Wald and lift intervals", _proportions
    )
    p.add_argument(
        "--control", type=_successes_trials, required=True, metavar="X/N", help="e.g. 59400/495000"
    )
    p.add_argument("--treatment", type=_successes_trials, required=True, metavar="X/N", help="e.g. 700/5000")
    p.add_argument(
        "--margin", type=_number, default=0.0, help="difference under H0 (non-inferiority margin; default 0)"
    )
    _add_common(p)

    m = _add_command(tests, "means", "Welch t-test from n, mean and sd per arm", _means)
    m.add_argument(
        "--control", type=_n_mean_sd, required=True, metavar="N,MEAN,SD", help="e.g. 1200,212.4,85.3"
    )
    m.add_argument(
        "--treatment", type=_n_mean_sd, required=True, metavar="N,MEAN,SD", help="e.g. 1150,219.9,97.1"
    )
    m.add_argument("--margin", type=_number, default=0.0, help="difference under H0 (default 0)")
    _add_common(m)

    s = _add_command(tests, "srm", "sample-ratio mismatch: chi-square of arm sizes against the weights", _srm)
    s.add_argument("--observed", type=_counts, required=True, metavar="N1,N2,...", help="units per arm")
    s.add_argument(
        "--weights", type=_weights, required=True, metavar="W1,W2,...", help="traffic weights, e.g. 95,5"
    )
    s.add_argument(
        "--threshold",
        type=probability_argument,
        default=0.001,
        help="p below which it is a mismatch (default 0.001)",
    )
    _add_common(s, alternative=False, alpha=False)

    f = _add_command(tests, "fisher", "Fisher's exact test for rare events and small counts", _fisher)
    f.add_argument("--control", type=_successes_trials, required=True, metavar="X/N", help="e.g. 3/1000")
    f.add_argument("--treatment", type=_successes_trials, required=True, metavar="X/N", help="e.g. 11/1000")
    _add_common(f, alpha=False)

    d = _add_command(tests, "fdr", "adjust p-values for multiple testing (BH, BY, Holm, Bonferroni)", _fdr)
    d.add_argument("--pvalues", type=_pvalues, required=True, metavar="P1,P2,...", help="raw p-values")
    d.add_argument("--method", choices=METHODS, default="bh", help="bh (default), by, holm, bonferroni")
    d.add_argument(
        "--alpha",
        type=probability_argument,
        default=0.05,
        help="FDR level q or family-wise alpha (default 0.05)",
    )
    d.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    add_paired(tests)


def _proportions(args: argparse.Namespace) -> int:
    (x_c, n_c), (x_t, n_t) = args.control, args.treatment
    if not -1 < args.margin < 1:
        raise UsageError(f"--margin must be in (-1, 1), found {args.margin!r}")
    r = two_proportion_ztest(
        x_c, n_c, x_t, n_t, alternative=args.alternative, alpha=args.alpha, margin=args.margin
    )
    if args.json:
        print_json({**dataclasses.asdict(r), "alpha": args.alpha})
        return 0
    level = _level(args.alpha, args.alternative)
    return _print_test(
        r,
        [
            *_rate_rows(r, args.control, args.treatment),
            (f"{level} (Newcombe)", _interval(r.ci_low, r.ci_high)),
            (f"{level} (Wald)", _interval(r.wald_ci_low, r.wald_ci_high)),
            ("relative lift", _percent(r.lift)),
            (f"{level} lift (log ratio)", escape(f"[{_percent(r.lift_ci_low)}, {_percent(r.lift_ci_high)}]")),
            ("z", r.statistic),
        ],
    )


def _means(args: argparse.Namespace) -> int:
    control, treatment = args.control, args.treatment
    r = welch_ttest(control, treatment, alternative=args.alternative, alpha=args.alpha, margin=args.margin)
    if args.json:
        print_json({**dataclasses.asdict(r), "alpha": args.alpha})
        return 0
    return _print_test(
        r,
        [
            ("control mean (sd, n)", f"{fmt(control.mean)}  ({fmt(control.sd)}, {control.n:,})"),
            ("treatment mean (sd, n)", f"{fmt(treatment.mean)}  ({fmt(treatment.sd)}, {treatment.n:,})"),
            ("difference (treatment − control)", r.diff),
            (_level(args.alpha, r.alternative), _interval(r.ci_low, r.ci_high)),
            ("t", r.statistic),
            ("df (Welch-Satterthwaite)", r.df),
        ],
    )


def _srm(args: argparse.Namespace) -> int:
    if len(args.weights) != len(args.observed):
        raise UsageError(
            f"--weights must have one weight per arm of --observed ({len(args.observed)}), "
            f"found {','.join(fmt(w) for w in args.weights)!r}"
        )
    r = srm_test(args.observed, args.weights)
    mismatch = r.pvalue < args.threshold
    if args.json:
        print_json({**dataclasses.asdict(r), "threshold": args.threshold, "mismatch": mismatch})
        return 0
    total = sum(r.observed)
    columns = ["arm", "observed", "expected", "observed share", "expected share"]
    grid = [
        (i + 1, int(o), f"{e:,.1f}", o / total if total else math.nan, e / total if total else math.nan)
        for i, (o, e) in enumerate(zip(r.observed, r.expected, strict=True))
    ]
    print_grid(r.method, columns, grid)
    verdict = "MISMATCH: hold and investigate" if mismatch else "no mismatch"
    print_table(
        "",
        [
            ("chi-square", r.statistic),
            ("df", r.df),
            ("p-value", r.pvalue),
            (f"p < {args.threshold:g}", verdict),
        ],
    )
    return 0


def _fisher(args: argparse.Namespace) -> int:
    (x_c, n_c), (x_t, n_t) = args.control, args.treatment
    r = fisher_exact_test(x_c, n_c, x_t, n_t, alternative=args.alternative)
    if args.json:
        print_json(dataclasses.asdict(r))
        return 0
    rows = [
        *_rate_rows(r, args.control, args.treatment),
        ("odds ratio (treatment / control)", r.statistic),
        (f"p-value ({r.alternative})", r.pvalue),
    ]
    print_table(r.method, rows)
    return 0


def _fdr(args: argparse.Namespace) -> int:
    r = adjust_pvalues(args.pvalues, method=args.method, alpha=args.alpha)
    if args.json:
        print_json({"pvalues": args.pvalues, **dataclasses.asdict(r), "alpha": args.alpha})
        return 0
    names = {
        "bh": "Benjamini-Hochberg",
        "by": "Benjamini-Yekutieli",
        "holm": "Holm",
        "bonferroni": "Bonferroni",
    }
    grid = [
        (i + 1, p, q, "yes" if rejected else "no")
        for i, (p, q, rejected) in enumerate(zip(args.pvalues, r.adjusted, r.rejected, strict=True))
    ]
    title = f"{names[r.method]} adjustment, alpha {args.alpha:g}"
    print_grid(title, ["test", "p-value", "adjusted", f"rejected (<= {args.alpha:g})"], grid)
    return 0
