"""The local-mode bridges (canarywise.local): each one against an independent reference.

References: moto's own GetMetricData (for the indexed one), numpy's inverted-CDF percentile (for percentiles
of value distributions), hand-derived truth tables and arithmetic (alarm rules, metric math), and the AWS
documentation's shapes (EMF, the CloudWatch alarm event).
"""

from __future__ import annotations

import json
import random
import socket
import zipfile
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any

import numpy as np
import pytest
from moto.cloudwatch.models import CloudWatchBackend
from numpy.testing import assert_allclose

from canarywise.local.alarms import AlarmRuleError, _statistic, evaluate_expression, parse_alarm_rule
from canarywise.local.lambda_runtime import emf_to_metric_data
from canarywise.local.server import LocalAws, NetworkGuardError

# moto's own implementation, taken before any local AWS patches it: the reference for the indexed one.
MOTO_GET_METRIC_DATA = CloudWatchBackend.get_metric_data

# -- composite alarm rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "states", "expected"),
    [
        ('ALARM("a")', {"a": "ALARM"}, True),
        ('ALARM("a")', {"a": "OK"}, False),
        ('OK("a")', {"a": "OK"}, True),
        ("INSUFFICIENT_DATA(a)", {}, True),  # an alarm nobody knows has no data
        ('NOT ALARM("a")', {"a": "OK"}, True),
        # AND binds tighter than OR: a OR (b AND c)
        ("ALARM(a) OR ALARM(b) AND ALARM(c)", {"a": "ALARM", "b": "ALARM", "c": "OK"}, True),
        ("ALARM(a) OR ALARM(b) AND ALARM(c)", {"a": "OK", "b": "ALARM", "c": "OK"}, False),
        ("(ALARM(a) OR ALARM(b)) AND ALARM(c)", {"a": "ALARM", "b": "OK", "c": "OK"}, False),
        ("TRUE AND NOT FALSE", {}, True),
        # Composite rules name alarms by ARN; states may be known by name.
        ('ALARM("arn:aws:cloudwatch:us-east-1:123456789012:alarm:x-hard")', {"x-hard": "ALARM"}, True),
    ],
)
def test_alarm_rule(rule: str, states: dict[str, str], expected: bool) -> None:
    assert parse_alarm_rule(rule)(states) is expected


def test_alarm_rule_raises() -> None:
    with pytest.raises(AlarmRuleError, match=r"^alarm rule 'ALARM\(a': expected \), found None$"):
        parse_alarm_rule("ALARM(a")


RATE_ALARM = "IF(requests_canary >= 100, errors_canary / requests_canary, 0)"  # the dashboard's 5xx rate
# The stack's 5xx hard-limit alarm (stacks.alarms.error_excess at a 2% limit).
EXCESS_ALARM = (
    "IF(requests_canary >= 100, (errors_canary - 0.02 * requests_canary) / SQRT(0.0196 * requests_canary), 0)"
)

# -- metric math -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "values", "expected"),
    [
        # The 5xx rate: 6 errors in 150 requests = 0.04 (hand arithmetic).
        (RATE_ALARM, {"requests_canary": 150.0, "errors_canary": 6.0}, 0.04),
        # Too few requests: the alarm reads 0, whatever the errors.
        (RATE_ALARM, {"requests_canary": 50.0, "errors_canary": 6.0}, 0.0),
        # The stack's 5xx hard-limit alarm: 12 errors in 200 requests against 2%, by hand
        # (12 - 0.02 * 200) / sqrt(0.0196 * 200) = 8 / 1.979899 = 4.040610.
        (EXCESS_ALARM, {"requests_canary": 200.0, "errors_canary": 12.0}, 4.040610178),
        (EXCESS_ALARM, {"requests_canary": 99.0, "errors_canary": 12.0}, 0.0),
        ("100*FILL(m1,0)/m2", {"m1": None, "m2": 50.0}, 0.0),
        ("-m1 + 2*m2", {"m1": 1.5, "m2": 4.0}, 6.5),
        ("MAX(m1, m2)", {"m1": 1.0, "m2": 3.0}, 3.0),
    ],
)
def test_metric_math(expression: str, values: dict[str, float | None], expected: float) -> None:
    assert_allclose(evaluate_expression(expression, values), expected)


def test_metric_math_missing_input_is_missing() -> None:
    # A minute without a 5XX datapoint has no rate (CloudWatch computes only where inputs have data).
    assert evaluate_expression("IF(r >= 100, e / r, 0)", {"r": 150.0, "e": None}) is None


