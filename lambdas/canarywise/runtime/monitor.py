"""The drift monitor: at each look, the current window against a rolling baseline, then the alert rule.

The current window is the last whole ``monitor.interval`` that ended at least `DATA_LAG` ago (CloudWatch
publishes a minute's datapoints a minute or two later); the baseline pools the same hours of each of the
previous ``monitor.baseline_weeks`` weeks, so the daily and weekly cycles are in both and are not drift.
Each watch is tested (`canarywise.stats.drift`): rates with `rate_test`, mixes with `category_mix_test`,
binned numeric distributions with `binned_ks_test`. A watch deviates when its p-value is under the look's
alpha (`look_alpha`: the ``false_alerts_per_30d`` budget spent evenly over the looks and watches) **and** its
effect reaches ``min_change``; it is a finding when it has deviated at ``sustain`` consecutive looks
(`sustained`; a missing look breaks the run).

Every look is stored with its numbers (`Registry.record_look`, once per window); a finding that begins is
stored as a drift record (`Registry.record_drift`) and sent to the alert topic with its numbers; the ``Drift``
metric (1 while anything drifts) is published at every look for the drift alarm.

Example
-------
>>> summary = look(now=event_time, spec=spec, source=MonitorSource(), registry=registry,  # doctest: +SKIP
...                signal=DriftSignal(), topic=AlertTopic(topic_arn))
>>> summary.findings  # doctest: +SKIP
('intent_mix', 'thumbs_down_rate')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from canarywise.data.executions import AlertTopic
from canarywise.data.monitor_source import DriftSignal, MonitorSource, WindowCounts
from canarywise.data.registry import DriftRecord, MonitorLook, Registry, WatchResult
from canarywise.spec import Monitor, RolloutSpec
from canarywise.stats.drift import (
    binned_ks_test,
    category_mix_test,
    look_alpha,
    rate_test,
    sustained,
)

logger = Logger(child=True)

DATA_LAG = timedelta(minutes=10)
# Fewer units than this in a window (current or pooled baseline): the watch is not tested at this look.
MIN_UNITS = 100


@dataclass
class LookSummary:
    """What one look did (the handler returns it)."""

    window_end: datetime
    tested: bool = True
    deviating: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    new_findings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_end": self.window_end.isoformat(),
            "tested": self.tested,
            "deviating": self.deviating,
            "findings": self.findings,
            "new_findings": self.new_findings,
        }


def current_window(now: datetime, interval: int) -> tuple[datetime, datetime]:
    """The last whole `interval` (seconds, aligned to UTC midnight) that ended at least `DATA_LAG` ago.

    Example
    -------
    >>> start, end = current_window(datetime(2026, 11, 2, 10, 5, tzinfo=UTC), 3600)
    >>> start.hour, end.hour
    (8, 9)
    """
    epoch = int((now - DATA_LAG).timestamp())
    end = datetime.fromtimestamp(epoch - epoch % interval, tz=UTC)
    return end - timedelta(seconds=interval), end


def baseline_starts(start: datetime, weeks: int) -> tuple[datetime, ...]:
    """The same window `weeks` weeks back, one per week, nearest first."""
    return tuple(start - timedelta(weeks=k) for k in range(1, weeks + 1))


def evaluate(monitor: Monitor, current: WindowCounts, baseline: WindowCounts) -> tuple[WatchResult, ...]:
    """Every watch's test of `current` against the pooled `baseline`, at the look's alpha."""
    alpha = look_alpha(monitor.false_alerts_per_30d, monitor.interval, monitor.watches)
    results = []
    for w in monitor.rates:
        now, base = current.rates.get(w.metric, (0, 0)), baseline.rates.get(w.metric, (0, 0))
        results.append(_rate(_Watch(w.metric, "rate", w.min_change, alpha, (now[1], base[1])), now, base))
    for m in monitor.mixes:
        mix_now, mix_base = dict(current.mixes.get(m.name, {})), dict(baseline.mixes.get(m.name, {}))
        n = (sum(mix_now.values()), sum(mix_base.values()))
        results.append(_mix(_Watch(m.name, "mix", m.min_change, alpha, n), mix_now, mix_base))
    for d in monitor.distributions:
        bins_now, bins_base = current.distributions.get(d.name, ()), baseline.distributions.get(d.name, ())
        n = (sum(bins_now), sum(bins_base))
        results.append(
            _distribution(_Watch(d.name, "distribution", d.min_change, alpha, n), bins_now, bins_base)
        )
    return tuple(results)


@dataclass(frozen=True)
class _Watch:
    """A watch at one look: its name, kind, minimum change, the look's alpha and the units (current,
    baseline)."""

    name: str
    kind: Any
    min_change: float
    alpha: float
    n: tuple[int, int]

    def untested(self, note: str) -> WatchResult:
        return self._result(method="not tested", statistic=None, pvalue=None, effect=None, note=note)

    def tested(
        self, method: str, statistic: float, pvalue: float, effect: float, detail: dict[str, Any]
    ) -> WatchResult:
        """Deviates when `pvalue` is under the look's alpha and `effect` reaches the minimum change."""
        deviates = pvalue < self.alpha and abs(effect) >= self.min_change
        return self._result(
            method=method, statistic=statistic, pvalue=pvalue, effect=effect, deviates=deviates, detail=detail
        )

    def _result(self, **fields: Any) -> WatchResult:
        return WatchResult(
            name=self.name,
            kind=self.kind,
            alpha=self.alpha,
            min_change=self.min_change,
            current_n=self.n[0],
            baseline_n=self.n[1],
            **{"deviates": False, **fields},
        )

    def too_few(self) -> str | None:
        if min(self.n) < MIN_UNITS:
            current, baseline = self.n
            return (
                f"too few units to test (current {current}, baseline {baseline}; at least {MIN_UNITS} each)"
            )
        return None


