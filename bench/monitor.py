"""Bench: the drift monitor. False alerts per 30 days on stationary traffic with weekly seasonality, and the
time to detect the seed's drift (recommendation share 32% -> 21%, thumbs-down 6% -> 9%).

The traffic is `canarywise.demo.drift_traffic` (MangaAssist, ~300,000 chats a day, hourly counts whose volume,
intent mix and thumbs-down rate follow the hour of the day and the day of the week); the monitor is the demo
spec's (``demo/specs/mangaassist-monitor.yaml``: hourly looks, the same hour of four previous weeks, five
watches, 0.1 false alerts per 30 days, two looks in a row). Every look goes through
`canarywise.runtime.monitor.evaluate` and `findings`, as the Lambda does. Two simpler rules run on the same
looks, to show what each part of the rule buys:

- *same hours, p < 0.05 each look*: the rolling baseline, but every look and watch at 0.05, one look enough;
- *previous 24 h, p < 0.05 each look*: a baseline of the last day (the cycles become drift), 0.05, one look.

An alert is counted when a rule's finding starts (a run of findings pages once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from canarywise.data.monitor_source import WindowCounts
from canarywise.data.registry import MonitorLook, WatchResult
from canarywise.demo.drift_traffic import Drift, MonitorTraffic, hour_counts, to_window
from canarywise.demo.scenarios import PACKAGE
from canarywise.runtime.monitor import evaluate, findings
from canarywise.spec import RolloutSpec, load_spec

SPEC = PACKAGE / "specs" / "mangaassist-monitor.yaml"
START = datetime(2026, 6, 1, tzinfo=UTC)  # a Monday
NAIVE_ALPHA = 0.05


@dataclass
class RuleCount:
    label: str
    alerts: int = 0
    looks: int = 0
    _active: bool = False

    def see(self, alerting: bool) -> None:
        self.looks += 1
        self.alerts += alerting and not self._active
        self._active = alerting

    @property
    def per_30_days(self) -> float:
        return self.alerts / (self.looks / (30 * 24)) if self.looks else float("nan")


@dataclass
class MonitorBench:
    days: int
    runs: int
    canarywise: RuleCount
    same_hours_naive: RuleCount
    previous_day_naive: RuleCount
    detection_hours: list[float] = field(default_factory=list)
    missed: int = 0
    alpha: float = 0.0


def _naive(results: tuple[WatchResult, ...]) -> bool:
    return any(r.pvalue is not None and r.pvalue < NAIVE_ALPHA for r in results)


def _play(
    spec: RolloutSpec,
    traffic: MonitorTraffic,
    hours: int,
    rng: np.random.Generator,
    on_look: Callable[[datetime, tuple[WatchResult, ...], tuple[str, ...], tuple[WatchResult, ...]], bool],
) -> None:
    """Four baseline weeks, then `hours` looks; `on_look(window start, results, findings, naive 24 h
    results)` returning True stops."""
    monitor = spec.monitor
    assert monitor is not None
    weeks = monitor.baseline_weeks
    counts: list[WindowCounts] = [to_window(hour_counts(traffic, START + timedelta(hours=h), rng))
                                  for h in range(weeks * 168)]  # fmt: skip
    history: list[MonitorLook] = []
    for _ in range(hours):
        now = len(counts)
        start = START + timedelta(hours=now)
        current = to_window(hour_counts(traffic, start, rng))
        baseline = WindowCounts()
        for k in range(1, weeks + 1):
            baseline = baseline.plus(counts[now - 168 * k])
        day = WindowCounts()
        for h in range(1, 25):
            day = day.plus(counts[now - h])
        results = evaluate(monitor, current, baseline)
        found = findings(results, history[-monitor.sustain :], start, monitor.sustain)
        history.append(
            MonitorLook(service=spec.service, window_start=start, window_end=start + timedelta(hours=1),
                        looked_at=start, baseline_starts=(), results=results, findings=found)
        )  # fmt: skip
        counts.append(current)
        if on_look(start, results, found, evaluate(monitor, current, day)):
            return


def run_monitor_bench(
    *, days: int, runs: int, rng: np.random.Generator, log: Callable[[str], None] = print
) -> MonitorBench:
    """`days` of stationary traffic (false alerts), and `runs` campaigns starting at a random hour of a week
    (time to detect, up to two days)."""
    spec = load_spec(SPEC)
    assert spec.monitor is not None
    from canarywise.stats.drift import look_alpha

    bench = MonitorBench(
        days=days, runs=runs,
        canarywise=RuleCount("canarywise (same hours of 4 weeks, 0.1 per 30 days, 2 looks in a row)"),
        same_hours_naive=RuleCount("same hours of 4 weeks, p < 0.05 at each look"),
        previous_day_naive=RuleCount("previous 24 h, p < 0.05 at each look"),
        alpha=look_alpha(spec.monitor.false_alerts_per_30d, spec.monitor.interval, spec.monitor.watches),
    )  # fmt: skip

    def stationary(_: datetime, results: tuple[WatchResult, ...], found: tuple[str, ...],
                   day: tuple[WatchResult, ...]) -> bool:  # fmt: skip
        bench.canarywise.see(bool(found))
        bench.same_hours_naive.see(_naive(results))
        bench.previous_day_naive.see(_naive(day))
        return False

    log(f"monitor: {days} stationary days")
    _play(spec, MonitorTraffic(), days * 24, rng, stationary)
    for run in range(runs):
        onset = START + timedelta(weeks=spec.monitor.baseline_weeks, hours=int(rng.integers(0, 168)))
        detected: list[float] = []

        def campaign(
            start: datetime,
            _: tuple[WatchResult, ...],
            found: tuple[str, ...],
            __: tuple[WatchResult, ...],
            onset: datetime = onset,
            detected: list[float] = detected,
        ) -> bool:
            if start >= onset and found:
                detected.append((start + timedelta(hours=1) - onset).total_seconds() / 3600)
                return True
            return start >= onset + timedelta(hours=48)

        hours = int((onset - START).total_seconds() // 3600) - spec.monitor.baseline_weeks * 168 + 49
        _play(spec, MonitorTraffic(drift=Drift(onset=onset)), hours, rng, campaign)
        if detected:
            bench.detection_hours.append(detected[0])
        else:
            bench.missed += 1
        log(f"monitor: campaign {run + 1}/{runs}: detected after {detected[0] if detected else 'never'} h")
    return bench
