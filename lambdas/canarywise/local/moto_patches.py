"""The in-process patches local mode applies to moto, each undoable, each for one thing moto lacks.

The moto server runs as a thread of this process, so a patch to a moto class applies to what the server does.

- Step Functions' ``aws-sdk:elasticloadbalancingv2:*`` integrations: moto turns the SDK service name into a
  boto3 client name through a small override map that does not know ``elasticloadbalancingv2`` (boto3 calls it
  ``elbv2``). One entry is added.
- CloudWatch's GetMetricData and ListMetrics: moto's scan every stored datapoint per period of every query,
  far too slow for days of simulated data; they are answered from a per-metric time index instead.
- PutMetricData ``Values``/``Counts``: moto stores each value Count times; kept as one distribution datum
  (the local alarm evaluator computes percentiles from it: moto has none).
- botocore's timestamp parsing of epoch numbers and the server's closed connections (local-mode costs, not
  moto gaps).
- CloudFormation ``Fn::GetAtt`` of ``LoadBalancerFullName`` and ``TargetGroupFullName`` (the ALB metrics'
  dimension values): moto implements neither.
- Lambda invokes: moto runs function code only in Docker (or echoes a canned response). Invokes are routed to
  :class:`~canarywise.local.lambda_runtime.InProcessLambdaRuntime`, which calls the function's real handler.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from canarywise.local.lambda_runtime import InProcessLambdaRuntime


def _replace(owner: Any, name: str, value: Any) -> Callable[[], None]:
    """Set ``owner.name`` to `value`; returns the undo (removing an attribute that was not there)."""
    missing = object()
    original = owner.__dict__.get(name, missing)
    setattr(owner, name, value)

    def undo() -> None:
        if original is missing:
            delattr(owner, name)
        else:
            setattr(owner, name, original)

    return undo


# Step Functions names the service as in the AWS SDK for Java; boto3 calls it elbv2.
SFN_SDK_SERVICE_NAMES = {"elasticloadbalancingv2": "elbv2"}


def patch_sfn_sdk_service_names() -> Callable[[], None]:
    """Teach moto's Step Functions the SDK service names it lacks; returns the undo."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )

    overrides: dict[str, str] = StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES
    added = {name: boto for name, boto in SFN_SDK_SERVICE_NAMES.items() if name not in overrides}
    overrides.update(added)

    def undo() -> None:
        for name in added:
            overrides.pop(name, None)

    return undo


def route_lambda_invokes(runtime: InProcessLambdaRuntime) -> Callable[[], None]:
    """Make moto's Lambda run each function's handler in-process through `runtime`; returns the undo."""
    from moto.awslambda.models import LambdaFunction

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        # moto hands over the parsed JSON body, or the string "{}" for an empty one.
        if event == "{}" or event is None:
            event = {}
        elif isinstance(event, bytes):
            event = json.loads(event)
        result = runtime.invoke(
            self.handler,
            event,
            environment=dict(self.environment_vars or {}),
            function_name=self.function_name,
            function_arn=self.function_arn,
        )
        return json.dumps(result.payload, default=str), result.errored, result.logs

    return _replace(LambdaFunction, "_invoke_lambda", _invoke_lambda)


class _Series:
    """One metric's datapoints (namespace, name, exact dimension set), sorted by timestamp."""

    __slots__ = ("data", "times")

    def __init__(self) -> None:
        self.times: list[Any] = []
        self.data: list[Any] = []

    def add(self, datum: Any) -> None:
        at = bisect.bisect_right(self.times, datum.timestamp)
        self.times.insert(at, datum.timestamp)
        self.data.insert(at, datum)


def _series_key(namespace: str, name: str, dimensions: Any) -> tuple[str, str, frozenset[tuple[str, str]]]:
    return namespace, name, frozenset((d.name, d.value) for d in dimensions)


def _metric_index(backend: Any) -> dict[tuple[str, str, frozenset[tuple[str, str]]], _Series]:
    """The backend's datapoints indexed by metric, brought up to date with what was put since the last call.

    moto only ever appends to ``metric_data`` (a reset replaces the backend), so indexing the new tail is
    enough.
    """
    index: dict[tuple[str, str, frozenset[tuple[str, str]]], _Series] = backend.__dict__.setdefault(
        "_canarywise_index", {}
    )
    done: int = backend.__dict__.get("_canarywise_indexed", 0)
    if done > len(backend.metric_data):
        index.clear()
        done = 0
    for datum in backend.metric_data[done:]:
        index.setdefault(_series_key(datum.namespace, datum.name, datum.dimensions), _Series()).add(datum)
    backend._canarywise_indexed = len(backend.metric_data)
    return index