def _rate(watch: _Watch, current: tuple[int, int], baseline: tuple[int, int]) -> WatchResult:
    (x1, n1), (x0, n0) = current, baseline
    note = watch.too_few()
    if note:
        return watch.untested(note)
    r = rate_test(x0, n0, x1, n1)
    detail = {"baseline_rate": r.baseline_rate, "current_rate": r.current_rate, "events": [x0, x1]}
    return watch.tested(r.method, r.statistic, r.pvalue, r.difference, detail)


def _mix(watch: _Watch, now: dict[str, int], base: dict[str, int]) -> WatchResult:
    nonempty = {c for c in (*now, *base) if now.get(c, 0) + base.get(c, 0) > 0}
    note = watch.too_few() or (None if len(nonempty) >= 2 else "fewer than two categories with data")
    if note:
        return watch.untested(note)
    r = category_mix_test(base, now)
    changes = [c - b for b, c in zip(r.baseline_shares, r.current_shares, strict=True)]
    largest = max(range(len(changes)), key=lambda i: abs(changes[i]))
    detail = {
        "df": r.df,
        "largest_change": r.categories[largest],
        "baseline_shares": dict(zip(r.categories, r.baseline_shares, strict=True)),
        "current_shares": dict(zip(r.categories, r.current_shares, strict=True)),
    }
    return watch.tested(r.method, r.statistic, r.pvalue, changes[largest], detail)


def _distribution(watch: _Watch, now: tuple[int, ...], base: tuple[int, ...]) -> WatchResult:
    note = watch.too_few()
    if note or not now or not base:
        return watch.untested(note or "no bins")
    r = binned_ks_test(list(base), list(now))
    detail = {"baseline_counts": list(base), "current_counts": list(now)}
    return watch.tested(r.method, r.statistic, r.pvalue, r.statistic, detail)


