"""The rollout spec's model: a service's rollout as pydantic models, each validating its own part.

A wrong value fails validation with a message naming the field and the value; `canarywise.spec.loading` turns
those into one `SpecError` line per problem. The limits a field or the whole spec must stay within are here
too, next to the validator that applies them.

Example
-------
>>> Stage(percent=5, min_duration="4h", max_duration="48h").max_duration
172800
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from canarywise.errors import CanarywiseError
from canarywise.spec.monitor import Monitor

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The longest check interval: the significance schedule keeps a missed event for the interval less a minute
# (its maximum event age), and EventBridge Scheduler allows at most one day.
MAX_CHECK_INTERVAL = 86400
# After a rollback the next try's first stage may last at most this many times longer (its stages' durations
# are also counted in the pipeline's wait and the execution history at synth).
MAX_FIRST_STAGE_MULTIPLIER = 10
# Slices: a metric reads at most MAX_SLICES slice values (its busiest, critical ones first) plus one "other"
# slice for the rest, and a spec at most MAX_SLICES_PER_SPEC in all, "other" included. A slice adds up to
# ~1.4 kB to a check record (a finding with a 1,024-character dimension value; ~0.45 kB with a short one), and
# the record is stored whole in one DynamoDB item (400 KB at most) beside the spec: 100 slices with up to two
# findings each stay under ~300 kB.
MAX_SLICES = 50
MAX_SLICES_PER_SPEC = 100
# False-discovery-rate tiers: the q applied by Benjamini-Hochberg across the registry.
FDR_TIER_Q = {"default": 0.10, "revenue-critical": 0.05}


class SpecError(CanarywiseError, ValueError):
    """The rollout spec is invalid; the message names the field and the value."""


def parse_duration(value: Any) -> int:
    """Seconds from ``"4h"``, ``"30m"``, ``"2d"``, ``"90s"`` or a number of seconds.

    Examples
    --------
    >>> parse_duration("4h"), parse_duration(300)
    (14400, 300)
    """
    if isinstance(value, bool):
        raise ValueError(f"must be a duration like '4h', '30m', '2d' or seconds, found {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"must be a finite duration, found {value!r}")
        seconds = int(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"must be a duration like '4h', '30m', '2d' or seconds, found {value!r}")
        seconds = int(float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if seconds <= 0:
        raise ValueError(f"must be a positive duration, found {value!r}")
    return seconds


Seconds = Annotated[int, Field(gt=0)]
# What a duration field accepts (`parse_duration`), for the JSON Schema: "4h", "30m", "2d", "90s" or seconds.
DurationInput = Annotated[str, Field(pattern=_DURATION.pattern)] | Annotated[float, Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricKind(StrEnum):
    PROPORTION = "proportion"  # a rate: successes / trials (escalations per session, 5xx per request)
    MEAN = "mean"  # a continuous value per unit (token cost, CSAT, latency)
    TAIL_EXCEEDANCE = "tail_exceedance"  # share of requests above `threshold` (a proportion)


class MetricRole(StrEnum):
    GUARDRAIL = "guardrail"  # hard limits and vetoes: breach -> rollback, no p-value needed for hard_limit
    SAFETY = "safety"  # one-sided harm test -> rollback; non-inferiority -> advance
    PRIMARY = "primary"  # the pre-registered success metric (A/B), tested for improvement
    SECONDARY = "secondary"  # reported, BH-corrected, never blocks on its own


class Direction(StrEnum):
    LOWER_IS_BETTER = "lower_is_better"
    HIGHER_IS_BETTER = "higher_is_better"


class AlbSource(_Model):
    """The load balancer's own target-group metrics: no instrumentation needed."""

    type: Literal["alb"]
    metric: Literal["http_5xx", "target_response_time"]


class ServiceSource(_Model):
    """The service's own CloudWatch metric, emitted with a ``Variant`` dimension (see ``canarywise.emit``)."""

    type: Literal["service"]
    namespace: Annotated[str, Field(min_length=1)]
    metric_name: Annotated[str, Field(min_length=1)]


RelativeLimit = Annotated[float, Field(gt=0, lt=1)]


