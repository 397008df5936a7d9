"""What a platform team relies on in the synthesized stack for config/mangaassist.yaml (demo ALB).

Expected values come from the spec file itself (read here with yaml, independently of the code under test),
from the handlers' contracts (handler strings, environment names, table keys) and from the release lifecycle
(docs/lifecycle.md: blue/green slots, fenced transitions), never from the stack code.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk.assertions import Template

from canarywise.local.alarms import evaluate_expression
from stacks.functions import METRICS_NAMESPACE, POWERTOOLS_SERVICE_NAME

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "mangaassist.yaml").read_text())
# The ladder as the spec file states it: [5, 25, 50].
PERCENTS = [stage["percent"] for stage in SPEC["stages"]]
WEEK = 7 * 24 * 3600  # "stickiness: 7d"
# traffic.create_demo: the demo ALB's two target groups are the slots "blue" and "green", blue live at deploy.
SLOTS = ("blue", "green")
# The errors a lifecycle transition raises when it is refused or someone else (a rollback) took over.
LIFECYCLE_ERRORS = ["TransitionRefusedError", "SupersededError"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory, synthesize_spec: Any) -> Any:
    root = Path(__file__).resolve().parents[2]
    return synthesize_spec(root / "config" / "mangaassist.yaml", tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="module")
def synth_hold(tmp_path_factory: pytest.TempPathFactory, synthesize_spec: Any) -> Any:
    """config/mangaassist.yaml with `inconclusive_policy: hold` (the shipped spec rolls back)."""
    spec = tmp_path_factory.mktemp("hold") / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC | {"inconclusive_policy": "hold"}))
    return synthesize_spec(spec, tmp_path_factory.mktemp("cdk-hold"))


@pytest.fixture(scope="module")
def template(synth: Any) -> Template:
    return Template.from_json(synth.template)


def _statements_by_role(synth: Any) -> dict[str, list[dict[str, Any]]]:
    """Role logical id -> the statements of its inline and attached (AWS::IAM::Policy) policies."""
    by_role: dict[str, list[dict[str, Any]]] = {}
    for logical_id, resource in synth.template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Policy":
            for role in resource["Properties"].get("Roles", []):
                by_role.setdefault(role["Ref"], []).extend(
                    resource["Properties"]["PolicyDocument"]["Statement"]
                )
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                by_role.setdefault(logical_id, []).extend(policy["PolicyDocument"]["Statement"])
    return by_role


def _statements(synth: Any) -> list[dict[str, Any]]:
    return [s for statements in _statements_by_role(synth).values() for s in statements]


def _role_of(synth: Any, type_: str, contains: str) -> str:
    resource = synth.template["Resources"][synth.logical_id(type_, contains)]
    return str(resource["Properties"]["RoleArn" if "StepFunctions" in type_ else "Role"]["Fn::GetAtt"][0])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _target_group(synth: Any, slot: str) -> str:
    return str(synth.logical_id("AWS::ElasticLoadBalancingV2::TargetGroup", f"Demo{slot.title()}"))


def _slot_dimensions(synth: Any, slot: str) -> list[dict[str, Any]]:
    alb = synth.logical_id("AWS::ElasticLoadBalancingV2::LoadBalancer", "DemoAlb")
    return [
        {"Name": "LoadBalancer", "Value": {"Fn::GetAtt": [alb, "LoadBalancerFullName"]}},
        {"Name": "TargetGroup", "Value": {"Fn::GetAtt": [_target_group(synth, slot), "TargetGroupFullName"]}},
    ]


def _function_arn(synth: Any, contains: str) -> str:
    """A function's ARN as it appears in a state machine definition."""
    return f"<GetAtt {synth.logical_id('AWS::Lambda::Function', contains)}.Arn>"


# -- traffic ----------------------------------------------------------------------------------------------


def test_demo_creates_one_target_group_per_slot(synth: Any) -> None:
    groups = synth.resources("AWS::ElasticLoadBalancingV2::TargetGroup")
    assert len(groups) == len(SLOTS)
    assert {_target_group(synth, slot) for slot in SLOTS} == set(groups)


def test_rule_forwards_only_to_the_first_slot_at_deploy_without_stickiness(synth: Any) -> None:
    """A new deployment starts with blue live and green absent from the forward: nobody reaches the idle
    group, so no sticky cookie can hold a user on it (docs/lifecycle.md)."""
    _, rule = synth.one("AWS::ElasticLoadBalancingV2::ListenerRule")
    (action,) = rule["Properties"]["Actions"]
    forward = action["ForwardConfig"]
    assert action["Type"] == "forward"
    assert forward["TargetGroups"] == [
        {"TargetGroupArn": {"Ref": _target_group(synth, "blue")}, "Weight": 100}
    ]
    assert forward["TargetGroupStickinessConfig"] == {"Enabled": False}
    assert rule["Properties"]["Priority"] == SPEC["traffic"]["rule_priority"]
    assert rule["Properties"]["Conditions"] == [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": [SPEC["traffic"]["path_pattern"]]}}
    ]


def test_demo_alb_is_internal(template: Template) -> None:
    template.has_resource_properties("AWS::ElasticLoadBalancingV2::LoadBalancer", {"Scheme": "internal"})


# -- progression --------------------------------------------------------------------------------------------


