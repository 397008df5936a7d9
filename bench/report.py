"""The tables of docs/benchmarks.md, from the benchmark's results (numbers in, Markdown lines out)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench import cost
from bench.decision_quality import (
    ENGINE_ALONE,
    ENGINE_SHIPPED,
    SPRT,
    SPRT_SHIPPED,
    QualityReport,
    quantile_hours,
    rate_and_se,
    wald_bound_hours,
)
from bench.methods import NEVER
from canarywise.data.metric_source import FRESHNESS_PROBE
from canarywise.decision.context import decisive_metrics
from canarywise.decision.evidence import HARD_LIMIT_MIN_UNITS, LATE_AFTER_INTERVALS
from canarywise.runtime.events import MAX_EXPERIMENTS_PER_INVOCATION
from canarywise.spec import RolloutSpec


def _hours(value: float) -> str:
    return "> 7 d (never)" if math.isinf(value) else f"{value:.2f} h"


def _pct(p: float, se: float | None = None) -> str:
    """A percentage, with its standard error; two decimals when the error is below 0.05 points."""
    digits = 2 if se is not None and 0 < se < 0.0005 else 1
    return f"{100 * p:.{digits}f}%" + (f" ± {100 * se:.{digits}f}" if se is not None else "")


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
        "of each query's window, as it would), in a fresh process, warm: the median of repeated ticks after "
        f"one warm-up. Measured {one['at_hours']:g} h into the rollout (stage 3 of 3, one day in: the "
        "warm-up tick read the two closed stages and froze them, so the measured ticks read the stage in "
        "progress, which carries freshness, from CloudWatch and the closed stages' frozen copies from the "
        "registry). The figure is our code only: no network, no botocore response parsing.",
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
    by_stage, first = one["metrics_steady_by_stage"], one["metrics_first_by_stage"]
    # The probe, when it is a request of its own: each later stage's first hour (the first stage's own
    # window starts where the probe does).
    probe_metrics = 2 * len(decisive_metrics(spec))
    probe_reach = max(FRESHNESS_PROBE.total_seconds(), (LATE_AFTER_INTERVALS + 1) * spec.check_interval)
    probe_checks = (len(spec.stages) - 1) * math.ceil(probe_reach / spec.check_interval)
    window = first[1] - by_stage[1]  # one closed stage read from CloudWatch rather than from its frozen copy
    unfrozen = one["unfrozen_checks_per_stage_end"]
    out += [
        "",
        f"GetMetricData calls per tick and experiment: {one['get_metric_data_calls']} (the stage in "
        "progress, up to 500 queries and 100,800 datapoints a request; its unit counts of the safety and "
        "guardrail metrics a minute at a time, which gives their newest minute: the freshness probe is a "
        "request of its own only while the stage is younger than the probe's hour, "
        f"{probe_metrics} metrics more). "
        "Metrics requested per "
        "tick for one experiment in stage 1, 2, 3: " + ", ".join(str(m) for m in by_stage) + "; a check that "
        "also reads the closed stages (before they are frozen) requests "
        + ", ".join(str(m) for m in first)
        + f" ({window} a closed stage). A stage is read from CloudWatch until the check that freezes it, "
        f"{unfrozen} checks after its end (the data layer waits 15 minutes for late datapoints).",
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
    checks = days * 86_400 / spec.check_interval
    extra = (len(spec.stages) - 1) * unfrozen * window  # each closed stage, until the check that freezes it
    extra += probe_checks * probe_metrics
    metrics_per_tick = _mean_metrics_per_tick(by_stage, stage_hours, days) + extra / checks
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
        metrics_note=(
            f"the stage in progress at every check, the probe on the {probe_checks} checks in a later "
            f"stage's first hour, and each closed stage on the {unfrozen} checks after its end until it is "
            "frozen: counted on the stubbed check"
        ),
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
    before = COST_BEFORE_ISSUE_14
    out += [
        f"| **total** | | | **${total:.2f}** | |",
        f"| *before* | | | *${before['total']:.2f}* | {before['what']} |",
        "",
    ]
    return out


# The bill as make bench measured it before the freshness probe was folded into the stage query (issue 14;
# docs/benchmarks.md of 2026-12-07, seed 20261102): 62.2 metrics a tick, GetMetricData $1.2530 of $2.00.
COST_BEFORE_ISSUE_14 = {
    "total": 2.00,
    "what": "the probe a request of its own at every check: 62.2 metrics requested a tick, GetMetricData "
    "$1.2530",
}


def limits_text(report: QualityReport, alpha: float) -> list[str]:
    """What keeps the engine's time to rollback at the MDE above Wald's bound, with the numbers."""
    result = next(r for r in report.harm if r.scenario.name == "mde")
    sched = report.schedule
    median = {m.method: quantile_hours(m.looks, sched, 0.5) for m in result.methods}
    shipped_alpha = report.engine_alpha[ENGINE_SHIPPED]
    alone, shipped = median[ENGINE_ALONE], median[ENGINE_SHIPPED]
    bound, bound_shipped = median[SPRT], median[SPRT_SHIPPED]
    info_ratio = math.log(1 / shipped_alpha) / math.log(1 / alpha)
    return [
        "## What limits the time to rollback at the MDE",
        "",
        f"The target is a median time to rollback at the MDE within 1.25x Wald's SPRT bound. The escalation "
        f"rate's harm test alone, at the spec's alpha {alpha:g}, takes {alone:.2f} h against the bound's "
        f"{bound:.2f} h: **{alone / bound:.2f}x**. With the shipped spec it takes {shipped:.2f} h: "
        f"**{shipped / bound:.2f}x**. Two things make up the gap:",
        "",
        f"- **The alpha split (most of the shipped spec's gap).** The false-rollback guarantee covers the "
        f"whole rollout, so alpha is shared (Bonferroni) by the {round(alpha / shipped_alpha / 2)} "
        "safety/guardrail metrics and, for the sliced escalation rate, halved again between the overall "
        f"test and its intent slices: the overall harm test runs at {shipped_alpha:g}. Any "
        f"level-{shipped_alpha:g} test needs about ln(1/{shipped_alpha:g}) / ln(1/{alpha:g}) = "
        f"{info_ratio:.2f}x the information of a level-{alpha:g} one. Wald's SPRT told the true effect at "
        f"{shipped_alpha:g} takes "
        f"{bound_shipped:.2f} h ({bound_shipped / bound:.2f}x the {alpha:g} bound; less than "
        f"{info_ratio:.2f}x because the canary's share grows from 5% to 25% at 4 h); against that bound "
        f"the engine's shipped-spec test is at {shipped / bound_shipped:.2f}x.",
        "- **Not knowing the effect.** The SPRT is told the true +2 pt; the engine's mixture test spreads "
        "its bet over effects around the MDE (the mixing variance is planned from the MDE, alpha and power) "
        f"and pays for it: {alone / bound:.2f}x at equal alpha. That price buys a test that also catches "
        "larger and smaller harms without being told their size.",
        "",
        "So the shipped spec misses the 1.25x target because of how the spec spends its alpha, not because "
        "of the sequential test. A team that wants faster rollbacks on the escalation rate can give it a "
        "larger share (fewer or less important guardrails sharing alpha, no slice split), or accept a larger "
        "alpha for harm tests (a false rollback costs a redeploy; a missed harm costs users).",
        "",
    ]


def shipped_tables(report: Any, alpha: float) -> list[str]:
    """The shipped spec with its ladder moved by the engine's decisions (``bench.shipped``)."""
    from bench import shipped as sh

    sched = report.schedule
    out = [
        "## The shipped spec as a team would run it: the ladder moved by the decisions",
        "",
        "The tables above hold the ladder fixed (every stage at its minimum duration) so that every method "
        "sees the same streams. Here config/mangaassist.yaml runs as shipped: every safety/guardrail metric "
        "(the escalation rate split by intent, BH across the slices, the critical ones blocking; the error "
        "rate's 2% hard limit, by its exact test), a stage advances only when `decide` says ADVANCE "
        "(minimum duration run, 1,000 units per arm in the stage, every margin proven non-inferior, no "
        "sample-ratio mismatch), and "
        "a stage that reaches its maximum duration without that is INCONCLUSIVE, which the spec's "
        "`inconclusive_policy: rollback` turns into a rollback. Baselines: escalation 12%, errors 0.3%, slow "
        "responses 2%, hallucinations 3%, safety filter 1%; 300,000 sessions a day. A rollout ends at "
        "READY_FOR_APPROVAL (the harm tests keep running until a person approves; not simulated), at a "
        "rollback, or at INCONCLUSIVE.",
        "",
        "| scenario | rollouts | READY_FOR_APPROVAL | rolled back: harm test | critical slice | hard limit | "
        "INCONCLUSIVE (-> rollback) in stage 1 / 2 / 3 | all rollbacks (± SE) | median time to the end | "
        "90th pct |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in report.results:
        r = result.replicates
        ready = result.outcome == sh.READY
        rolled = result.outcome == sh.ROLLBACK
        inconclusive = result.outcome == sh.INCONCLUSIVE
        reached = (result.stage_starts != NEVER).sum(axis=1)
        by_stage = " / ".join(_pct2(float(np.mean(inconclusive & (reached == s)))) for s in (1, 2, 3))
        cause = {c: float(np.mean(rolled & ((result.causes & c) > 0))) for c in
                 (sh.CAUSE_HARM, sh.CAUSE_SLICE, sh.CAUSE_HARD_LIMIT)}  # fmt: skip
        rate, se = rate_and_se(rolled | inconclusive)
        hours = np.sort(sched.hours_at(result.look))
        out.append(
            f"| {result.label} | {r:,} | {_pct(float(np.mean(ready)))} | {_pct2(cause[sh.CAUSE_HARM])} | "
            f"{_pct2(cause[sh.CAUSE_SLICE])} | {_pct2(cause[sh.CAUSE_HARD_LIMIT])} | {by_stage} | "
            f"{_pct2(rate)} ± {100 * se:.2f} | {hours[(r - 1) // 2]:.1f} h | "
            f"{hours[math.ceil(0.9 * r) - 1]:.1f} h |"
        )
    aa = report.results[0]
    tests = float(np.mean((aa.outcome == sh.ROLLBACK) & ((aa.causes & (sh.CAUSE_HARM | sh.CAUSE_SLICE)) > 0)))
    limits = float(np.mean((aa.outcome == sh.ROLLBACK) & (aa.causes == sh.CAUSE_HARD_LIMIT)))
    timeouts = float(np.mean(aa.outcome == sh.INCONCLUSIVE))
    outlook = report.outlook
    causes = sorted(
        [
            (tests, "the harm tests"),
            (limits, "the hard-limit backstop alone"),
            (timeouts, "the gate's timeout"),
        ],
        reverse=True,
    )
    out += [
        "",
        f"Of a good candidate's {_pct2(tests + limits + timeouts)} chance of being rolled back, the harm "
        f"tests (the only part alpha = {alpha:g} covers) account for {_pct2(tests)}, the hard-limit "
        f"backstop alone for {_pct2(limits)} and the gate's timeout (INCONCLUSIVE, then the spec's policy) "
        f"for {_pct2(timeouts)} (the largest part: {causes[0][1]}). With real harm the ladder does not "
        "advance, so the canary stays at its first stage's share and the rollback comes later than on the "
        "fixed ladder above. The columns of causes can add up to more than the total: one look can breach a "
        "hard limit and prove harm at once.",
        "",
    ]
    broken = next((r for r in report.results if r.label.startswith("broken")), None)
    if broken is not None:
        rolled = broken.outcome == sh.ROLLBACK
        by_test = float(np.mean(rolled & ((broken.causes & sh.CAUSE_HARM) > 0)))
        by_limit = float(np.mean(rolled & (broken.causes == sh.CAUSE_HARD_LIMIT)))
        median = float(np.sort(sched.hours_at(broken.look))[(broken.replicates - 1) // 2])
        out += [
            "The canary at twice the error rate's hard limit (4% errors against the control's 0.3%) is "
            f"rolled back after a median {median:.1f} h: by the error rate's harm test in {_pct2(by_test)} "
            f"of rollouts, by the hard-limit backstop alone in {_pct2(by_limit)}. The harm test compares "
            "the canary with the control; the backstop must rule chance out against an absolute line at "
            "every look of the horizon, so it is the slower of the two here (see the hard limits below).",
            "",
        ]
    out += [
        "Why good candidates end INCONCLUSIVE in stage 1: at the end of its maximum duration "
        f"({report.stage_one_hours:g} h at {report.stage_one_percent:g}%), a candidate exactly "
        "as good as the control has only this chance of having its non-inferiority upper bound inside each "
        "margin (one look, normal approximation; the gate needs all of them, and any earlier look counts "
        "too):",
        "",
        "| metric | margin | non-inferiority bound − estimate at the end of stage 1 | "
        "P(bound inside the margin) |",
        "|---|---|---|---|",
        *(
            f"| {g.metric} | {100 * g.margin:.1f} pt | {100 * g.radius:.2f} pt | {_pct(g.chance)} |"
            for g in outlook
        ),
        "",
        "Whether `decide` agrees: the first rollouts of each scenario were replayed through "
        "`decide(spec, stages, observations, now)` itself, with every metric of the spec (the secondary and "
        "primary ones drawn on the same units), at every look, with the stage history the vectorised engine "
        "produced; agreement = the same decision kind at every look.",
        "",
        "| scenario | rollouts replayed | agree at every look | looks compared | ms per decide call |",
        "|---|---|---|---|---|",
        *(
            f"| {result.label} | {p.rollouts} | {p.agree}/{p.rollouts} | {p.looks:,} | {p.ms_per_call:.2f} |"
            for result, p in zip(report.results, report.replays, strict=True)
        ),
        "",
    ]
    disagreements = [p.first_disagreement for p in report.replays if p.first_disagreement]
    if disagreements:
        out += ["First disagreement: " + disagreements[0], ""]
    return out


@dataclass(frozen=True)
class Detection:
    """How fast each rule catches a broken canary: the backstop's median hours into stage 1 by (canary units
    a day, true rate) and the alarm's median minutes by (requests a minute, true rate), each (before, now)."""

    backstop: dict[tuple[int, float], tuple[float, float]]
    alarm: dict[tuple[int, float], tuple[float, float]]


def _tiny(p: float) -> str:
    """A probability: a percentage down to 0.01%, below that in scientific notation (exact chains)."""
    if p >= 5e-5:
        return _pct2(p)
    return "0" if p < 1e-15 else f"{p:.0e}"


def _alarm_range(
    alarms: dict[tuple[int, float], dict[tuple[str, str], float]], units: int, key: tuple[str, str]
) -> str:
    """The alarm's probability over the baselines at ``units`` a day, as 'lowest-highest'."""
    values = sorted(v[key] for (u, _), v in alarms.items() if u == units)
    if not values:
        return "—"
    low, high = _tiny(values[0]), _tiny(values[-1])
    return low if low == high else f"{low} to {high}"


def _rate(p: float, replicates: int) -> str:
    """A simulated rate with its SE; a handful of hits as a count (none seen: the 95% upper bound is
    3 / replicates)."""
    hits = round(p * replicates)
    if hits < 10:
        return f"{hits} of {replicates:,}"
    return f"{_pct2(p)} ± {100 * math.sqrt(p * (1 - p) / replicates):.2f}"


def _when(value: float, unit: str) -> str:
    if math.isinf(value):
        return "not within the stage" if unit == "h" else "not within 7 d"
    return f"{value:.2f} h" if unit in ("h", "d") else f"{value:.0f} min"


def hard_limit_tables(
    spec: RolloutSpec,
    rates: list[Any],
    ladder_alarms: dict[tuple[int, float], dict[tuple[str, str], float]],
    fixed_alarms: dict[tuple[int, float], dict[str, float]],
    detection: Detection,
    limit: float,
) -> list[str]:
    """The hard limits, before and now side by side (``bench.hard_limit``, ``bench.alarm``)."""
    from bench import alarm as al
    from canarywise.decision.evidence import HARD_LIMIT_ALPHA, hard_limit_level
    from stacks.alarms import ALARM_Z, MIN_REQUESTS_PER_MINUTE

    level = hard_limit_level(spec)
    looks = round(HARD_LIMIT_ALPHA / level)
    hours = [s.max_duration / 3600 for s in spec.stages]
    ladder = " + ".join(f"{h:g} h at {s.percent:g}%" for h, s in zip(hours, spec.stages, strict=True))
    replicates = rates[0].replicates
    out = [
        "## Hard limits: the rule before and the rule now",
        "",
        f"The error rate's hard limit is {100 * limit:g}%, and two rules roll a canary back on it without a "
        "harm test:",
        "",
        "- **the engine's backstop** (`decision.evidence.hard_limit_finding`), at every check once the "
        f"canary has {HARD_LIMIT_MIN_UNITS} units in the stage in progress. *Before*: the observed rate "
        f"above the limit, no test. *Now*: an exact one-sided binomial test, breached when P(X >= k | Bin(n, "
        f"{limit:g})) <= {HARD_LIMIT_ALPHA:g} / {looks:,} looks = {level:.3g} (`hard_limit_level`: "
        f"{HARD_LIMIT_ALPHA:g} split over every look of the {spec.statistics.horizon / 86_400:g}-day "
        "horizon, so a canary exactly at the limit trips it with probability at most "
        f"{100 * HARD_LIMIT_ALPHA:g}% over the whole horizon);",
        f"- **the CloudWatch alarm** (`stacks/alarms.py`) on the canary target group's 5xx, one-minute "
        f"datapoints, {al.DATAPOINTS} of the last {al.PERIODS} breaching, no datapoint below "
        f"{MIN_REQUESTS_PER_MINUTE} requests a minute. *Before*: the minute's 5xx rate above the limit. "
        f"*Now*: the minute's z-statistic against the limit, (errors - L requests) / sqrt(L (1 - L) "
        f"requests), at least {ALARM_Z:g} (the one-sided 0.1% normal tail). The *approaching* warning is the "
        f"same rule with L at {al.APPROACHING:g} x the limit; it pages a person, it does not roll back.",
        "",
        "A healthy canary (its error rate the baseline, as the control's) over the ladder run to its "
        f"maximum durations ({ladder}: the most looks a rollout can have), units Poisson around the "
        "diurnal curve at the stage's share. Backstop: simulated, both rules on the same draws, "
        f"{replicates:,} rollouts per row ('0 of N': none seen, 95% upper bound 3/N). Alarm: exact (a Markov "
        "chain over the last minutes' breaches, requests Poisson each minute). 'Units' are what the error "
        "rate counts (ALB requests: several per session).",
        "",
        "| canary units a day at 100% | baseline | backstop before (± SE) | backstop now | alarm before | "
        "alarm now | approaching warning before | warning now |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rates:
        a = ladder_alarms[(r.daily_units, r.baseline)]
        out.append(
            f"| {r.daily_units:,.0f} | {100 * r.baseline:.1f}% | {_rate(r.rollout_raw, r.replicates)} | "
            f"{_rate(r.rollout_exact, r.replicates)} | {_tiny(a[('hard limit', al.RATE)])} | "
            f"{_tiny(a[('hard limit', al.Z)])} | {_tiny(a[('approaching', al.RATE)])} | "
            f"{_tiny(a[('approaching', al.Z)])} |"
        )
    baselines = sorted({p for _, p in fixed_alarms})
    requests = sorted({m for m, _ in fixed_alarms})
    out += [
        "",
        "Below 100 requests a minute the alarm has no datapoint: at 30,000 units a day it never sees the "
        "canary, at 300,000 only in the busy hours of the 50% stage. Even so, at 300,000 units a day the "
        f"alarm before rolled back {_alarm_range(ladder_alarms, 300_000, ('hard limit', al.RATE))} of "
        "healthy rollouts (outside the engine: this adds to the shipped spec's A/A rate above) and its "
        f"warning paged on {_alarm_range(ladder_alarms, 300_000, ('approaching', al.RATE))}; now "
        f"{_alarm_range(ladder_alarms, 300_000, ('hard limit', al.Z))} and "
        f"{_alarm_range(ladder_alarms, 300_000, ('approaching', al.Z))}. Where it does evaluate, with a "
        "fixed "
        "number of canary requests every minute, a healthy canary sets it off within 7 days with this "
        "probability (exact):",
        "",
        "| canary requests a minute | "
        + " | ".join(f"{100 * p:.1f}%: before | now" for p in baselines)
        + " |",
        "|---|" + "---|---|" * len(baselines),
    ]
    for m in requests:
        cells = (
            f"{_tiny(fixed_alarms[(m, p)][al.RATE])} | {_tiny(fixed_alarms[(m, p)][al.Z])}" for p in baselines
        )
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    out += [
        "",
        "What the test costs: how fast each rule catches a canary that really is broken (median; the "
        "backstop in hours into stage 1, where a broken canary stays; the alarm in minutes at a fixed number "
        "of requests a minute):",
        "",
    ]
    broken = sorted({r for _, r in detection.backstop})
    out += [
        "| rule | traffic | " + " | ".join(f"{100 * r:g}% errors: before | now" for r in broken) + " |",
        "|---|---|" + "---|---|" * len(broken),
    ]
    for units in sorted({u for u, _ in detection.backstop}):
        cells = (" | ".join(_when(t, "h") for t in detection.backstop[(units, r)]) for r in broken)
        out.append(f"| backstop | {units:,} units a day | " + " | ".join(cells) + " |")
    for m in sorted({m for m, _ in detection.alarm}):
        cells = (" | ".join(_when(t, "min") for t in detection.alarm[(m, r)]) for r in broken)
        out.append(f"| alarm | {m:,} requests a minute | " + " | ".join(cells) + " |")
    out.append("")
    return out


def _pct2(p: float) -> str:
    return f"{100 * p:.2f}%"


def _pm(p: float, replicates: int) -> str:
    """A rate with its binomial standard error, in percent with two decimals."""
    return f"{100 * p:.2f}% ± {100 * math.sqrt(p * (1 - p) / replicates):.2f}"


def rare_event_tables(report: Any) -> list[str]:
    """Decision quality at rare events and under repeated looks (``bench.rare_events``), before and now."""
    from bench import rare_events as rare

    alpha = report.alpha
    gate = report.gate
    out = [
        "## Rare events and repeated looks: the gate, the harm test, the confidence sequence, the SRM check",
        "",
        "The error rate's gate at its margin: a first stage at 5% (300,000 sessions a day, 5-minute looks, "
        f"up to {rare.FIRST_STAGE_MAX_HOURS:.0f} h), the error rate alone (margin 0.5 pt, no hard limit), "
        "its canary exactly at the margin (baseline + 0.5 pt), every minimum duration and units per arm "
        "that synth accepts. *False ADVANCE*: the gate met at some look before the harm test rolled the "
        "canary back (must be at most alpha = "
        f"{alpha:g}); *non-inferiority alone*: proven at some look of the stage. *Before*: each stage's "
        "variance at the Agresti-Caffo adjusted observed rates (a canary with no error yet has almost no "
        "variance on its side). *Now*: the larger of that and the variance at the margin (Farrington-"
        "Manning restricted rates; `stats.proportions.difference_variance`). Both rules on the same "
        f"streams; {gate[0].replicates:,} rollouts per cell; 'decide agrees': the first rollouts of each "
        "cell replayed through `decide` look by look, same first decision at the same look.",
        "",
        "| baseline | stage minimum | units per arm | false ADVANCE before | now | non-inferiority alone "
        "before | now | decide agrees |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in gate:
        n = c.replicates
        out.append(
            f"| {100 * c.baseline:g}% | {c.min_hours:g} h | {c.min_units:,} | "
            f"{_pm(c.advanced['before'], n)} | {_pm(c.advanced['now'], n)} | "
            f"{_pm(c.proven['before'], n)} | {_pm(c.proven['now'], n)} | "
            f"{c.agree[0]}/{c.agree[1]} |"
        )
    worst = max(gate, key=lambda c: c.advanced["now"])
    worst_se = math.sqrt(worst.advanced["now"] * (1 - worst.advanced["now"]) / worst.replicates)
    within = all(c.advanced["now"] <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / c.replicates) for c in gate)
    out += [
        "",
        f"Every cell {'is' if within else 'is NOT'} at most alpha within two standard errors now (largest: "
        f"{100 * worst.advanced['now']:.2f}% ± {100 * worst_se:.2f} at a {100 * worst.baseline:g}% baseline, "
        f"{worst.min_hours:g} h, {worst.min_units:,} units); before, up to "
        f"{100 * max(c.advanced['before'] for c in gate):.1f}%.",
        "",
        "Why the larger of the two variances and not the variance at the null alone: each guards one tail. "
        "The gate rejects when the canary has *few* events, where the observed variance collapses; the harm "
        "test rejects when it has *many*, where the pooled variance (the harm test's null) is too small, "
        "Poisson's right tail being heavier than the normal one. The error rate's harm test alone at alpha "
        f"{report.harm[0].alpha:g}, an A/A canary on the shipped ladder at its minimum durations for 7 days "
        f"({report.harm[0].replicates:,} rollouts per row):",
        "",
        "| baseline | false rollback: observed variance (before) | variance at the null alone | the larger "
        "(now) |",
        "|---|---|---|---|",
    ]
    for h in report.harm:
        n = h.replicates
        out.append(
            f"| {100 * h.baseline:g}% | {_pm(h.rolled_back['before'], n)} | "
            f"{_pm(h.rolled_back['null'], n)} | {_pm(h.rolled_back['now'], n)} |"
        )
    cov = report.coverage
    out += [
        "",
        "Time-uniform coverage of `stats.sequential.msprt_proportions`'s two-sided confidence sequence (the "
        "public sequence whose variance comes from counts; `msprt_normal` takes its variance as given and "
        "`msprt_means` uses Welch's): the true difference inside the sequence at every one of the 2,016 "
        "looks of the shipped ladder (5% for 4 h, 25% for 24 h, then 50%), cumulative counts, tau^2 planned "
        f"for a 0.5 pt difference, nominal {100 * (1 - alpha):.0f}%, {cov[0].replicates:,} rollouts per row. "
        "The sequence excludes a value exactly when the test at that value rejects, so coverage is one minus "
        "the chance that the test at the true difference ever rejects (`bench.rare_events` checks that "
        "vectorised test against `msprt_proportions` itself on sampled looks). Before: the variance at the "
        "observed rates; the variance at each candidate null alone; now: the larger of that and the "
        "Agresti-Caffo one.",
        "",
        "| baseline | true difference | coverage before | at the null alone | now |",
        "|---|---|---|---|---|",
    ]
    for r in cov:
        n = r.replicates
        out.append(
            f"| {100 * r.baseline:g}% | {100 * r.difference:+.1f} pt | {_pm(r.covered['before'], n)} | "
            f"{_pm(r.covered['null'], n)} | {_pm(r.covered['now'], n)} |"
        )
    srm = report.srm
    out += [
        "",
        f"The sample-ratio check at the spec's srm_pvalue {report.srm_level:g}: a 95/5 split held for 7 days "
        "(300,000 new assignments a day around the diurnal curve, 5-minute looks), healthy or with new "
        f"assignments arriving at 4.8% instead of 5%; {srm[0].replicates:,} rollouts per row. *Before*: "
        "Pearson's chi-square at every look, HOLD when p < srm_pvalue (a fixed-sample test repeated 2,016 "
        "times). *Now*: `stats.srm.sequential_srm_test`, a normal mixture over the canary's log-odds of the "
        "exact binomial likelihood ratios (anytime-valid: a healthy split is held with probability at most "
        "srm_pvalue over any number of looks), HOLD when its p <= srm_pvalue.",
        "",
        "| scenario | held within 7 d: before | now | median time to the first HOLD: before | now | "
        "held within 24 h: before | now |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in srm:
        n = s.replicates
        out.append(
            f"| {s.label} | {_pm(s.held['before'], n)} | {_pm(s.held['now'], n)} | "
            f"{_when(s.median_hours['before'], 'd')} | {_when(s.median_hours['now'], 'd')} | "
            f"{_pm(s.within_24h['before'], n)} | {_pm(s.within_24h['now'], n)} |"
        )
    return out


def many_experiments_tables(
    runs: dict[int, list[dict[str, Any]]],
    rollback_cold: cost.ColdStart,
    rollback: dict[str, Any],
    measured_by: str = "",
) -> list[str]:
    """The many-experiments tick (fault table row 13): consecutive ticks per number of experiments, each
    against the function's timeout; the rollback function's cold path (import, then alarm to rule)."""
    any_row = next(iter(runs.values()))[0]
    latency = cost.LATENCY
    out = [
        "## Many experiments in one tick, with AWS latency (fault table row 13)",
        "",
        *([measured_by, ""] if measured_by else []),
        f"`check_all` as above (real `Registry`, `MetricSource`, `HarmSignal` on the stub clients), the "
        f"experiments {cost.TICK_AT.total_seconds() / 3600:g} h into the rollout, three ticks 5 minutes "
        "apart in a fresh process. Nothing sleeps: every AWS call adds a fixed latency to a simulated clock "
        f"({1000 * latency['dynamodb']:.0f} ms a DynamoDB request, {1000 * latency['get_metric_data']:.0f} "
        f"ms a GetMetricData, {1000 * latency['list_metrics']:.0f} ms a ListMetrics page, "
        f"{1000 * latency['put_metric_data']:.0f} ms a PutMetricData), and the clock's time = the tick's "
        "wall time on this machine + that latency. `check_all` reads the time left on it as the Lambda "
        f"context's `get_remaining_time_in_millis` against the function's timeout ({any_row['timeout']:g} s, "
        "`min(120 s, check interval)`); it starts no experiment once the time left is under the slowest "
        f"experiment so far + {any_row['margin']:g} s, reports the rest as skipped (log line and "
        "`ExperimentsSkipped`) and checks them first at the next tick. Past "
        f"{MAX_EXPERIMENTS_PER_INVOCATION} running experiments a tick checks the "
        f"{MAX_EXPERIMENTS_PER_INVOCATION} checked longest ago and hands the rest, in batches of as many, to "
        "further asynchronous invocations of the function (run here one after the other, each on its own "
        "clock against its own timeout). Tick 1 reads the two closed stages and freezes them (the heaviest "
        "tick of a rollout); ticks 2 and 3 read the stage in progress.",
        "",
        "| running experiments | tick | invocations | checked within the timeout | skipped | longest "
        "invocation (AWS latency + our code) | per experiment |",
        "|---|---|---|---|---|---|---|",
    ]
    for experiments, rows in runs.items():
        for r in rows:
            per = "—" if math.isnan(r["seconds_per_experiment"]) else f"{r['seconds_per_experiment']:.2f} s"
            out.append(
                f"| {experiments} | {r['tick']} | {r.get('invocations', 1)} | {r['checked']} of "
                f"{r['experiments']} | {r['skipped']} | "
                f"{r['seconds']:.1f} s ({r['aws_seconds']:.1f} + {r['code_seconds']:.1f}) | {per} |"
            )
    calls = rollback["calls"]
    rl = cost.ROLLBACK_LATENCY
    total = rollback["import_seconds"] + rollback["rollback_code_seconds"] + rollback["aws_seconds"]
    out += [
        "",
        "### Cold path of the rollback function: alarm to the rule read back",
        "",
        f"A fresh interpreter imports `{cost.ROLLBACK_MODULE}` (from the virtualenv), then carries out one "
        "rollback from the critical composite alarm's Lambda action: a rollout of the shipped spec at 95/5, "
        "the real `Registry`, `Lifecycle`, `TrafficSplit`, `CanaryExecutions` and `AlertTopic` on stub "
        f"clients; outcome {rollback['outcome']}, the rule {rollback['rule_before']} before and "
        f"{rollback['rule_after']} read back after. AWS latency added per call, not slept "
        f"({1000 * rl['dynamodb']:.0f} ms DynamoDB, {1000 * rl['elbv2']:.0f} ms ELBv2, "
        f"{1000 * rl['stepfunctions']:.0f} ms Step Functions, {1000 * rl['sns']:.0f} ms SNS).",
        "",
        "| import of the handler | rollback (our code) | AWS calls (DynamoDB / ELBv2 / Step Functions / SNS) "
        "| their latency | in all (alarm to rule read back, record and alert) |",
        "|---|---|---|---|---|",
        f"| {rollback['import_seconds']:.2f} s | {1000 * rollback['rollback_code_seconds']:.0f} ms | "
        f"{calls.get('dynamodb', 0)} / {calls.get('elbv2', 0)} / {calls.get('stepfunctions', 0)} / "
        f"{calls.get('sns', 0)} | {rollback['aws_seconds']:.2f} s | {total:.2f} s |",
        "",
        f"The same import from {rollback_cold.source} (median of {rollback_cold.runs}): "
        f"{rollback_cold.with_pyc:.2f} s with the shipped .pyc"
        + (
            ""
            if math.isnan(rollback_cold.without_pyc)
            else f", {rollback_cold.without_pyc:.2f} s without (compiles on import)"
        )
        + ". Lambda's own init (the runtime, the bundle's download) comes on top.",
        "",
    ]
    return out


def shadow_tables(r: Any) -> list[str]:
    """Shadow mode (bench/shadow.py): A/A false rejects, time to reject, the gain from pairing."""
    aa_se = math.sqrt(r.aa.rate * (1 - r.aa.rate) / len(r.aa.looks))

    def hours(value: float) -> str:
        return f"never in {r.horizon_hours:g} h" if math.isinf(value) else f"{value:.2f} h"

    out = [
        "## Decision quality: shadow mode (the shadow gate's harm tests)",
        "",
        "The candidate answers a copy of every request: 1,000 paired requests per five-minute look, "
        f"the shadow phase's maximum {r.horizon_hours:g} h (demo spec `mangaassist-shadow.yaml`); four "
        f"veto metrics, each harm test one-sided at alpha / 4 = {r.alpha:g} (sequential McNemar on the "
        "binary ones, the paired mSPRT on prompt tokens). REJECTED = harm proven on any of them at any look.",
        "",
        "| stream | shadows | rejected | median time to REJECTED | 90th percentile |",
        "|---|---:|---:|---:|---:|",
        f"| A/A (both models alike on every veto metric) | {len(r.aa.looks):,} | {_pct(r.aa.rate, aa_se)} | "
        f"{hours(r.aa.quantile_hours(0.5))} | {hours(r.aa.quantile_hours(0.9))} |",
    ]
    for o in (r.seed, r.guardrail_only):
        out.append(
            f"| {o.label} | {len(o.looks):,} | {_pct(o.rate)} | {hours(o.quantile_hours(0.5))} | "
            f"{hours(o.quantile_hours(0.9))} |"
        )
    out += [
        "",
        "The seed's retriever change (guardrail pass 98.0% -> 97.2%, prompt tokens 120 -> 195) is rejected "
        "at the first look by the token increase; the guardrail drop alone, the subtler half, takes the "
        "times in its row. The A/A row is the false-reject rate over the whole phase: at most alpha = 0.05 "
        "by design.",
        "",
        "### Paired vs unpaired on the same streams",
        "",
        "The same streams tested as pairs (the shadow gate) and as if the two models had answered "
        "different requests (the canary's unpaired mSPRT). Gain = median requests to reject, unpaired / "
        "paired; a look comes every 1,000 pairs, so the medians are multiples of 1,000.",
        "",
        "| metric (change) | runs | paired: median requests | unpaired: median requests | gain |",
        "|---|---:|---:|---:|---:|",
    ]
    changes = {"guardrail_pass_rate": "98.0% -> 97.2%", "prompt_tokens": "120 -> 121"}
    for name, (paired, unpaired) in r.pairing.items():
        p_req, u_req = paired.median_requests(), unpaired.median_requests()
        gain = "n/a" if math.isinf(p_req) else ("> horizon" if math.isinf(u_req) else f"{u_req / p_req:.1f}x")
        out.append(
            f"| {name} ({changes[name]}) | {len(paired.looks):,} | {p_req:,.0f} | {u_req:,.0f} | {gain} |"
        )
    return [*out, ""]


def monitor_tables(r: Any) -> list[str]:
    """The drift monitor (bench/monitor.py): false alerts per 30 days, time to detect the seed's drift."""
    detect = sorted(r.detection_hours)
    nan = float("nan")
    median, low, high = (detect[len(detect) // 2], detect[0], detect[-1]) if detect else (nan, nan, nan)
    out = [
        "## Decision quality: the drift monitor",
        "",
        "Stationary MangaAssist traffic (~300,000 chats a day; volume, intent mix and thumbs-down follow "
        f"the hour and the weekday), looked at every hour for {r.days} days with the demo spec "
        f"(`mangaassist-monitor.yaml`: five watches, the same hour of the four previous weeks as the "
        f"baseline, alpha per look and watch {r.alpha:.2g}). An alert is a finding that starts.",
        "",
        "| rule | looks | alerts | alerts per 30 days |",
        "|---|---:|---:|---:|",
    ]
    for rule in (r.canarywise, r.same_hours_naive, r.previous_day_naive):
        out.append(f"| {rule.label} | {rule.looks:,} | {rule.alerts:,} | {rule.per_30_days:.2f} |")
    out += [
        "",
        f"The seed's drift (recommendation share 32% -> 21%, thumbs-down 6% -> 9%) starting at a random hour "
        f"of a week, {r.runs} runs: detected after a median {median:g} h (min {low:g}, max {high:g}); "
        f"missed within 48 h: {r.missed}. Two looks in a row are "
        "needed, so 2 h is the fastest possible.",
        "",
    ]
    return out