class Metric(_Model):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
    kind: MetricKind
    role: MetricRole
    direction: Direction = Direction.LOWER_IS_BETTER
    source: Annotated[AlbSource | ServiceSource, Field(discriminator="type")] | None = None
    # Non-inferiority margin (absolute, in the metric's units): "no worse than control by more than this".
    margin: Annotated[float, Field(gt=0)] | None = None
    # Absolute limit on the canary's value; breached -> rollback through a CloudWatch alarm.
    hard_limit: Annotated[float, Field(gt=0)] | None = None
    # tail_exceedance: the value (e.g. seconds) above which a request counts as exceeding.
    threshold: Annotated[float, Field(gt=0)] | None = None
    # Minimum detectable effect (absolute) this metric is planned for; defaults to statistics.mde.
    mde: Annotated[float, Field(gt=0)] | None = None
    # The control's expected rate (a proportion): read only by `canarywise plan`, which simulates the rollout.
    baseline: Annotated[float, Field(gt=0, lt=1)] | None = None
    slice_dimension: str | None = None
    critical_slices: tuple[str, ...] = ()
    # The slices read: the critical ones, then the busiest, up to this many; the rest pooled as "other".
    max_slices: Annotated[int, Field(ge=1, le=MAX_SLICES)] = 20
    # A critical slice proven worse rolls back; with a limit here (relative to control's value in the slice,
    # one number for every critical slice or one per slice) only a regression estimated beyond it does, a
    # smaller proven one holds like any slice's (docs/decision-rule.md, "Slices").
    max_relative_regression: Annotated[float, Field(gt=0, lt=1)] | dict[str, RelativeLimit] | None = None
    # Weights of the slices in the severity-weighted composite (reported, decides nothing); default 1 each.
    slice_severity: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )

    def relative_limit(self, slice_: str) -> float | None:
        """The critical slice's `max_relative_regression` (None: any proven regression rolls back)."""
        limit = self.max_relative_regression
        if isinstance(limit, dict):
            return limit.get(slice_)
        return limit

    @model_validator(mode="after")
    def _check(self) -> Metric:
        if self.source is None:
            raise ValueError(f"metric {self.name!r} has no source (type: alb or type: service)")
        if self.kind is MetricKind.TAIL_EXCEEDANCE and self.threshold is None:
            raise ValueError(f"metric {self.name!r} is tail_exceedance and needs a threshold")
        if self.baseline is not None and self.kind is MetricKind.MEAN:
            raise ValueError(f"metric {self.name!r}: baseline is a rate, for proportion and tail_exceedance")
        if self.critical_slices and not self.slice_dimension:
            raise ValueError(f"metric {self.name!r} lists critical_slices without a slice_dimension")
        if isinstance(self.max_relative_regression, dict):
            unknown = sorted(set(self.max_relative_regression) - set(self.critical_slices))
            if unknown:
                raise ValueError(
                    f"metric {self.name!r}: max_relative_regression names {unknown}, which are not in its "
                    f"critical_slices {list(self.critical_slices)}"
                )
        if (self.max_relative_regression is not None or self.slice_severity) and not self.slice_dimension:
            raise ValueError(
                f"metric {self.name!r} sets max_relative_regression or slice_severity without a "
                "slice_dimension"
            )
        if len(self.critical_slices) > self.max_slices:
            raise ValueError(
                f"metric {self.name!r} lists {len(self.critical_slices)} critical_slices, more than its "
                f"max_slices {self.max_slices}"
            )
        if isinstance(self.source, AlbSource):
            if self.source.metric == "http_5xx" and self.kind is not MetricKind.PROPORTION:
                raise ValueError(f"metric {self.name!r}: the ALB http_5xx source is a proportion")
            if self.source.metric == "target_response_time" and self.hard_limit is None:
                raise ValueError(
                    f"metric {self.name!r}: the ALB target_response_time source only feeds a "
                    "hard_limit alarm (percentiles are not sufficient statistics); set hard_limit"
                )
        return self


class Stage(_Model):
    percent: Annotated[float, Field(gt=0, le=100)]
    min_duration: Seconds
    max_duration: Seconds

    @field_validator("min_duration", "max_duration", mode="before", json_schema_input_type=DurationInput)
    @classmethod
    def _duration(cls, value: Any) -> int:
        return parse_duration(value)

    @model_validator(mode="after")
    def _check(self) -> Stage:
        if self.max_duration < self.min_duration:
            raise ValueError(
                f"max_duration ({self.max_duration} s) is below min_duration ({self.min_duration} s)"
            )
        return self