def test_metric_math_raises() -> None:
    with pytest.raises(AlarmRuleError, match=r"^metric math 'ANOMALY_DETECTION_BAND\(m1\)': "):
        evaluate_expression("ANOMALY_DETECTION_BAND(m1)", {"m1": 1.0})
    with pytest.raises(AlarmRuleError, match=r"^metric math 'm3' names 'm3', which no query defines$"):
        evaluate_expression("m3", {"m1": 1.0})


# -- percentiles of value distributions --------------------------------------------------------------------


class _Distribution:
    """A stored PutMetricData Values/Counts datum, as the local store keeps it."""

    def __init__(self, values: list[float], counts: list[float]) -> None:
        self.sample_count = sum(counts)
        self.sum = sum(v * c for v, c in zip(values, counts, strict=True))
        self.min, self.max = min(values), max(values)
        self.distribution = (values, counts)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("level", [50.0, 90.0, 99.0])
def test_percentile_of_distributions_matches_numpy_inverted_cdf(seed: int, level: float) -> None:
    """Reference: numpy.percentile(np.repeat(values, counts), level, method="inverted_cdf")."""
    rng = np.random.default_rng(seed)
    data = []
    pooled = []
    for _ in range(3):
        values = sorted(set(np.round(rng.lognormal(0.2, 0.5, 20), 3).tolist()))
        counts = rng.integers(1, 40, len(values)).tolist()
        data.append(_Distribution(values, [float(c) for c in counts]))
        pooled.append(np.repeat(values, counts))
    expected = np.percentile(np.concatenate(pooled), level, method="inverted_cdf")
    assert_allclose(_statistic(data, f"p{level:g}"), expected)


def test_sum_and_sample_count_of_distributions() -> None:
    data = [_Distribution([1.0, 3.0], [2.0, 1.0]), _Distribution([2.0], [4.0])]
    assert _statistic(data, "SampleCount") == 7.0  # 2 + 1 + 4
    assert _statistic(data, "Sum") == 13.0  # 1*2 + 3*1 + 2*4
    assert _statistic(data, "Maximum") == 3.0


# -- EMF ---------------------------------------------------------------------------------------------------


def test_emf_line_becomes_metric_data() -> None:
    """The embedded metric format, as docs.aws.amazon.com specifies it (CloudWatch EMF specification)."""
    line = json.dumps(
        {
            "_aws": {
                "Timestamp": 1_700_000_000_000,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "Canarywise",
                        "Dimensions": [["service"], []],
                        "Metrics": [{"Name": "Checks", "Unit": "Count"}],
                    }
                ],
            },
            "service": "canarywise",
            "Checks": [1.0, 2.0],
        }
    )
    at = datetime(2026, 11, 16, 9, 5, tzinfo=UTC)
    data = emf_to_metric_data(line, timestamp=at)["Canarywise"]
    # Two values x two dimension sets.
    assert sorted((d["Value"], json.dumps(d["Dimensions"])) for d in data) == [
        (1.0, "[]"),
        (1.0, '[{"Name": "service", "Value": "canarywise"}]'),
        (2.0, "[]"),
        (2.0, '[{"Name": "service", "Value": "canarywise"}]'),
    ]
    assert {d["Timestamp"] for d in data} == {at}
    assert emf_to_metric_data("a plain log line") == {}


# -- the server and its patches --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws() -> Any:
    with LocalAws() as local:
        yield local


def test_nothing_but_loopback_is_reachable(aws: LocalAws) -> None:
    with pytest.raises(
        NetworkGuardError, match=r"^local mode only talks to 127.0.0.1; refused a connection to 192.0.2.1$"
    ):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    assert aws.endpoint.startswith("http://127.0.0.1:")


def _zip() -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("stub.py", "")
    return buffer.getvalue()


