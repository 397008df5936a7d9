"""One five-minute tick of a service's traffic, as the service and its load balancer report it to CloudWatch.

The simulator draws sessions (daily cycle, sticky users, the listener rule's forward in force), then per
target group (*slot*): the outcomes of each spec metric from the scenario's behaviour, and the ALB's
per-minute request, 5xx and response-time figures. The live slot serves the current model (the scenario's
control behaviour), the idle slot the candidate. The service's tasks put their slot's name in the ``Variant``
dimension, the ALB its target group. It emits the shapes :mod:`canarywise.data.metric_source` reads:

- a service proportion: ``<MetricName>`` with SampleCount = sessions, Sum = events (dimension ``Variant``, and
  ``Variant`` + the slice dimension per slice value for a sliced metric);
- a service mean: ``<MetricName>`` (SampleCount, Sum) and ``<MetricName>Squared`` (Sum of squares);
- the ALB, per target group and minute: ``RequestCount``, ``HTTPCode_Target_5XX_Count`` (only in minutes with
  errors, as the ALB does) and ``TargetResponseTime`` (a histogram of values and counts);
- new assignments: ``Canarywise`` ``NewAssignment`` (dimensions ``Service``, ``Variant``), the sessions that
  arrived without a stickiness cookie that counts and were placed by the weights in force, as
  :meth:`canarywise.emit.VariantMetrics.new_assignment` emits them (a 1 each).

Only aggregates are drawn (binomial counts, normal sums), never one event at a time, so a simulated week takes
seconds.

Example
-------
>>> from datetime import UTC, datetime
>>> from canarywise.demo.scenarios import SCENARIOS
>>> from canarywise.spec import load_spec
>>> scenario = SCENARIOS["regression"]
>>> alb = AlbNames("app/demo/1", {"blue": "targetgroup/blue/2", "green": "targetgroup/green/3"})
>>> sim = TrafficSimulator(scenario, load_spec(scenario.spec_path), seed=7, alb=alb, live="blue")
>>> tick = sim.tick(datetime(2026, 11, 16, 9, 0, tzinfo=UTC), forward={"blue": 95, "green": 5},
...                 live="blue", hours_in=0.0)
>>> sorted(tick.metric_data)
['AWS/ApplicationELB', 'Canarywise', 'MangaAssist']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from canarywise.data.metric_source import ALB_NAMESPACE
from canarywise.demo.scenarios import Latency, Mean, Model, Rate, Scenario
from canarywise.demo.traffic import StickyPool
from canarywise.emit import (
    ASSIGNMENT_METRIC,
    ASSIGNMENT_NAMESPACE,
    SERVICE_DIMENSION,
    SQUARED_SUFFIX,
    VARIANT_DIMENSION,
)
from canarywise.errors import CanarywiseError
from canarywise.spec import AlbSource, Metric, MetricKind, RolloutSpec, ServiceSource

VARIANTS = ("control", "canary")  # the scenario's behaviours: the current model and the candidate
TICK_SECONDS = 300
# Response-time histogram bins (seconds), log-spaced: what TargetResponseTime's Values/Counts carry.
_LATENCY_EDGES = np.geomspace(0.02, 120.0, 61)
_LATENCY_CENTRES = np.sqrt(_LATENCY_EDGES[:-1] * _LATENCY_EDGES[1:])


class ScenarioError(CanarywiseError, ValueError):
    """The scenario does not describe every metric of its spec (or describes one the wrong way)."""


@dataclass(frozen=True)
class AlbNames:
    """The ALB dimension values: ``app/<name>/<id>`` and, per slot, ``targetgroup/<name>/<id>``."""

    load_balancer: str
    target_groups: Mapping[str, str]

    def target_group(self, slot: str) -> str:
        return self.target_groups[slot]

    def other(self, slot: str) -> str:
        """The slot that is not `slot` (the service has two)."""
        return next(name for name in self.target_groups if name != slot)


@dataclass(frozen=True)
class ArmTotals:
    """What one slot did in a tick, per metric: units and events (or sum and sum of squares)."""

    n: dict[str, int] = field(default_factory=dict)
    events: dict[str, float] = field(default_factory=dict)
    sum_squares: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Tick:
    """One tick: when, the forward in force, sessions per slot, the per-slot totals and the metric data."""

    start: datetime
    end: datetime
    forward: dict[str, int]
    live: str
    sessions: dict[str, int]
    new_users: dict[str, int]
    arms: dict[str, ArmTotals]
    metric_data: dict[str, list[dict[str, Any]]]


def _statistic_values(n: float, total: float, low: float, high: float) -> dict[str, float]:
    return {"SampleCount": float(n), "Sum": float(total), "Minimum": float(low), "Maximum": float(high)}


class TrafficSimulator:
    """Draws a scenario's traffic tick by tick (seeded: the same seed gives the same run).

    Parameters
    ----------
    scenario
        Behaviour of control and candidate.
    spec
        The rollout spec: which metrics exist, their kind, source and slice dimension.
    seed
        Seed of numpy's generator.
    alb
        Dimension values of the load balancer's metrics, per slot.
    live
        The slot that serves everyone before the first tick (every returning user holds its cookie).
    """

    def __init__(self, scenario: Scenario, spec: RolloutSpec, *, seed: int, alb: AlbNames, live: str) -> None:
        self.scenario = scenario
        self.spec = spec
        self.alb = alb
        self.rng = np.random.default_rng(seed)
        self.pool = StickyPool.steady_state(
            scenario.traffic,
            live=live,
            idle=alb.other(live),
            tick_seconds=TICK_SECONDS,
            stickiness_seconds=spec.traffic.stickiness,
        )
        self.pool.misroute = scenario.misroute
        self._check_models()

    def _check_models(self) -> None:
        for variant in VARIANTS:
            models = self.scenario.behaviour(variant, hours_in=float("inf"))
            for metric in self.spec.metrics:
                model = models.get(metric.name)
                if model is None:
                    raise ScenarioError(
                        f"scenario {self.scenario.name!r} has no behaviour for metric {metric.name!r} of "
                        f"{self.spec.service!r}"
                    )
                wanted = self._model_type(metric)
                if not isinstance(model, wanted):
                    raise ScenarioError(
                        f"scenario {self.scenario.name!r}: metric {metric.name!r} needs a {wanted.__name__} "
                        f"model, found {type(model).__name__}"
                    )

    @staticmethod
    def _model_type(metric: Metric) -> type:
        if isinstance(metric.source, AlbSource) and metric.source.metric == "target_response_time":
            return Latency
        return Mean if metric.kind is MetricKind.MEAN else Rate

    # -- one tick ---------------------------------------------------------------------------------------
    def tick(self, start: datetime, *, forward: Mapping[str, int], live: str, hours_in: float) -> Tick:
        """Five minutes of sessions from `start` under the rule's `forward` (slot → weight); `live` serves
        the current model, the other slot the candidate, `hours_in` hours into the rollout."""
        traffic = self.scenario.traffic
        end = start + timedelta(seconds=TICK_SECONDS)
        sessions = int(self.rng.poisson(traffic.expected_sessions(start, TICK_SECONDS)))
        split = self.pool.split(self.rng, sessions, forward=forward, idle=self.alb.other(live))
        phase = traffic.daily_phase(start)
        # The service's aggregates are stamped in the tick's last minute (the newest data a check sees).
        stamp = end - timedelta(minutes=1)
        data: dict[str, list[dict[str, Any]]] = {}
        arms: dict[str, ArmTotals] = {}
        for slot in self.alb.target_groups:
            n = split.sessions.get(slot, 0)
            variant = "control" if slot == live else "canary"
            models = self.scenario.behaviour(variant, hours_in=hours_in)
            intents = self._intents(n)
            arm = ArmTotals()
            for metric in self.spec.metrics:
                model = models[metric.name]
                if isinstance(metric.source, AlbSource):
                    continue
                assert isinstance(metric.source, ServiceSource)
                self._service_metric(metric, model, n, intents, phase, slot, stamp, arm, data)
            self._alb_metrics(models, n, slot, start, arm, data)
            self._new_assignments(split.new.get(slot, 0), slot, stamp, data)
            arms[slot] = arm
        return Tick(
            start=start,
            end=end,
            forward=dict(forward),
            live=live,
            sessions={slot: split.sessions.get(slot, 0) for slot in self.alb.target_groups},
            new_users={slot: split.new.get(slot, 0) for slot in self.alb.target_groups},
            arms=arms,
            metric_data=data,
        )

    def _new_assignments(
        self, new: int, slot: str, stamp: datetime, data: dict[str, list[dict[str, Any]]]
    ) -> None:
        if not new:
            return
        dims = [
            {"Name": SERVICE_DIMENSION, "Value": self.spec.service},
            {"Name": VARIANT_DIMENSION, "Value": slot},
        ]
        data.setdefault(ASSIGNMENT_NAMESPACE, []).append(
            self._datum(ASSIGNMENT_METRIC, dims, stamp, new, new, 1.0, 1.0)
        )

    def _intents(self, n: int) -> dict[str, int]:
        mix = self.scenario.traffic.intents
        counts = self.rng.multinomial(n, list(mix.values()))
        return dict(zip(mix, (int(c) for c in counts), strict=True))

    def _service_metric(
        self,
        metric: Metric,
        model: Model,
        n: int,
        intents: Mapping[str, int],
        phase: float,
        slot: str,
        stamp: datetime,
        arm: ArmTotals,
        data: dict[str, list[dict[str, Any]]],
    ) -> None:
        assert isinstance(metric.source, ServiceSource)
        namespace, name = metric.source.namespace, metric.source.metric_name
        variant_dims = [{"Name": VARIANT_DIMENSION, "Value": slot}]
        out = data.setdefault(namespace, [])
        if isinstance(model, Mean):
            if metric.slice_dimension and model.by_slice:
                parts = []
                for intent, count in intents.items():
                    part = self._mean_values(model, model.by_slice[intent], count)
                    dims = [*variant_dims, {"Name": metric.slice_dimension, "Value": intent}]
                    self._mean_datums(name, dims, stamp, part, out)
                    parts.append(part)
                values = np.concatenate(parts) if parts else np.empty(0)
            else:
                values = self._mean_values(model, model.value, n)
            arm.n[metric.name] = values.size
            arm.events[metric.name] = float(values.sum())
            arm.sum_squares[metric.name] = float((values**2).sum())
            self._mean_datums(name, variant_dims, stamp, values, out)
            return
        assert isinstance(model, Rate)
        swing = model.daily_swing * phase
        if metric.slice_dimension and model.by_slice:
            events = 0
            for intent, count in intents.items():
                p = float(np.clip(model.by_slice[intent] + swing, 0.0, 1.0))
                hits = int(self.rng.binomial(count, p))
                events += hits
                if count:
                    dims = [*variant_dims, {"Name": metric.slice_dimension, "Value": intent}]
                    out.append(
                        self._datum(
                            name, dims, stamp, count, hits, 0.0 if hits < count else 1.0, 1.0 if hits else 0.0
                        )
                    )
        else:
            p = float(np.clip(model.overall(self.scenario.traffic.intents) + swing, 0.0, 1.0))
            events = int(self.rng.binomial(n, p))
        arm.n[metric.name] = n
        arm.events[metric.name] = events
        if n:
            out.append(
                self._datum(
                    name, variant_dims, stamp, n, events, 0.0 if events < n else 1.0, 1.0 if events else 0.0
                )
            )

    def _mean_values(self, model: Mean, mean: float, sessions: int) -> np.ndarray:
        """The values of the sessions that respond, normal around `mean`, clipped to the model's range."""
        responders = int(self.rng.binomial(sessions, model.response_share))
        values = self.rng.normal(mean, model.sd, responders)
        return np.clip(values, model.low if model.low is not None else -np.inf, model.high or np.inf)

    def _mean_datums(
        self, name: str, dims: list[dict[str, str]], stamp: datetime, values: np.ndarray, out: list[Any]
    ) -> None:
        """A mean's two datums (values, squares), when any session responded."""
        if not values.size:
            return
        squares = values**2
        out.append(self._datum(name, dims, stamp, values.size, values.sum(), values.min(), values.max()))
        out.append(
            self._datum(
                name + SQUARED_SUFFIX, dims, stamp, values.size, squares.sum(), squares.min(), squares.max()
            )
        )

    @staticmethod
    def _datum(
        name: str,
        dims: list[dict[str, str]],
        stamp: datetime,
        n: float,
        total: float,
        low: float,
        high: float,
    ) -> dict[str, Any]:
        return {
            "MetricName": name,
            "Dimensions": dims,
            "Timestamp": stamp,
            "StatisticValues": _statistic_values(n, total, low, high),
        }

    def _alb_metrics(
        self,
        models: Mapping[str, Model],
        sessions: int,
        slot: str,
        start: datetime,
        arm: ArmTotals,
        data: dict[str, list[dict[str, Any]]],
    ) -> None:
        alb_metrics = [m for m in self.spec.metrics if isinstance(m.source, AlbSource)]
        if not alb_metrics:
            return
        requests = int(self.rng.poisson(sessions * self.scenario.traffic.requests_per_session))
        per_minute = self.rng.multinomial(requests, [1 / 5] * 5)
        error_model = next(
            (
                models[m.name]
                for m in alb_metrics
                if isinstance(m.source, AlbSource) and m.source.metric == "http_5xx"
            ),
            None,
        )
        latency_model = next(
            (
                models[m.name]
                for m in alb_metrics
                if isinstance(m.source, AlbSource) and m.source.metric == "target_response_time"
            ),
            None,
        )
        dims = [
            {"Name": "LoadBalancer", "Value": self.alb.load_balancer},
            {"Name": "TargetGroup", "Value": self.alb.target_group(slot)},
        ]
        out = data.setdefault(ALB_NAMESPACE, [])
        errors_total = 0
        for minute, count in enumerate(per_minute):
            stamp = start + timedelta(minutes=minute)
            if not count:
                continue
            out.append(
                {"MetricName": "RequestCount", "Dimensions": dims, "Timestamp": stamp, "Value": float(count)}
            )
            if isinstance(error_model, Rate):
                errors = int(self.rng.binomial(count, min(error_model.value, 1.0)))
                errors_total += errors
                if errors:  # the ALB publishes no 5XX datapoint for a minute without errors
                    out.append(
                        {
                            "MetricName": "HTTPCode_Target_5XX_Count",
                            "Dimensions": dims,
                            "Timestamp": stamp,
                            "Value": float(errors),
                        }
                    )
            if isinstance(latency_model, Latency):
                latencies = self.rng.lognormal(np.log(latency_model.median), latency_model.sigma, int(count))
                counts, _ = np.histogram(
                    np.clip(latencies, _LATENCY_EDGES[0], _LATENCY_EDGES[-1]), _LATENCY_EDGES
                )
                kept = counts > 0
                out.append(
                    {
                        "MetricName": "TargetResponseTime",
                        "Dimensions": dims,
                        "Timestamp": stamp,
                        "Values": [float(v) for v in _LATENCY_CENTRES[kept]],
                        "Counts": [float(c) for c in counts[kept]],
                        "Unit": "Seconds",
                    }
                )
        for metric in alb_metrics:
            if isinstance(metric.source, AlbSource) and metric.source.metric == "http_5xx":
                arm.n[metric.name] = requests
                arm.events[metric.name] = errors_total