def _advance_path(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The states visited when every gate answers ADVANCE, in order, until a terminal state."""
    states, name, path = definition["States"], definition["StartAt"], []
    while True:
        state = states[name]
        path.append((name, state))
        if state["Type"] in {"Succeed", "Fail"}:
            return path
        if state["Type"] == "Choice" and name.endswith(": paused?"):
            name = state["Default"]  # not paused
        elif state["Type"] == "Choice":
            (name,) = [
                c["Next"]
                for c in state["Choices"]
                if {"Variable": "$.gate.decision", "StringEquals": "ADVANCE"} in c.get("Or", [c])
            ]
        else:
            name = state["Next"]
        assert len(path) < 100, "the ADVANCE path loops"


def _step(state: dict[str, Any]) -> tuple[str, str | None]:
    """A state's type and, for a stage gate call, the gate action it asks for."""
    return state["Type"], state.get("Parameters", {}).get("action")


def test_each_stage_is_started_by_the_stage_gate_then_waits_gates_and_decides(synth: Any) -> None:
    """The stage gate takes each stage's lifecycle transition and sets the rule itself (no SDK task moves
    traffic): start, then per stage started -> wait -> gate -> decision, then ready, output, succeed."""
    path = _advance_path(synth.state_machine_definition("Canary"))
    stage = [("Task", "stage_started"), ("Choice", None), ("Wait", None), ("Task", "gate"), ("Choice", None)]
    ready = [("Task", "ready"), ("Choice", None), ("Pass", None), ("Succeed", None)]
    assert [_step(state) for _, state in path] == [("Task", "start")] + stage * len(PERCENTS) + ready
    stage_gate = _function_arn(synth, "StageGate")
    assert {state["Resource"] for _, state in path if state["Type"] == "Task"} == {stage_gate}
    started = [state["Parameters"] for _, state in path if _step(state) == ("Task", "stage_started")]
    # The share the stage sends to the candidate: 95/5, 75/25, 50/50 for the spec's 5, 25, 50.
    assert started == [
        {
            "action": "stage_started",
            "experiment_id.$": "$.experiment.experiment_id",
            "stage_index": i,
            "weights": {"control": 100 - p, "canary": p},
            "entered_at.$": "$$.State.EnteredTime",
        }
        for i, p in enumerate(PERCENTS)
    ]


def test_canary_starts_with_the_spec_and_ends_ready_for_approval(synth: Any) -> None:
    path = _advance_path(synth.state_machine_definition("Canary"))
    start = path[0][1]["Parameters"]
    assert start["action"] == "start"
    assert start["execution_arn.$"] == "$$.Execution.Id"
    assert start["release.$"] == "$.release"
    assert [s["percent"] for s in start["spec"]["stages"]] == PERCENTS
    assert start["spec"]["service"] == SPEC["service"]
    actions = [state["Parameters"].get("action") for _, state in path if "Parameters" in state]
    assert actions[-1] is None  # the output Pass state
    assert "ready" in actions
    output = path[-2][1]["Parameters"]
    assert output["experiment_id.$"] == "$.experiment.experiment_id"


@pytest.mark.parametrize("name", ["Canary", "Promote"])
def test_no_state_machine_task_calls_the_load_balancer(synth: Any, name: str) -> None:
    """Only the functions change traffic, each after taking its lifecycle transition: a state machine task
    that set weights itself could land after a rollback (issue 10, sequences 1 and 3)."""
    definition = synth.state_machine_definition(name)
    resources = {s["Resource"] for s in definition["States"].values() if s["Type"] == "Task"}
    assert not [r for r in resources if "elasticloadbalancing" in r.lower()]
    expected = {
        "Canary": {_function_arn(synth, "StageGate"), _function_arn(synth, "Rollback")},
        "Promote": {
            _function_arn(synth, "Promote"),
            "arn:<Ref AWS::Partition>:states:::aws-sdk:sfn:describeExecution",
        },
    }
    assert resources == expected[name]


def test_lifecycle_errors_end_the_canary_as_superseded_without_a_rollback(synth: Any) -> None:
    """A refused or superseded transition means a rollback (or another writer) owns the service: the
    execution ends, moving nothing, instead of rolling back what is already rolled back."""
    states = synth.state_machine_definition("Canary")["States"]
    assert states["Superseded"]["Type"] == "Fail"
    assert "Next" not in states["Superseded"]
    takers = {
        name: state
        for name, state in states.items()
        if _step(state) in {("Task", "stage_started"), ("Task", "ready")}
    }
    assert sorted(takers) == sorted(
        [f"Stage {i + 1} ({p}%): started" for i, p in enumerate(PERCENTS)] + ["Ready for approval"]
    )
    for name, state in takers.items():
        lifecycle, *others = state["Catch"]
        assert lifecycle == {"ErrorEquals": LIFECYCLE_ERRORS, "ResultPath": "$.error", "Next": "Superseded"}
        # Any other error still rolls back (through "Stage failed"); States.ALL must come last.
        assert [c["ErrorEquals"] for c in others] == [["States.ALL"]], name
        assert states[states[others[0]["Next"]]["Next"]]["Resource"] == _function_arn(synth, "Rollback")


def test_a_failing_gate_is_retried_then_holds_never_rolls_back(synth: Any) -> None:
    """Fault table row 1: a throttled registry read (any error) in the gate is retried with backoff, and a
    gate that still fails holds the stage (back to its wait) instead of reaching the rollback."""
    states = synth.state_machine_definition("Canary")["States"]
    for index, percent in enumerate(PERCENTS):
        label = f"Stage {index + 1} ({percent}%)"
        gate = states[f"{label}: gate"]
        own = [r for r in gate["Retry"] if "Lambda.ServiceException" not in r["ErrorEquals"]]
        assert own == [
            {"ErrorEquals": LIFECYCLE_ERRORS, "MaxAttempts": 0},
            {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2},
        ]
        lifecycle, rest = gate["Catch"]
        assert lifecycle["Next"] == "Superseded"
        assert rest["ErrorEquals"] == ["States.ALL"]
        unavailable = states[rest["Next"]]
        assert unavailable["Type"] == "Pass"
        assert unavailable["Parameters"]["decision"] == "HOLD"
        assert unavailable["Parameters"]["failed_at.$"] == "$$.State.EnteredTime"
        # Before the stage's deadline (what "started" answered, from the state machine's own clock) the
        # hold path leads only to the wait; at or past it, to the spec's inconclusive policy with its own
        # reason (config/mangaassist.yaml: rollback), never the harm path's reason.
        started = states[f"{label}: started"]
        assert started["Parameters"]["entered_at.$"] == "$$.State.EnteredTime"
        assert started["ResultPath"] == "$.started"  # its answer: the deadline (and whether paused)
        past = states[unavailable["Next"]]
        (rule,) = past["Choices"]
        assert {k: v for k, v in rule.items() if k != "Next"} == {
            "Variable": "$.gate.failed_at",
            "StringGreaterThanEqualsPath": "$.started.deadline",
        }
        # The next try waits 3 check intervals (a failed poll writes about twice a poll's history), then
        # asks the gate again.
        after = states[past["Default"]]
        assert after == {
            "Type": "Wait",
            "SecondsPath": "$.experiment.unavailable_wait_seconds",
            "Next": f"{label}: gate",
        }
        inconclusive = states[rule["Next"]]
        assert inconclusive["Parameters"]["decision"] == "INCONCLUSIVE"
        assert inconclusive["Parameters"]["reason.$"].startswith(
            "States.Format('control plane unavailable past the stage maximum ({})"
        )
        assert states[inconclusive["Next"]]["Resource"] == _function_arn(synth, "Rollback")


@pytest.mark.parametrize("name", ["Canary", "Promote"])
def test_every_parameters_field_is_an_object(synth: Any, name: str) -> None:
    """ASL: ``Parameters`` is a JSON object. asl-validator 4.0.0 accepts ``"Parameters": "$"``, which Step
    Functions (and moto) refuse at CreateStateMachine, so `make synth` alone would not catch it."""
    states = synth.state_machine_definition(name)["States"]
    assert {n: type(s["Parameters"]).__name__ for n, s in states.items() if "Parameters" in s} == {
        n: "dict" for n, s in states.items() if "Parameters" in s
    }


def test_asl_validator_accepts_both_state_machines(synth: Any) -> None:
    """As `make synth` runs it, on this synth's template (references resolved to example literals)."""
    (template,) = synth.outdir.glob("*.template.json")
    script = Path(__file__).resolve().parents[2] / "scripts" / "validate_state_machines.py"
    result = subprocess.run(
        [sys.executable, str(script), str(template)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    assert result.stdout.count(": ok\n") == 2, result.stdout


def test_every_wait_takes_its_seconds_from_the_execution_input(synth: Any) -> None:
    """Each stage's poll and pause wait the execution input's interval; after a failed gate a stage waits
    what start answered from that interval (3 of them; 0 in local mode), never a fixed time of the stack's."""
    states = synth.state_machine_definition("Canary")["States"]
    waits = {name: s for name, s in states.items() if s["Type"] == "Wait"}
    failure = {name for name in waits if name.endswith(": wait after the failure")}
    assert sorted(failure) == sorted(
        f"Stage {i + 1} ({p}%): wait after the failure" for i, p in enumerate(PERCENTS)
    )
    assert (
        len(waits) == 3 * len(PERCENTS) + 1
    )  # per stage: its poll, after a failure, its pause; ready's pause
    assert {n: w["SecondsPath"] for n, w in waits.items()} == {
        n: "$.experiment.unavailable_wait_seconds" if n in failure else "$.timing.check_interval_seconds"
        for n in waits
    }
    start = states["Start experiment"]
    assert start["ResultSelector"] == {
        "experiment_id.$": "$.experiment_id",
        "unavailable_wait_seconds.$": "$.unavailable_wait_seconds",
        "held_wait_seconds.$": "$.held_wait_seconds",
    }


def test_each_stage_decision_routes_rollback_hold_and_inconclusive(synth: Any) -> None:
    definition = synth.state_machine_definition("Canary")
    states = definition["States"]
    rollback_fn = synth.logical_id("AWS::Lambda::Function", "Rollback")
    choices = {n: s for n, s in states.items() if n.endswith(": decision")}
    assert all(s["Type"] == "Choice" for s in choices.values())
    assert len(choices) == len(PERCENTS)
    for name, choice in choices.items():
        routes = {c["StringEquals"]: c["Next"] for c in choice["Choices"] if "StringEquals" in c}
        roll_back = states[routes["ROLLBACK"]]
        assert roll_back["Resource"] == f"<GetAtt {rollback_fn}.Arn>", name
        assert roll_back["Parameters"]["source"] == "state_machine"
        assert states[roll_back["Next"]]["Type"] == "Fail"
        # config/mangaassist.yaml: inconclusive_policy: rollback
        assert SPEC["inconclusive_policy"] == "rollback"
        assert routes["INCONCLUSIVE"] == routes["ROLLBACK"], name
        # HOLD, CONTINUE and anything unknown wait for the next check.
        assert states[choice["Default"]]["Type"] == "Wait", name


def test_promote_hands_its_whole_input_to_the_promote_function(synth: Any) -> None:
    """Nothing moves traffic before the promote function has taken ``approve`` (issue 10, sequence 1): the
    state machine only finds the experiment id and invokes the function with the whole input (experiment
    id, and approved_by when a person's identity is known)."""
    definition = synth.state_machine_definition("Promote")
    states = definition["States"]
    (promote,) = [n for n, s in states.items() if s.get("Resource") == _function_arn(synth, "Promote")]
    assert not {"Parameters", "InputPath"} & set(states[promote])
    assert states[states[promote]["Next"]]["Type"] == "Succeed"
    which = states[definition["StartAt"]]
    routes = {c["Variable"]: c["Next"] for c in which["Choices"] if c.get("IsPresent") is True}
    assert routes["$.experiment_id"] == promote
    # From the pipeline: the experiment id is the named canary execution's output.
    read = states[routes["$.canary_execution_arn"]]
    assert read["Parameters"] == {"ExecutionArn.$": "$.canary_execution_arn"}
    from_canary = states[read["Next"]]
    assert from_canary["Parameters"] == {"experiment_id.$": "$.canary.output.experiment_id"}
    assert from_canary["Next"] == promote
    assert states[which["Default"]]["Type"] == "Fail"


def test_state_machines_log_everything_and_trace(template: Template) -> None:
    machines = template.find_resources("AWS::StepFunctions::StateMachine")
    assert len(machines) == 2
    for machine in machines.values():
        props = machine["Properties"]
        assert props["TracingConfiguration"] == {"Enabled": True}
        assert props["LoggingConfiguration"]["Level"] == "ALL"


# -- significance check -----------------------------------------------------------------------------------


def test_significance_check_runs_every_five_minutes(synth: Any) -> None:
    _, schedule = synth.one("AWS::Scheduler::Schedule")
    fn = synth.logical_id("AWS::Lambda::Function", "SignificanceCheck")
    assert schedule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    assert schedule["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": [fn, "Arn"]}
    event = json.loads(schedule["Properties"]["Target"]["Input"])
    assert event["time"] == "<aws.scheduler.scheduled-time>"  # the handler's "now"


# -- alarms -------------------------------------------------------------------------------------------------


# The spec's ALB hard limits (config/mangaassist.yaml): a 2% 5xx rate and 8 s p99 latency.
HARD_LIMITS = {"error_rate": 0.02, "p99_latency": 8.0}
PREFIX = "canarywise-mangaassist"


def _alarms_by_name(synth: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """Alarm name -> (logical id, properties)."""
    return {
        r["Properties"]["AlarmName"]: (logical_id, r["Properties"])
        for logical_id, r in synth.resources("AWS::CloudWatch::Alarm").items()
    }


def _composite_members(synth: Any, contains: str) -> set[str]:
    """The names of the alarms a composite alarm's rule is made of."""
    composite = synth.template["Resources"][synth.logical_id("AWS::CloudWatch::CompositeAlarm", contains)]
    rule = synth.text(composite["Properties"]["AlarmRule"])
    return {
        name
        for name, (logical_id, _) in _alarms_by_name(synth).items()
        if f"<GetAtt {logical_id}.Arn>" in rule
    }


def test_critical_composite_alarm_invokes_the_rollback_function(synth: Any, template: Template) -> None:
    rollback_fn = synth.logical_id("AWS::Lambda::Function", "Rollback")
    critical_id = synth.logical_id("AWS::CloudWatch::CompositeAlarm", "Critical")
    critical = synth.template["Resources"][critical_id]["Properties"]
    topic = synth.logical_id("AWS::SNS::Topic", "Alerts")
    assert critical["AlarmActions"] == [{"Fn::GetAtt": [rollback_fn, "Arn"]}, {"Ref": topic}]
    # Either slot may hold the candidate: a hard limit on either one, or proven harm, rolls back.
    assert _composite_members(synth, "Critical") == {
        f"{PREFIX}-{metric}-hard-limit-{slot}" for metric in HARD_LIMITS for slot in SLOTS
    } | {f"{PREFIX}-statistical-harm"}
    template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [rollback_fn, "Arn"]},
            "Principal": "lambda.alarms.cloudwatch.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [critical_id, "Arn"]},
        },
    )


def test_warning_composite_alarm_pauses_through_the_stage_gate_and_notifies(synth: Any) -> None:
    warning = synth.template["Resources"][synth.logical_id("AWS::CloudWatch::CompositeAlarm", "Warning")]
    stage_gate = synth.logical_id("AWS::Lambda::Function", "StageGate")
    assert warning["Properties"]["AlarmActions"] == [
        {"Fn::GetAtt": [stage_gate, "Arn"]},
        {"Ref": synth.logical_id("AWS::SNS::Topic", "Alerts")},
    ]
    assert _composite_members(synth, "Warning") == {
        f"{PREFIX}-{metric}-approaching-{slot}" for metric in HARD_LIMITS for slot in SLOTS
    } | {
        f"{PREFIX}-significance-check-errors",
        f"{PREFIX}-experiment-checks-failed",
        f"{PREFIX}-stage-gate-errors",
        f"{PREFIX}-stale-decision",
        f"{PREFIX}-rollback-failed",
    }


def test_stale_decision_pages_after_three_check_intervals(synth: Any) -> None:
    """Fault table row 2: the stage gate's ``StaleDecision`` (same namespace and dimension as the other
    function metrics) at least once in each of 3 consecutive check intervals."""
    _, alarm = _alarms_by_name(synth)[f"{PREFIX}-stale-decision"]
    assert (alarm["MetricName"], alarm["Namespace"], alarm["Dimensions"]) == (
        "StaleDecision",
        METRICS_NAMESPACE,
        [{"Name": "service", "Value": POWERTOOLS_SERVICE_NAME}],
    )
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"], alarm["Threshold"]) == (
        "Sum",
        300,  # the spec's check_interval: 5m
        3,
        1,
    )
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_hard_limits_come_from_the_spec(synth: Any) -> None:
    limits = {m["name"]: m["hard_limit"] for m in SPEC["metrics"] if m.get("source", {}).get("type") == "alb"}
    assert limits == HARD_LIMITS
    alarms = _alarms_by_name(synth)
    levels = ("hard-limit", "approaching")
    assert {n for n in alarms if n.endswith(SLOTS)} == {
        f"{PREFIX}-{metric}-{level}-{slot}" for metric in HARD_LIMITS for level in levels for slot in SLOTS
    }
    for slot in SLOTS:
        dimensions = _slot_dimensions(synth, slot)
        _, latency = alarms[f"{PREFIX}-p99_latency-hard-limit-{slot}"]
        assert (latency["Threshold"], latency["ExtendedStatistic"]) == (8.0, "p99")
        assert latency["Dimensions"] == dimensions, slot
        _, approaching = alarms[f"{PREFIX}-p99_latency-approaching-{slot}"]
        assert (approaching["Threshold"], approaching["Dimensions"]) == (4.0, dimensions)
        for level in levels:
            _, errors = alarms[f"{PREFIX}-error_rate-{level}-{slot}"]
            stats = [m["MetricStat"] for m in errors["Metrics"] if "MetricStat" in m]
            assert sorted(m["Metric"]["MetricName"] for m in stats) == [
                "HTTPCode_Target_5XX_Count",
                "RequestCount",
            ]
            assert all(m["Metric"]["Dimensions"] == dimensions for m in stats), (slot, level)

    _, errors = alarms[f"{PREFIX}-error_rate-hard-limit-blue"]
    # The minute's 5xx count tested against the 2% limit: z >= 3.09 (scipy.stats.norm.isf(0.001) = 3.0902).
    assert errors["Threshold"] == 3.09
    assert errors["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert (errors["EvaluationPeriods"], errors["DatapointsToAlarm"]) == (3, 2)
    expression = next(m for m in errors["Metrics"] if "Expression" in m)["Expression"]
    assert expression == (
        "IF(requests_canary >= 100, "
        "(errors_canary - 0.02 * requests_canary) / SQRT(0.0196 * requests_canary), 0)"
    )
    _, green = alarms[f"{PREFIX}-error_rate-hard-limit-green"]
    assert next(m for m in green["Metrics"] if "Expression" in m)["Expression"] == expression

    def z(errors_canary: int, requests_canary: int) -> float:  # the synthesized expression, evaluated
        values = {"errors_canary": float(errors_canary), "requests_canary": float(requests_canary)}
        value = evaluate_expression(expression, values)
        assert value is not None
        return value

    # 100 requests a minute: 7 errors (7%) breach, 6 do not; 5 errors in 99 requests are below the floor.
    # By hand: (7 - 2) / sqrt(1.96) = 3.57, (6 - 2) / 1.4 = 2.86. A healthy 0.5% canary at 100 requests a
    # minute breaches a minute with P(X >= 7 | Bin(100, 0.005)) = scipy.stats.binom.sf(6, 100, 0.005) =
    # 8.3e-07, and needs two such minutes out of three to alarm.
    assert (z(7, 100) >= 3.09, z(6, 100) >= 3.09, z(5, 99)) == (True, False, 0.0)
    for slot in SLOTS:
        _, warning = alarms[f"{PREFIX}-error_rate-approaching-{slot}"]
        warning_expression = next(m for m in warning["Metrics"] if "Expression" in m)["Expression"]
        assert (
            "(errors_canary - 0.01 * requests_canary) / SQRT(0.0099 * requests_canary)" in warning_expression
        )
    _, harm = alarms[f"{PREFIX}-statistical-harm"]
    assert (harm["Namespace"], harm["MetricName"], harm["Threshold"]) == ("Canarywise", "StatisticalHarm", 1)
    assert harm["Dimensions"] == [{"Name": "Service", "Value": "mangaassist"}]


# -- rollback -----------------------------------------------------------------------------------------------


def test_rollback_has_reserved_concurrency_and_an_on_failure_destination(synth: Any) -> None:
    fn_id = synth.logical_id("AWS::Lambda::Function", "Rollback")
    fn = synth.template["Resources"][fn_id]["Properties"]
    assert fn["ReservedConcurrentExecutions"] >= 1
    configs = [
        c["Properties"]
        for c in synth.resources("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": fn_id}
    ]
    (config,) = configs
    queue = synth.logical_id("AWS::SQS::Queue", "Rollback")
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [queue, "Arn"]}


