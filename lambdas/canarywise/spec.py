"""The rollout spec: one YAML file per service under ``config/``.

One model serves both ``cdk synth`` (a wrong spec fails synth, naming the field and the value) and the
runtime (the spec is stored with the experiment as its pre-registered hypothesis and re-validated when read).
It lives in the runtime package, not in ``stacks/``, because the Lambdas need it and must not import CDK.

Example
-------
>>> spec = load_spec("config/mangaassist.yaml")
>>> [s.percent for s in spec.stages]
[5.0, 25.0, 50.0]
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from canarywise.errors import CanarywiseError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
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
    slice_dimension: str | None = None
    critical_slices: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Metric:
        if self.source is None:
            raise ValueError(f"metric {self.name!r} has no source (type: alb or type: service)")
        if self.kind is MetricKind.TAIL_EXCEEDANCE and self.threshold is None:
            raise ValueError(f"metric {self.name!r} is tail_exceedance and needs a threshold")
        if self.critical_slices and not self.slice_dimension:
            raise ValueError(f"metric {self.name!r} lists critical_slices without a slice_dimension")
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

    @field_validator("min_duration", "max_duration", mode="before")
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
    control_target_group_arn: str | None = None
    canary_target_group_arn: str | None = None
    rule_priority: Annotated[int, Field(ge=1, le=50000)] = 10
    path_pattern: str = "/*"
    stickiness: Seconds = 7 * 86400

    @field_validator("stickiness", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> int:
        return parse_duration(value)

    @model_validator(mode="after")
    def _check(self) -> Traffic:
        arns = (self.listener_arn, self.control_target_group_arn, self.canary_target_group_arn)
        if not self.create_demo and not all(arns):
            raise ValueError(
                "give listener_arn, control_target_group_arn and canary_target_group_arn, "
                "or create_demo: true"
            )
        if not 1 <= self.stickiness <= 7 * 86400:
            raise ValueError(
                f"stickiness must be between 1 s and 7 days (ALB limit), found {self.stickiness} s"
            )
        return self


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

    @field_validator("horizon", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> int:
        return parse_duration(value)

    @property
    def fdr_q(self) -> float:
        return FDR_TIER_Q[self.fdr_tier]


class AntiFlapping(_Model):
    cooldown: Seconds = 3600
    max_rollbacks_7d: Annotated[int, Field(ge=1)] = 3
    # After a rollback the next try's first stage lasts this many times longer.
    first_stage_multiplier: Annotated[float, Field(ge=1)] = 2.0

    @field_validator("cooldown", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> int:
        return parse_duration(value)


class Environment(_Model):
    account: Annotated[str, Field(pattern=r"^\d{12}$")] | None = None
    region: str | None = None


class RolloutSpec(_Model):
    """A service's rollout: where traffic splits, the stage ladder, the metrics and the decision policy."""

    service: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,40}$")]
    mode: Literal["canary", "ab"] = "canary"
    environment: Environment = Environment()
    traffic: Traffic
    stages: Annotated[tuple[Stage, ...], Field(min_length=1)]
    check_interval: Seconds = 300
    metrics: Annotated[tuple[Metric, ...], Field(min_length=1)]
    statistics: Statistics = Statistics()
    inconclusive_policy: Literal["hold", "rollback"] = "rollback"
    anti_flapping: AntiFlapping = AntiFlapping()

    @field_validator("check_interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> int:
        return parse_duration(value)

    @field_validator("stages")
    @classmethod
    def _stages_increase(cls, stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
        for i in range(1, len(stages)):
            if stages[i].percent <= stages[i - 1].percent:
                raise ValueError(
                    f"stages must increase: stages[{i}].percent is {stages[i].percent:g}, "
                    f"not above stages[{i - 1}].percent {stages[i - 1].percent:g}"
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

    @model_validator(mode="after")
    def _check(self) -> RolloutSpec:
        if self.mode == "ab" and not any(m.role is MetricRole.PRIMARY for m in self.metrics):
            raise ValueError("mode 'ab' needs one metric with role: primary")
        if sum(m.role is MetricRole.PRIMARY for m in self.metrics) > 1:
            raise ValueError("at most one metric may have role: primary (pre-register one)")
        return self

    def metric(self, name: str) -> Metric:
        """The metric called `name`; `SpecError` naming the known ones if there is none."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        known = ", ".join(m.name for m in self.metrics)
        raise SpecError(f"unknown metric {name!r}; the spec has: {known}")


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"alb", "service", "function-after[_check(), Metric]"} or part.startswith(
            ("function-", "constrained-")
        ):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse_spec(data: Any, *, source: str = "rollout spec") -> RolloutSpec:
    """Validate an already-loaded mapping; `SpecError` with one line per problem, naming field and value."""
    try:
        return RolloutSpec.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            msg = str(err["msg"]).removeprefix("Value error, ")
            found = err.get("input")
            shown = "" if isinstance(found, dict | list | tuple) or "found" in msg else f" (found {found!r})"
            lines.append(f"{source}: {_location(tuple(err['loc']))}: {msg}{shown}")
        raise SpecError("\n".join(lines)) from None


def load_spec(path: str | Path) -> RolloutSpec:
    """Read and validate a rollout spec YAML file."""
    import yaml  # only at synth and in the CLI; the Lambdas get the spec from the registry as JSON

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"rollout spec {str(path)!r} not found") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"rollout spec {str(path)!r} is not valid YAML: {exc}") from None
    return parse_spec(data, source=str(path))
