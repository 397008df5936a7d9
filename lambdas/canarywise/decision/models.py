"""The decision engine's inputs and outputs: plain, frozen, JSON-serialisable.

The data-access layer fills `Observations` (per-variant sufficient statistics per metric, stage and slice)
and `StageRecord` (the stage history with the weights in force); `canarywise.decision.engine.decide` turns
them into a `Decision` that carries its numbers (`MetricFinding`) and that the registry stores with
`Decision.to_dict()`.

Frozen dataclasses rather than pydantic models: `decide` runs for every experiment every five minutes and in
benchmarks millions of times, and these objects are built in the hot path.

Example
-------
>>> from datetime import UTC, datetime
>>> t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
>>> obs = Observations.build(
...     {
...         ("escalation_rate", 0, Variant.CONTROL, None): ProportionAggregate(n=95_000, successes=11_400),
...         ("escalation_rate", 0, Variant.CANARY, None): ProportionAggregate(n=5_000, successes=700),
...     },
...     latest={"escalation_rate": t0},
... )
>>> obs.get("escalation_rate", 0, Variant.CANARY).rate
0.14
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from canarywise.errors import CanarywiseError
from canarywise.stats.means import SummaryStats


class DecisionInputError(CanarywiseError, ValueError):
    """Observations, stage history or a stored decision are malformed; the message names the field."""


class Variant(StrEnum):
    CONTROL = "control"
    CANARY = "canary"  # the candidate (the "treatment" of an A/B test)


@dataclass(frozen=True, slots=True)
class ProportionAggregate:
    """A rate's sufficient statistics for one variant: `successes` events out of `n` units."""

    n: int
    successes: int

    def __post_init__(self) -> None:
        if self.n < 0 or self.successes < 0 or self.successes > self.n:
            raise DecisionInputError(
                "ProportionAggregate needs 0 <= successes <= n, "
                f"found n={self.n!r}, successes={self.successes!r}"
            )

    @property
    def rate(self) -> float:
        return self.successes / self.n if self.n else math.nan


# A continuous metric's sufficient statistics for one variant (n, sum, sum of squares): the statistics
# package's own type, so the engine and `canarywise.stats.sequential.msprt_means` share one definition.
MeanAggregate = SummaryStats


Aggregate = ProportionAggregate | MeanAggregate


class ObservationKey(NamedTuple):
    """Where an aggregate belongs: metric, stage index, variant, slice value (None = all traffic)."""

    metric: str
    stage: int
    variant: Variant
    slice: str | None = None