class Traffic(_Model):
    """Where the split happens: an existing listener and target groups (normal) or a demo ALB."""

    create_demo: bool = False
    listener_arn: str | None = None
    # The service's two target groups by slot name (e.g. ``blue`` / ``green``); they take turns being live.
    # The slot name is the ``Variant`` dimension value the service's tasks in that group emit.
    target_groups: dict[str, str] | None = None
    # Before blue/green roles: the two groups by their old names; they become the slots "control" and
    # "canary" (the names the services already emit), and either may be live (docs/lifecycle.md).
    control_target_group_arn: str | None = None
    canary_target_group_arn: str | None = None
    rule_priority: Annotated[int, Field(ge=1, le=50000)] = 10
    path_pattern: str = "/*"
    stickiness: Seconds = 7 * 86400

    @field_validator("stickiness", mode="before", json_schema_input_type=DurationInput)
    @classmethod
    def _duration(cls, value: Any) -> int:
        return parse_duration(value)

    @model_validator(mode="after")
    def _check(self) -> Traffic:
        legacy = self.control_target_group_arn or self.canary_target_group_arn
        if self.target_groups is not None and legacy:
            raise ValueError(
                "give target_groups or control_target_group_arn/canary_target_group_arn, not both"
            )
        if self.target_groups is not None and len(self.target_groups) != 2:
            raise ValueError(f"target_groups must name exactly two slots, found {sorted(self.target_groups)}")
        if not self.create_demo and not (self.listener_arn and self.slots()):
            raise ValueError(
                "give listener_arn and target_groups (two slots, e.g. blue and green), or create_demo: true"
            )
        if not 1 <= self.stickiness <= 7 * 86400:
            raise ValueError(
                f"stickiness must be between 1 s and 7 days (ALB limit), found {self.stickiness} s"
            )
        return self

    def slots(self) -> dict[str, str]:
        """Slot name → target group ARN for imported groups (empty with ``create_demo``)."""
        if self.target_groups is not None:
            return dict(self.target_groups)
        if self.control_target_group_arn and self.canary_target_group_arn:
            return {"control": self.control_target_group_arn, "canary": self.canary_target_group_arn}
        return {}


# The slots of the demo ALB's two target groups (traffic.create_demo).
DEMO_SLOTS = ("blue", "green")


class Statistics(_Model):
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05
    power: Annotated[float, Field(gt=0, lt=1)] = 0.8
    # Planned minimum detectable effect (absolute) for metrics that do not set their own.
    mde: Annotated[float, Field(gt=0)] = 0.01
    # The horizon the anytime-valid tests are tuned for (the mixing parameter depends on it).
    horizon: Seconds = 7 * 86400
    min_samples_per_arm: Annotated[int, Field(ge=1)] = 1000
    srm_pvalue: Annotated[float, Field(gt=0, lt=1)] = 0.001
    fdr_tier: Literal["default", "revenue-critical"] = "default"

    @field_validator("horizon", mode="before", json_schema_input_type=DurationInput)
    @classmethod
    def _duration(cls, value: Any) -> int:
        return parse_duration(value)

    @property
    def fdr_q(self) -> float:
        return FDR_TIER_Q[self.fdr_tier]


class AntiFlapping(_Model):
    # 24 h, what teams write into their runbooks: a rolled-back release gets a working day for its root
    # cause before the service takes another one, and the next try starts at another hour of the same daily
    # cycle only on purpose (the stage minimums decide that), not because a retry came back an hour later.
    # The rollback alert says when it ends. A shorter cooldown is a choice a spec states.
    cooldown: Seconds = 86_400
    max_rollbacks_7d: Annotated[int, Field(ge=1)] = 3
    # After a rollback the next try's first stage lasts this many times longer.
    first_stage_multiplier: Annotated[
        float, Field(ge=1, le=MAX_FIRST_STAGE_MULTIPLIER, allow_inf_nan=False)
    ] = 2.0
    # When true, a candidate rolled back in the last 7 days starts again only with a root cause: the release
    # manifest's ``release.root_cause`` (a link to the analysis), recorded with the experiment.
    require_root_cause: bool = False

    @field_validator("cooldown", mode="before", json_schema_input_type=DurationInput)
    @classmethod
    def _duration(cls, value: Any) -> int:
        return parse_duration(value)


class SlicePolicy(_Model):
    """What a proven regression in a slice that is not critical does (critical slices always roll back).

    ``hold`` (default): the stage holds, with the slice, the effect and its interval in the reason, until a
    person acknowledges the finding (``canarywise resume --reason …``, recorded with who and why) or rolls
    back; at the stage's maximum duration the spec's inconclusive policy applies. ``report``: a note only,
    the rollout moves on (the behaviour before issue 16).
    """

    non_critical_regression: Literal["hold", "report"] = "hold"