def test_rejected_approval_invokes_rollback(synth: Any) -> None:
    rollback_fn = synth.logical_id("AWS::Lambda::Function", "Rollback")
    rules = [
        r["Properties"]
        for r in synth.resources("AWS::Events::Rule").values()
        if r["Properties"]["EventPattern"]["source"] == ["aws.codepipeline"]
    ]
    (rule,) = rules
    detail = rule["EventPattern"]["detail"]
    assert rule["EventPattern"]["detail-type"] == ["CodePipeline Action Execution State Change"]
    assert (detail["stage"], detail["action"], detail["state"]) == (["Approval"], ["Approve"], ["FAILED"])
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [rollback_fn, "Arn"]}


# -- functions ----------------------------------------------------------------------------------------------

# What each handler reads from its environment (canarywise.settings parses it; the names are the lead's).
TRAFFIC_ENV = {"LISTENER_RULE_ARN", "TARGET_GROUPS", "STICKINESS_SECONDS"}
CONTRACT = {
    "SignificanceCheck": (
        "canarywise.handlers.significance_check.handler",
        {"LOAD_BALANCER_FULL_NAME", "TARGET_GROUP_FULL_NAMES"},
    ),
    "StageGate": (
        "canarywise.handlers.stage_gate.handler",
        TRAFFIC_ENV | {"REPORT_BUCKET", "ALERT_TOPIC_ARN"},
    ),
    "Rollback": (
        "canarywise.handlers.rollback.handler",
        TRAFFIC_ENV | {"STATE_MACHINE_ARN", "ALERT_TOPIC_ARN", "PIPELINE_NAME"},
    ),
    "ProgressionPromote": ("canarywise.handlers.promote.handler", TRAFFIC_ENV),
}
COMMON_ENV = {"REGISTRY_TABLE", "SERVICE", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}