@dataclass(frozen=True, slots=True)
class Observations:
    """Everything the engine knows about the data.

    Attributes
    ----------
    aggregates
        Per (metric, stage index, variant, slice) sufficient statistics over the stage's whole window (from
        the stage's start to its end or to now). Slice None is the metric over all traffic; a sliced metric
        also has one entry per slice value (e.g. per intent).
    latest
        Per metric name (at least those of `decisive_metrics`), the time since which it has had no datapoint:
        its newest datapoint's minute, or, when that is older than the data layer's freshness probe (an hour,
        always past the late limit), the probe's start. A decisive metric without one is "missing", one older
        than two check intervals is "late". Both mean HOLD, never ADVANCE.
    assignments
        New assignments per (stage index, variant), for the sample-ratio-mismatch check: units the ALB placed
        by the weights in force (the data layer reads the service's ``NewAssignment`` metric; see
        `canarywise.emit`). Returning users keep the variant of their stickiness cookie, so other counts lag a
        ramp. Optional: when empty the engine falls back to the overall n of the first metric of the spec
        that has data, and the SRM finding's method says so.
    """

    aggregates: Mapping[ObservationKey, Aggregate]
    latest: Mapping[str, datetime] = field(default_factory=dict)
    assignments: Mapping[tuple[int, Variant], int] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        aggregates: Mapping[tuple[str, int, Variant | str, str | None], Aggregate]
        | Iterable[tuple[tuple[str, int, Variant | str, str | None], Aggregate]],
        *,
        latest: Mapping[str, datetime] | None = None,
        assignments: Mapping[tuple[int, Variant | str], int] | None = None,
    ) -> Observations:
        """Observations from plain tuples (variant given as `Variant` or its string value)."""
        items = aggregates.items() if isinstance(aggregates, Mapping) else aggregates
        return cls(
            aggregates={
                ObservationKey(metric, int(stage), Variant(variant), slice_): agg
                for (metric, stage, variant, slice_), agg in items
            },
            latest=dict(latest or {}),
            assignments={(int(s), Variant(v)): int(n) for (s, v), n in (assignments or {}).items()},
        )

    def get(self, metric: str, stage: int, variant: Variant, slice_: str | None = None) -> Aggregate | None:
        return self.aggregates.get(ObservationKey(metric, stage, variant, slice_))

    def to_dict(self) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        for key, agg in self.aggregates.items():
            row: dict[str, Any] = {
                "metric": key.metric,
                "stage": key.stage,
                "variant": key.variant.value,
                "slice": key.slice,
                "n": agg.n,
            }
            if isinstance(agg, ProportionAggregate):
                row["successes"] = agg.successes
            else:
                row["sum"] = agg.sum
                row["sum_squares"] = agg.sum_squares
                if agg.shift:
                    row["shift"] = agg.shift  # sums of shifted values (`SummaryStats` Notes)
            rows.append(row)
        return {
            "aggregates": rows,
            "latest": {name: ts.isoformat() for name, ts in self.latest.items()},
            "assignments": [
                {"stage": stage, "variant": variant.value, "n": n}
                for (stage, variant), n in self.assignments.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observations:
        try:
            aggregates: dict[ObservationKey, Aggregate] = {}
            for row in data["aggregates"]:
                key = ObservationKey(row["metric"], int(row["stage"]), Variant(row["variant"]), row["slice"])
                if "successes" in row:
                    aggregates[key] = ProportionAggregate(int(row["n"]), int(row["successes"]))
                else:
                    sums = float(row["sum"]), float(row["sum_squares"]), float(row.get("shift", 0.0))
                    aggregates[key] = MeanAggregate(int(row["n"]), *sums)
            return cls(
                aggregates=aggregates,
                latest={k: datetime.fromisoformat(v) for k, v in data.get("latest", {}).items()},
                assignments={
                    (int(a["stage"]), Variant(a["variant"])): int(a["n"]) for a in data.get("assignments", [])
                },
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DecisionInputError(f"malformed observations: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class StageRecord:
    """One stage as it happened: the canary percent and the weights in force, and when it ran.

    `weights` maps variant to its weight (the ALB's weighted-forward weights, e.g. ``{"control": 95,
    "canary": 5}``); `ended_at` is None for the stage in progress.
    """

    index: int
    percent: float
    weights: Mapping[Variant, float]
    started_at: datetime
    ended_at: datetime | None = None

    def __post_init__(self) -> None:
        weights = {Variant(k): float(v) for k, v in self.weights.items()}
        if set(weights) != set(Variant) or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise DecisionInputError(
                "StageRecord.weights needs non-negative 'control' and 'canary' weights, "
                f"found {self.weights!r}"
            )
        object.__setattr__(self, "weights", weights)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "percent": self.percent,
            "weights": {k.value: v for k, v in self.weights.items()},
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageRecord:
        try:
            ended = data.get("ended_at")
            return cls(
                index=int(data["index"]),
                percent=float(data["percent"]),
                weights={Variant(k): float(v) for k, v in data["weights"].items()},
                started_at=datetime.fromisoformat(data["started_at"]),
                ended_at=datetime.fromisoformat(ended) if ended else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DecisionInputError(f"malformed stage record: {exc!r}") from None


class DecisionKind(StrEnum):
    ROLLBACK = "ROLLBACK"
    HOLD = "HOLD"  # the data cannot be trusted yet (SRM, missing, late): wait, never advance
    CONTINUE = "CONTINUE"  # the data is fine, the gate is not met yet: keep collecting
    ADVANCE = "ADVANCE"  # this stage's gate is met: go to the next stage
    READY_FOR_APPROVAL = "READY_FOR_APPROVAL"  # the last stage's gate is met: ask a person
    INCONCLUSIVE = "INCONCLUSIVE"  # the stage's max duration passed without a gate: apply the spec's policy
    PROMOTE = "PROMOTE"  # A/B: the primary metric improved by at least the minimum worthwhile lift
    KEEP_CONTROL = "KEEP_CONTROL"  # A/B: a guardrail is harmed, or the candidate is proven worse
    NO_DIFFERENCE = "NO_DIFFERENCE"  # A/B: after the horizon the effect is proven smaller than the MDE
    READY_FOR_CANARY = "READY_FOR_CANARY"  # shadow: non-inferior on every veto metric (and quality shown)
    REJECTED = "REJECTED"  # shadow: harm proven on a veto metric; the candidate never reaches a user


class Verdict(StrEnum):
    """What one test concluded (a finding's `verdict`)."""

    HARM = "harm"  # proven worse (anytime-valid one-sided test rejected)
    NO_HARM_PROVEN = "no_harm_proven"
    NON_INFERIOR = "non_inferior"  # proven no worse than the margin
    NOT_YET_NON_INFERIOR = "not_yet_non_inferior"
    HARD_LIMIT_BREACHED = "hard_limit_breached"
    WITHIN_HARD_LIMIT = "within_hard_limit"
    IMPROVEMENT = "improvement"  # proven better by at least the minimum worthwhile effect
    IMPROVEMENT_BELOW_MDE = "improvement_below_mde"  # proven better, but by less than the minimum worthwhile
    NOT_YET_IMPROVEMENT = "not_yet_improvement"
    EQUIVALENT = "equivalent"  # confidence sequence inside +-mde
    REPORTED = "reported"  # secondary metric: shown with its BH-adjusted p-value, decides nothing
    SRM = "srm"
    SRM_OK = "srm_ok"
    MISSING = "missing"
    LATE = "late"
    INSUFFICIENT = "insufficient"  # too little data in a stratum to estimate a variance


def optional_float(data: Mapping[str, Any], name: str) -> float | None:
    """``data[name]`` as a float, None when absent or null (stored findings and records)."""
    value = data.get(name)
    return None if value is None else float(value)


# The metric name used for the sample-ratio finding; never a valid spec metric name (those match ^[a-z]...).
SRM_FINDING = "(sample ratio)"


@dataclass(frozen=True, slots=True)
class MetricFinding:
    """The numbers behind one test: a person can see exactly why the decision was taken.

    `estimate` is canary minus control (absolute, in the metric's units; for a hard limit: the canary's
    value), `ci_low`/`ci_high` the anytime-valid confidence sequence at this look (None = unbounded on that
    side), `pvalue` the always-valid p-value compared with `alpha`, `threshold` the number in the metric's
    units the decision compares against (margin, hard limit, minimum worthwhile effect), `n_control` and
    `n_canary` the units per arm summed over the stages used.
    """

    metric: str
    slice: str | None
    method: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    pvalue: float | None
    n_control: int
    n_canary: int
    threshold: float | None
    verdict: Verdict
    alpha: float | None = None
    adjusted_pvalue: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "slice": self.slice,
            "method": self.method,
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "pvalue": self.pvalue,
            "n_control": self.n_control,
            "n_canary": self.n_canary,
            "threshold": self.threshold,
            "verdict": self.verdict.value,
            "alpha": self.alpha,
            "adjusted_pvalue": self.adjusted_pvalue,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricFinding:
        def number(name: str) -> float | None:
            return optional_float(data, name)

        try:
            return cls(
                metric=str(data["metric"]),
                slice=data.get("slice"),
                method=str(data["method"]),
                estimate=number("estimate"),
                ci_low=number("ci_low"),
                ci_high=number("ci_high"),
                pvalue=number("pvalue"),
                n_control=int(data["n_control"]),
                n_canary=int(data["n_canary"]),
                threshold=number("threshold"),
                verdict=Verdict(data["verdict"]),
                alpha=number("alpha"),
                adjusted_pvalue=number("adjusted_pvalue"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DecisionInputError(f"malformed finding: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer for one experiment at one look, with the reasons and the numbers behind it."""

    kind: DecisionKind
    reasons: tuple[str, ...]
    findings: tuple[MetricFinding, ...]
    stage_index: int
    evaluated_at: datetime
    # Reported numbers that are not one test's finding, JSON-ready (e.g. "composites": the severity-weighted
    # composite per sliced metric; "acknowledged": the slice findings a person let go); stored only if any.
    summaries: Mapping[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        """The reasons as one line (what the stage gate hands the state machine)."""
        return "; ".join(self.reasons)

    def finding(
        self, metric: str, slice_: str | None = None, *, verdicts: Iterable[Verdict] = ()
    ) -> MetricFinding:
        """The first finding for `metric` (and `slice_`), optionally one of `verdicts`; KeyError if none."""
        wanted = set(verdicts)
        for item in self.findings:
            if item.metric == metric and item.slice == slice_ and (not wanted or item.verdict in wanted):
                return item
        raise KeyError(f"no finding for metric {metric!r}, slice {slice_!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "reasons": list(self.reasons),
            "findings": [f.to_dict() for f in self.findings],
            "stage_index": self.stage_index,
            "evaluated_at": self.evaluated_at.isoformat(),
        } | ({"summaries": dict(self.summaries)} if self.summaries else {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        try:
            return cls(
                kind=DecisionKind(data["kind"]),
                reasons=tuple(str(r) for r in data["reasons"]),
                findings=tuple(MetricFinding.from_dict(f) for f in data["findings"]),
                stage_index=int(data["stage_index"]),
                evaluated_at=datetime.fromisoformat(data["evaluated_at"]),
                summaries=dict(data.get("summaries") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DecisionInputError(f"malformed decision: {exc!r}") from None