class TemporalPolicy(_Model):
    """A/B mode: the primary effect per day of the test, flagged when its sign differs across days or it
    decays (novelty); see `canarywise.decision.temporal`. A flag holds PROMOTE unless ``hold_promote`` is
    false (then it is reported only)."""

    hold_promote: bool = True
    # Shared by the two flags (sign across days, decay): each is tested at alpha / 2.
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05
    # "Decays" = the late effect is proven below this fraction of the early one.
    decay_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.5
    # Complete days of the stage in progress before the checks run.
    min_days: Annotated[int, Field(ge=2)] = 2


class Environment(_Model):
    account: Annotated[str, Field(pattern=r"^\d{12}$")] | None = None
    region: str | None = None


class ShadowPhase(_Model):
    """A shadow phase before the canary ladder: the candidate answers a copy of each live request, users only
    ever get the current model's answer, and no traffic moves until the shadow gate passes (docs/shadow.md).

    `veto` names the metrics that can reject the candidate (each needs a `margin`: non-inferiority within it
    is what lets the candidate on); `quality` the optional pre-registered hypothesis metric, which must be
    shown better before the ladder starts.
    """

    veto: Annotated[tuple[str, ...], Field(min_length=1)]
    quality: str | None = None
    min_pairs: Annotated[int, Field(ge=1)] = 2000
    min_duration: Seconds = 3600
    max_duration: Seconds = 3 * 86400

    @field_validator("min_duration", "max_duration", mode="before", json_schema_input_type=DurationInput)
    @classmethod
    def _duration(cls, value: Any) -> int:
        return parse_duration(value)

    @model_validator(mode="after")
    def _check(self) -> ShadowPhase:
        if self.max_duration < self.min_duration:
            raise ValueError(
                f"shadow.max_duration ({self.max_duration} s) is below shadow.min_duration "
                f"({self.min_duration} s)"
            )
        return self