def _environment(synth: Any, name: str) -> dict[str, Any]:
    fn = synth.template["Resources"][synth.logical_id("AWS::Lambda::Function", name)]
    return dict(fn["Properties"]["Environment"]["Variables"])


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_function_handler_and_environment_follow_the_contract(synth: Any, name: str) -> None:
    handler, extra = CONTRACT[name]
    fn = synth.template["Resources"][synth.logical_id("AWS::Lambda::Function", name)]["Properties"]
    variables = fn["Environment"]["Variables"]
    assert fn["Handler"] == handler
    assert fn["Runtime"] == "python3.12"
    assert fn["TracingConfig"] == {"Mode": "Active"}
    assert set(variables) == COMMON_ENV | extra
    assert variables["SERVICE"] == "mangaassist"
    assert variables["POWERTOOLS_SERVICE_NAME"] == "canarywise"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Canarywise"
    assert variables["REGISTRY_TABLE"] == {"Ref": synth.logical_id("AWS::DynamoDB::Table", "Registry")}


@pytest.mark.parametrize("name", ["StageGate", "ProgressionPromote", "Rollback"])
def test_traffic_functions_get_the_rule_both_slots_and_the_stickiness(synth: Any, name: str) -> None:
    variables = _environment(synth, name)
    rule = synth.logical_id("AWS::ElasticLoadBalancingV2::ListenerRule", "Rule")
    assert variables["LISTENER_RULE_ARN"] == {"Ref": rule}
    assert synth.json_value(variables["TARGET_GROUPS"]) == {
        slot: f"<Ref {_target_group(synth, slot)}>" for slot in SLOTS
    }
    assert variables["STICKINESS_SECONDS"] == str(WEEK)


