"""`MonitorSource`: the drift monitor's counts for one time window, read from CloudWatch.

For each watch of the spec's ``monitor`` block, summed over the variants it reads (`RolloutSpec.
monitor_variants`: all production traffic, whichever slot is live):

=============  ============================================================================================
watch          what is read (one datapoint per query: the period is the whole window)
=============  ============================================================================================
rate           the metric's SampleCount (units) and Sum (events), dimension ``Variant``
mix            the metric's SampleCount per slice value, dimensions ``Variant`` + the slice dimension; the
               values are those ListMetrics lists (`categories`)
distribution   the Sum of each bin metric ``<MetricName>Bin<k>`` (`canarywise.emit.bin_metric_name`)
=============  ============================================================================================

A window weeks back is read at its own length as the period (whole hours): CloudWatch keeps one-hour
datapoints for 455 days, so a baseline of up to eight weeks is always there. Only aggregates cross the wire.

Example
-------
>>> source = MonitorSource()  # doctest: +SKIP
>>> counts = source.read(spec, start, end, categories=source.categories(spec))  # doctest: +SKIP
>>> counts.rates["thumbs_down_rate"]  # doctest: +SKIP
(612, 10150)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from canarywise.data._aws import AwsCallError, client, error_code
from canarywise.data.metric_source import MetricSourceError
from canarywise.data.metric_source.slices import listed_slice_values
from canarywise.emit import VARIANT_DIMENSION, bin_metric_name
from canarywise.spec import RolloutSpec, ServiceSource

_MAX_QUERIES_PER_CALL = 500  # GetMetricData's limit


@dataclass(frozen=True)
class WindowCounts:
    """A window's counts per watch: rates as (events, units), mixes as category → units, distributions as
    counts per bin. `plus` pools windows (the baseline weeks)."""

    rates: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    mixes: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    distributions: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def plus(self, other: WindowCounts) -> WindowCounts:
        rates = {
            name: (self.rates.get(name, (0, 0))[0] + events, self.rates.get(name, (0, 0))[1] + units)
            for name, (events, units) in other.rates.items()
        }
        mixes: dict[str, dict[str, int]] = {}
        for name, mix in (*self.mixes.items(), *other.mixes.items()):
            pooled = mixes.setdefault(name, {})
            for category, count in mix.items():
                pooled[category] = pooled.get(category, 0) + count
        distributions = {
            name: tuple(
                a + b for a, b in zip(self.distributions.get(name, (0,) * len(bins)), bins, strict=True)
            )
            for name, bins in other.distributions.items()
        }
        return WindowCounts(
            {**self.rates, **rates}, {**self.mixes, **mixes}, {**self.distributions, **distributions}
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rates": {k: list(v) for k, v in self.rates.items()},
            "mixes": {k: dict(v) for k, v in self.mixes.items()},
            "distributions": {k: list(v) for k, v in self.distributions.items()},
        }


class MonitorSource:
    """Reads the monitor's windows (module docs); `MetricSourceError` when CloudWatch cannot be read."""

    def __init__(self, *, boto3_client: Any = None) -> None:
        self._client = boto3_client if boto3_client is not None else client("cloudwatch")

    def categories(self, spec: RolloutSpec) -> dict[str, tuple[str, ...]]:
        """Each mix's categories: the slice values ListMetrics lists for its metric, and its critical ones."""
        assert spec.monitor is not None
        found: dict[str, tuple[str, ...]] = {}
        for watch in spec.monitor.mixes:
            metric = spec.metric(watch.metric)
            assert isinstance(metric.source, ServiceSource)
            assert metric.slice_dimension
            try:
                values = listed_slice_values(self._client, metric.source, metric.slice_dimension)
            except AwsCallError as exc:
                raise MetricSourceError(f"ListMetrics failed: {error_code(exc)}") from exc
            found[watch.name] = tuple(sorted(values | set(metric.critical_slices)))
        return found

    def read(
        self, spec: RolloutSpec, start: datetime, end: datetime, *, categories: Mapping[str, tuple[str, ...]]
    ) -> WindowCounts:
        """The counts of [`start`, `end`) for every watch of ``spec.monitor``."""
        assert spec.monitor is not None
        queries: list[_Query] = []
        for watch in spec.monitor.rates:
            source = spec.metric(watch.metric).source
            assert isinstance(source, ServiceSource)
            queries += [
                _Query((watch.metric, part), source.namespace, source.metric_name, stat)
                for stat, part in (("SampleCount", "units"), ("Sum", "events"))
            ]
        for mix in spec.monitor.mixes:
            metric = spec.metric(mix.metric)
            assert isinstance(metric.source, ServiceSource)
            assert metric.slice_dimension
            queries += [
                _Query((mix.name, c), metric.source.namespace, metric.source.metric_name, "SampleCount",
                       (metric.slice_dimension, c))
                for c in categories.get(mix.name, ())
            ]  # fmt: skip
        for dist in spec.monitor.distributions:
            queries += [
                _Query((dist.name, k), dist.namespace, bin_metric_name(dist.metric_name, k), "Sum")
                for k in range(len(dist.edges) + 1)
            ]
        totals = self._sums(queries, spec.monitor_variants(), start, end)
        return WindowCounts(
            rates={
                w.metric: (totals[(w.metric, "events")], totals[(w.metric, "units")])
                for w in spec.monitor.rates
            },
            mixes={
                m.name: {c: totals[(m.name, c)] for c in categories.get(m.name, ())}
                for m in spec.monitor.mixes
            },
            distributions={
                d.name: tuple(totals[(d.name, k)] for k in range(len(d.edges) + 1))
                for d in spec.monitor.distributions
            },
        )

    def _sums(
        self, queries: list[_Query], variants: tuple[str, ...], start: datetime, end: datetime
    ) -> dict[tuple[str, Any], int]:
        """Each query's value over the window summed over `variants`, rounded to whole counts."""
        period = int((end - start).total_seconds())
        requests = [(query, variant) for query in queries for variant in variants]
        totals: dict[tuple[str, Any], int] = defaultdict(int)
        for first in range(0, len(requests), _MAX_QUERIES_PER_CALL):
            chunk = requests[first : first + _MAX_QUERIES_PER_CALL]
            values: dict[str, float] = defaultdict(float)
            kwargs: dict[str, Any] = {
                "MetricDataQueries": [
                    {"Id": f"q{first + i}", "MetricStat": query.stat_for(variant, period), "ReturnData": True}
                    for i, (query, variant) in enumerate(chunk)
                ],
                "StartTime": start,
                "EndTime": end,
            }
            try:
                while True:
                    response = self._client.get_metric_data(**kwargs)
                    for result in response.get("MetricDataResults", []):
                        values[result["Id"]] += sum(result.get("Values", []))
                    if not response.get("NextToken"):
                        break
                    kwargs["NextToken"] = response["NextToken"]
            except AwsCallError as exc:
                raise MetricSourceError(f"GetMetricData failed: {error_code(exc)}") from exc
            for i, (query, _) in enumerate(chunk):
                totals[query.key] += round(values[f"q{first + i}"])
        return totals


