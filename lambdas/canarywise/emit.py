"""The service-side helper: emit per-variant metrics in the shape the significance check reads.

A model service (both target groups run the same code, told apart by an environment variable naming the
target group, the *slot*, they serve) records one value per unit (a session, a request) with CloudWatch
embedded metric format (EMF) through Powertools. CloudWatch turns each log line into metrics with the
dimension ``Variant`` = the slot name (``blue`` | ``green``, or ``control`` | ``canary`` for a deployment
from before blue/green roles: which slot is live changes with every promotion, the name does not) and, for
a sliced metric, also ``Variant`` + the slice dimension (e.g. ``Intent``),
so the check can read the metric over all traffic and per slice without any raw events.

=================  ==================================================================================
kind               what is emitted for one unit
=================  ==================================================================================
proportion         ``<MetricName>`` = 1 if it happened, else 0 (SampleCount = n, Sum = successes)
mean               ``<MetricName>`` = the value and ``<MetricName>Squared`` = its square, so the
                   variance is recoverable from the sums: (Σx² − (Σx)²/n) / (n − 1)
tail_exceedance    ``<MetricName>`` = 1 if the value is above the spec's threshold, else 0
monitor histogram  ``<MetricName>Bin<k>`` = 1 for the bin ``k`` (two digits) the value falls in, from the
                   spec's ``monitor.distributions`` edges (`VariantMetrics.histogram`): the binned
                   counts the drift monitor's KS test reads
new assignment     ``Canarywise/NewAssignment`` = 1, dimensions ``Service`` and ``Variant``, for a
                   request the ALB has just assigned to this variant by the weights in force
=================  ==================================================================================

New assignments are what the sample-ratio check counts. With target-group stickiness a returning user keeps
the variant of their cookie, so after a ramp (5% → 25%) the *sessions* per variant lag the new weights and a
check on sessions would cry "mismatch" after every ramp. A request that arrives **without** the ALB's
target-group stickiness cookie (``AWSALBTG``; the ALB passes the client's ``Cookie`` header through to the
target) is one the ALB has just placed by the weights in force: those requests follow the weights exactly, so
their counts per variant are the clean signal. `is_new_assignment` reads that from the ``Cookie`` header; a
service with its own notion of "first visit" can call `VariantMetrics.new_assignment` on that instead.

Example
-------
>>> from canarywise.spec import load_spec
>>> metrics = VariantMetrics("canary", spec=load_spec("config/mangaassist.yaml"), output=lambda line: None)
>>> metrics.record("escalation_rate", True, slice_value="returns")
>>> metrics.record("slow_response_rate", 9.3)  # seconds; 1 because it is above the 8 s threshold
>>> metrics.record("csat", 4.0)
>>> if is_new_assignment("session=abc"):  # no AWSALBTG cookie: the ALB just drew this variant
...     metrics.new_assignment()
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from canarywise.errors import CanarywiseError
from canarywise.spec import Metric, MetricKind, RolloutSpec, ServiceSource

# A slot name: what the spec's ``traffic.target_groups`` calls the target group (a dimension value).
_SLOT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
VARIANT_DIMENSION = "Variant"
SQUARED_SUFFIX = "Squared"
BIN_SUFFIX = "Bin"
# New assignments: canarywise's own namespace (beside StatisticalHarm), a series per service and variant.
ASSIGNMENT_NAMESPACE = "Canarywise"
ASSIGNMENT_METRIC = "NewAssignment"
SERVICE_DIMENSION = "Service"
# The cookie an ALB sets for target-group stickiness on a weighted forward action (AWSALBTGCORS is its CORS
# copy); reserved by the ALB, so no application cookie can carry the name.
STICKINESS_COOKIE = "AWSALBTG"


class EmitError(CanarywiseError, ValueError):
    """A metric cannot be emitted as asked (unknown variant or metric, not a service metric)."""


def bin_metric_name(metric_name: str, index: int) -> str:
    """The metric that counts one bin of a monitor histogram.

    Example
    -------
    >>> bin_metric_name("ResponseTokens", 3)
    'ResponseTokensBin03'
    """
    return f"{metric_name}{BIN_SUFFIX}{index:02d}"


def is_new_assignment(cookie_header: str | None) -> bool:
    """True when a request carries no ALB target-group stickiness cookie: the ALB has just drawn its variant.

    Parameters
    ----------
    cookie_header : str or None
        The request's ``Cookie`` header as the target receives it (None or empty when there is none).

    Notes
    -----
    A request with the ``AWSALBTG`` (or ``AWSALBTGCORS``) cookie goes back to the target group the cookie
    names, whatever the weights are now; a request without one is forwarded by the weights in force and gets a
    cookie in the response. An expired cookie is dropped by the client, so its next request is a new draw too.
    Only the cookie names are read, split on ``;`` as clients send them (``http.cookies`` stops at the first
    value it finds malformed, which would hide a later ``AWSALBTG``).

    Example
    -------
    >>> is_new_assignment(None), is_new_assignment("AWSALBTG=eyJ0...; session=abc")
    (True, False)
    """
    if not cookie_header:
        return True
    names = {pair.split("=", 1)[0].strip() for pair in cookie_header.split(";")}
    return names.isdisjoint({STICKINESS_COOKIE, STICKINESS_COOKIE + "CORS"})


def _service_metric(
    spec: RolloutSpec, metric: str, slice_value: str | None
) -> tuple[Metric, str, str, tuple[str, str] | None]:
    """The spec metric `metric` the service emits: it, its namespace and metric name, and its slice."""
    found = spec.metric(metric)
    if not isinstance(found.source, ServiceSource):
        raise EmitError(f"metric {metric!r} is read from the load balancer; the service emits nothing")
    if slice_value is not None and not found.slice_dimension:
        raise EmitError(f"metric {metric!r} has no slice_dimension, found slice_value={slice_value!r}")
    slice_ = (found.slice_dimension, slice_value) if found.slice_dimension and slice_value else None
    return found, found.source.namespace, found.source.metric_name, slice_


class VariantMetrics:
    """Emit one variant's per-unit outcomes as CloudWatch EMF log lines.

    Parameters
    ----------
    variant : str
        The slot (target group) this process serves, as the spec's ``traffic.target_groups`` names it
        (``blue``/``green``; ``control``/``canary`` for a deployment from before blue/green roles).
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
        if not isinstance(variant, str) or not _SLOT.match(variant):
            raise EmitError(
                f"`variant` must be a slot name (letters, digits, '_', '.', '-'; up to 64), found {variant!r}"
            )
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

    def histogram(self, namespace: str, metric_name: str, value: float, edges: Sequence[float]) -> None:
        """One unit of a numeric value as a binned count for the drift monitor: ``<MetricName>Bin<k>`` = 1.

        `edges` are the inner bin edges (the spec's ``monitor.distributions[].edges``): bin 0 holds values
        below ``edges[0]``, bin ``k`` those in ``[edges[k-1], edges[k])``, the last those at or above the last
        edge. Only the counts cross the wire; the KS test on them is `canarywise.stats.drift.binned_ks_test`.
        """
        name = bin_metric_name(metric_name, bisect_right(edges, float(value)))
        self._emit(namespace, {name: 1.0}, MetricUnit.Count, None)

    def observe(self, distribution: str, value: float) -> None:
        """Record one value of the spec's monitor distribution called `distribution` (see `histogram`)."""
        monitor = self.spec.monitor if self.spec is not None else None
        found = [d for d in (monitor.distributions if monitor else ()) if d.name == distribution]
        if not found:
            raise EmitError(f"no monitor distribution {distribution!r} in the spec: pass spec= with one")
        self.histogram(found[0].namespace, found[0].metric_name, value, found[0].edges)

    def new_assignment(self, service: str | None = None) -> None:
        """One request the ALB has just assigned to this variant (see `is_new_assignment`).

        The significance check counts these per stage for its sample-ratio check. `service` is the spec's
        ``service`` (taken from the spec when given to the constructor).
        """
        service = service or (self.spec.service if self.spec is not None else None)
        if not service:
            raise EmitError("`new_assignment` needs the spec's service: pass spec= or service=")
        metrics = EphemeralMetrics(namespace=ASSIGNMENT_NAMESPACE, service="")
        metrics.add_dimension(SERVICE_DIMENSION, service)
        metrics.add_dimension(VARIANT_DIMENSION, self.variant)
        metrics.add_metric(name=ASSIGNMENT_METRIC, unit=MetricUnit.Count, value=1.0)
        self._output(json.dumps(metrics.serialize_metric_set(), separators=(",", ":")))

    def record(self, metric: str, value: float | bool, *, slice_value: str | None = None) -> None:
        """Record one unit of the spec metric called `metric`, shaped by its kind.

        `value` is the outcome (bool or 0/1) of a proportion, the value of a mean, the raw value (e.g.
        seconds) of a tail_exceedance metric, compared here with the spec's threshold.
        """
        if self.spec is None:
            raise EmitError("`record` looks metrics up in the rollout spec: pass spec= to VariantMetrics")
        found, namespace, name, slice_ = _service_metric(self.spec, metric, slice_value)
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