def test_significance_check_gets_each_slots_metric_dimensions(synth: Any) -> None:
    variables = _environment(synth, "SignificanceCheck")
    alb = synth.logical_id("AWS::ElasticLoadBalancingV2::LoadBalancer", "DemoAlb")
    assert variables["LOAD_BALANCER_FULL_NAME"] == {"Fn::GetAtt": [alb, "LoadBalancerFullName"]}
    assert synth.json_value(variables["TARGET_GROUP_FULL_NAMES"]) == {
        slot: f"<GetAtt {_target_group(synth, slot)}.TargetGroupFullName>" for slot in SLOTS
    }


def test_rollback_may_reject_the_pending_approval_of_this_pipeline_only(synth: Any) -> None:
    """Every rollback rejects the approval waiting in the pipeline, so a stale click cannot promote."""
    _, pipeline = synth.one("AWS::CodePipeline::Pipeline")
    name = pipeline["Properties"]["Name"]
    assert name == "canarywise-mangaassist"
    assert _environment(synth, "Rollback")["PIPELINE_NAME"] == name
    by_role = _statements_by_role(synth)
    approvals = {
        role: statement
        for role, statements in by_role.items()
        for statement in statements
        if "codepipeline:PutApprovalResult" in _as_list(statement["Action"])
    }
    assert list(approvals) == [_role_of(synth, "AWS::Lambda::Function", "Rollback")]
    (statement,) = approvals.values()
    assert sorted(statement["Action"]) == ["codepipeline:GetPipelineState", "codepipeline:PutApprovalResult"]
    arn = f"arn:aws:codepipeline:us-east-1:<Ref AWS::AccountId>:{name}"
    # config/mangaassist.yaml fixes the region; the approval is stage "Approval", action "Approve".
    assert [synth.text(r) for r in statement["Resource"]] == [arn, f"{arn}/Approval/Approve"]


