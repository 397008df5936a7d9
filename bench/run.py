"""``make bench``: run the decision-quality and cost benchmark, print the tables, write docs/benchmarks.md.

python -m bench.run [--quick] [--seed 20261102] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import alarm, cost, hard_limit, report, shadow
from bench.decision_quality import run_all
from bench.monitor import run_monitor_bench
from bench.rare_events import run_rare_events
from bench.shipped import run_shipped
from canarywise.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "quick": {
        "replicates": 600,  # rollouts per harm scenario (fixed ladder), every method
        "ab_replicates": 600,  # tests per A/B scenario
        "e2e": 1,  # rollouts per scenario also run end to end through decide
        "shipped": 600,  # A/A rollouts of the shipped spec with its ladder moved by the decisions
        "shipped_harm": 200,  # the same with harm at the MDE
        "replays": 1,  # of those, replayed through decide look by look
        "hard_limit": 1000,  # healthy canaries per backstop row (and broken ones per time-to-fire row)
        "tick_repeats": 3,
        "cold": 1,
        "rare_gate": 300,  # rollouts per rare-event gate cell (18 cells), both rules on the same streams
        "rare_other": 200,  # per A/A harm row and per coverage row
        "rare_srm": 100,  # per SRM row (7 days of a 95/5 split)
        "rare_replays": 1,  # of each gate cell, replayed through decide
        "shadow": 400,  # A/A shadow phases (a quarter per time-to-reject row, an eighth per pairing row)
        "monitor_days": 60,  # stationary days the drift monitor looks at hourly (false alerts)
        "monitor_runs": 10,  # campaigns (the seed's drift) at a random hour of a week (time to detect)
    },
    "full": {
        "replicates": 10000,
        "ab_replicates": 4000,
        "e2e": 20,
        "shipped": 10000,
        "shipped_harm": 2000,
        "replays": 15,
        "hard_limit": 20000,
        "tick_repeats": 5,
        "cold": 3,
        "rare_gate": 2000,
        "rare_other": 1000,
        "rare_srm": 1000,
        "rare_replays": 2,
        "shadow": 2000,
        "monitor_days": 365,
        "monitor_runs": 50,
    },
}
HARD_LIMIT_UNITS = (30_000, 300_000, 3_000_000)  # canary units a day at 100% traffic
HARD_LIMIT_BASELINES = (0.003, 0.004, 0.005)
ALARM_REQUESTS = (100, 150, 250, 500)  # canary requests a minute
ALARM_MINUTES = 7 * 1440  # the fixed-traffic alarm table: a week of one-minute datapoints
BROKEN_RATES = (0.04, 0.10)
DETECT_UNITS = (30_000, 300_000)  # canary units a day at 100% traffic, for the backstop's detection speed
DETECT_REQUESTS = (100, 250, 1000)  # canary requests a minute, for the alarm's
MANY_EXPERIMENTS = (100, 200)  # running experiments in one significance-check tick, AWS latency simulated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer replicates: finishes in under 2 minutes")
    parser.add_argument("--seed", type=int, default=20261102)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    cfg = MODES[mode]
    started = time.perf_counter()

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {text}", file=sys.stderr, flush=True)

    spec = load_spec(ROOT / "config" / "mangaassist.yaml")
    rng = np.random.default_rng(args.seed)
    log(f"bench: {mode} mode, seed {args.seed}")
    quality = run_all(
        spec,
        replicates=cfg["replicates"],
        ab_replicates=cfg["ab_replicates"],
        e2e_replicates=cfg["e2e"],
        rng=rng,
        log=log,
    )
    shipped = run_shipped(
        spec,
        replicates=cfg["shipped"],
        harm_replicates=cfg["shipped_harm"],
        replays=cfg["replays"],
        rng=rng,
        log=log,
    )
    # its own random stream: adding this section left the draws of the sections after it as they were
    rare = run_rare_events(
        spec,
        replicates=cfg["rare_gate"],
        harm_replicates=cfg["rare_other"],
        coverage_replicates=cfg["rare_other"],
        srm_replicates=cfg["rare_srm"],
        replays=cfg["rare_replays"],
        rng=np.random.default_rng([args.seed, 15]),
        log=log,
    )
    shadow_report = shadow.run_shadow(
        load_spec(shadow.SPEC), replicates=cfg["shadow"], rng=np.random.default_rng([args.seed, 12]), log=log
    )
    monitor_report = run_monitor_bench(
        days=cfg["monitor_days"],
        runs=cfg["monitor_runs"],
        rng=np.random.default_rng([args.seed, 21]),
        log=log,
    )
    (error_rate,) = [m for m in spec.metrics if m.name == "error_rate"]
    limit = error_rate.hard_limit
    assert limit is not None
    # The hard limits draw from their own stream too: the sections before them consume a number of draws that
    # depends on the decisions (rollouts that end sooner draw less), which moved these tables by noise alone.
    rng = np.random.default_rng([args.seed, 129])
    backstops = [
        hard_limit.backstop(spec, p, units, limit=limit, replicates=cfg["hard_limit"], rng=rng)
        for units in HARD_LIMIT_UNITS
        for p in HARD_LIMIT_BASELINES
    ]
    lines = {"hard limit": limit, "approaching": limit * alarm.APPROACHING}
    rules = (alarm.RATE, alarm.Z)
    ladder_alarms = {
        (units, p): {
            (which, rule): alarm.ladder_alarm_probability(spec, units, p, line, rule)
            for which, line in lines.items()
            for rule in rules
        }
        for units in HARD_LIMIT_UNITS
        for p in HARD_LIMIT_BASELINES
    }
    fixed_alarms = {
        (m, p): {rule: alarm.fixed_alarm_probability(m, p, limit, rule, ALARM_MINUTES) for rule in rules}
        for m in ALARM_REQUESTS
        for p in HARD_LIMIT_BASELINES
    }
    detection = report.Detection(
        backstop={
            (units, r): hard_limit.time_to_fire(
                spec, r, units, limit=limit, replicates=cfg["hard_limit"], rng=rng
            )
            for units in DETECT_UNITS
            for r in BROKEN_RATES
        },
        alarm={
            (m, r): (
                alarm.median_minutes_to_alarm(m, r, limit, alarm.RATE),
                alarm.median_minutes_to_alarm(m, r, limit, alarm.Z),
            )
            for m in DETECT_REQUESTS
            for r in BROKEN_RATES
        },
    )
    log("hard limits measured")
    try:
        ticks = cost.ticks_in_fresh_process((1, 10) if mode == "quick" else (1, 10, 100), cfg["tick_repeats"])
        log("ticks measured")
        if mode == "full" and not cost.build_bundle():
            log("scripts/build_bundle.py failed; measuring the bundle on disk")
        cold = cost.cold_start(cfg["cold"])
        bundle = cost.bundle()
        log("cold start and bundle measured")
        cost_lines = report.cost_tables(ticks, cold, bundle, spec)
        many = {n: cost.many_in_fresh_process(n, ticks=3) for n in MANY_EXPERIMENTS}
        rollback_cold = cost.cold_start(cfg["cold"], cost.ROLLBACK_MODULE)
        cost_lines += report.many_experiments_tables(many, rollback_cold, cost.rollback_in_fresh_process())
        log("many-experiments ticks and the rollback import measured")
    except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        # The decision-quality sections stand on their own: keep them, and carry the last measured cost
        # section over, saying so, rather than losing a quarter of an hour of Monte Carlo to a broken stub.
        log(f"cost not measured ({exc!r}); carrying over the cost section of {args.out}")
        cost_lines = _previous_cost_section(Path(args.out), repr(exc))
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
        f"Mode {mode}, seed {args.seed}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python "
        f"{platform.python_version()} on {platform.machine()} ({os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end: timings are of a shared machine), {elapsed:.0f} s in all.",
        "",
        "Simulation: 300,000 sessions a day (Poisson per 5-minute tick around a diurnal curve, ±35%), "
        "starting 10:00. In the method comparison the canary's share follows the spec's ladder at its "
        "minimum durations (5% for 4 h, 25% for 24 h, then 50% to the end of the 7-day horizon); the section "
        "on the shipped spec moves the ladder by the engine's decisions instead. Fixed horizon and "
        "O'Brien-Fleming are planned for the MDE (+2 pt) at the scenario's baseline with alpha 0.05 "
        "one-sided and 80% power; the mSPRT row uses GrowthBook's tuning rho^2 = (-2 ln a + ln(1 - 2 ln a)) "
        "/ N* with N* = 5000 (tau^2 = rho^2 x per-unit variance), tested one-sided through `msprt_normal`. "
        "Standard errors (± SE) are binomial, sqrt(p (1 - p) / rollouts).",
        "",
    ]
    alpha = spec.statistics.alpha
    body = [
        *report.quality_tables(quality, alpha),
        "",
        *report.limits_text(quality, alpha),
        *report.shipped_tables(shipped, alpha),
        *report.rare_event_tables(rare),
        "",
        *report.shadow_tables(shadow_report),
        *report.monitor_tables(monitor_report),
        *report.hard_limit_tables(spec, backstops, ladder_alarms, fixed_alarms, detection, limit),
        *cost_lines,
    ]
    text = "\n".join(header + body) + "\n"
    Path(args.out).write_text(text)
    print(text)
    log(f"wrote {args.out}")
    return 0


def _previous_cost_section(path: Path, error: str) -> list[str]:
    """The cost section of the previous docs/benchmarks.md, headed by why it was not measured again."""
    heading = "## Cost and speed of the control plane"
    previous = path.read_text() if path.exists() else ""
    kept = previous[previous.index(heading) :].rstrip("\n").split("\n")[1:] if heading in previous else []
    return [
        heading,
        "",
        f"**Not measured in this run** (the tick measurement failed: `{error[:300]}`); the tables below are "
        "carried over from the previous run of this file.",
        *kept,
    ]


if __name__ == "__main__":
    sys.exit(main())
