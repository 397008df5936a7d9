"""Cost and speed of the control plane: the CPU time of a tick, cold starts, the bundle, and the AWS bill.

- **Tick CPU time**: ``canarywise.runtime.significance.check_all`` (the significance-check Lambda's logic)
  for 1, 10 and 100 running experiments of the shipped spec (8 metrics), in a fresh process. The AWS calls are
  stubbed at the client: CloudWatch answers GetMetricData/ListMetrics/PutMetricData from memory, and the
  registry is an in-memory stand-in for the three calls the check makes (list running, stage history, record
  check). So the figure is our code: query building, response parsing, the decision, the check record.
- **Cold start**: importing the handler module in a fresh interpreter, from the Lambda bundle when it is
  built (``build/lambda-bundle/``: with its shipped ``.pyc``, and from a copy without them — what every cold
  start would pay if we did not ship them, since ``/var/task`` is read-only), else from the virtualenv.
- **Bundle**: the size of ``build/lambda-bundle/``, unzipped and zipped (deflate level 6).
- **Rollout cost**: one 7-day rollout priced from the AWS public prices for us-east-1 (constants below).

- **Many experiments in one tick**: 100 running experiments, each AWS call adding a fixed latency to a
  simulated clock (`LATENCY`), against the function's 120 s timeout (fault table row 13).

Run one part alone: ``python -m bench.cost tick --experiments 1 10``, ``python -m bench.cost many``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "build" / "lambda-bundle"
SPEC_PATH = ROOT / "config" / "mangaassist.yaml"
HANDLER_MODULE = "canarywise.handlers.significance_check"

# --- AWS public prices, us-east-1 (on-demand, no free tier), as published in November 2026 ------------------
PRICES = {
    "step_functions_per_transition": 0.025 / 1000,  # Standard workflows: $0.025 per 1,000 state transitions
    "lambda_per_gb_second": 0.0000166667,  # x86_64, first 6 billion GB-s a month
    "lambda_per_request": 0.20 / 1_000_000,
    "get_metric_data_per_metric": 0.01 / 1000,  # $0.01 per 1,000 metrics requested
    "put_metric_data_per_request": 0.01 / 1000,  # $0.01 per 1,000 requests
    "custom_metric_per_month": 0.30,  # first 10,000 metrics
    "alarm_metric_per_month": 0.10,  # standard resolution, per metric in the alarm (metric math: each one)
    "composite_alarm_per_month": 0.50,
    "dynamodb_per_write_unit": 0.625 / 1_000_000,  # on-demand, after the November 2024 price cut
    "dynamodb_per_read_unit": 0.125 / 1_000_000,
    "scheduler_per_invocation": 1.00 / 1_000_000,  # EventBridge Scheduler, beyond 14 million free a month
}
DAYS_PER_MONTH = 30.4


# --- tick CPU time ------------------------------------------------------------------------------------------

# The moment the tick is measured at: stage 3 of 3, one day in. The warm-up tick reads the two closed stages
# and freezes them; the measured ticks read the stage in progress and the probe, and the frozen copies from
# the registry (what every check of a rollout does but the few right after a stage ends).
TICK_AT = timedelta(hours=52)
RATES = {
    "Escalation": 0.12, "SlowResponse": 0.02, "Hallucination": 0.03, "SafetyFilterTriggered": 0.01,
    "TaskCompleted": 0.78, "CSAT": 4.2, "RecommendationClick": 0.10, "HTTPCode_Target_5XX_Count": 0.003,
    "NewAssignment": 0.5,  # half the sessions are a user's first (the sample-ratio check counts these)
}  # fmt: skip
INTENTS = ("order_status", "returns", "product_search", "other")
UNITS_PER_MINUTE = 300_000 / 1440  # the decision-quality simulation's traffic


class _StubCloudWatch:
    """CloudWatch from memory: GetMetricData answers every query with one datapoint per period of its window
    (what CloudWatch returns), ListMetrics lists the intents; counts calls and metrics requested (the bill).

    The answers are cached per window so that the stub's own work stays out of the measured CPU time."""

    def __init__(self, shares: list[tuple[datetime, float]]) -> None:
        self.shares = shares  # (stage start, the canary's share), in order
        self.calls = 0
        self.metrics_requested = 0
        self.put_calls = 0
        self.list_calls = 0  # ListMetrics pages
        self.names: Counter[str] = Counter()  # metric names requested, over all calls
        self._series: dict[tuple[Any, ...], tuple[list[float], list[datetime]]] = {}

    def _answer(self, start: datetime, end: datetime, period: int, value: float) -> tuple[Any, Any]:
        key = (start, end, period, value)
        if key not in self._series:
            count = math.ceil((end - start).total_seconds() / period)
            stamps = [start + timedelta(seconds=period * k) for k in range(count)]
            self._series[key] = ([value] * count, stamps)
        return self._series[key]

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        queries = kwargs["MetricDataQueries"]
        self.metrics_requested += len(queries)
        results = []
        for query in queries:
            stat = query["MetricStat"]
            dims = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
            canary = dims.get("Variant") == "canary" or "canary" in dims.get("TargetGroup", "")
            share = next(s for began, s in reversed(self.shares) if began <= kwargs["StartTime"])
            n = UNITS_PER_MINUTE * stat["Period"] / 60 * (share if canary else 1 - share)
            if "Intent" in dims:
                n /= len(INTENTS)
            name = stat["Metric"]["MetricName"]
            self.names[name] += 1
            if stat["Stat"] == "SampleCount" or name == "RequestCount":
                value = n
            elif name.endswith("Squared"):
                value = n * (4.2**2 + 1.0)
            else:
                value = n * RATES.get(name, 0.01)
            values, stamps = self._answer(
                kwargs["StartTime"], kwargs["EndTime"], stat["Period"], round(value)
            )
            results.append(
                {"Id": query["Id"], "StatusCode": "Complete", "Values": values, "Timestamps": stamps}
            )
        return {"MetricDataResults": results}

    def put_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        self.put_calls += 1
        return {}

    def get_paginator(self, name: str) -> Any:
        stub = self

        class _Pages:
            def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
                stub.list_calls += 1
                yield {
                    "Metrics": [
                        {"Dimensions": [{"Name": "Variant", "Value": v}, {"Name": "Intent", "Value": s}]}
                        for s in INTENTS
                        for v in ("control", "canary")
                    ]
                }

        return _Pages()