def test_rollback_stops_the_canary_state_machine(synth: Any) -> None:
    fn = synth.template["Resources"][synth.logical_id("AWS::Lambda::Function", "Rollback")]["Properties"]
    arn = json.dumps(fn["Environment"]["Variables"]["STATE_MACHINE_ARN"])
    assert ":stateMachine:canarywise-mangaassist-canary" in arn
    machine = synth.template["Resources"][synth.logical_id("AWS::StepFunctions::StateMachine", "Canary")]
    assert machine["Properties"]["StateMachineName"] == "canarywise-mangaassist-canary"


# -- IAM ------------------------------------------------------------------------------------------------


def test_no_iam_statement_allows_every_action(synth: Any) -> None:
    statements = _statements(synth)
    assert len(statements) > 20
    actions = [a for s in statements for a in _as_list(s["Action"])]
    assert "*" not in actions
    assert not [a for a in actions if a.endswith(":*")], "a whole-service wildcard"


def test_only_the_traffic_functions_may_modify_the_rule_and_only_that_rule(synth: Any) -> None:
    rule = synth.logical_id("AWS::ElasticLoadBalancingV2::ListenerRule", "Rule")
    modify = {
        role: [s for s in statements if "elasticloadbalancing:ModifyRule" in _as_list(s["Action"])]
        for role, statements in _statements_by_role(synth).items()
    }
    modify = {role: statements for role, statements in modify.items() if statements}
    # The stage gate (each stage), the promote function and the rollback; no state machine.
    assert set(modify) == {
        _role_of(synth, "AWS::Lambda::Function", name) for name in ("StageGate", "Promote", "Rollback")
    }
    for statements in modify.values():
        (statement,) = statements
        assert statement["Effect"] == "Allow"
        assert _as_list(statement["Action"]) == ["elasticloadbalancing:ModifyRule"]
        assert _as_list(statement["Resource"]) == [{"Ref": rule}]
    for machine in ("Canary", "Promote"):
        role = _role_of(synth, "AWS::StepFunctions::StateMachine", machine)
        actions = [a for s in _statements_by_role(synth)[role] for a in _as_list(s["Action"])]
        assert not [a for a in actions if a.startswith("elasticloadbalancing:")], machine


def test_significance_check_may_only_publish_to_the_canarywise_namespace(synth: Any) -> None:
    put = [s for s in _statements(synth) if "cloudwatch:PutMetricData" in _as_list(s["Action"])]
    assert put
    for statement in put:
        assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Canarywise"}}


# -- registry -------------------------------------------------------------------------------------------