class RolloutSpec(_Model):
    """A service's rollout: where traffic splits, the stage ladder, the metrics and the decision policy."""

    service: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,40}$")]
    # monitor: only the drift monitor (no stages, no traffic split); see canarywise.spec.monitor.
    mode: Literal["canary", "ab", "monitor"] = "canary"
    environment: Environment = Environment()
    traffic: Traffic
    stages: tuple[Stage, ...] = ()  # at least one, except in mode monitor
    check_interval: Seconds = 300
    metrics: Annotated[tuple[Metric, ...], Field(min_length=1)]
    statistics: Statistics = Statistics()
    inconclusive_policy: Literal["hold", "rollback"] = "rollback"
    anti_flapping: AntiFlapping = AntiFlapping()
    # The drift monitor after promotion (required in mode monitor).
    monitor: Monitor | None = None
    # Optional: a shadow phase before the ladder (canarywise.decision.shadow).
    shadow: ShadowPhase | None = None
    slice_policy: SlicePolicy = SlicePolicy()
    temporal: TemporalPolicy = TemporalPolicy()

    @model_validator(mode="before")
    @classmethod
    def _monitor_needs_no_traffic(cls, data: Any) -> Any:
        # Mode monitor splits no traffic: without a traffic block the slots are the demo's names (blue,
        # green), which monitor.variants can replace.
        if isinstance(data, dict) and data.get("mode") == "monitor" and data.get("traffic") is None:
            return {**data, "traffic": {"create_demo": True}}
        return data

    @field_validator("check_interval", mode="before", json_schema_input_type=DurationInput)
    @classmethod
    def _interval(cls, value: Any) -> int:
        seconds = parse_duration(value)
        if seconds > MAX_CHECK_INTERVAL:
            raise ValueError(
                "must be at most 1 day (the schedule's maximum event age is the interval less a minute, and "
                f"EventBridge Scheduler allows at most 1 day), found {seconds} s"
            )
        return seconds

    @field_validator("stages")
    @classmethod
    def _stages_increase(cls, stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
        if not stages:
            return stages
        for i in range(1, len(stages)):
            if stages[i].percent <= stages[i - 1].percent:
                raise ValueError(
                    f"stages must increase: stages[{i}].percent is {stages[i].percent:g}, "
                    f"not above stages[{i - 1}].percent {stages[i - 1].percent:g}"
                )
        if stages[-1].percent >= 100:
            raise ValueError(
                f"the last stage, stages[{len(stages) - 1}].percent, sends {stages[-1].percent:g}% to the "
                "canary: its gate can never pass with no control traffic to compare (100% comes with "
                "promotion, after approval)"
            )
        return stages

    @field_validator("metrics")
    @classmethod
    def _unique_names(cls, metrics: tuple[Metric, ...]) -> tuple[Metric, ...]:
        seen: set[str] = set()
        for metric in metrics:
            if metric.name in seen:
                raise ValueError(f"duplicate metric name {metric.name!r}")
            seen.add(metric.name)
        return metrics

    @field_validator("metrics")
    @classmethod
    def _slices_fit_a_check_record(cls, metrics: tuple[Metric, ...]) -> tuple[Metric, ...]:
        sliced = [m for m in metrics if m.slice_dimension]
        slices = sum(m.max_slices + 1 for m in sliced)
        if slices > MAX_SLICES_PER_SPEC:
            each = ", ".join(f"{m.name} {m.max_slices} + 1 other" for m in sliced)
            raise ValueError(
                f"the sliced metrics are read in up to {slices} slices ({each}), more than the "
                f"{MAX_SLICES_PER_SPEC} one check record holds under DynamoDB's 400 KB item limit: lower "
                "max_slices"
            )
        return metrics

    @model_validator(mode="after")
    def _check(self) -> RolloutSpec:
        if self.mode == "ab" and not any(m.role is MetricRole.PRIMARY for m in self.metrics):
            raise ValueError("mode 'ab' needs one metric with role: primary")
        if sum(m.role is MetricRole.PRIMARY for m in self.metrics) > 1:
            raise ValueError("at most one metric may have role: primary (pre-register one)")
        if self.mode != "monitor" and not self.stages:
            raise ValueError(f"mode {self.mode!r} needs stages (at least one)")
        if self.mode == "monitor" and self.monitor is None:
            raise ValueError("mode 'monitor' needs a monitor block (rates, mixes or distributions)")
        if self.monitor is not None:
            self._check_monitor(self.monitor)
        if self.shadow is not None:
            self._check_shadow(self.shadow)
        return self

    def _check_monitor(self, monitor: Monitor) -> None:
        """The monitor's rates are proportions the service emits; its mixes, sliced metrics it emits."""
        metrics = {m.name: m for m in self.metrics}
        watched = [("rates", i, w.metric) for i, w in enumerate(monitor.rates)]
        for field, i, name in watched + [("mixes", i, w.metric) for i, w in enumerate(monitor.mixes)]:
            metric = metrics.get(name)
            where = f"monitor.{field}[{i}].metric {name!r}"
            if metric is None:
                raise ValueError(f"{where} is not a metric of the spec ({', '.join(metrics)})")
            if not isinstance(metric.source, ServiceSource):
                raise ValueError(f"{where} is read from the load balancer; the monitor reads service metrics")
            if field == "rates" and metric.kind is MetricKind.MEAN:
                raise ValueError(f"{where} is a mean; a rate watch needs a proportion")
            if field == "mixes" and not metric.slice_dimension:
                raise ValueError(f"{where} has no slice_dimension: a mix is its units per slice value")

    def monitor_variants(self) -> tuple[str, ...]:
        """The ``Variant`` values the monitor reads and sums: its own list, else the spec's two slots."""
        if self.monitor is not None and self.monitor.variants:
            return self.monitor.variants
        return tuple(self.traffic.slots()) or DEMO_SLOTS

    def _check_shadow(self, shadow: ShadowPhase) -> None:
        known = {m.name: m for m in self.metrics}
        for name in (*shadow.veto, *([shadow.quality] if shadow.quality else [])):
            metric = known.get(name)
            if metric is None:
                raise ValueError(
                    f"shadow names the unknown metric {name!r}; the spec has: {', '.join(known)}"
                )
            if not isinstance(metric.source, ServiceSource):
                raise ValueError(
                    f"shadow metric {name!r} must be emitted by the service (type: service): the load "
                    "balancer never sees the candidate's shadow answers"
                )
        for name in shadow.veto:
            if known[name].margin is None:
                raise ValueError(f"shadow veto metric {name!r} needs a margin (non-inferiority lets it pass)")

    def metric(self, name: str) -> Metric:
        """The metric called `name`; `SpecError` naming the known ones if there is none."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        known = ", ".join(m.name for m in self.metrics)
        raise SpecError(f"unknown metric {name!r}; the spec has: {known}")
