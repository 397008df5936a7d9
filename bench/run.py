"""``make bench``: run the decision-quality and cost benchmark, print the tables, write docs/benchmarks.md.

python -m bench.run [--quick] [--seed 20261102] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench import cost
from bench.decision_quality import (
    QualityReport,
    quantile_hours,
    rate_and_se,
    run_all,
    wald_bound_hours,
)
from bench.methods import NEVER
from canarywise.spec import RolloutSpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
SPRT = "Wald's SPRT told the true effect (bound)"
MODES = {
    # replicates per harm scenario, per A/B scenario, end-to-end decide runs per scenario, full-spec A/A runs
    "quick": {
        "replicates": 1000,
        "ab_replicates": 1000,
        "e2e": 2,
        "family_wise": 1,
        "tick_repeats": 3,
        "cold": 1,
    },
    "full": {
        "replicates": 10000,
        "ab_replicates": 4000,
        "e2e": 20,
        "family_wise": 30,
        "tick_repeats": 5,
        "cold": 3,
    },
}


def _hours(value: float) -> str:
    return "> 7 d (never)" if math.isinf(value) else f"{value:.2f} h"


def _pct(p: float, se: float | None = None) -> str:
    return f"{100 * p:.1f}%" + (f" ± {100 * se:.1f}" if se is not None else "")


def quality_tables(report: QualityReport, alpha: float) -> list[str]:
    sched = report.schedule
    day1 = sched.look_at_hours(24)
    out = [
        "## Decision quality: canary mode (harm on the escalation rate)",
        "",
        f"Rollback decisions over 2,016 five-minute looks (7 days), {report.harm[0].replicates:,} simulated "
        f"rollouts "
        "per scenario, every method on the same streams; one-sided tests at alpha = "
        f"{alpha:g} unless the row says otherwise. Time to rollback counts from the start of the rollout; "
        "'> 7 d' = the quantile is a rollout never rolled back. Ratio = median time to rollback / the "
        "median of "
        "Wald's SPRT told the true effect on the same streams.",
        "",
    ]
    for result in report.harm:
        sc = result.scenario
        sprt = next(m for m in result.methods if m.method == SPRT)
        sprt_median = quantile_hours(sprt.looks, sched, 0.5)
        out += [f"### {sc.label}", ""]
        if sc.effect > 0:
            bound = wald_bound_hours(sc, sched, alpha)
            out += [
                f"Wald's approximation of the SPRT's expected information (2 ln(1/alpha) / effect^2, no "
                f"overshoot) "
                f"is reached after {_hours(bound)} at mean traffic.",
                "",
                "| method | rolled back within 7 d | power by day 1 | median time | 90th pct time | ratio "
                "to SPRT |",
                "|---|---|---|---|---|---|",
            ]
        else:
            out += [
                "| method | false-rollback rate over 2,016 looks (± SE) | rolled back by day 1 |",
                "|---|---|---|",
            ]
        for m in result.methods:
            hit = m.looks != NEVER
            rate, se = rate_and_se(hit)
            by_day1 = float(np.mean(hit & (m.looks <= day1)))
            if sc.effect > 0:
                median = quantile_hours(m.looks, sched, 0.5)
                ratio = median / sprt_median if math.isfinite(median) else math.inf
                out.append(
                    f"| {m.method} | {_pct(rate)} | {_pct(by_day1)} | {_hours(median)} | "
                    f"{_hours(quantile_hours(m.looks, sched, 0.9))} | "
                    f"{'—' if math.isinf(ratio) else f'{ratio:.2f}x'} |"
                )
            else:
                out.append(f"| {m.method} | {_pct(rate, se)} | {_pct(by_day1)} |")
        out.append("")
    out += [
        "Engine alpha per row: "
        + "; ".join(f"{name}: one-sided {a:g}" for name, a in report.engine_alpha.items())
        + ".",
        "",
        "## Decision quality: A/B mode (PROMOTE on task completion)",
        "",
        f"A 50/50 test for 7 days, {report.ab[0].replicates:,} simulated tests per scenario. PROMOTE needs "
        f"the "
        "interval entirely above 0, the estimate >= the MDE (+2 pt), one hour of data and 1,000 units per "
        "arm. "
        "Coverage: the share of PROMOTE decisions whose reported interval contains the true effect; 'every "
        "look': "
        "the share of tests whose confidence sequence contained it at all 2,016 looks.",
        "",
        "| scenario | method | PROMOTE within 7 d | median time | 90th pct time | coverage at PROMOTE | "
        "coverage at every look |",
        "|---|---|---|---|---|---|---|",
    ]
    for ab in report.ab:
        for row in ab.rows:
            rate, se = rate_and_se(row.looks != NEVER)
            cover = _pct(float(np.mean(row.covered))) if row.covered.size else "—"
            every = (
                _pct(float(np.mean(row.covered_every_look))) if row.covered_every_look is not None else "—"
            )
            out.append(
                f"| {ab.scenario.label} | {row.method} | {_pct(rate, se)} | "
                f"{_hours(quantile_hours(row.looks, report.ab_schedule, 0.5))} | "
                f"{_hours(quantile_hours(row.looks, report.ab_schedule, 0.9))} | {cover} | {every} |"
            )
    out += [
        "",
        "## What ran through `decide` itself",
        "",
        "The rows 'canarywise decide' above are the vectorised path (the engine's own alpha split, mixing "
        "variance, "
        "stage-stratified estimate and `msprt_normal` rejection region, on all rollouts at once). The first "
        "rollouts of each scenario were also run end to end: `decide(spec, stages, observations, now)` "
        "called at "
        "every look with the `Observations` and `StageRecord` history the data layer would build, until the "
        "first ROLLBACK (canary) or PROMOTE/KEEP_CONTROL/ROLLBACK (A/B). Agreement = same decision at the "
        "same "
        "look as the vectorised path.",
        "",
        "| scenario | spec | rollouts | agree (same look) | decide calls | ms per call (incl. building the "
        "inputs) |",
        "|---|---|---|---|---|---|",
    ]
    for a in report.agreements:
        out.append(
            f"| {a.scenario} | {a.spec} | {a.replicates} | {a.agree}/{a.replicates} | {a.decide_calls:,} | "
            f"{a.ms_per_call:.2f} |"
        )
    out += [
        "",
        "### The shipped spec, every metric, A/A (family-wise false rollbacks)",
        "",
        "config/mangaassist.yaml as shipped (5 safety/guardrail metrics sharing alpha, escalation split by "
        "intent "
        "with BH across slices, the error rate's hard limit), all 8 metrics simulated with no difference "
        "between "
        "the arms, run end to end through `decide` at every look for 7 days:",
        "",
        "| rollouts | false rollbacks | rate (± SE) | decide calls | ms per call |",
        "|---|---|---|---|---|",
    ]
    for a in report.family_wise:
        rate = a.rollbacks / max(a.replicates, 1)
        se = math.sqrt(rate * (1 - rate) / max(a.replicates, 1))
        out.append(
            f"| {a.replicates} | {a.rollbacks} | {_pct(rate, se)} | {a.decide_calls:,} | "
            f"{a.ms_per_call:.2f} |"
        )
    return out


def _mean_metrics_per_tick(by_stage: list[int], stage_hours: list[float], days: float) -> float:
    """Metrics requested per tick averaged over a rollout of ``days`` that holds each stage for its minimum
    duration and the last one to the end."""
    hours = [*stage_hours[:-1], days * 24 - sum(stage_hours[:-1])]
    return sum(m * h for m, h in zip(by_stage, hours, strict=True)) / (days * 24)


def cost_tables(
    ticks: list[dict[str, Any]],
    cold: cost.ColdStart,
    bundle: cost.Bundle | None,
    spec: RolloutSpec,
    days: float = 7.0,
) -> list[str]:
    one = ticks[0]
    out = [
        "## Cost and speed of the control plane",
        "",
        "### CPU time of one significance-check tick (shipped spec, 8 metrics, AWS calls stubbed)",
        "",
        "`canarywise.runtime.significance.check_all` with the real `MetricSource`, `Registry` and "
        "`HarmSignal`, their boto3 clients answered from memory (CloudWatch returns one datapoint per period "
        "of each window, as it would), in a fresh process, warm: the median of repeated ticks after one "
        f"warm-up. Measured {one['at_hours']:g} h into the rollout (stage 3 of 3, one day in): the heaviest "
        "query set, three stage windows of which two are 24 h read at 1-minute periods. The figure is our "
        "code only: no network, no botocore response parsing.",
        "",
        "| running experiments | CPU per tick (median) | max | per experiment | GetMetricData calls | "
        "metrics requested | DynamoDB requests (read / write) |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in ticks:
        out.append(
            f"| {t['experiments']} | {1000 * t['cpu_seconds_median']:.1f} ms | "
            f"{1000 * t['cpu_seconds_max']:.1f} ms | "
            f"{1000 * t['cpu_seconds_median'] / t['experiments']:.1f} ms | {t['get_metric_data_calls']} | "
            f"{t['metrics_requested']} | {t['dynamodb_reads']} / {t['dynamodb_writes']} |"
        )
    by_stage = one["metrics_by_stage"]
    out += [
        "",
        "GetMetricData calls per tick: one per started stage and experiment (each stage's window is one "
        "request of up to 500 queries); metrics requested per tick for one experiment in stage 1, 2, 3: "
        + ", ".join(str(m) for m in by_stage)
        + ".",
        "",
        "### Cold start and bundle",
        "",
        f"Import of `{cost.HANDLER_MODULE}` in a fresh interpreter from {cold.source} (median of "
        f"{cold.runs}):",
        "",
        "| with shipped .pyc | without .pyc (compiles on import) |",
        "|---|---|",
        f"| {cold.with_pyc:.2f} s | {'—' if math.isnan(cold.without_pyc) else f'{cold.without_pyc:.2f} s'} |",
        "",
    ]
    if bundle is None:
        out.append(
            "The Lambda bundle (build/lambda-bundle/) is not built: `make bundle` builds it (`make bench` "
            "in full mode builds it itself)."
        )
    else:
        mb = 1024 * 1024
        state = (
            "built from the current sources"
            if bundle.current
            else "built from older sources (`make bundle` rebuilds it)"
        )
        out.append(
            f"Lambda bundle build/lambda-bundle/ ({state}): {bundle.unzipped_bytes / mb:.1f} MB unzipped "
            f"({bundle.files:,} files), {bundle.zipped_bytes / mb:.1f} MB zipped (deflate level 6, as "
            "`scripts/build_bundle.py` zips it). Limits: 250 MB unzipped; 50 MB for a direct zip upload "
            "(CDK uploads through S3)."
        )
    stage_hours = [stage.min_duration / 3600 for stage in spec.stages]
    metrics_per_tick = _mean_metrics_per_tick(by_stage, stage_hours, days)
    per_experiment = one["cpu_seconds_median"] / one["experiments"]
    tick_seconds = per_experiment + 0.25  # + assumed AWS round trips (GetMetricData, DynamoDB, PutMetricData)
    lines = cost.rollout_cost(
        days=days,
        check_interval=spec.check_interval,
        tick_seconds=tick_seconds,
        metrics_per_tick=metrics_per_tick,
        stages=len(spec.stages),
        write_units_per_tick=one["dynamodb_write_units"] / one["experiments"],
        read_units_per_tick=one["dynamodb_read_units"] / one["experiments"],
        cold_start_seconds=cold.with_pyc,
    )
    total = sum(line.dollars for line in lines)
    out += [
        "",
        f"### The AWS bill of one {days:g}-day rollout (us-east-1 public prices, no free tier)",
        "",
        f"One experiment running for {days:g} days with checks every {spec.check_interval // 60} minutes, on "
        "the shipped ladder at its minimum durations (the last stage to the end). The significance check's "
        "duration = the measured CPU per tick above + 0.25 s assumed for the AWS round trips.",
        "",
        "| item | quantity | unit price | cost | assumption |",
        "|---|---|---|---|---|",
    ]
    for line in lines:
        out.append(
            f"| {line.item} | {line.quantity:,.1f} {line.unit} | ${line.price:.10g} | ${line.dollars:.4f} | "
            f"{line.assumption} |"
        )
    out += [f"| **total** | | | **${total:.2f}** | |", ""]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer replicates: finishes in under 2 minutes")
    parser.add_argument("--seed", type=int, default=20261102)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    cfg = MODES[mode]
    started = time.perf_counter()
    spec = load_spec(ROOT / "config" / "mangaassist.yaml")
    print(f"bench: {mode} mode, seed {args.seed}", file=sys.stderr)
    report = run_all(
        spec,
        replicates=cfg["replicates"],
        ab_replicates=cfg["ab_replicates"],
        e2e_replicates=cfg["e2e"],
        family_wise_replicates=cfg["family_wise"],
        seed=args.seed,
        log=lambda s: print(f"[{time.perf_counter() - started:5.1f} s] {s}", file=sys.stderr),
    )
    counts = (1, 10) if mode == "quick" else (1, 10, 100)
    ticks = [cost.tick_in_fresh_process(n, cfg["tick_repeats"]) for n in counts]
    print("bench: ticks measured", file=sys.stderr)
    if mode == "full" and not cost.build_bundle():
        print("bench: scripts/build_bundle.py failed; measuring the bundle on disk", file=sys.stderr)
    cold = cost.cold_start(cfg["cold"])
    bundle = cost.bundle()
    print("bench: cold start and bundle measured", file=sys.stderr)
    elapsed = time.perf_counter() - started
    command = (
        "make bench"
        + (" QUICK=1" if args.quick else "")
        + f"   # = python -m bench.run{' --quick' if args.quick else ''} --seed {args.seed}"
    )
    header = [
        "# Benchmarks: decision quality and cost",
        "",
        "Written by `make bench`; do not edit by hand. Reproduce with:",
        "",
        "```",
        command,
        "```",
        "",
        f"Mode {mode}, seed {args.seed}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.python_version()} on "
        f"{platform.machine()} ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end — "
        f"timings "
        f"are of a shared machine), {elapsed:.0f} s in all.",
        "",
        "Simulation: 300,000 sessions a day (Poisson per 5-minute tick around a diurnal curve, ±35%), "
        "starting "
        "10:00; the canary's share follows the spec's ladder at its minimum durations: 5% for 4 h, 25% for "
        "24 h, "
        "then 50% to the end of the 7-day horizon. Fixed horizon and O'Brien-Fleming are planned for the MDE "
        "(+2 pt) at the scenario's baseline with alpha 0.05 one-sided and 80% power; the mSPRT row uses "
        "GrowthBook's tuning rho^2 = (-2 ln a + ln(1 - 2 ln a)) / N* with N* = 5000 (tau^2 = rho^2 x "
        "per-unit "
        "variance), tested one-sided through `msprt_normal`.",
        "",
    ]
    body = [*quality_tables(report, spec.statistics.alpha), "", *cost_tables(ticks, cold, bundle, spec)]
    text = "\n".join(header + body) + "\n"
    Path(args.out).write_text(text)
    print(text)
    print(f"bench: wrote {args.out} in {elapsed:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
