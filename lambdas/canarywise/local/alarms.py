"""CloudWatch's alarm evaluation for local mode: moto stores alarms but never evaluates them or fires actions.

:class:`AlarmEvaluator` plays CloudWatch's part at a given (simulated) time:

1. each metric alarm moto holds is evaluated over its last ``EvaluationPeriods`` periods: a statistic
   (``Sum``, ``Average``, ``SampleCount``, ``Minimum``, ``Maximum``), an extended statistic (``p99``, from the
   value distributions the local store keeps) or metric math (arithmetic and ``FILL`` over the ``Metrics``
   queries), compared with the threshold, M out of N (``DatapointsToAlarm``), ``TreatMissingData`` honoured;
   a changed state is written back with SetAlarmState;
2. the composite alarms (moto has no PutCompositeAlarm; :mod:`canarywise.local.provision` hands them over
   from the template) are evaluated from those states with their ``AlarmRule``;
3. an alarm that goes into ALARM fires its actions as CloudWatch would: a Lambda ARN is invoked with the
   CloudWatch alarm event (``source: aws.cloudwatch``), an SNS topic gets the alarm notification.

Example
-------
>>> rule = parse_alarm_rule('ALARM("critical-5xx") OR (ALARM(harm) AND NOT OK("p99"))')
>>> rule({"critical-5xx": "OK", "harm": "ALARM", "p99": "ALARM"})
True
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from canarywise.errors import CanarywiseError
from canarywise.local.moto_patches import metric_series
from canarywise.local.server import ACCOUNT_ID, REGION

OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


class AlarmRuleError(CanarywiseError, ValueError):
    """A composite alarm rule or a metric-math expression this evaluator cannot read."""


# -- composite alarm rules -------------------------------------------------------------------------------
_TOKEN = re.compile(r'\s*(?:(\()|(\))|"([^"]*)"|([A-Za-z_][A-Za-z0-9_:/.\-]*))')


def _tokens(rule: str) -> list[str]:
    tokens, position = [], 0
    while position < len(rule.rstrip()):
        match = _TOKEN.match(rule, position)
        if not match:
            raise AlarmRuleError(f"cannot read alarm rule {rule!r} at {rule[position:]!r}")
        opened, closed, quoted, word = match.groups()
        tokens.append("(" if opened else ")" if closed else f'"{quoted}"' if quoted is not None else word)
        position = match.end()
    return tokens


def parse_alarm_rule(rule: str) -> Callable[[Mapping[str, str]], bool]:
    """A function of the alarm states (name or ARN -> state) that says whether `rule` is true.

    The rule language of composite alarms: ``ALARM(x)``, ``OK(x)``, ``INSUFFICIENT_DATA(x)``, ``TRUE``,
    ``FALSE``, ``NOT``, ``AND``, ``OR`` (``AND`` binds tighter), parentheses; alarm names quoted or bare.
    Hand-written: a dozen lines of recursive descent, no library parses this language.
    """
    tokens = _tokens(rule)
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take(expected: str | None = None) -> str:
        nonlocal position
        token = peek()
        if token is None or (expected is not None and token.upper() != expected):
            raise AlarmRuleError(f"alarm rule {rule!r}: expected {expected or 'more'}, found {token!r}")
        position += 1
        return token

    Node = Callable[[Mapping[str, str]], bool]  # noqa: N806 - a type alias, named like one

    def both(a: Node, b: Node) -> Node:
        return lambda states: a(states) and b(states)

    def either(a: Node, b: Node) -> Node:
        return lambda states: a(states) or b(states)

    def constant(value: bool) -> Node:
        return lambda states: value

    def in_state(name: str, state: str) -> Node:
        return lambda states: _state_of(states, name) == state

    def expression() -> Node:
        left = term()
        while (peek() or "").upper() == "OR":
            take()
            left = either(left, term())
        return left

    def term() -> Node:
        left = factor()
        while (peek() or "").upper() == "AND":
            take()
            left = both(left, factor())
        return left

    def factor() -> Node:
        token = take()
        word = token.upper()
        if word == "NOT":
            inner = factor()
            return lambda states: not inner(states)
        if token == "(":
            inner = expression()
            take(")")
            return inner
        if word in {"TRUE", "FALSE"}:
            return constant(word == "TRUE")
        if word in {ALARM, OK, INSUFFICIENT}:
            take("(")
            name = take().strip('"')
            take(")")
            return in_state(name, word)
        raise AlarmRuleError(f"alarm rule {rule!r}: unexpected {token!r}")

    node = expression()
    if peek() is not None:
        raise AlarmRuleError(f"alarm rule {rule!r}: unexpected {peek()!r} after the end")
    return node


def _state_of(states: Mapping[str, str], name_or_arn: str) -> str:
    if name_or_arn in states:
        return states[name_or_arn]
    name = name_or_arn.split(":alarm:", 1)[-1]
    return states.get(name, INSUFFICIENT)


# -- metric math ------------------------------------------------------------------------------------------
_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: lambda a, b: a / b if b else math.nan,
}


_COMPARE: dict[type, Callable[[float, float], bool]] = {
    ast.GtE: operator.ge,
    ast.Gt: operator.gt,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def evaluate_expression(expression: str, values: Mapping[str, float | None]) -> float | None:
    """The value of a metric-math `expression` for one period; None when an input has no datapoint.

    Supports numbers, query ids, ``+ - * /``, unary minus, comparisons, ``IF(condition, a, b)``,
    ``FILL(m, value)``, ``ABS``, ``SQRT``, ``MAX``/``MIN`` of arguments.

    Example
    -------
    >>> evaluate_expression("100*FILL(m1,0)/m2", {"m1": None, "m2": 50.0})
    0.0
    """
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise AlarmRuleError(f"cannot read metric math {expression!r}: {exc.msg}") from None

    def walk(node: ast.AST) -> float | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in values:
                raise AlarmRuleError(f"metric math {expression!r} names {node.id!r}, which no query defines")
            return values[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = walk(node.operand)
            return None if inner is None else -inner
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = walk(node.left), walk(node.right)
            return None if left is None or right is None else _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
            left, right = walk(node.left), walk(node.comparators[0])
            return None if left is None or right is None else float(_COMPARE[type(node.ops[0])](left, right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            function = node.func.id.upper()
            if function == "IF" and len(node.args) == 3:
                condition = walk(node.args[0])
                if condition is None:
                    return None
                return walk(node.args[1]) if condition else walk(node.args[2])
            if function == "FILL" and len(node.args) == 2:
                inner = walk(node.args[0])
                return inner if inner is not None else walk(node.args[1])
            arguments = [walk(a) for a in node.args]
            if any(a is None for a in arguments):
                return None
            present = [a for a in arguments if a is not None]
            if function == "ABS" and len(present) == 1:
                return abs(present[0])
            if function == "SQRT" and len(present) == 1:
                return math.sqrt(present[0]) if present[0] >= 0 else math.nan
            if function in {"MAX", "MIN"} and present:
                return max(present) if function == "MAX" else min(present)
        raise AlarmRuleError(f"metric math {expression!r}: {ast.unparse(node)!r} is not supported locally")

    return walk(tree.body)


# -- statistics over the local store ---------------------------------------------------------------------
def _statistic(data: Sequence[Any], stat: str) -> float | None:
    """One period's statistic over moto datapoints (single values and aggregated or distribution ones)."""
    if not data:
        return None
    values: list[float] = []
    counts: list[float] = []
    n = total = 0.0
    low, high = math.inf, -math.inf
    for datum in data:
        if hasattr(datum, "sample_count"):
            n += float(datum.sample_count)
            total += float(datum.sum)
            low, high = min(low, float(datum.min)), max(high, float(datum.max))
            distribution = getattr(datum, "distribution", None)
            if distribution is not None:
                values.extend(distribution[0])
                counts.extend(distribution[1])
        else:
            n += 1
            total += float(datum.value)
            low, high = min(low, float(datum.value)), max(high, float(datum.value))
            values.append(float(datum.value))
            counts.append(1.0)
    if stat == "SampleCount":
        return n
    if stat == "Sum":
        return total
    if stat == "Average":
        return total / n if n else None
    if stat == "Minimum":
        return low
    if stat == "Maximum":
        return high
    match = re.fullmatch(r"p(\d+(?:\.\d+)?)", stat)
    if match and values:
        order = np.argsort(values)
        cumulative = np.cumsum(np.asarray(counts)[order])
        rank = float(match.group(1)) / 100 * cumulative[-1]
        return float(np.asarray(values)[order][min(int(np.searchsorted(cumulative, rank)), len(values) - 1)])
    return None