def _statistic(data: list[Any], stat: str, statistics: Any) -> Any:
    """moto's statistic of one period's datapoints; the common ones computed directly (same arithmetic)."""
    if stat in {"SampleCount", "Sum", "Average", "Minimum", "Maximum"}:
        n = total = 0.0
        low, high = float("inf"), float("-inf")
        for datum in data:
            if hasattr(datum, "sample_count"):
                n += datum.sample_count
                total += datum.sum
                low, high = min(low, datum.min), max(high, datum.max)
            else:
                n += 1
                total += datum.value
                low, high = min(low, datum.value), max(high, datum.value)
        return {"SampleCount": n, "Sum": total, "Average": total / n if n else None, "Minimum": low,
                "Maximum": high}[stat]  # fmt: skip
    stats = statistics([stat], None)
    stats.metric_data = data
    return stats.get_statistics_for_type(stat)


def index_cloudwatch_metric_data() -> Callable[[], None]:
    """Answer GetMetricData and ListMetrics from a per-metric time index; returns the undo.

    moto scans every stored datapoint once per period of every query: a one-day window at a one-minute
    period is 1,440 scans of the whole store, minutes per check after a simulated day. This answers the
    same MetricStat queries (periods counted from StartTime, moto's statistics) by looking only at the
    queried metric's datapoints inside the window. Queries with an Expression still go to moto.
    """
    from moto.cloudwatch.models import CloudWatchBackend, Dimension, Statistics

    original_get = CloudWatchBackend.get_metric_data

    def get_metric_data(
        self: Any,
        queries: list[dict[str, Any]],
        start_time: datetime,
        end_time: datetime,
        scan_by: str = "TimestampAscending",
    ) -> list[dict[str, Any]]:
        if any("MetricStat" not in q for q in queries):
            return original_get(self, queries, start_time, end_time, scan_by)
        # Validation and microsecond truncation exactly as moto does them.
        start_time = start_time.replace(microsecond=0)
        end_time = end_time.replace(microsecond=0)
        if start_time >= end_time:
            return original_get(self, queries, start_time, end_time, scan_by)
        index = _metric_index(self)
        # moto stores naive UTC timestamps; compare like with like.
        low, high = (
            moment.replace(tzinfo=None) if moment.tzinfo else moment for moment in (start_time, end_time)
        )
        results = []
        for query in queries:
            stat_query = query["MetricStat"]
            metric = stat_query["Metric"]
            dimensions = [Dimension(d["Name"], d["Value"]) for d in metric.get("Dimensions", [])]
            series = index.get(_series_key(metric["Namespace"], metric["MetricName"], dimensions))
            period = timedelta(seconds=int(stat_query["Period"]))
            buckets: dict[int, list[Any]] = {}
            if series is not None:
                first = bisect.bisect_left(series.times, low)
                last = bisect.bisect_left(series.times, high)
                for datum in series.data[first:last]:
                    if stat_query.get("Unit") and datum.unit != stat_query["Unit"]:
                        continue
                    buckets.setdefault((datum.timestamp - low) // period, []).append(datum)
            values, timestamps = [], []
            for number in sorted(buckets):
                values.append(_statistic(buckets[number], stat_query["Stat"], Statistics))
                timestamps.append(start_time + number * period)
            if scan_by == "TimestampDescending":
                values.reverse()
                timestamps.reverse()
            if query.get("ReturnData", True):
                results.append(
                    {
                        "id": query["Id"],
                        "label": query.get("Label") or f"{metric['MetricName']} {stat_query['Stat']}",
                        "values": values,
                        "timestamps": timestamps,
                        "status_code": "Complete",
                    }
                )
        return results

    def get_filtered_metrics(
        self: Any, metric_name: str, namespace: str, dimensions: list[dict[str, str]]
    ) -> list[Any]:
        return [
            series.data[0]
            for series in _metric_index(self).values()
            if series.data[0].filter(namespace=namespace, name=metric_name, dimensions=dimensions)
        ]

    undo_get = _replace(CloudWatchBackend, "get_metric_data", get_metric_data)
    undo_filtered = _replace(CloudWatchBackend, "get_filtered_metrics", get_filtered_metrics)

    def undo() -> None:
        undo_get()
        undo_filtered()

    return undo


def keep_value_distributions() -> Callable[[], None]:
    """Store a PutMetricData ``Values``/``Counts`` datum as one distribution; returns the undo.

    moto copies each value ``Count`` times into its store (a minute of ALB response times would be thousands
    of objects). Kept as one aggregated datum that also remembers its values and counts, SampleCount, Sum,
    Minimum and Maximum come out the same, and the local alarm evaluator can compute percentiles from it.
    """
    from moto.cloudwatch.models import CloudWatchBackend, MetricAggregatedDatum

    original_put = CloudWatchBackend.put_metric_data

    def put_metric_data(self: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        plain = [m for m in metric_data if not m.get("Values")]
        distributions = [m for m in metric_data if m.get("Values")]
        for number, member in enumerate(distributions, start=1):
            self._validate_parameters_put_metric_data(member, number)
        if plain:
            original_put(self, namespace, plain)
        for member in distributions:
            values = [float(v) for v in member["Values"]]
            counts = [float(c) for c in member.get("Counts") or [1.0] * len(values)]
            datum = MetricAggregatedDatum(
                namespace=namespace,
                name=member["MetricName"],
                min_stat=min(values),
                max_stat=max(values),
                sample_count=sum(counts),
                sum_stat=sum(v * c for v, c in zip(values, counts, strict=True)),
                dimensions=member.get("Dimensions", []),
                timestamp=member.get("Timestamp"),
                unit=member.get("Unit"),
            )
            datum.distribution = (values, counts)  # type: ignore[attr-defined]
            self.metric_data.append(datum)

    return _replace(CloudWatchBackend, "put_metric_data", put_metric_data)


def metric_series(
    namespace: str, name: str, dimensions: Mapping[str, str], start: datetime, end: datetime
) -> list[Any]:
    """The stored datapoints of one metric (exact dimension set) with ``start <= timestamp < end``.

    For the local alarm evaluator, which stands in for CloudWatch itself and so reads its store directly.
    """
    from moto.cloudwatch.models import Dimension, cloudwatch_backends

    from canarywise.local.server import ACCOUNT_ID, REGION

    backend = cloudwatch_backends[ACCOUNT_ID][REGION]
    key = _series_key(namespace, name, [Dimension(k, v) for k, v in dimensions.items()])
    series = _metric_index(backend).get(key)
    if series is None:
        return []
    low, high = (moment.replace(tzinfo=None) if moment.tzinfo else moment for moment in (start, end))
    return series.data[bisect.bisect_left(series.times, low) : bisect.bisect_left(series.times, high)]


def _full_name(arn: str, marker: str) -> str:
    """``app/my-alb/50dc6c495c0c9188`` from a load balancer ARN (the CloudWatch dimension value)."""
    return arn.split(":", 5)[5].removeprefix(marker)


def add_elbv2_cloudformation_attributes() -> Callable[[], None]:
    """Give moto's CloudFormation the ELBv2 attributes it lacks; returns the undo.

    The stack reads ``LoadBalancerFullName`` and ``TargetGroupFullName`` (the dimension values of the ALB's
    CloudWatch metrics); moto implements neither, and returns nothing for them.
    """
    from moto.elbv2.models import FakeLoadBalancer, FakeTargetGroup

    original_lb = FakeLoadBalancer.get_cfn_attribute

    def load_balancer_attribute(self: Any, attribute_name: str) -> Any:
        if attribute_name == "LoadBalancerFullName":
            return _full_name(self.arn, "loadbalancer/")
        return original_lb(self, attribute_name)

    def target_group_attribute(self: Any, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name == "TargetGroupFullName":
            return _full_name(self.arn, "")
        if attribute_name == "TargetGroupName":
            return self.name
        if attribute_name == "TargetGroupArn":
            return self.arn
        if attribute_name == "LoadBalancerArns":
            return list(self.load_balancer_arns)
        raise UnformattedGetAttTemplateException()

    undo_lb = _replace(FakeLoadBalancer, "get_cfn_attribute", load_balancer_attribute)
    undo_tg = _replace(FakeTargetGroup, "get_cfn_attribute", target_group_attribute)

    def undo() -> None:
        undo_lb()
        undo_tg()

    return undo


def parse_epoch_timestamps_fast() -> Callable[[], None]:
    """Parse epoch-number timestamps in boto3 responses with the standard library; returns the undo.

    Not a moto gap but a local-mode cost: botocore parses each timestamp with dateutil's local time zone
    (~25 µs), and a GetMetricData response over a simulated day carries thousands. The result is the same
    instant, as an aware UTC datetime; text timestamps still go to botocore's parser.
    """
    import botocore.parsers  # type: ignore[import-untyped]

    original = botocore.parsers.DEFAULT_TIMESTAMP_PARSER

    def parse(value: Any) -> Any:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        return original(value)

    return _replace(botocore.parsers, "DEFAULT_TIMESTAMP_PARSER", parse)


def keep_connections_alive() -> Callable[[], None]:
    """Serve HTTP/1.1 so boto3 reuses its connections; returns the undo.

    Not a moto gap but a local-mode cost: the development server speaks HTTP/1.0 and closes every connection,
    so each of the ~20 calls of a simulated check opens a new one (~4 ms each).
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    return _replace(MotoRequestHandler, "protocol_version", "HTTP/1.1")