# Shadow mode: the candidate answers a copy of each request and the service reports both outcomes of the same
# request under this Variant value (not a slot: no target group serves it).
SHADOW_VARIANT = "shadow"
# Binary metrics: which model had the outcome 1 (passed the guardrail, gave an unsupported answer, was slow).
PAIR_CELLS = ("PairBoth", "PairCurrentOnly", "PairCandidateOnly", "PairNeither")
# Numeric metrics: the per-request difference (candidate − current) and each side's own value, with squares.
PAIR_VALUES = ("PairDiff", "PairCurrent", "PairCandidate")


class PairedMetrics:
    """Emit, for one request, the current model's and the candidate's outcome on it (shadow mode).

    A binary metric (proportion, tail_exceedance) becomes one of four cells, ``<MetricName>PairBoth``,
    ``…PairCurrentOnly``, ``…PairCandidateOnly``, ``…PairNeither`` (1 for the cell the request falls in, 0
    for the others: SampleCount = pairs, Sum = the cell's count); a mean becomes ``<MetricName>PairDiff``
    (candidate − current), ``…PairCurrent`` and ``…PairCandidate``, each with its ``…Squared``. Dimension
    ``Variant`` = ``shadow`` (plus the slice dimension for a sliced metric). Users only ever get the current
    model's answer; the candidate's is computed on a copy of the request and only measured.

    Example
    -------
    >>> from canarywise.spec import load_spec
    >>> lines = []
    >>> pairs = PairedMetrics(spec=load_spec("lambdas/canarywise/demo/specs/mangaassist-shadow.yaml"),
    ...                       output=lines.append)
    >>> pairs.record("guardrail_pass_rate", True, False, slice_value="faq")  # current passed, candidate not
    >>> pairs.record("prompt_tokens", 118, 201)
    >>> len(lines)
    2
    """

    def __init__(self, *, spec: RolloutSpec, output: Callable[[str], None] = print) -> None:
        self.spec = spec
        self._variant = VariantMetrics(SHADOW_VARIANT, spec=spec, output=output)

    def record(
        self, metric: str, current: float | bool, candidate: float | bool, *, slice_value: str | None = None
    ) -> None:
        """Record one request's pair for the spec metric `metric` (raw values for tail_exceedance)."""
        found, namespace, name, slice_ = _service_metric(self.spec, metric, slice_value)
        if found.kind is MetricKind.MEAN:
            cur, cand = float(current), float(candidate)
            values: dict[str, float] = {}
            for suffix, value in zip(PAIR_VALUES, (cand - cur, cur, cand), strict=True):
                values[name + suffix] = value
                values[name + suffix + SQUARED_SUFFIX] = value * value
            self._variant._emit(namespace, values, MetricUnit.NoUnit, slice_)
            return
        outcomes = []
        for side, value in (("current", current), ("candidate", candidate)):
            if found.kind is MetricKind.TAIL_EXCEEDANCE:
                assert found.threshold is not None
                outcomes.append(float(value) > found.threshold)
            elif float(value) in {0.0, 1.0}:
                outcomes.append(bool(value))
            else:
                raise EmitError(f"metric {metric!r} is a proportion: `{side}` must be 0/1, found {value!r}")
        cell = {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 3}[
            outcomes[0], outcomes[1]
        ]
        cells = {name + suffix: 1.0 if i == cell else 0.0 for i, suffix in enumerate(PAIR_CELLS)}
        self._variant._emit(namespace, cells, MetricUnit.Count, slice_)
