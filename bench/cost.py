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

Run one part alone: ``python -m bench.cost tick --experiments 10``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
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


class _StubCloudWatch:
    """Answers GetMetricData with one datapoint per query: n units per variant at the weights, events at
    plausible rates; counts the calls and the metrics requested (what CloudWatch bills)."""

    def __init__(self, rates: dict[str, float], slices: tuple[str, ...]) -> None:
        self.rates = rates
        self.slices = slices
        self.calls = 0
        self.metrics_requested = 0
        self.put_calls = 0

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        queries = kwargs["MetricDataQueries"]
        self.metrics_requested += len(queries)
        end = kwargs["EndTime"]
        results = []
        for query in queries:
            stat = query["MetricStat"]
            dims = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
            canary = dims.get("Variant") == "canary" or "canary" in dims.get("TargetGroup", "")
            n = 500.0 if canary else 9500.0
            name = stat["Metric"]["MetricName"]
            if stat["Stat"] == "SampleCount" or name == "RequestCount":
                value = n
            elif name.endswith("Squared"):
                value = n * (4.2**2 + 1.0)
            else:
                value = n * self.rates.get(name, 0.01)
            results.append(
                {"Id": query["Id"], "StatusCode": "Complete", "Values": [value], "Timestamps": [end]}
            )
        return {"MetricDataResults": results}

    def put_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        self.put_calls += 1
        return {}

    def get_paginator(self, name: str) -> Any:
        slices = self.slices

        class _Pages:
            def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
                yield {
                    "Metrics": [
                        {"Dimensions": [{"Name": "Variant", "Value": v}, {"Name": "Intent", "Value": s}]}
                        for s in slices
                        for v in ("control", "canary")
                    ]
                }

        return _Pages()


class _StubRegistry:
    """The three registry calls the check makes, in memory."""

    def __init__(self, experiments: list[Any], stages: tuple[Any, ...]) -> None:
        self.experiments = experiments
        self.stages = stages
        self.checks = 0

    def list_running(self, service: str | None = None) -> tuple[Any, ...]:
        return tuple(self.experiments)

    def stage_history(self, experiment_id: str) -> tuple[Any, ...]:
        return self.stages

    def record_check(self, experiment_id: str, check: Any) -> None:
        check.model_dump(mode="json")  # the serialisation the real registry does before writing
        self.checks += 1


def measure_tick(experiments: int, repeats: int) -> dict[str, Any]:
    """CPU seconds of one warm significance-check tick with ``experiments`` running (this process)."""
    from canarywise.data.executions import HarmSignal
    from canarywise.data.metric_source import AlbDimensions, MetricSource
    from canarywise.data.models import Experiment, ExperimentStatus, StageStart, Weights
    from canarywise.runtime.significance import check_all
    from canarywise.spec import load_spec

    spec = load_spec(SPEC_PATH)
    start = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    rates = {
        "Escalation": 0.12, "SlowResponse": 0.02, "Hallucination": 0.03, "SafetyFilterTriggered": 0.01,
        "TaskCompleted": 0.78, "CSAT": 4.2, "RecommendationClick": 0.10, "HTTPCode_Target_5XX_Count": 0.003,
    }  # fmt: skip
    cloudwatch = _StubCloudWatch(rates, ("order_status", "returns", "product_search", "other"))
    registry = _StubRegistry(
        [
            Experiment(
                experiment_id=f"mangaassist-v{i}",
                service="mangaassist",
                candidate=f"v{i}",
                release_id=str(i),
                execution_arn=None,
                status=ExperimentStatus.RUNNING,
                spec=spec,
                created_at=start,
            )
            for i in range(experiments)
        ],
        (StageStart(stage_index=0, started_at=start, weights=Weights.for_canary_percent(5)),),
    )
    source = MetricSource(
        AlbDimensions("app/alb/1", "targetgroup/control/2", "targetgroup/canary/3"), boto3_client=cloudwatch
    )
    signal = HarmSignal(boto3_client=cloudwatch)
    cpu: list[float] = []
    for tick in range(repeats + 1):  # the first tick warms caches (a warm Lambda), not counted
        now = start + timedelta(hours=2, minutes=5 * tick)
        calls_before, metrics_before = cloudwatch.calls, cloudwatch.metrics_requested
        began = time.process_time()
        summary = check_all(
            now=now,
            service="mangaassist",
            registry=registry,  # type: ignore[arg-type]
            metric_source=source,
            harm_signal=signal,
        )
        if tick:
            cpu.append(time.process_time() - began)
        assert not summary.failed, summary.failed
    return {
        "experiments": experiments,
        "cpu_seconds_median": statistics.median(cpu),
        "cpu_seconds_max": max(cpu),
        "get_metric_data_calls": cloudwatch.calls - calls_before,
        "metrics_requested": cloudwatch.metrics_requested - metrics_before,
        "decision": next(iter(summary.decisions.values())),
    }