def test_registry_table_has_pitr_sse_ttl_and_the_two_indexes(synth: Any) -> None:
    _, table = synth.one("AWS::DynamoDB::Table")
    props = table["Properties"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    indexes = {i["IndexName"]: i for i in props["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"running", "concluded"}
    assert indexes["running"]["KeySchema"] == [
        {"AttributeName": "running_pk", "KeyType": "HASH"},
        {"AttributeName": "experiment_id", "KeyType": "RANGE"},
    ]
    assert indexes["concluded"]["KeySchema"] == [
        {"AttributeName": "concluded_pk", "KeyType": "HASH"},
        {"AttributeName": "concluded_at", "KeyType": "RANGE"},
    ]
    assert all(i["Projection"] == {"ProjectionType": "ALL"} for i in indexes.values())
    assert table["DeletionPolicy"] == "Retain"


# -- approval pipeline ------------------------------------------------------------------------------------


def test_pipeline_runs_canary_then_approval_then_promotion(synth: Any) -> None:
    _, pipeline = synth.one("AWS::CodePipeline::Pipeline")
    stages = pipeline["Properties"]["Stages"]
    assert [s["Name"] for s in stages] == ["Release", "Canary", "Approval", "Promote"]
    by_name = {s["Name"]: s["Actions"] for s in stages}
    (approval,) = by_name["Approval"]
    assert approval["ActionTypeId"]["Category"] == "Approval"
    canary_sm = synth.logical_id("AWS::StepFunctions::StateMachine", "Canary")
    promote_sm = synth.logical_id("AWS::StepFunctions::StateMachine", "Promote")
    (canary,) = by_name["Canary"]
    (promote,) = by_name["Promote"]
    assert canary["ActionTypeId"]["Provider"] == promote["ActionTypeId"]["Provider"] == "StepFunctions"
    assert canary["Configuration"]["StateMachineArn"] == {"Ref": canary_sm}
    assert promote["Configuration"]["StateMachineArn"] == {"Ref": promote_sm}
    assert json.loads(promote["Configuration"]["Input"]) == {"canary_execution_arn": "#{Canary.ExecutionArn}"}
    message = approval["Configuration"]["CustomData"]
    assert "(5% → 25% → 50%)" in message
    assert "#{Canary.ExecutionArn}" in message
    # Fixed at deploy time: no numbers and no claim about any one metric (p99 latency is never harm-tested).
    assert not any(m["name"] in message for m in SPEC["metrics"])
    # The link: the service's latest approval report in the release bucket, which the ready step writes.
    bucket = synth.logical_id("AWS::S3::Bucket", "Releases")
    assert synth.text(approval["Configuration"]["ExternalEntityLink"]) == (
        f"https://s3.console.aws.amazon.com/s3/object/<Ref {bucket}>?region=us-east-1"
        "&prefix=reports/mangaassist/latest-approval/report.html"
    )
    # The ready step (the stage gate function) may write there, under reports/ only, and publish the summary.
    variables = _environment(synth, "StageGate")
    assert variables["REPORT_BUCKET"] == {"Ref": bucket}
    assert "ALERT_TOPIC_ARN" in variables
    puts = [
        s
        for s in _statements_by_role(synth)[_role_of(synth, "AWS::Lambda::Function", "StageGate")]
        if "s3:PutObject" in _as_list(s["Action"])
    ]
    assert [synth.text(s["Resource"]) for s in puts] == [f"<GetAtt {bucket}.Arn>/reports/*"]


# -- dashboard ------------------------------------------------------------------------------------------


def _dashboard_widgets(synth: Any) -> list[dict[str, Any]]:
    _, dashboard = synth.one("AWS::CloudWatch::Dashboard")
    assert dashboard["Properties"]["DashboardName"] == "canarywise-mangaassist"
    widgets: list[dict[str, Any]] = synth.json_value(dashboard["Properties"]["DashboardBody"])["widgets"]
    return widgets


def test_dashboard_graphs_each_slot_side_by_side(synth: Any) -> None:
    graphs = {
        w["properties"]["title"]: w["properties"]["metrics"]
        for w in _dashboard_widgets(synth)
        if w["type"] == "metric"
    }
    alb_id = synth.logical_id("AWS::ElasticLoadBalancingV2::LoadBalancer", "DemoAlb")
    alb = f"<GetAtt {alb_id}.LoadBalancerFullName>"

    def group(slot: str) -> list[str]:
        return [
            "LoadBalancer",
            alb,
            "TargetGroup",
            f"<GetAtt {_target_group(synth, slot)}.TargetGroupFullName>",
        ]

    for title, metric in (("Requests per minute", "RequestCount"), ("p99 latency (s)", "TargetResponseTime")):
        assert [(row[1], row[2:6], row[6]["label"]) for row in graphs[title]] == [
            (metric, group(slot), slot) for slot in SLOTS
        ], title
    rates = graphs["5xx rate"]
    assert [row[0]["label"] for row in rates if len(row) == 1] == list(SLOTS)
    for slot in SLOTS:
        inputs = {row[1]: row[2:6] for row in rates if len(row) > 1 and row[6]["id"].endswith(f"_{slot}")}
        assert inputs == {"HTTPCode_Target_5XX_Count": group(slot), "RequestCount": group(slot)}, slot
    assert graphs["StatisticalHarm (1 = harm proven)"] == [
        ["Canarywise", "StatisticalHarm", "Service", "mangaassist", {"stat": "Maximum"}]
    ]
    # The service's own metrics, by the Variant dimension its tasks emit (the slot name), as rates: metric
    # math of the 0/1 values' Sum over their SampleCount; the raw statistics are inputs, never drawn.
    for metric in SPEC["metrics"]:
        if metric["source"]["type"] != "service":
            continue
        percent = metric["kind"] != "mean"
        rows = graphs[f"{metric['name']} ({metric['role']}) rate per slot{' (%)' if percent else ''}"]
        shown = [row[0] for row in rows if len(row) == 1]
        scale = "100 * " if percent else ""
        assert [(e["expression"], e["label"]) for e in shown] == [
            (f"{scale}s_{slot} / n_{slot}", slot) for slot in SLOTS
        ], metric["name"]
        inputs = {
            row[-1]["id"]: (row[1], row[2:4], row[-1]["stat"], row[-1]["visible"])
            for row in rows
            if len(row) > 1
        }
        for slot in SLOTS:
            assert inputs[f"s_{slot}"] == (metric["source"]["metric_name"], ["Variant", slot], "Sum", False)
            assert inputs[f"n_{slot}"] == (
                metric["source"]["metric_name"],
                ["Variant", slot],
                "SampleCount",
                False,
            )
    # Each margin as lines around the slots' difference; hard limits on the rate graphs.
    escalation = next(
        w["properties"]
        for w in _dashboard_widgets(synth)
        if "escalation_rate: " in w["properties"].get("title", "")
    )
    assert escalation["metrics"][0][0]["expression"] == "100 * (s_green / n_green - s_blue / n_blue)"
    assert [a["value"] for a in escalation["annotations"]["horizontal"]] == [1.0, -1.0]  # ±0.01 in points
    five_xx = next(
        w["properties"] for w in _dashboard_widgets(synth) if w["properties"].get("title") == "5xx rate"
    )
    assert [(a["value"], a["label"]) for a in five_xx["annotations"]["horizontal"]] == [(0.02, "hard limit")]
    split = graphs["New assignments per slot (%): the weights in force"]
    assert [row[0]["expression"] for row in split if len(row) == 1] == [
        f"100 * a_{slot} / (a_blue + a_green)" for slot in SLOTS
    ]


def test_dashboard_lists_every_stage_start_rollback_and_supersession(synth: Any) -> None:
    queries = {
        w["properties"]["title"]: w["properties"]["query"]
        for w in _dashboard_widgets(synth)
        if w["type"] == "log"
    }
    (filter_line,) = [
        line
        for line in queries["Stage and weights (canary state machine)"].splitlines()
        if line.startswith("| filter")
    ]
    match = re.search(r"details\.name like /(.*)/", filter_line)
    assert match, filter_line
    states = synth.state_machine_definition("Canary")["States"]
    expected = {f"Stage {i + 1} ({p}%): started" for i, p in enumerate(PERCENTS)} | {
        "Roll back",
        "Superseded",
    }
    assert expected <= {name for name in states if re.search(match.group(1), name)}
    # Each state is logged as entered by its type: a Task as "TaskStateEntered", a Fail as "FailStateEntered".
    for name in expected:
        assert f"{states[name]['Type']}StateEntered" in filter_line, name
    decisions = queries["Decisions (significance check)"]
    assert (
        "fields @timestamp, experiment_id, decision, why" in decisions
    )  # the fields runtime/significance logs
    assert "filter ispresent(decision)" in decisions


# -- linters ----------------------------------------------------------------------------------------------


def test_cfn_lint_finds_nothing(synth: Any) -> None:
    """As ``make synth`` runs it; W3005 (a DependsOn CDK adds next to a GetAtt) is redundant, not wrong."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(
        json.dumps(synth.template), config=ManualArgs(ignore_checks=["W3005"], regions=["us-east-1"])
    )
    assert [str(m) for m in matches] == []


def test_synth_ran_cdk_nag_with_no_open_findings(synth: Any) -> None:
    # build_app registers AwsSolutionsChecks; an unacknowledged finding would have failed the fixture's synth.
    report = synth.outdir / "validation-report.json"
    if report.exists():
        assert all(r["conclusion"] != "failure" for r in json.loads(report.read_text())["pluginReports"])


# Step Functions history events per state visited (AWS Step Functions API reference, HistoryEvent types): a
# Wait or a Choice is entered and exited; a Task is entered, scheduled, started, succeeds and is exited.
EVENTS_PER_STATE = {"Wait": 2, "Choice": 2, "Pass": 2, "Task": 5}


def test_history_events_per_gate_poll_match_the_synth_bound(synth: Any) -> None:
    """The synth refuses a spec whose gate polls can pass Step Functions' 25,000-event history with
    `canarywise.spec.HISTORY_EVENTS_PER_POLL`; that number must be what one poll of the synthesized canary
    state machine adds: from each stage's Wait, through HOLD (the Choice's default), back to the Wait."""
    from canarywise.spec import HISTORY_EVENTS_PER_POLL

    states = synth.state_machine_definition("Canary")["States"]
    # A paused rollout's loop (a stage start or ready that found it paused: wait, the task again, the
    # "paused?" Choice) adds as many; each stage's gate loop is the one the synth bound counts.
    waits = [n for n, s in states.items() if s["Type"] == "Wait" and not n.endswith("after the failure")]
    assert len(waits) == 2 * len(PERCENTS) + 1
    for wait in [name for name in waits if name.endswith(": paused")]:
        task = states[wait]["Next"]
        choice = states[states[task]["Next"]]
        assert choice["Choices"][0]["Next"] == wait
        assert sum(EVENTS_PER_STATE[states[n]["Type"]] for n in (wait, task)) + 2 == HISTORY_EVENTS_PER_POLL
    waits = [name for name in waits if not name.endswith(": paused")]
    assert len(waits) == len(PERCENTS)
    for wait in waits:
        events, name = 0, wait
        for _ in range(len(states)):
            state = states[name]
            events += EVENTS_PER_STATE[state["Type"]]
            name = state["Default"] if state["Type"] == "Choice" else state["Next"]
            if name == wait:
                break
        assert name == wait, f"the loop from {wait!r} does not come back to it"
        assert events == HISTORY_EVENTS_PER_POLL, wait


@pytest.mark.parametrize(
    ("name", "write_keys", "indexes"),
    [
        ("SignificanceCheck", ["EXP#*", "SHADOW#*"], ["running"]),
        ("StageGate", ["EXP#*", "SERVICE#mangaassist"], []),
        ("Promote", ["EXP#*", "SERVICE#mangaassist"], ["concluded"]),
        ("Rollback", ["EXP#*", "SERVICE#mangaassist"], []),
    ],
)
def test_each_function_gets_only_the_registry_actions_it_uses(
    synth: Any, name: str, write_keys: list[str], indexes: list[str]
) -> None:
    """Fault table row 15: reads by key and queries; PutItem/UpdateItem only on items whose partition key it
    owns (the significance check, which parses external data, can never write the service's state or its
    rollback history); no DeleteItem, Scan or BatchWriteItem for anyone."""
    table = synth.logical_id("AWS::DynamoDB::Table", "Registry")
    statements = [
        s
        for s in _statements_by_role(synth)[_role_of(synth, "AWS::Lambda::Function", name)]
        if any(str(a).startswith("dynamodb:") for a in _as_list(s["Action"]))
    ]
    actions = sorted(a for s in statements for a in _as_list(s["Action"]))
    assert actions == ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]
    reads = next(s for s in statements if "dynamodb:GetItem" in _as_list(s["Action"]))
    index_resources = [r for r in _as_list(reads["Resource"]) if "Fn::Join" in r]
    assert [r["Fn::Join"][1][-1] for r in index_resources] == [f"/index/{i}" for i in indexes]
    writes = next(s for s in statements if "dynamodb:PutItem" in _as_list(s["Action"]))
    assert writes["Resource"] == {"Fn::GetAtt": [table, "Arn"]}
    assert writes["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": write_keys}}


def test_a_stage_held_past_its_maximum_polls_once_a_day(synth_hold: Any) -> None:
    """Fault table row 7: under `inconclusive_policy: hold` an INCONCLUSIVE stage (the gate's answer, or a
    gate that kept failing past the maximum) goes to a wait of what start answered as held_wait_seconds
    (once a day: tests/infrastructure/test_spec_errors.py), then asks the gate again; never the rollback."""
    states = synth_hold.state_machine_definition("Canary")["States"]
    for index, percent in enumerate(PERCENTS):
        label = f"Stage {index + 1} ({percent}%)"
        routes = {
            c["StringEquals"]: c["Next"]
            for c in states[f"{label}: decision"]["Choices"]
            if "StringEquals" in c
        }
        held = states[routes["INCONCLUSIVE"]]
        assert held == {
            "Type": "Wait",
            "SecondsPath": "$.experiment.held_wait_seconds",
            "Next": f"{label}: gate",
        }
        assert states[f"{label}: unavailable past its maximum"]["Next"] == routes["INCONCLUSIVE"]


def test_every_failed_timed_out_or_aborted_execution_goes_to_the_rollback_function(synth: Any) -> None:
    """Fault table row 6: Step Functions' status-change events of both state machines that end FAILED,
    TIMED_OUT or ABORTED invoke the rollback function, which ends them in a verified state and alerts once
    (tests/integration/test_execution_ended.py)."""
    rules = [
        rule["Properties"]
        for rule in synth.resources("AWS::Events::Rule").values()
        if rule["Properties"]["EventPattern"].get("source") == ["aws.states"]
    ]
    (rule,) = rules
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert pattern["detail"]["status"] == ["FAILED", "TIMED_OUT", "ABORTED"]
    machines = {synth.text(arn) for arn in pattern["detail"]["stateMachineArn"]}
    assert machines == {
        f"<Ref {synth.logical_id('AWS::StepFunctions::StateMachine', name)}>"
        for name in ("Canary", "PromoteStateMachine")
    }
    (target,) = rule["Targets"]
    assert synth.text(target["Arn"]) == _function_arn(synth, "Rollback")