def _value_bytes(value: dict[str, Any]) -> int:
    # DynamoDB's item-size rules: strings by their UTF-8 length, numbers about 1 byte per 2 digits + 1,
    # booleans and nulls 1 byte, maps and lists 3 bytes + their contents (+ 1 byte per element).
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return len(inner) // 2 + 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_bytes(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + _value_bytes(v) for v in inner)
    return 1


def item_bytes(item: dict[str, Any]) -> int:
    """The billed size of a DynamoDB item in attribute-value form (names + values).

    Example
    -------
    >>> item_bytes({"pk": {"S": "EXP#a"}, "n": {"N": "12345"}})  # (2 + 5) + (1 + 5 // 2 + 1)
    11
    """
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _capacity_units(items: list[dict[str, Any]], unit_bytes: int) -> int:
    # 1 KB per write unit, 4 KB per strongly consistent read unit (a query: the sum of the items it reads).
    return max(1, math.ceil(sum(item_bytes(item) for item in items) / unit_bytes))


class _StubDynamoDB:
    """The DynamoDB calls the registry makes, from memory (items keyed by pk and sk), so the real
    ``canarywise.data.registry.Registry`` runs unchanged. Counts requests and capacity units."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.reads = self.writes = self.read_units = self.write_units = 0

    @staticmethod
    def _key(item: dict[str, Any]) -> tuple[str, str]:
        return item["pk"]["S"], item["sk"]["S"]

    def _write(self, item: dict[str, Any]) -> None:
        self.writes += 1
        self.write_units += _capacity_units([item], 1024)

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        item = kwargs["Item"]
        if "attribute_not_exists" in kwargs.get("ConditionExpression", "") and self._key(item) in self.items:
            error = {"Error": {"Code": "ConditionalCheckFailedException", "Message": "exists"}}
            raise ClientError(error, "PutItem")
        self.items[self._key(item)] = item
        self._write(item)
        return {}

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        item = self.items.get(self._key(kwargs["Key"]))
        self.reads += 1
        self.read_units += _capacity_units([item] if item else [], 4096)
        return {"Item": item} if item is not None else {}

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        # Only the SET forms the registry uses: "SET a = :x, #b = :y" and the check's sequence
        # "#s = if_not_exists(#s, :zero) + :one" (conditions taken as met).
        item = self.items[self._key(kwargs["Key"])]
        names = kwargs.get("ExpressionAttributeNames", {})
        values = kwargs["ExpressionAttributeValues"]
        assignments = kwargs["UpdateExpression"].removeprefix("SET ").split(" REMOVE ")[0]
        for assignment in re.split(r", (?=[#\w]+ = )", assignments):
            name, value = (part.strip() for part in assignment.split("=", 1))
            counter = re.fullmatch(r"if_not_exists\(([#\w]+), (:\w+)\) \+ (:\w+)", value)
            if counter:
                attribute, start, step = counter.groups()
                current = item.get(names.get(attribute, attribute), values[start])
                item[names.get(name, name)] = {"N": str(int(current["N"]) + int(values[step]["N"]))}
            else:
                item[names.get(name, name)] = values[value]
        self._write(item)
        return {}

    def transact_write_items(self, **kwargs: Any) -> dict[str, Any]:
        # The registry's transactions (a check and the latest decision): each part applied as above
        # (conditions taken as met); a transactional write costs twice the units of a plain one.
        before = (self.writes, self.write_units)
        for part in kwargs["TransactItems"]:
            (kind, request), *_ = part.items()
            if kind == "Put":
                self.put_item(**{k: v for k, v in request.items() if k != "ConditionExpression"})
            elif kind == "Update":
                self.update_item(**request)
        self.writes = before[0] + 1
        self.write_units = before[1] + 2 * (self.write_units - before[1])
        return {}

    def query(self, **kwargs: Any) -> dict[str, Any]:
        values = kwargs["ExpressionAttributeValues"]
        if kwargs.get("IndexName") == "running":
            service = values.get(":service", {}).get("S")
            found = [
                item
                for item in self.items.values()
                if item.get("running_pk", {}).get("S") == values[":running"]["S"]
                and (service is None or item["service"]["S"] == service)
            ]
        else:  # pk = :pk AND begins_with(sk, :prefix)
            pk, prefix = values[":pk"]["S"], values[":prefix"]["S"]
            found = [item for (p, s), item in sorted(self.items.items()) if p == pk and s.startswith(prefix)]
        self.reads += 1
        self.read_units += _capacity_units(found, 4096)
        return {"Items": found}


def _stage_starts(spec: Any, start: datetime, now: datetime) -> list[tuple[int, datetime, int]]:
    """(index, start, percent) of the stages the ladder has begun by ``now``, each at its minimum duration."""
    out, at = [], start
    for index, stage in enumerate(spec.stages):
        if at > now:
            break
        out.append((index, at, int(stage.percent)))
        at += timedelta(seconds=stage.min_duration)
    return out


def _tick_world(experiments: int, at: timedelta) -> tuple[Any, ...]:
    """A registry holding ``experiments`` running experiments of the shipped spec at ``at`` into the rollout,
    and the check's collaborators on stubbed clients."""
    from canarywise.data.executions import HarmSignal
    from canarywise.data.metric_source import AlbDimensions, MetricSource
    from canarywise.data.models import Weights
    from canarywise.data.registry import Registry
    from canarywise.spec import load_spec

    spec = load_spec(SPEC_PATH)
    start = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    now = start + at
    stages = _stage_starts(spec, start, now)
    dynamodb = _StubDynamoDB()
    cloudwatch = _StubCloudWatch([(began, percent / 100) for _, began, percent in stages])
    registry = Registry("canarywise-registry", boto3_client=dynamodb)
    for i in range(experiments):
        # Written as the lifecycle's `start` writes them, without its one-rollout-per-service fence: the
        # bench measures a tick that finds `experiments` running (as a registry shared by services would).
        experiment_id = f"mangaassist-v{i}"
        registry._put_if_absent(
            registry.new_experiment_item(
                spec,
                experiment_id=experiment_id,
                candidate=f"v{i}",
                release_id=str(i),
                execution_arn=f"arn:aws:states:::execution:x:{i}",
                now=start,
                first_stage_multiplier=1.0,
                baseline_slot="control",
                candidate_slot="canary",
            )
        )
        for index, began, percent in stages:
            registry.record_stage_start(experiment_id, index, Weights.for_canary_percent(percent), began)
    source = MetricSource(
        AlbDimensions("app/alb/1", {"control": "targetgroup/control/2", "canary": "targetgroup/canary/3"}),
        boto3_client=cloudwatch,
    )
    return now, registry, source, HarmSignal(boto3_client=cloudwatch), dynamodb, cloudwatch