def _dimensions(items: Sequence[Mapping[str, str]] | None) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in items or []}


# -- alarms ----------------------------------------------------------------------------------------------
@dataclass
class CompositeAlarm:
    """A composite alarm as the template defines it (names and ARNs already resolved)."""

    name: str
    rule: str
    actions: tuple[str, ...] = ()
    actions_enabled: bool = True
    state: str = INSUFFICIENT
    _predicate: Callable[[Mapping[str, str]], bool] | None = field(default=None, repr=False)

    @property
    def arn(self) -> str:
        return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{self.name}"

    def explain(self, states: Mapping[str, str]) -> str:
        """Which of the alarms the rule names are in ALARM (the reason CloudWatch would give, shorter)."""
        named = re.findall(r'(?:ALARM|OK|INSUFFICIENT_DATA)\(\s*"?([^")]+)"?\s*\)', self.rule)
        firing = [
            name.split(":alarm:", 1)[-1] for name in dict.fromkeys(named) if _state_of(states, name) == ALARM
        ]
        if firing:
            return f"{', '.join(firing)} in ALARM"
        return "none of its alarms is in ALARM"

    def holds(self, states: Mapping[str, str]) -> bool:
        if self._predicate is None:
            self._predicate = parse_alarm_rule(self.rule)
        return self._predicate(states)


