"""Read shadow mode's paired series from CloudWatch: the sums `canarywise.emit.PairedMetrics` records.

Per shadow metric (the spec's ``shadow.veto`` and ``shadow.quality``), over ``[start, now)``: a binary
metric's four cell counts (Sum of ``<MetricName>PairBoth`` … ``PairNeither``), a mean's n / sum / sum of
squares of the per-request difference and of each side (SampleCount and Sum of ``<MetricName>PairDiff``,
``…PairCurrent``, ``…PairCandidate`` and their ``…Squared``), all under ``Variant`` = ``shadow``; for a
sliced metric the same per slice value (found with ListMetrics). One-minute datapoints, summed: the phase
lasts at most days, well inside the 15 days CloudWatch keeps one-minute data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from canarywise.data._aws import client
from canarywise.data.metric_source.queries import MetricSourceError
from canarywise.data.metric_source.slices import listed_slice_values
from canarywise.decision.shadow import PairedAggregate, PairedNumeric, ShadowObservations
from canarywise.emit import PAIR_CELLS, PAIR_VALUES, SHADOW_VARIANT, SQUARED_SUFFIX, VARIANT_DIMENSION
from canarywise.spec import Metric, MetricKind, RolloutSpec, ServiceSource
from canarywise.stats.means import SummaryStats
from canarywise.stats.paired_sequential import PairedCells

__all__ = ["PairedSource", "shadow_metrics"]

_PERIOD = 60
_MAX_QUERIES = 500  # GetMetricData's limit per call


def shadow_metrics(spec: RolloutSpec) -> list[Metric]:
    """The metrics the shadow gate reads: the veto metrics, then the quality metric."""
    assert spec.shadow is not None
    names = [*spec.shadow.veto, *([spec.shadow.quality] if spec.shadow.quality else [])]
    return [spec.metric(name) for name in names]


def _series(metric: Metric) -> list[tuple[str, str]]:
    """(metric name, statistic) of every series a metric's pairs are read from."""
    assert isinstance(metric.source, ServiceSource)
    name = metric.source.metric_name
    if metric.kind is MetricKind.MEAN:
        first = [(name + PAIR_VALUES[0], "SampleCount")]
        return first + [(name + v + s, "Sum") for v in PAIR_VALUES for s in ("", SQUARED_SUFFIX)]
    return [(name + cell, "Sum") for cell in PAIR_CELLS]


class PairedSource:
    """Paired aggregates of a shadow phase from CloudWatch (the only boto3 user of shadow mode's reads).

    Parameters
    ----------
    boto3_client
        A CloudWatch client (default: one for the environment's endpoint).
    """

    def __init__(self, boto3_client: Any = None) -> None:
        self._client = boto3_client or client("cloudwatch")
        self.calls = 0

    def observe(self, spec: RolloutSpec, start: datetime, now: datetime) -> ShadowObservations:
        """The phase's paired aggregates from `start` to `now`, overall and per slice, and per metric the
        time of its newest datapoint."""
        wanted: list[tuple[Metric, str | None]] = []
        for metric in shadow_metrics(spec):
            wanted.append((metric, None))
            if metric.slice_dimension:
                assert isinstance(metric.source, ServiceSource)
                probe = ServiceSource(
                    type="service",
                    namespace=metric.source.namespace,
                    metric_name=_series(metric)[0][0],
                )
                values = listed_slice_values(self._client, probe, metric.slice_dimension)
                wanted += [(metric, value) for value in sorted(values)[: metric.max_slices]]
        queries = [(m, s, series, stat) for m, s in wanted for series, stat in _series(m)]
        sums, latest = self._read(queries, start, now)
        aggregates: dict[tuple[str, str | None], PairedAggregate] = {}
        for metric, slice_ in wanted:
            numbers = [sums[(metric.name, slice_, series, stat)] for series, stat in _series(metric)]
            if metric.kind is MetricKind.MEAN:
                n = round(numbers[0])
                diff, current, candidate = (
                    SummaryStats(n, numbers[1 + 2 * i], max(0.0, numbers[2 + 2 * i])) for i in range(3)
                )
                aggregates[(metric.name, slice_)] = PairedNumeric(diff, current, candidate)
            else:
                aggregates[(metric.name, slice_)] = PairedCells(*(round(v) for v in numbers))
        return ShadowObservations(aggregates, latest)

    def _read(
        self, queries: list[tuple[Metric, str | None, str, str]], start: datetime, now: datetime
    ) -> tuple[dict[tuple[str, str | None, str, str], float], dict[str, datetime]]:
        sums: dict[tuple[str, str | None, str, str], float] = {}
        latest: dict[str, datetime] = {}
        for offset in range(0, len(queries), _MAX_QUERIES):
            batch = queries[offset : offset + _MAX_QUERIES]
            for (metric, slice_, series, stat), (values, stamps) in zip(
                batch, self._get(batch, start, now), strict=True
            ):
                sums[(metric.name, slice_, series, stat)] = sum(values)
                if slice_ is None and stamps:
                    newest = max(stamps)
                    latest[metric.name] = max(latest.get(metric.name, newest), newest)
        return sums, latest

    def _get(
        self, batch: list[tuple[Metric, str | None, str, str]], start: datetime, now: datetime
    ) -> list[tuple[list[float], list[datetime]]]:
        request = []
        for i, (metric, slice_, series, stat) in enumerate(batch):
            assert isinstance(metric.source, ServiceSource)
            dims = [{"Name": VARIANT_DIMENSION, "Value": SHADOW_VARIANT}]
            if slice_ is not None and metric.slice_dimension:
                dims.append({"Name": metric.slice_dimension, "Value": slice_})
            request.append(
                {
                    "Id": f"q{i}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": metric.source.namespace,
                            "MetricName": series,
                            "Dimensions": dims,
                        },
                        "Period": _PERIOD,
                        "Stat": stat,
                    },
                    "ReturnData": True,
                }
            )
        values: dict[str, list[float]] = {f"q{i}": [] for i in range(len(batch))}
        stamps: dict[str, list[datetime]] = {f"q{i}": [] for i in range(len(batch))}
        kwargs: dict[str, Any] = {"MetricDataQueries": request, "StartTime": start, "EndTime": now}
        while True:
            try:
                response = self._client.get_metric_data(**kwargs)
            except Exception as exc:  # botocore's ClientError and connection errors alike: HOLD, say why
                raise MetricSourceError(
                    f"CloudWatch GetMetricData failed for the shadow pairs: {exc}"
                ) from exc
            self.calls += 1
            for result in response.get("MetricDataResults", []):
                values[result["Id"]].extend(float(v) for v in result.get("Values", []))
                stamps[result["Id"]].extend(result.get("Timestamps", []))
            token = response.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
        return [(values[f"q{i}"], stamps[f"q{i}"]) for i in range(len(batch))]
