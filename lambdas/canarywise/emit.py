"""The service-side helper: emit per-variant metrics in the shape the significance check reads.

A model service (the control and the canary run the same code, told apart by an environment variable or the
target group they serve) records one value per unit (a session, a request) with CloudWatch embedded metric
format (EMF) through Powertools. CloudWatch turns each log line into metrics with the dimension ``Variant``
(``control`` | ``canary``) and, for a sliced metric, also ``Variant`` + the slice dimension (e.g. ``Intent``),
so the check can read the metric over all traffic and per slice without any raw events.

=================  ==================================================================================
kind               what is emitted for one unit
=================  ==================================================================================
proportion         ``<MetricName>`` = 1 if it happened, else 0 (SampleCount = n, Sum = successes)
mean               ``<MetricName>`` = the value and ``<MetricName>Squared`` = its square, so the
                   variance is recoverable from the sums: (Σx² − (Σx)²/n) / (n − 1)
tail_exceedance    ``<MetricName>`` = 1 if the value is above the spec's threshold, else 0
=================  ==================================================================================

Example
-------
>>> from canarywise.spec import load_spec
>>> metrics = VariantMetrics("canary", spec=load_spec("config/mangaassist.yaml"), output=lambda line: None)
>>> metrics.record("escalation_rate", True, slice_value="returns")
>>> metrics.record("slow_response_rate", 9.3)  # seconds; 1 because it is above the 8 s threshold
>>> metrics.record("csat", 4.0)
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from canarywise.errors import CanarywiseError
from canarywise.spec import MetricKind, RolloutSpec, ServiceSource

VARIANTS = ("control", "canary")
VARIANT_DIMENSION = "Variant"
SQUARED_SUFFIX = "Squared"


class EmitError(CanarywiseError, ValueError):
    """A metric cannot be emitted as asked (unknown variant or metric, not a service metric)."""


class VariantMetrics:
    """Emit one variant's per-unit outcomes as CloudWatch EMF log lines.

    Parameters
    ----------
    variant : {"control", "canary"}
        Which side of the split this process serves.
    spec : RolloutSpec, optional
        Needed by `record`, which looks the metric up by its spec name.
    output : callable
        Where each EMF line goes (default ``print``: stdout is what Lambda and the awslogs driver ship).
    """

    def __init__(
        self,
        variant: str,
        *,
        spec: RolloutSpec | None = None,
        output: Callable[[str], None] = print,
    ) -> None:
        if variant not in VARIANTS:
            raise EmitError(f"`variant` must be one of {VARIANTS}, found {variant!r}")
        self.variant = variant
        self.spec = spec
        self._output = output

    def proportion(
        self, namespace: str, metric_name: str, happened: bool, *, slice_: tuple[str, str] | None = None
    ) -> None:
        """One unit of a rate: 1 if the event happened (an escalation, a thumbs-down), else 0."""
        self._emit(namespace, {metric_name: 1.0 if happened else 0.0}, MetricUnit.Count, slice_)

    def mean(
        self, namespace: str, metric_name: str, value: float, *, slice_: tuple[str, str] | None = None
    ) -> None:
        """One unit of a continuous metric: the value and its square (``<MetricName>Squared``)."""
        value = float(value)
        self._emit(
            namespace,
            {metric_name: value, metric_name + SQUARED_SUFFIX: value * value},
            MetricUnit.NoUnit,
            slice_,
        )

    def exceedance(
        self,
        namespace: str,
        metric_name: str,
        value: float,
        threshold: float,
        *,
        slice_: tuple[str, str] | None = None,
    ) -> None:
        """One request of a tail metric: 1 if `value` is above `threshold` (latency above 8 s), else 0."""
        self.proportion(namespace, metric_name, float(value) > threshold, slice_=slice_)

    def record(self, metric: str, value: float | bool, *, slice_value: str | None = None) -> None:
        """Record one unit of the spec metric called `metric`, shaped by its kind.

        `value` is the outcome (bool or 0/1) of a proportion, the value of a mean, the raw value (e.g.
        seconds) of a tail_exceedance metric, compared here with the spec's threshold.
        """
        if self.spec is None:
            raise EmitError("`record` looks metrics up in the rollout spec: pass spec= to VariantMetrics")
        found = self.spec.metric(metric)
        if not isinstance(found.source, ServiceSource):
            raise EmitError(f"metric {metric!r} is read from the load balancer; the service emits nothing")
        if slice_value is not None and not found.slice_dimension:
            raise EmitError(f"metric {metric!r} has no slice_dimension, found slice_value={slice_value!r}")
        slice_ = (found.slice_dimension, slice_value) if found.slice_dimension and slice_value else None
        namespace, name = found.source.namespace, found.source.metric_name
        if found.kind is MetricKind.MEAN:
            self.mean(namespace, name, float(value), slice_=slice_)
        elif found.kind is MetricKind.TAIL_EXCEEDANCE:
            assert found.threshold is not None  # the spec requires a threshold for tail_exceedance
            self.exceedance(namespace, name, float(value), found.threshold, slice_=slice_)
        else:
            if float(value) not in {0.0, 1.0}:
                raise EmitError(f"metric {metric!r} is a proportion: the value must be 0/1, found {value!r}")
            self.proportion(namespace, name, bool(value), slice_=slice_)

    def _emit(
        self, namespace: str, values: dict[str, float], unit: MetricUnit, slice_: tuple[str, str] | None
    ) -> None:
        # service="" keeps Powertools from adding a `service` dimension (from POWERTOOLS_SERVICE_NAME):
        # the check queries exactly {Variant} and {Variant, <slice>}; CloudWatch matches dimensions exactly.
        metrics = EphemeralMetrics(namespace=namespace, service="")
        metrics.add_dimension(VARIANT_DIMENSION, self.variant)
        if slice_ is not None:
            name, value = slice_
            metrics.add_dimensions(**{VARIANT_DIMENSION: self.variant, name: value})
        for metric_name, metric_value in values.items():
            metrics.add_metric(name=metric_name, unit=unit, value=metric_value)
        self._output(json.dumps(metrics.serialize_metric_set(), separators=(",", ":")))