def tick_in_fresh_process(experiments: int, repeats: int) -> dict[str, Any]:
    """`measure_tick` in a fresh interpreter, its log lines (INFO, as in Lambda) discarded."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.cost",
            "tick",
            "--experiments",
            str(experiments),
            "--repeats",
            str(repeats),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "POWERTOOLS_SERVICE_NAME": "canarywise", "POWERTOOLS_TRACE_DISABLED": "1"},
    )
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


def cold_start(runs: int) -> ColdStart:
    """Median import time of the significance-check handler, with and without precompiled bytecode."""
    if BUNDLE.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            bare = Path(tmp) / "bundle"
            shutil.copytree(
                BUNDLE, bare, copy_function=os.link, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
            with_pyc = statistics.median(_import_seconds(BUNDLE, HANDLER_MODULE) for _ in range(runs))
            without = statistics.median(_import_seconds(bare, HANDLER_MODULE) for _ in range(runs))
        return ColdStart("build/lambda-bundle", with_pyc, without, runs)
    # No bundle: the virtualenv, with its .pyc, and with a throwaway bytecode cache (compiles everything).
    with_pyc = statistics.median(_import_seconds(None, HANDLER_MODULE) for _ in range(runs))
    return ColdStart(".venv (no bundle built)", with_pyc, math.nan, runs)


# --- bundle size --------------------------------------------------------------------------------------------


def bundle_size() -> dict[str, float] | None:
    """Unzipped and zipped bytes of ``build/lambda-bundle/``; None when it has not been built."""
    if not BUNDLE.is_dir():
        return None
    unzipped, files = 0, 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(BUNDLE.rglob("*")):
            if path.is_file():
                unzipped += path.stat().st_size
                files += 1
                archive.write(path, path.relative_to(BUNDLE))
    return {"unzipped_bytes": unzipped, "zipped_bytes": buffer.getbuffer().nbytes, "files": files}


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


def rollout_cost(
    *, days: float, check_interval: int, tick_seconds: float, metrics_per_tick: int, stages: int,
    significance_memory_gb: float = 1.0, gate_memory_gb: float = 0.5, gate_seconds: float = 0.05,
    cold_starts_per_day: float = 4.0, cold_start_seconds: float = 2.0,
) -> list[CostLine]:  # fmt: skip
    """The AWS bill of one rollout that runs ``days`` days, line by line, each with its assumption."""
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
                 f"{cold_starts_per_day:g} billed cold starts a day of {cold_start_seconds:g} s"),
        CostLine("Lambda requests", checks * 2, "requests", p["lambda_per_request"],
                 "one significance check and one stage-gate call per 5-minute check"),
        CostLine("CloudWatch GetMetricData", checks * metrics_per_tick, "metrics requested",
                 p["get_metric_data_per_metric"], f"{metrics_per_tick} metrics requested per tick (counted)"),
        CostLine("CloudWatch PutMetricData (StatisticalHarm)", checks, "requests",
                 p["put_metric_data_per_request"], "one per tick"),
        CostLine("Custom metric StatisticalHarm", month, "metric-months", p["custom_metric_per_month"],
                 "one metric (Service dimension), prorated to the rollout"),
        CostLine("Metric alarms", 4 * month, "alarm-metric-months", p["alarm_metric_per_month"],
                 "5xx rate (metric math over 2 metrics), p99 latency, StatisticalHarm; prorated"),
        CostLine("Composite alarms", 2 * month, "alarm-months", p["composite_alarm_per_month"],
                 "critical and warning; prorated"),
        CostLine("DynamoDB writes", checks * 3, "write units", p["dynamodb_per_write_unit"],
                 "check record (~2 KB) + latest-decision update per tick"),
        CostLine("DynamoDB reads", checks * 4, "read units", p["dynamodb_per_read_unit"],
                 "running experiments + stage history per tick, latest decision per stage-gate call"),
        CostLine("EventBridge Scheduler", checks, "invocations", p["scheduler_per_invocation"],
                 "rate(5 minutes); inside the 14 million free a month in practice"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one part of the cost benchmark")
    sub = parser.add_subparsers(dest="part", required=True)
    tick = sub.add_parser("tick", help="CPU time of one significance-check tick (prints JSON)")
    tick.add_argument("--experiments", type=int, default=1)
    tick.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.part == "tick":
        real_stdout = sys.stdout
        sys.stdout = io.StringIO()  # the handler logs every decision at INFO, as in Lambda: not our output
        try:
            result = measure_tick(args.experiments, args.repeats)
        finally:
            sys.stdout = real_stdout
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