def findings(
    results: Sequence[WatchResult], history: Sequence[MonitorLook], start: datetime, sustain: int
) -> tuple[str, ...]:
    """The watches that deviate now and at the ``sustain - 1`` looks just before, window after window."""
    run: list[MonitorLook] = []
    expected_end = start
    for previous in reversed(history):  # newest first; stop at the first gap
        if previous.window_end != expected_end:
            break
        run.insert(0, previous)
        expected_end = previous.window_start
    found = []
    for result in results:
        past = [_deviated(p, result.name) for p in run]
        if sustained([*past, result.deviates], sustain):
            found.append(result.name)
    return tuple(found)


def _deviated(look: MonitorLook, name: str) -> bool:
    result = look.result(name)
    return result is not None and result.deviates


def describe(result: WatchResult) -> str:
    """One line with the numbers of a watch's test (the drift record's and the SNS message's summary)."""
    p = f"p = {result.pvalue:.2g} < alpha {result.alpha:.2g}" if result.pvalue is not None else result.note
    if result.kind == "rate":
        before, after = result.detail["baseline_rate"], result.detail["current_rate"]
        return (
            f"{result.name} {before:.2%} -> {after:.2%} ({100 * (after - before):+.2f} points; "
            f"chi-square {result.statistic:.1f}, {p})"
        )
    if result.kind == "mix":
        category = result.detail["largest_change"]
        before = result.detail["baseline_shares"][category]
        after = result.detail["current_shares"][category]
        return (
            f"{result.name}: {category} share {before:.1%} -> {after:.1%} "
            f"({100 * (after - before):+.1f} points; chi-square {result.statistic:.1f}, "
            f"df {result.detail['df']}, {p})"
        )
    return f"{result.name}: KS distance {result.effect:.3f} over the bin edges ({p})"


def look(
    *,
    now: datetime,
    spec: RolloutSpec,
    source: MonitorSource,
    registry: Registry,
    signal: DriftSignal,
    topic: AlertTopic | None,
) -> LookSummary:
    """One look of the monitor at `now` (see the module docs); a window already looked at is not redone."""
    monitor = spec.monitor
    assert monitor is not None, "the spec has no monitor block"
    start, end = current_window(now, monitor.interval)
    summary = LookSummary(window_end=end)
    history = registry.monitor_looks(spec.service, last=monitor.sustain + 1)
    if history and history[-1].window_end >= end:
        summary.tested = False
        summary.findings = list(history[-1].findings)
        logger.info("window already looked at", extra={"window_end": end.isoformat()})
        signal.publish(spec.service, findings=len(summary.findings), timestamp=now)
        return summary
    categories = source.categories(spec)
    current = source.read(spec, start, end, categories=categories)
    starts = baseline_starts(start, monitor.baseline_weeks)
    baseline = WindowCounts()
    for week_start in starts:
        baseline = baseline.plus(
            source.read(spec, week_start, week_start + (end - start), categories=categories)
        )
    results = evaluate(monitor, current, baseline)
    found = findings(results, history, start, monitor.sustain)
    record = MonitorLook(
        service=spec.service,
        window_start=start,
        window_end=end,
        looked_at=now,
        baseline_starts=starts,
        results=results,
        findings=found,
    )
    if not registry.record_look(record):
        summary.tested = False
        return summary
    before = set(history[-1].findings) if history and history[-1].window_end == start else set()
    summary.deviating = [r.name for r in results if r.deviates]
    summary.findings = list(found)
    summary.new_findings = [name for name in found if name not in before]
    for name in summary.new_findings:
        result = record.result(name)
        assert result is not None
        drift = DriftRecord(
            service=spec.service,
            watch=name,
            detected_at=end,
            looks=monitor.sustain,
            result=result,
            summary=f"{describe(result)}; deviating at {monitor.sustain} consecutive looks",
        )
        if registry.record_drift(drift) and topic is not None:
            topic.publish(f"canarywise {spec.service}: drift in {name}", drift.model_dump(mode="json"))
        logger.warning("drift", extra={"watch": name, "summary": drift.summary})
    signal.publish(spec.service, findings=len(found), timestamp=now)
    logger.info("look", extra=summary.to_dict())
    return summary
