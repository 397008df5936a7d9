"""What a platform team relies on in the synthesized stack for config/mangaassist.yaml (demo ALB).

Expected values come from the spec file itself (read here with yaml, independently of the code under test)
and from notes/contracts.md (handler strings, environment names, table keys), never from the stack code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk.assertions import Template

from canarywise.local.alarms import evaluate_expression

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "mangaassist.yaml").read_text())
# The ladder as the spec file states it: [5, 25, 50].
PERCENTS = [stage["percent"] for stage in SPEC["stages"]]
WEEK = 7 * 24 * 3600  # "stickiness: 7d"
MODIFY_RULE = ":states:::aws-sdk:elasticloadbalancingv2:modifyRule"  # after "arn:<partition>"


def _modifies_rule(state: dict[str, Any]) -> bool:
    return str(state.get("Resource", "")).endswith(MODIFY_RULE)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory, synthesize_spec: Any) -> Any:
    root = Path(__file__).resolve().parents[2]
    return synthesize_spec(root / "config" / "mangaassist.yaml", tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="module")
def template(synth: Any) -> Template:
    return Template.from_json(synth.template)


def _statements(synth: Any) -> list[dict[str, Any]]:
    statements = []
    for resource in synth.template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy":
            statements += resource["Properties"]["PolicyDocument"]["Statement"]
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                statements += policy["PolicyDocument"]["Statement"]
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _weights(state: dict[str, Any]) -> tuple[int, int]:
    (action,) = state["Parameters"]["Actions"]
    control, canary = action["ForwardConfig"]["TargetGroups"]
    return control["Weight"], canary["Weight"]


# -- traffic ----------------------------------------------------------------------------------------------


def test_rule_sends_everything_to_control_at_deploy_with_sticky_variants(synth: Any) -> None:
    _, rule = synth.one("AWS::ElasticLoadBalancingV2::ListenerRule")
    (action,) = rule["Properties"]["Actions"]
    forward = action["ForwardConfig"]
    control = synth.logical_id("AWS::ElasticLoadBalancingV2::TargetGroup", "Control")
    canary = synth.logical_id("AWS::ElasticLoadBalancingV2::TargetGroup", "Canary")
    assert action["Type"] == "forward"
    assert forward["TargetGroups"] == [
        {"TargetGroupArn": {"Ref": control}, "Weight": 100},
        {"TargetGroupArn": {"Ref": canary}, "Weight": 0},
    ]
    assert forward["TargetGroupStickinessConfig"] == {"Enabled": True, "DurationSeconds": WEEK}
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
        if state["Type"] == "Choice":
            (name,) = [
                c["Next"]
                for c in state["Choices"]
                if {"Variable": "$.gate.decision", "StringEquals": "ADVANCE"} in c.get("Or", [c])
            ]
        else:
            name = state["Next"]
        assert len(path) < 100, "the ADVANCE path loops"


def test_canary_stages_set_the_spec_weights_in_order(synth: Any) -> None:
    path = _advance_path(synth.state_machine_definition("Canary"))
    weight_changes = [_weights(state) for _, state in path if _modifies_rule(state)]
    assert weight_changes == [(100 - p, p) for p in PERCENTS]
    stage_started = [
        state["Parameters"]
        for _, state in path
        if state.get("Parameters", {}).get("action") == "stage_started"
    ]
    assert [(s["stage_index"], s["weights"]) for s in stage_started] == [
        (i, {"control": 100 - p, "canary": p}) for i, p in enumerate(PERCENTS)
    ]
    assert path[-1][1]["Type"] == "Succeed"


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


def test_weight_changes_are_scoped_to_the_listener_rule(synth: Any) -> None:
    rule = synth.logical_id("AWS::ElasticLoadBalancingV2::ListenerRule", "Rule")
    for name in ("Canary", "Promote"):
        definition = synth.state_machine_definition(name)
        modify = [s for s in definition["States"].values() if _modifies_rule(s)]
        assert modify, name
        assert {s["Parameters"]["RuleArn"] for s in modify} == {f"<Ref {rule}>"}


def test_every_wait_takes_its_seconds_from_the_execution_input(synth: Any) -> None:
    waits = [s for s in synth.state_machine_definition("Canary")["States"].values() if s["Type"] == "Wait"]
    assert len(waits) == len(PERCENTS)
    assert all(
        w == {"Type": "Wait", "SecondsPath": "$.timing.check_interval_seconds", "Next": w["Next"]}
        for w in waits
    )


def test_each_stage_decision_routes_rollback_hold_and_inconclusive(synth: Any) -> None:
    definition = synth.state_machine_definition("Canary")
    states = definition["States"]
    rollback_fn = synth.logical_id("AWS::Lambda::Function", "Rollback")
    choices = {n: s for n, s in states.items() if s["Type"] == "Choice"}
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


def test_promote_sends_all_traffic_to_the_canary_then_concludes(synth: Any) -> None:
    definition = synth.state_machine_definition("Promote")
    states = definition["States"]
    promote_fn = synth.logical_id("AWS::Lambda::Function", "Promote")
    (modify,) = [s for s in states.values() if _modifies_rule(s)]
    assert _weights(modify) == (0, 100)
    conclude = states[modify["Next"]]
    assert conclude["Resource"] == f"<GetAtt {promote_fn}.Arn>"
    assert conclude["Parameters"] == {"experiment_id.$": "$.experiment_id"}


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


def test_critical_composite_alarm_invokes_the_rollback_function(synth: Any, template: Template) -> None:
    rollback_fn = synth.logical_id("AWS::Lambda::Function", "Rollback")
    critical_id = synth.logical_id("AWS::CloudWatch::CompositeAlarm", "Critical")
    critical = synth.template["Resources"][critical_id]["Properties"]
    topic = synth.logical_id("AWS::SNS::Topic", "Alerts")
    assert critical["AlarmActions"] == [{"Fn::GetAtt": [rollback_fn, "Arn"]}, {"Ref": topic}]
    rule = json.dumps(critical["AlarmRule"])
    for alarm in ("StatisticalHarm", "errorratehardlimit", "p99latencyhardlimit"):
        assert synth.logical_id("AWS::CloudWatch::Alarm", alarm) in rule
    template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [rollback_fn, "Arn"]},
            "Principal": "lambda.alarms.cloudwatch.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [critical_id, "Arn"]},
        },
    )


def test_warning_composite_alarm_only_notifies(synth: Any) -> None:
    warning = synth.template["Resources"][synth.logical_id("AWS::CloudWatch::CompositeAlarm", "Warning")]
    assert warning["Properties"]["AlarmActions"] == [{"Ref": synth.logical_id("AWS::SNS::Topic", "Alerts")}]


def test_hard_limits_come_from_the_spec(synth: Any) -> None:
    limits = {m["name"]: m["hard_limit"] for m in SPEC["metrics"] if m.get("source", {}).get("type") == "alb"}
    assert limits == {"error_rate": 0.02, "p99_latency": 8.0}
    alarms = synth.resources("AWS::CloudWatch::Alarm")
    latency = alarms[synth.logical_id("AWS::CloudWatch::Alarm", "p99latencyhardlimit")]["Properties"]
    assert (latency["Threshold"], latency["ExtendedStatistic"]) == (8.0, "p99")
    alb = synth.logical_id("AWS::ElasticLoadBalancingV2::LoadBalancer", "DemoAlb")
    canary_tg = synth.logical_id("AWS::ElasticLoadBalancingV2::TargetGroup", "Canary")
    assert latency["Dimensions"] == [
        {"Name": "LoadBalancer", "Value": {"Fn::GetAtt": [alb, "LoadBalancerFullName"]}},
        {"Name": "TargetGroup", "Value": {"Fn::GetAtt": [canary_tg, "TargetGroupFullName"]}},
    ]
    errors = alarms[synth.logical_id("AWS::CloudWatch::Alarm", "errorratehardlimit")]["Properties"]
    # The minute's 5xx count tested against the 2% limit: z >= 3.09 (scipy.stats.norm.isf(0.001) = 3.0902).
    assert errors["Threshold"] == 3.09
    assert errors["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert (errors["EvaluationPeriods"], errors["DatapointsToAlarm"]) == (3, 2)
    expression = next(m for m in errors["Metrics"] if "Expression" in m)["Expression"]
    assert expression == (
        "IF(requests_canary >= 100, "
        "(errors_canary - 0.02 * requests_canary) / SQRT(0.0196 * requests_canary), 0)"
    )

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
    warning = alarms[synth.logical_id("AWS::CloudWatch::Alarm", "errorrateapproaching")]["Properties"]
    warning_expression = next(m for m in warning["Metrics"] if "Expression" in m)["Expression"]
    assert "(errors_canary - 0.01 * requests_canary) / SQRT(0.0099 * requests_canary)" in warning_expression
    harm = alarms[synth.logical_id("AWS::CloudWatch::Alarm", "StatisticalHarm")]["Properties"]
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

CONTRACT = {  # notes/contracts.md
    "SignificanceCheck": (
        "canarywise.handlers.significance_check.handler",
        {"LOAD_BALANCER_FULL_NAME", "CONTROL_TARGET_GROUP_FULL_NAME", "CANARY_TARGET_GROUP_FULL_NAME"},
    ),
    "StageGate": ("canarywise.handlers.stage_gate.handler", set()),
    "Rollback": (
        "canarywise.handlers.rollback.handler",
        {
            "LISTENER_RULE_ARN",
            "CONTROL_TARGET_GROUP_ARN",
            "CANARY_TARGET_GROUP_ARN",
            "STATE_MACHINE_ARN",
            "ALERT_TOPIC_ARN",
        },
    ),
    "ProgressionPromote": (
        "canarywise.handlers.promote.handler",
        {"LISTENER_RULE_ARN", "CONTROL_TARGET_GROUP_ARN", "CANARY_TARGET_GROUP_ARN"},
    ),
}
COMMON_ENV = {"REGISTRY_TABLE", "SERVICE", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}


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


def test_listener_modify_permission_is_scoped_to_the_rule(synth: Any) -> None:
    rule = synth.logical_id("AWS::ElasticLoadBalancingV2::ListenerRule", "Rule")
    modify = [s for s in _statements(synth) if "elasticloadbalancing:ModifyRule" in _as_list(s["Action"])]
    # the canary and promote state machines, the rollback and promote functions
    assert len(modify) == 4
    for statement in modify:
        assert statement["Effect"] == "Allow"
        assert _as_list(statement["Resource"]) == [{"Ref": rule}]


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
    assert "5% (≥ 4 h) → 25% (≥ 24 h) → 50% (≥ 48 h)" in message
    assert "#{Canary.ExecutionArn}" in message
    assert "dashboards:name=canarywise-mangaassist" in json.dumps(
        approval["Configuration"]["ExternalEntityLink"]
    )


# -- dashboard ------------------------------------------------------------------------------------------


def test_dashboard_shows_both_variants_and_decisions(synth: Any) -> None:
    _, dashboard = synth.one("AWS::CloudWatch::Dashboard")
    assert dashboard["Properties"]["DashboardName"] == "canarywise-mangaassist"
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for needle in (
        "StatisticalHarm",
        "Escalation",
        "TaskCompleted",
        "pvalue",
        "set weights",
        "canary",
        "control",
    ):
        assert needle in body, needle


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
    waits = [name for name, state in states.items() if state["Type"] == "Wait"]
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
