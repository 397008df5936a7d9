"""The spec's ``monitor`` block: what the drift monitor watches after promotion, or alone (``mode: monitor``).

The monitor compares the current window (the last ``interval``) with a rolling baseline, the same hours of the
previous ``baseline_weeks`` weeks, for three kinds of watch:

=============  =====================================================  ========================================
watch          what is read                                           test (``canarywise.stats.drift``)
=============  =====================================================  ========================================
rates          a proportion metric of the spec: events / units        ``rate_test`` (2 x 2 chi-square)
mixes          a sliced metric's units per slice value (intents)      ``category_mix_test`` (chi-square)
distributions  binned counts the emit helper records (``histogram``)  ``binned_ks_test`` (KS on bin edges)
=============  =====================================================  ========================================

A watch *deviates* at a look when its p-value is under the look's alpha
(`canarywise.stats.drift.look_alpha` from ``false_alerts_per_30d``) **and** its effect is at least
``min_change``; it becomes a *finding* (the drift alarm, an SNS message, a drift record) when it has deviated
at ``sustain`` consecutive looks.

Example
-------
>>> Monitor.model_validate({"rates": [{"metric": "thumbs_down_rate"}]}).interval
3600
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from canarywise.spec.model import RolloutSpec

_DURATION = re.compile(r"^\s*(\d+)\s*([hd])\s*$")
_NAME = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
# CloudWatch keeps one-hour datapoints for 455 days and five-minute ones for 63 days: a baseline weeks back
# is read at an interval of whole hours. EventBridge Scheduler and the schedule's event age allow a day.
MAX_MONITOR_INTERVAL = 86400
MAX_BASELINE_WEEKS = 8
MAX_BINS = 30


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateWatch(_Model):
    """A proportion metric of the spec (thumbs-down, escalation, out-of-scope)."""

    metric: _NAME
    # The smallest change of the rate (absolute, e.g. 0.01 = one point) worth an alert.
    min_change: Annotated[float, Field(gt=0, lt=1)] = 0.01


class MixWatch(_Model):
    """The mix of a sliced metric's units over its slice values (e.g. intents)."""

    name: _NAME
    metric: _NAME
    # The smallest change of any one category's share (absolute) worth an alert.
    min_change: Annotated[float, Field(gt=0, lt=1)] = 0.03


class DistributionWatch(_Model):
    """A numeric value per unit, recorded as binned counts (``VariantMetrics.histogram``)."""

    name: _NAME
    namespace: Annotated[str, Field(min_length=1)]
    metric_name: Annotated[str, Field(min_length=1)]
    # The bins' inner edges, increasing: n edges make n + 1 bins (the first and last open-ended).
    edges: Annotated[tuple[float, ...], Field(min_length=1, max_length=MAX_BINS - 1)]
    # The smallest KS distance (largest gap of the two CDFs) worth an alert.
    min_change: Annotated[float, Field(gt=0, lt=1)] = 0.05

    @field_validator("edges")
    @classmethod
    def _increasing(cls, edges: tuple[float, ...]) -> tuple[float, ...]:
        for i in range(1, len(edges)):
            if edges[i] <= edges[i - 1]:
                raise ValueError(
                    f"edges must increase: edges[{i}] is {edges[i]:g}, not above {edges[i - 1]:g}"
                )
        return edges


def _whole_hours(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"must be whole hours like '1h', '6h' or '1d', found {value!r}")
        seconds = int(match.group(1)) * (3600 if match.group(2) == "h" else 86400)
    if seconds <= 0 or seconds % 3600 or seconds > MAX_MONITOR_INTERVAL or 86400 % seconds:
        raise ValueError(
            "must be whole hours that divide a day (1h, 2h, 3h, 4h, 6h, 8h, 12h, 1d): the baseline is the "
            f"same hours of earlier weeks, read at one-hour resolution, found {value!r}"
        )
    return seconds


class Monitor(_Model):
    """The drift monitor's settings and watches (see the module docs)."""

    # How often it looks; the current window is the last interval.
    interval: int = 3600
    baseline_weeks: Annotated[int, Field(ge=1, le=MAX_BASELINE_WEEKS)] = 4
    # Expected false alerts in any 30 days of stationary traffic (0.1: about one a year).
    false_alerts_per_30d: Annotated[float, Field(gt=0, le=1)] = 0.1
    # Consecutive deviating looks before a finding.
    sustain: Annotated[int, Field(ge=1, le=24)] = 2
    # The Variant dimension values read and summed (default: the spec's two slots: all production traffic).
    variants: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")], ...] = ()
    rates: tuple[RateWatch, ...] = ()
    mixes: tuple[MixWatch, ...] = ()
    distributions: tuple[DistributionWatch, ...] = ()

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> int:
        return _whole_hours(value)

    @model_validator(mode="after")
    def _check(self) -> Monitor:
        if not (self.rates or self.mixes or self.distributions):
            raise ValueError("the monitor watches nothing: give rates, mixes or distributions")
        names = [w.metric for w in self.rates] + [w.name for w in self.mixes]
        names += [w.name for w in self.distributions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"each watch needs its own name, found {', '.join(duplicates)} twice")
        return self

    @property
    def watches(self) -> int:
        """The tests at each look (what the false-alert budget is divided by)."""
        return len(self.rates) + len(self.mixes) + len(self.distributions)


def monitor_spec(spec: RolloutSpec) -> dict[str, Any]:
    """The monitor's own spec from `spec`: ``mode: monitor``, its watches with their variants resolved, and
    only the metrics they read (what the monitor function is given; small enough for its environment).

    Example
    -------
    >>> from canarywise.spec import load_spec
    >>> spec = load_spec("lambdas/canarywise/demo/specs/mangaassist-monitor.yaml")
    >>> sorted(monitor_spec(spec))
    ['metrics', 'mode', 'monitor', 'service']
    """
    assert spec.monitor is not None, "the spec has no monitor block"
    watched = {w.metric for w in spec.monitor.rates} | {w.metric for w in spec.monitor.mixes}
    monitor = spec.monitor.model_dump(mode="json") | {"variants": list(spec.monitor_variants())}
    metrics = [m.model_dump(mode="json", exclude_defaults=True) for m in spec.metrics if m.name in watched]
    if not metrics:  # a monitor of distributions only: the spec format needs one metric
        metrics = [spec.metrics[0].model_dump(mode="json", exclude_defaults=True)]
    return {"service": spec.service, "mode": "monitor", "metrics": metrics, "monitor": monitor}