@dataclass(frozen=True)
class AlarmChange:
    """An alarm changed state at `at`; `fired` lists the actions invoked (ARNs)."""

    name: str
    previous: str
    state: str
    reason: str
    at: datetime
    composite: bool = False
    fired: tuple[str, ...] = ()


class AlarmEvaluator:
    """Evaluates the metric and composite alarms at a given time and fires their actions.

    Parameters
    ----------
    cloudwatch, lambda_client, sns
        boto3 clients on the local endpoint.
    composites
        The composite alarms (moto has none).
    """

    def __init__(
        self, cloudwatch: Any, lambda_client: Any, sns: Any, composites: Sequence[CompositeAlarm] = ()
    ) -> None:
        self.cloudwatch = cloudwatch
        self.lambda_client = lambda_client
        self.sns = sns
        self.composites = list(composites)
        self.history: list[AlarmChange] = []
        self.action_results: list[dict[str, Any]] = []
        # Per metric alarm: (evaluation time, the newest period's value) at each evaluation.
        self.series: dict[str, list[tuple[datetime, float | None]]] = {}
        self.thresholds: dict[str, float] = {}  # per metric alarm, what `series` is compared with

    def evaluate(self, now: datetime) -> list[AlarmChange]:
        """Evaluate every alarm at `now`; returns the state changes (actions already fired)."""
        return self._evaluate_at(self._metric_alarms(), now)

    def evaluate_minutes(
        self, start: datetime, end: datetime, *, at_minute: Callable[[datetime], object] | None = None
    ) -> list[AlarmChange]:
        """Evaluate at each minute boundary after `start` up to `end`, as CloudWatch does every minute.

        `at_minute` is called with each minute first (the demo moves its simulated clock there, so an alarm
        action runs at the minute it would have).
        """
        alarms = self._metric_alarms()
        changes: list[AlarmChange] = []
        moment = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while moment <= end:
            if at_minute is not None:
                at_minute(moment)
            changes.extend(self._evaluate_at(alarms, moment))
            moment += timedelta(minutes=1)
        return changes

    def _evaluate_at(self, alarms: list[dict[str, Any]], now: datetime) -> list[AlarmChange]:
        changes: list[AlarmChange] = []
        states: dict[str, str] = {}
        for alarm in alarms:
            state, reason = self._evaluate_metric_alarm(alarm, now)
            states[alarm["AlarmName"]] = state
            states[alarm["AlarmArn"]] = state
            previous = alarm["StateValue"]
            if state != previous:
                self.cloudwatch.set_alarm_state(
                    AlarmName=alarm["AlarmName"], StateValue=state, StateReason=reason
                )
                alarm["StateValue"] = state
                fired = self._fire(alarm, alarm.get("AlarmActions", []), state, previous, reason, now)
                changes.append(AlarmChange(alarm["AlarmName"], previous, state, reason, now, fired=fired))
        for composite in self.composites:
            state = ALARM if composite.holds(states) else OK
            if state != composite.state:
                reason = composite.explain(states)
                alarm = {"AlarmName": composite.name, "AlarmArn": composite.arn, "AlarmRule": composite.rule}
                actions = composite.actions if composite.actions_enabled else ()
                fired = self._fire(alarm, actions, state, composite.state, reason, now)
                changes.append(AlarmChange(composite.name, composite.state, state, reason, now, True, fired))
                composite.state = state
            states[composite.name] = composite.state
        self.history.extend(changes)
        return changes

    def _metric_alarms(self) -> list[dict[str, Any]]:
        alarms: list[dict[str, Any]] = []
        for page in self.cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
            alarms.extend(page.get("MetricAlarms", []))
        return alarms

    def _evaluate_metric_alarm(self, alarm: Mapping[str, Any], now: datetime) -> tuple[str, str]:
        periods = int(alarm["EvaluationPeriods"])
        needed = int(alarm.get("DatapointsToAlarm") or periods)
        period = int(alarm.get("Period") or self._math_period(alarm))
        compare = _COMPARISONS[alarm["ComparisonOperator"]]
        threshold = float(alarm["Threshold"])
        # Periods aligned to the period length, as CloudWatch's; the newest one is the last complete one.
        end = datetime.fromtimestamp(now.timestamp() // period * period, tz=UTC)
        values = [
            self._period_value(alarm, end - timedelta(seconds=period * k), period)
            for k in range(periods, 0, -1)
        ]
        self.series.setdefault(alarm["AlarmName"], []).append((now, values[-1]))
        self.thresholds[alarm["AlarmName"]] = threshold
        present = [v for v in values if v is not None and not math.isnan(v)]
        breaching = sum(compare(v, threshold) for v in present)
        missing = periods - len(present)
        treat = alarm.get("TreatMissingData", "missing")
        if treat == "breaching":
            breaching += missing
        shown = ", ".join("-" if v is None else f"{v:.4g}" for v in values)
        if breaching >= needed:
            return ALARM, f"{breaching} of the last {periods} datapoints breach {threshold:g} [{shown}]"
        if not present and treat in {"missing", "ignore"}:
            return (INSUFFICIENT if treat == "missing" else alarm["StateValue"]), f"no datapoints [{shown}]"
        return OK, f"{breaching} of the last {periods} datapoints breach {threshold:g} [{shown}]"

    @staticmethod
    def _math_period(alarm: Mapping[str, Any]) -> int:
        for query in alarm.get("Metrics", []):
            if "MetricStat" in query:
                return int(query["MetricStat"]["Period"])
        raise AlarmRuleError(f"alarm {alarm['AlarmName']!r} has neither a Period nor a metric query")

    def _period_value(self, alarm: Mapping[str, Any], start: datetime, period: int) -> float | None:
        end = start + timedelta(seconds=period)
        if alarm.get("Metrics"):
            results: dict[str, float | None] = {}
            for query in alarm["Metrics"]:
                if "MetricStat" in query:
                    stat = query["MetricStat"]
                    metric = stat["Metric"]
                    data = metric_series(
                        metric["Namespace"],
                        metric["MetricName"],
                        _dimensions(metric.get("Dimensions")),
                        start,
                        end,
                    )
                    results[query["Id"]] = _statistic(data, stat["Stat"])
            for query in alarm["Metrics"]:
                if "Expression" in query:
                    results[query["Id"]] = evaluate_expression(query["Expression"], results)
            # The alarm watches the one query with ReturnData true (CDK sets it false on the inputs).
            returned = [q["Id"] for q in alarm["Metrics"] if q.get("ReturnData") is True]
            returned = returned or [q["Id"] for q in alarm["Metrics"] if "Expression" in q] or list(results)
            return results[returned[0]]
        data = metric_series(
            alarm["Namespace"], alarm["MetricName"], _dimensions(alarm.get("Dimensions")), start, end
        )
        return _statistic(data, alarm.get("Statistic") or alarm.get("ExtendedStatistic") or "Average")

    # -- actions -----------------------------------------------------------------------------------------
    def _fire(
        self,
        alarm: Mapping[str, Any],
        actions: Sequence[str],
        state: str,
        previous: str,
        reason: str,
        now: datetime,
    ) -> tuple[str, ...]:
        if state != ALARM:
            return ()
        fired = []
        for arn in actions:
            if arn.startswith("arn:aws:lambda:"):
                event = self.lambda_event(alarm, state, previous, reason, now)
                response = self.lambda_client.invoke(FunctionName=arn, Payload=json.dumps(event).encode())
                self.action_results.append(
                    {
                        "alarm": alarm["AlarmName"],
                        "function": arn,
                        "error": response.get("FunctionError"),
                        "payload": json.loads(response["Payload"].read() or b"null"),
                    }
                )
            elif arn.startswith("arn:aws:sns:"):
                self.sns.publish(
                    TopicArn=arn,
                    Subject=f'ALARM: "{alarm["AlarmName"]}" in {REGION}'[:100],
                    Message=json.dumps(
                        {
                            "AlarmName": alarm["AlarmName"],
                            "AlarmArn": alarm["AlarmArn"],
                            "NewStateValue": state,
                            "OldStateValue": previous,
                            "NewStateReason": reason,
                            "StateChangeTime": now.isoformat(),
                        }
                    ),
                )
            else:
                continue
            fired.append(arn)
        return tuple(fired)

    @staticmethod
    def lambda_event(
        alarm: Mapping[str, Any], state: str, previous: str, reason: str, now: datetime
    ) -> dict[str, Any]:
        """The event CloudWatch sends a Lambda alarm action."""
        stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        configuration: dict[str, Any] = {"description": alarm.get("AlarmDescription", "")}
        if "AlarmRule" in alarm:
            configuration["alarmRule"] = alarm["AlarmRule"]
        return {
            "source": "aws.cloudwatch",
            "alarmArn": alarm["AlarmArn"],
            "accountId": ACCOUNT_ID,
            "time": stamp,
            "region": REGION,
            "alarmData": {
                "alarmName": alarm["AlarmName"],
                "state": {"value": state, "reason": reason, "timestamp": stamp},
                "previousState": {"value": previous, "timestamp": stamp},
                "configuration": configuration,
            },
        }