def measure_tick(experiments: int, repeats: int, at: timedelta = TICK_AT) -> dict[str, Any]:
    """CPU seconds of one warm significance-check tick with ``experiments`` running (this process), and the
    AWS requests it makes; plus the metrics requested per tick in each stage (one experiment)."""
    from canarywise.runtime.significance import check_all

    now, registry, source, signal, dynamodb, cloudwatch = _tick_world(experiments, at)
    cpu: list[float] = []
    counts: dict[str, int] = {}
    for tick in range(repeats + 1):  # the first tick warms caches (a warm Lambda), not counted
        when = now + timedelta(minutes=5 * tick)
        if tick == 1:  # and freezes the closed stages: the names counted are those of the later ticks
            cloudwatch.names.clear()
        before = (cloudwatch.calls, cloudwatch.metrics_requested, dynamodb.reads, dynamodb.writes,
                  dynamodb.read_units, dynamodb.write_units)  # fmt: skip
        began = time.process_time()
        summary = check_all(now=when, service="mangaassist", registry=registry, metric_source=source,
                            harm_signal=signal)  # fmt: skip
        if tick:
            cpu.append(time.process_time() - began)
        if summary.failed or len(summary.decisions) != experiments:
            raise RuntimeError(f"the tick did not check every experiment: {summary.to_dict()}")
        after = (cloudwatch.calls, cloudwatch.metrics_requested, dynamodb.reads, dynamodb.writes,
                 dynamodb.read_units, dynamodb.write_units)  # fmt: skip
        names = ("get_metric_data_calls", "metrics_requested", "dynamodb_reads", "dynamodb_writes",
                 "dynamodb_read_units", "dynamodb_write_units")  # fmt: skip
        counts = {name: a - b for name, a, b in zip(names, after, before, strict=True)}
    return {
        "experiments": experiments,
        "at_hours": at.total_seconds() / 3600,
        "cpu_seconds_median": statistics.median(cpu),
        "cpu_seconds_max": max(cpu),
        **counts,
        "decision": next(iter(summary.decisions.values())),
        **{f"metrics_{label}_by_stage": counts for label, counts in metrics_by_stage().items()},
        "unfrozen_checks_per_stage_end": unfrozen_checks_per_stage_end(),
        "metric_names_per_tick": {name: n // repeats for name, n in cloudwatch.names.items()},
    }


# --- many experiments in one tick, with AWS latency (fault table row 13) ------------------------------------

# Per-call latency added to the simulated clock (seconds): typical in-region round trips, on the slow side.
LATENCY = {"dynamodb": 0.050, "get_metric_data": 0.150, "list_metrics": 0.150, "put_metric_data": 0.050}
FUNCTION_TIMEOUT = 120.0  # the significance check's Lambda timeout: min(120 s, the check interval)


def _aws_seconds(dynamodb: _StubDynamoDB, cloudwatch: _StubCloudWatch) -> float:
    """The simulated AWS latency of every call the stubs answered so far (`LATENCY` per call)."""
    return (
        LATENCY["dynamodb"] * (dynamodb.reads + dynamodb.writes)
        + LATENCY["get_metric_data"] * cloudwatch.calls
        + LATENCY["list_metrics"] * cloudwatch.list_calls
        + LATENCY["put_metric_data"] * cloudwatch.put_calls
    )


class _SimulatedClock:
    """Seconds used since it was made: wall time of our code + the simulated latency of the calls since."""

    def __init__(self, dynamodb: _StubDynamoDB, cloudwatch: _StubCloudWatch) -> None:
        self.stubs = (dynamodb, cloudwatch)
        self.began, self.aws_before = time.perf_counter(), _aws_seconds(dynamodb, cloudwatch)

    def aws(self) -> float:
        return _aws_seconds(*self.stubs) - self.aws_before

    def used(self) -> float:
        return time.perf_counter() - self.began + self.aws()


def measure_many(
    experiments: int = 100,
    ticks: int = 3,
    timeout: float = FUNCTION_TIMEOUT,
    at: timedelta = TICK_AT,
    batch_size: int | None = None,
) -> list[dict[str, Any]]:
    """Consecutive significance-check ticks (5 minutes apart) with ``experiments`` running, each within the
    function's ``timeout``, on a simulated clock: the tick's own wall time (our code on this machine) plus
    `LATENCY` for every AWS call the stubs answer, so nothing really sleeps. ``check_all`` gets the time
    left on that clock as the Lambda context's ``get_remaining_time_in_millis``. The first tick reads the
    closed stages and freezes them (the heaviest tick of a rollout); the later ones read the stage in
    progress. Past `batch_size` (the function's `MAX_EXPERIMENTS_PER_INVOCATION` by default) the tick hands
    the rest to further invocations, run here one after the other, each on its own clock and timeout (in
    Lambda they run side by side). One row a tick: invocations, experiments checked and skipped, the longest
    invocation's seconds, seconds an experiment (all invocations' seconds / experiments checked)."""
    from canarywise.runtime.events import MAX_EXPERIMENTS_PER_INVOCATION
    from canarywise.runtime.significance import BUDGET_MARGIN_SECONDS, check_all

    now, registry, source, signal, dynamodb, cloudwatch = _tick_world(experiments, at)
    rows = []
    for tick in range(ticks):
        queue: list[list[str] | None] = [None]  # the tick itself, then each batch it handed off
        invocations: list[tuple[float, float, Any]] = []  # (seconds, AWS seconds, summary)
        while queue:
            batch = queue.pop(0)
            clock = _SimulatedClock(dynamodb, cloudwatch)

            def remaining_ms(clock: _SimulatedClock = clock) -> int:
                return int(1000 * (timeout - clock.used()))

            summary = check_all(
                now=now + timedelta(minutes=5 * tick), service="mangaassist", registry=registry,
                metric_source=source, harm_signal=signal, remaining_ms=remaining_ms,
                experiment_ids=batch, hand_off=queue.append,
                batch_size=batch_size or MAX_EXPERIMENTS_PER_INVOCATION,
            )  # fmt: skip
            if summary.failed:
                raise RuntimeError(f"the tick failed experiments: {summary.failed}")
            invocations.append((clock.used(), clock.aws(), summary))
        seconds, aws, _ = max(invocations, key=lambda i: i[0])
        checked = sum(len(s.decisions) for _, _, s in invocations)
        skipped = [e for _, _, s in invocations for e in s.skipped]
        rows.append({
            "tick": tick + 1, "experiments": experiments, "invocations": len(invocations), "checked": checked,
            "skipped": len(skipped), "seconds": seconds, "aws_seconds": aws, "code_seconds": seconds - aws,
            "seconds_per_experiment": sum(i[0] for i in invocations) / checked if checked else math.nan,
            "timeout": timeout, "margin": BUDGET_MARGIN_SECONDS, "first_skipped": skipped[:1],
        })  # fmt: skip
    return rows


def many_in_fresh_process(experiments: int, ticks: int) -> list[dict[str, Any]]:
    """`measure_many` in a fresh interpreter, its log lines (INFO, as in Lambda) discarded."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.cost", "many", "--experiments", str(experiments),
         "--ticks", str(ticks)],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "POWERTOOLS_SERVICE_NAME": "canarywise", "POWERTOOLS_TRACE_DISABLED": "1"},
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --- the rollback function's cold path: alarm to the rule read back ----------------------------------------

ROLLBACK_LATENCY = {"dynamodb": 0.050, "elbv2": 0.100, "stepfunctions": 0.050, "sns": 0.050}
CRITICAL_ALARM = "canarywise-mangaassist-critical"


class _StubRollbackDynamoDB(_StubDynamoDB):
    """`_StubDynamoDB` plus the key condition the rollback's history uses (``sk BETWEEN :low AND :high``)."""

    def query(self, **kwargs: Any) -> dict[str, Any]:
        values = kwargs["ExpressionAttributeValues"]
        if ":low" not in values:
            return super().query(**kwargs)
        pk, low, high = values[":pk"]["S"], values[":low"]["S"], values[":high"]["S"]
        self.reads += 1
        return {
            "Items": [item for (p, sk), item in sorted(self.items.items()) if p == pk and low <= sk <= high]
        }


class _StubAws:
    """The listener rule (ELBv2), Step Functions and SNS calls a rollback makes, from memory, counted."""

    def __init__(self, actions: list[dict[str, Any]]) -> None:
        self.actions = actions
        self.calls: Counter[str] = Counter()

    def modify_rule(self, **kwargs: Any) -> dict[str, Any]:
        self.calls["elbv2"] += 1
        self.actions = kwargs["Actions"]
        return {}

    def describe_rules(self, **kwargs: Any) -> dict[str, Any]:
        self.calls["elbv2"] += 1
        return {"Rules": [{"RuleArn": kwargs["RuleArns"][0], "Actions": self.actions}]}

    def stop_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.calls["stepfunctions"] += 1
        return {}

    def describe_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.calls["stepfunctions"] += 1
        return {"status": "ABORTED"}

    def publish(self, **kwargs: Any) -> dict[str, Any]:
        self.calls["sns"] += 1
        return {"MessageId": "bench"}


def measure_rollback() -> dict[str, Any]:
    """In this (fresh) interpreter: import the rollback handler, then carry out one rollback from the critical
    alarm's Lambda action — a rollout at 95/5 of the shipped spec, the real `Registry`, `Lifecycle`,
    `TrafficSplit`, `CanaryExecutions` and `AlertTopic` on stub clients — and read the rule back. Seconds of
    our code, AWS calls made, and their latency at `ROLLBACK_LATENCY` a call (added, not slept)."""
    began = time.perf_counter()
    import canarywise.handlers.rollback  # noqa: F401  (the cold start: what the function imports)

    imported = time.perf_counter() - began
    from canarywise.data.executions import AlertTopic, CanaryExecutions
    from canarywise.data.registry import Registry, experiment_id_for
    from canarywise.data.traffic import TrafficSplit, forward_action
    from canarywise.lifecycle.state import ServiceState
    from canarywise.lifecycle.table import Event
    from canarywise.runtime.events import parse_rollback_event
    from canarywise.runtime.lifecycle import Lifecycle
    from canarywise.runtime.rollback import roll_back
    from canarywise.spec import load_spec

    spec = load_spec(SPEC_PATH)
    start = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    groups = {"control": "arn:tg/control", "canary": "arn:tg/canary"}
    at_5_percent = forward_action({groups["control"]: 95, groups["canary"]: 5}, spec.traffic.stickiness)
    dynamodb, aws = _StubRollbackDynamoDB(), _StubAws([at_5_percent])
    registry = Registry("canarywise-registry", boto3_client=dynamodb)
    traffic = TrafficSplit("arn:rule", groups, boto3_client=aws, sleep=lambda _: None)
    state = registry.initialise_service_state(
        ServiceState.initial(spec.service, live="control", idle="canary", now=start)
    )
    arn = "arn:aws:states:us-east-1:123456789012:execution:canary:v42-1"
    experiment_id = experiment_id_for(spec.service, "v42", arn)
    item = registry.new_experiment_item(
        spec, experiment_id=experiment_id, candidate="v42", release_id="r1", execution_arn=arn, now=start,
        first_stage_multiplier=1.0, baseline_slot=state.live, candidate_slot=state.idle,
    )  # fmt: skip
    registry.transition(
        Event.START, state, experiment_id=experiment_id, new_experiment=item, now=start, by="bench"
    )
    at = "2026-11-02T10:30:15.490+0000"
    event = {
        "source": "aws.cloudwatch", "accountId": "123456789012", "time": at, "region": "us-east-1",
        "alarmArn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{CRITICAL_ALARM}",
        "alarmData": {"alarmName": CRITICAL_ALARM,
                      "state": {"value": "ALARM", "reason": "StatisticalHarm >= 1", "timestamp": at},
                      "previousState": {"value": "OK", "reason": "", "timestamp": at}},
    }  # fmt: skip
    before = traffic.current()
    reads, writes = dynamodb.reads, dynamodb.writes
    aws.calls.clear()
    began = time.perf_counter()
    request = parse_rollback_event(event, own_alarm_prefix=CRITICAL_ALARM, account="123456789012")
    result = roll_back(
        request, service=spec.service, registry=registry,
        lifecycle=Lifecycle(spec.service, registry, traffic),
        executions=CanaryExecutions(arn, boto3_client=aws), alerts=AlertTopic("arn:sns", boto3_client=aws),
        now=start + timedelta(minutes=30),
    )  # fmt: skip
    code = time.perf_counter() - began
    calls = {"dynamodb": dynamodb.reads - reads + dynamodb.writes - writes, **aws.calls}
    return {
        "import_seconds": imported, "rollback_code_seconds": code, "outcome": result.outcome,
        "rule_before": before, "rule_after": traffic.current(), "calls": calls,
        "aws_seconds": sum(ROLLBACK_LATENCY[k] * n for k, n in calls.items()),
    }  # fmt: skip


def rollback_in_fresh_process() -> dict[str, Any]:
    """`measure_rollback` in a fresh interpreter (the function's cold start), from the virtualenv."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.cost", "rollback"],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "POWERTOOLS_SERVICE_NAME": "canarywise", "POWERTOOLS_TRACE_DISABLED": "1"},
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def metrics_by_stage() -> dict[str, list[int]]:
    """Metrics requested by one experiment's check in each stage of the shipped ladder (at its middle):
    ``first``, a check that reads every started stage from CloudWatch (no frozen copy yet), and ``steady``,
    the next check, for which the first froze the closed stages (``MetricSource.read``: later checks take
    them from the registry and read only the stage in progress and the freshness probe)."""
    from canarywise.runtime.significance import check_all
    from canarywise.spec import load_spec

    spec = load_spec(SPEC_PATH)
    out: dict[str, list[int]] = {"first": [], "steady": []}
    began = 0
    for stage in spec.stages:
        middle = timedelta(seconds=began + stage.min_duration / 2)
        now, registry, source, signal, _, cloudwatch = _tick_world(1, middle)
        for label, when in (("first", now), ("steady", now + timedelta(seconds=spec.check_interval))):
            before = cloudwatch.metrics_requested
            check_all(now=when, service="mangaassist", registry=registry, metric_source=source,
                      harm_signal=signal)  # fmt: skip
            out[label].append(cloudwatch.metrics_requested - before)
        began += stage.min_duration
    return out


def unfrozen_checks_per_stage_end() -> int:
    """Checks that still read a stage from CloudWatch after it ends: those before ``freeze_after`` has passed,
    and the one that freezes it (checks every ``check_interval`` from the stage's end)."""
    from canarywise.data.metric_source import freeze_after
    from canarywise.spec import load_spec

    spec = load_spec(SPEC_PATH)
    return math.ceil(freeze_after(spec).total_seconds() / spec.check_interval)


def ticks_in_fresh_process(counts: tuple[int, ...], repeats: int) -> list[dict[str, Any]]:
    """`measure_tick` for each number of experiments, in one fresh interpreter (imports paid once), its
    log lines (INFO, as in Lambda) discarded."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.cost", "tick", "--experiments", *map(str, counts),
         "--repeats", str(repeats)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "POWERTOOLS_SERVICE_NAME": "canarywise", "POWERTOOLS_TRACE_DISABLED": "1"},
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --- cold start ---------------------------------------------------------------------------------------------


def _import_seconds(path: Path | None, module: str) -> float:
    code = (
        "import sys, time\n"
        + (f"sys.path.insert(0, {str(path)!r})\n" if path else "")
        + f"t = time.perf_counter()\nimport {module}\nprint(time.perf_counter() - t)\n"
    )
    env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": "1", "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([sys.executable, "-B", "-s", "-c", code], cwd=tempfile.gettempdir(), env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


@dataclass
class ColdStart:
    source: str
    with_pyc: float
    without_pyc: float
    runs: int


ROLLBACK_MODULE = "canarywise.handlers.rollback"


def cold_start(runs: int, module: str = HANDLER_MODULE) -> ColdStart:
    """Median import time of a handler module (the significance check's by default), with and without
    precompiled bytecode."""
    if BUNDLE.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            bare = Path(tmp) / "bundle"
            shutil.copytree(
                BUNDLE, bare, copy_function=os.link, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
            with_pyc = statistics.median(_import_seconds(BUNDLE, module) for _ in range(runs))
            without = statistics.median(_import_seconds(bare, module) for _ in range(runs))
        return ColdStart("build/lambda-bundle", with_pyc, without, runs)
    # No bundle: the virtualenv, with its .pyc, and with a throwaway bytecode cache (compiles everything).
    with_pyc = statistics.median(_import_seconds(None, module) for _ in range(runs))
    return ColdStart(".venv (no bundle built)", with_pyc, math.nan, runs)


# --- bundle size --------------------------------------------------------------------------------------------

BUILD_SCRIPT = ROOT / "scripts" / "build_bundle.py"
BUNDLE_STAMP = ROOT / "build" / "lambda-bundle.stamp.json"


@dataclass
class Bundle:
    """``build/lambda-bundle/`` as ``scripts/build_bundle.py`` left it: sizes from its stamp (it zips the
    bundle the way CDK does), whether its inputs are the current sources."""

    unzipped_bytes: int
    zipped_bytes: int
    files: int
    current: bool


def build_bundle() -> bool:
    """Run ``scripts/build_bundle.py`` (a no-op when the sources are unchanged); False when it failed."""
    done = subprocess.run([sys.executable, str(BUILD_SCRIPT)], cwd=ROOT, capture_output=True, check=False)
    return done.returncode == 0


def bundle() -> Bundle | None:
    """The bundle on disk, None when it has not been built."""
    try:
        stamp = json.loads(BUNDLE_STAMP.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not BUNDLE.is_dir() or "zipped_bytes" not in stamp:
        return None
    want = subprocess.run([sys.executable, str(BUILD_SCRIPT), "--hash"], cwd=ROOT, capture_output=True,
                          text=True, check=False).stdout.strip()  # fmt: skip
    files = sum(1 for path in BUNDLE.rglob("*") if path.is_file())
    return Bundle(
        int(stamp["unzipped_bytes"]), int(stamp["zipped_bytes"]), files, stamp.get("input_hash") == want
    )


# --- the bill of one 7-day rollout --------------------------------------------------------------------------


@dataclass
class CostLine:
    item: str
    quantity: float
    unit: str
    price: float
    assumption: str

    @property
    def dollars(self) -> float:
        return self.quantity * self.price


# The stack's alarms, counted in stacks/alarms.py: the 5xx-rate hard-limit and "approaching" alarms (metric
# math over two metrics each), p99 latency hard-limit and approaching, StatisticalHarm, check errors, rollback
# failures. CloudWatch bills an alarm per metric it evaluates.
ALARM_METRICS = 2 * 2 + 2 + 1 + 1 + 1
COMPOSITE_ALARMS = 2


def rollout_cost(
    *, days: float, check_interval: int, tick_seconds: float, metrics_per_tick: float, stages: int,
    write_units_per_tick: float, read_units_per_tick: float,
    significance_memory_gb: float = 1.0, gate_memory_gb: float = 0.5, gate_seconds: float = 0.05,
    cold_starts_per_day: float = 4.0, cold_start_seconds: float = 2.0,
    metrics_note: str = "",
) -> list[CostLine]:  # fmt: skip
    """The AWS bill of one rollout that runs ``days`` days, line by line, each with its assumption.

    Example
    -------
    >>> lines = rollout_cost(days=7, check_interval=300, tick_seconds=0.3, metrics_per_tick=140,
    ...                      stages=3, write_units_per_tick=20, read_units_per_tick=7)
    >>> next(line for line in lines if line.item == "CloudWatch GetMetricData").quantity
    282240.0
    """
    checks = days * 86_400 / check_interval
    p = PRICES
    month = days / DAYS_PER_MONTH
    lambda_gb_s = checks * (significance_memory_gb * tick_seconds + gate_memory_gb * gate_seconds)
    lambda_gb_s += days * cold_starts_per_day * significance_memory_gb * cold_start_seconds
    return [
        CostLine("Step Functions state transitions", checks * 3 + stages * 2 + 6, "transitions",
                 p["step_functions_per_transition"],
                 "3 a check (Wait, stage-gate Task, Choice), 2 a stage (set weights, stage started), + 6"),
        CostLine("Lambda compute", lambda_gb_s, "GB-s", p["lambda_per_gb_second"],
                 f"significance check {significance_memory_gb:g} GB x {tick_seconds:.3f} s a tick "
                 f"(measured CPU + AWS latency), stage gate {gate_memory_gb:g} GB x {gate_seconds:g} s, "
                 f"{cold_starts_per_day:g} billed cold starts a day of {cold_start_seconds:.1f} s"),
        CostLine("Lambda requests", checks * 2, "requests", p["lambda_per_request"],
                 "one significance check and one stage-gate call per 5-minute check"),
        CostLine("CloudWatch GetMetricData", checks * metrics_per_tick, "metrics requested",
                 p["get_metric_data_per_metric"],
                 f"{metrics_per_tick:.1f} metrics requested per tick on average over the ladder"
                 + (f" ({metrics_note})" if metrics_note else "")),
        CostLine("CloudWatch PutMetricData (StatisticalHarm)", checks, "requests",
                 p["put_metric_data_per_request"], "one per tick"),
        CostLine("Custom metric StatisticalHarm", month, "metric-months", p["custom_metric_per_month"],
                 "one metric (Service dimension), prorated to the rollout"),
        CostLine("Metric alarms", ALARM_METRICS * month, "alarm-metric-months",
                 p["alarm_metric_per_month"],
                 f"{ALARM_METRICS} metrics in the stack's alarms (5xx rate x2 and p99 latency x2: hard limit "
                 "and approaching; StatisticalHarm, check errors, rollback failures); a fixed cost of the "
                 "stack, prorated"),
        CostLine("Composite alarms", COMPOSITE_ALARMS * month, "alarm-months",
                 p["composite_alarm_per_month"], "critical and warning; prorated"),
        CostLine("DynamoDB writes", checks * write_units_per_tick, "write units",
                 p["dynamodb_per_write_unit"],
                 f"{write_units_per_tick:g} write units a tick (counted: the check record and the "
                 "experiment's latest-decision update, each billed per KB of item)"),
        CostLine("DynamoDB reads", checks * (read_units_per_tick + 3), "read units",
                 p["dynamodb_per_read_unit"],
                 f"{read_units_per_tick:g} read units a tick (counted) + 3 for the stage gate's strongly "
                 "consistent read of the experiment item (~12 KB)"),
        CostLine("EventBridge Scheduler", checks, "invocations", p["scheduler_per_invocation"],
                 "rate(5 minutes); inside the 14 million free a month in practice"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one part of the cost benchmark")
    sub = parser.add_subparsers(dest="part", required=True)
    tick = sub.add_parser("tick", help="CPU time of one significance-check tick (prints JSON)")
    tick.add_argument("--experiments", type=int, nargs="+", default=[1])
    tick.add_argument("--repeats", type=int, default=5)
    many = sub.add_parser("many", help="consecutive ticks of many experiments with AWS latency (prints JSON)")
    many.add_argument("--experiments", type=int, default=100)
    many.add_argument("--ticks", type=int, default=3)
    sub.add_parser("rollback", help="the rollback function's cold path against stubs (prints JSON)")
    args = parser.parse_args(argv)
    real_stdout = sys.stdout
    sys.stdout = io.StringIO()  # the handler logs every decision at INFO, as in Lambda: not our output
    try:
        if args.part == "tick":
            result: Any = [measure_tick(n, args.repeats) for n in args.experiments]
        elif args.part == "many":
            result = measure_many(args.experiments, args.ticks)
        else:
            result = measure_rollback()
    finally:
        sys.stdout = real_stdout
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