def test_lambda_invoke_runs_the_handler_in_process_with_its_environment(aws: LocalAws) -> None:
    role = aws.client("iam").create_role(RoleName="bridge-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    functions = aws.client("lambda")
    # os.getenv(event, context): returns the variable the event names, from the function's own environment.
    functions.create_function(
        FunctionName="env-reader",
        Runtime="python3.12",
        Role=role,
        Handler="os.getenv",
        Code={"ZipFile": _zip()},
        Environment={"Variables": {"ONLY_IN_THIS_FUNCTION": "yes"}},
    )
    response = functions.invoke(FunctionName="env-reader", Payload=json.dumps("ONLY_IN_THIS_FUNCTION"))
    assert json.loads(response["Payload"].read()) == "yes"
    # An exception is the function's error, with Lambda's error payload.
    functions.create_function(
        FunctionName="fails", Runtime="python3.12", Role=role, Handler="json.loads", Code={"ZipFile": _zip()}
    )
    response = functions.invoke(FunctionName="fails", Payload=json.dumps("x"))
    assert response["FunctionError"] == "Handled"
    assert json.loads(response["Payload"].read())["errorType"] == "TypeError"


def test_step_functions_reach_elbv2_through_the_sdk_integration(aws: LocalAws) -> None:
    import time

    role = aws.client("iam").create_role(RoleName="sfn-bridge", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    definition = {
        "StartAt": "Describe",
        "States": {
            "Describe": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:elasticloadbalancingv2:describeLoadBalancers",
                "Parameters": {},
                "End": True,
            }
        },
    }
    sfn = aws.client("stepfunctions")
    machine = sfn.create_state_machine(name="elbv2-bridge", definition=json.dumps(definition), roleArn=role)
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="e1")["executionArn"]
    for _ in range(200):
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            break
        time.sleep(0.02)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert "LoadBalancers" in json.loads(described["output"])


def test_indexed_get_metric_data_equals_motos_own(aws: LocalAws) -> None:
    """Reference: moto's GetMetricData (the patch undone), on the same random data and queries.

    Every query names its dimensions in the order they were put: moto compares dimension lists in order.
    """
    rng = random.Random(5)
    cloudwatch = aws.client("cloudwatch")
    t0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    data = []
    for tick in range(150):
        for variant in ("control", "canary"):
            intent = {"Name": "Intent", "Value": rng.choice("ab")}
            for dims in (
                [{"Name": "Variant", "Value": variant}],
                [{"Name": "Variant", "Value": variant}, intent],
            ):
                n = rng.randint(1, 100)
                data.append(
                    {
                        "MetricName": rng.choice(["M", "K"]),
                        "Dimensions": dims,
                        "Timestamp": t0
                        + timedelta(minutes=5 * tick + rng.randint(0, 4), seconds=rng.randint(0, 59)),
                        "StatisticValues": {
                            "SampleCount": n,
                            "Sum": rng.randint(0, n),
                            "Minimum": 0,
                            "Maximum": 1,
                        },
                    }
                )
    rng.shuffle(data)
    for start in range(0, len(data), 1000):
        cloudwatch.put_metric_data(Namespace="BridgeTest", MetricData=data[start : start + 1000])
    combinations = [
        (name, dims, period, stat)
        for name in ("M", "K")
        for dims in (
            [{"Name": "Variant", "Value": "canary"}],
            [{"Name": "Variant", "Value": "control"}, {"Name": "Intent", "Value": "a"}],
        )
        # 8 h spans the whole window below: one datapoint, the way the metric source reads a stage
        for period in (60, 300, 3600, 8 * 3600)
        for stat in ("Sum", "SampleCount", "Average", "Maximum")
    ]
    queries = [
        {
            "Id": f"q{i}",
            "MetricStat": {
                "Metric": {"Namespace": "BridgeTest", "MetricName": name, "Dimensions": dims},
                "Period": period,
                "Stat": stat,
            },
        }
        for i, (name, dims, period, stat) in enumerate(combinations)
    ]
    window = {"StartTime": t0 + timedelta(hours=1, seconds=17), "EndTime": t0 + timedelta(hours=9)}
    indexed = cloudwatch.get_metric_data(MetricDataQueries=queries, **window)["MetricDataResults"]
    patched = CloudWatchBackend.__dict__["get_metric_data"]
    assert patched is not MOTO_GET_METRIC_DATA
    CloudWatchBackend.get_metric_data = MOTO_GET_METRIC_DATA
    try:
        reference = cloudwatch.get_metric_data(MetricDataQueries=queries, **window)["MetricDataResults"]
    finally:
        CloudWatchBackend.get_metric_data = patched
    assert [r["Id"] for r in indexed] == [r["Id"] for r in reference]
    for mine, theirs in zip(indexed, reference, strict=True):
        assert mine["Timestamps"] == theirs["Timestamps"]
        assert_allclose(mine["Values"], theirs["Values"])
    assert sum(len(r["Values"]) for r in indexed) > 100  # the comparison is not vacuous