@dataclass(frozen=True)
class _Query:
    """One count of a watch (`key`), read per variant: a metric's statistic, maybe in one slice."""

    key: tuple[str, Any]
    namespace: str
    metric_name: str
    stat: str
    slice_: tuple[str, str] | None = None

    def stat_for(self, variant: str, period: int) -> dict[str, Any]:
        dims = [{"Name": VARIANT_DIMENSION, "Value": variant}]
        if self.slice_ is not None:
            dims.append({"Name": self.slice_[0], "Value": self.slice_[1]})
        metric = {"Namespace": self.namespace, "MetricName": self.metric_name, "Dimensions": dims}
        return {"Metric": metric, "Period": period, "Stat": self.stat}


DRIFT_NAMESPACE = "Canarywise"
DRIFT_METRIC = "Drift"  # 1 while a finding holds, else 0 (the drift alarm watches it)
DRIFT_FINDINGS_METRIC = "DriftFindings"  # how many watches are drifting (the dashboard plots it)


class DriftSignal:
    """The ``Drift`` metric (namespace ``Canarywise``, dimension ``Service``) the drift alarm watches."""

    def __init__(self, *, boto3_client: Any = None) -> None:
        self._client = boto3_client if boto3_client is not None else client("cloudwatch")

    def publish(self, service: str, *, findings: int, timestamp: datetime) -> None:
        """Published at every look, so the alarm has data: 1 and the count while anything drifts, else 0."""
        dimensions = [{"Name": "Service", "Value": service}]
        self._client.put_metric_data(
            Namespace=DRIFT_NAMESPACE,
            MetricData=[
                {"MetricName": name, "Dimensions": dimensions, "Timestamp": timestamp, "Value": float(value)}
                for name, value in ((DRIFT_METRIC, min(findings, 1)), (DRIFT_FINDINGS_METRIC, findings))
            ],
        )
