"""The operator commands (`canarywise status`, `approve`, `rollback`) against moto, run as the CLI.

The stack is what the commands find in a real account: a CloudFormation stack ``canarywise-mangaassist``
whose outputs name the registry table, the rollback function and the promote state machine. The functions
are real moto Lambda functions whose invokes run the real handlers in-process (as local mode does). Every
"nothing moved" is read from ELBv2 directly, not through the code under test.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aws_kit import (
    REGION,
    SERVICE,
    TABLE,
    Env,
    rule_groups,
    rule_weights,
    set_rule_weights,
    start_rollout,
)

from canarywise.cli.main import main
from canarywise.data.models import ExperimentStatus
from canarywise.data.registry import Registry
from canarywise.handlers import promote, stage_gate
from canarywise.local.lambda_runtime import InProcessLambdaRuntime
from canarywise.local.moto_patches import route_lambda_invokes

ACCOUNT = "123456789012"
CALLER = f"arn:aws:sts::{ACCOUNT}:user/moto"  # what moto's STS says the caller is
PROMOTE_MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:mangaassist-promote"
ROLLBACK_FUNCTION = "canarywise-mangaassist-rollback"
PROMOTE_FUNCTION = "canarywise-mangaassist-promote"


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def lambdas(aws: Env) -> Iterator[InProcessLambdaRuntime]:
    """moto's Lambda invokes run the handlers in this process."""
    runtime = InProcessLambdaRuntime({})
    undo = route_lambda_invokes(runtime)
    yield runtime
    undo()


@pytest.fixture
def stack(aws: Env, lambdas: InProcessLambdaRuntime) -> Env:
    """The deployed stack: its outputs, the rollback and promote functions."""
    role = boto3.client("iam").create_role(RoleName="canarywise-fn", AssumeRolePolicyDocument="{}")["Role"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as bundle:
        bundle.writestr("README", "the handlers run in-process")
    variables = aws.variables() | {
        "POWERTOOLS_SERVICE_NAME": "canarywise",
        "POWERTOOLS_METRICS_NAMESPACE": "Canarywise",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    for name, handler in ((ROLLBACK_FUNCTION, "rollback"), (PROMOTE_FUNCTION, "promote")):
        boto3.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role["Arn"],
            Handler=f"canarywise.handlers.{handler}.handler",
            Code={"ZipFile": code.getvalue()},
            Environment={"Variables": variables},
        )
    outputs = {
        "RegistryTableName": TABLE,
        "RollbackFunctionName": ROLLBACK_FUNCTION,
        "PromoteStateMachineArn": PROMOTE_MACHINE,
    }
    boto3.client("cloudformation").create_stack(
        StackName=f"canarywise-{SERVICE}",
        TemplateBody=json.dumps(
            {
                "Resources": {"Alerts": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "outputs"}}},
                "Outputs": {key: {"Value": value} for key, value in outputs.items()},
            }
        ),
    )
    return aws


@pytest.fixture
def cli(
    stack: Env, lambdas: InProcessLambdaRuntime, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Run]:
    """Run ``canarywise ARGV --service mangaassist`` as an operator would, in a shell of their own."""

    def run(*argv: str, service: bool = True) -> Run:
        capsys.readouterr()
        # What the handlers print (logs, metrics) goes to CloudWatch Logs, not to the command's output.
        lambdas.install_stdout()
        try:
            with pytest.MonkeyPatch.context() as shell:
                # The command finds everything from the service: nothing from the handlers' environment.
                for name in ("SERVICE", "REGISTRY_TABLE"):
                    shell.delenv(name, raising=False)
                code = main([*argv, *(("--service", SERVICE) if service else ())])
        finally:
            lambdas.uninstall_stdout()
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def _terminal(monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    """A person at a terminal who types `answer` at the prompt."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal(answer + "\n"))


def _no_terminal(monkeypatch: pytest.MonkeyPatch, piped: str) -> None:
    """A script or CI job that pipes `piped` into the command."""
    monkeypatch.setattr("sys.stdin", io.StringIO(piped + "\n"))


@pytest.fixture
def rolling_out(stack: Env, spec_data: dict[str, Any], context: Any) -> str:
    """A rollout of v42 in its first stage (95/5); its experiment id."""
    experiment_id, _ = start_rollout(stack, spec_data, context)
    assert rule_weights(stack) == {"control": 95, "canary": 5}
    return experiment_id


@pytest.fixture
def ready(rolling_out: str, context: Any) -> str:
    """The rollout awaiting approval."""
    stage_gate.handler({"action": "ready", "experiment_id": rolling_out}, context)
    return rolling_out


# --- --service ---------------------------------------------------------------------------------------------
def test_the_service_can_come_from_canarywise_service(
    stack: Env, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARYWISE_SERVICE", SERVICE)
    run = cli("status", "--json", service=False)
    assert run.code == 0
    status = json.loads(run.out)
    assert status["service"] == SERVICE
    # Before the first rollout the registry holds no lifecycle state; the rule is still read.
    assert (status["state"], status["experiment"]) == (None, None)
    assert status["rule_forward"] == {"control": 100, "canary": 0}


def test_a_service_without_a_stack_is_one_line(stack: Env, cli: Callable[..., Run]) -> None:
    run = cli("rollback", "--reason", "x", "--yes", "--service", "mangaasist", service=False)
    assert run.code == 1
    assert run.err == (
        "canarywise rollback: error: stack 'canarywise-mangaasist' not found; check --service, "
        "or pass --stack\n"
    )


# --- status ------------------------------------------------------------------------------------------------
def test_status_shows_the_lifecycle_and_the_rule_read_from_elbv2(
    stack: Env, rolling_out: str, spec_data: dict[str, Any], cli: Callable[..., Run]
) -> None:
    experiment_id = rolling_out

    status = json.loads(cli("status", "--json").out)

    assert status["state"]["phase"] == "ROLLING_OUT"
    assert (status["state"]["live"], status["state"]["idle"]) == ("control", "canary")
    assert status["rule_forward"] == {"control": 95, "canary": 5}
    assert status["forward_matches"] is True
    assert status["experiment"]["experiment_id"] == experiment_id
    assert status["experiment"]["stage"] == f"1/{len(spec_data['stages'])} (5% on the candidate)"
    assert status["experiment"]["status"] == "RUNNING"

    set_rule_weights(stack, 50, 50)  # someone edits the rule by hand
    assert json.loads(cli("status", "--json").out)["forward_matches"] is False
    table = cli("status").out
    assert "the rule forwards control 50 / canary 50, the registry asks for control 95 / canary 5" in table


# --- rollback ----------------------------------------------------------------------------------------------
def test_rollback_with_nothing_running_refuses_and_moves_nothing(stack: Env, cli: Callable[..., Run]) -> None:
    run = cli("rollback", "--reason", "the day after a promotion", "--yes")
    assert run.code == 3
    assert run.out == (
        "nothing to roll back: no rollout of mangaassist is in progress (the rule forwards control 100 / "
        "canary 0); traffic untouched; --force returns all traffic to the live slot anyway\n"
    )
    assert rule_weights(stack) == {"control": 100, "canary": 0}
    assert Registry(TABLE).rollback_history(SERVICE) == ()


@pytest.mark.parametrize(
    ("at_a_terminal", "answer", "error"),
    [
        (False, "y", "not confirmed: no terminal to ask on; pass --yes to act without asking"),
        (True, "", "not confirmed: nothing changed"),  # Enter: the default is no
        (True, "n", "not confirmed: nothing changed"),
    ],
)
def test_rollback_not_confirmed_moves_nothing(
    stack: Env,
    rolling_out: str,
    cli: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
    at_a_terminal: bool,
    answer: str,
    error: str,
) -> None:
    if at_a_terminal:
        _terminal(monkeypatch, answer)
    else:
        _no_terminal(monkeypatch, answer)
    run = cli("rollback", "--reason", "complaints")
    assert run.code == 4
    assert run.err == f"canarywise rollback: error: {error}\n"
    question = (
        f"Roll back mangaassist: experiment {rolling_out} (candidate v42, RUNNING); the rule now forwards "
        "control 95 / canary 5. Stop it and send ALL traffic to the live slot 'control'? [y/N] "
    )
    assert run.out == (question if at_a_terminal else "")
    assert rule_weights(stack) == {"control": 95, "canary": 5}
    assert Registry(TABLE).get_experiment(rolling_out).status is ExperimentStatus.RUNNING


def test_rollback_confirmed_puts_everyone_on_the_live_slot_and_records_who(
    stack: Env,
    rolling_out: str,
    cli: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    experiment_id = rolling_out
    _terminal(monkeypatch, "y")
    run = cli("rollback", "--reason", "complaints", "--json")
    assert run.code == 0
    answer = json.loads(run.out.split("[y/N] ", 1)[1])
    assert (answer["outcome"], answer["live"], answer["experiment_ids"]) == (
        "ROLLED_BACK",
        "control",
        [experiment_id],
    )
    assert rule_groups(stack) == {"control"}
    record = Registry(TABLE).get_rollback(experiment_id)
    assert record is not None
    assert (record.source, record.actor) == ("cli", f"cli ({CALLER})")


def test_rollback_force_with_nothing_running_sends_everyone_to_the_live_slot(
    stack: Env, cli: Callable[..., Run]
) -> None:
    set_rule_weights(stack, 60, 40)  # a rule edited by hand, nothing running
    run = cli("rollback", "--reason", "rule edited by hand", "--force", "--yes", "--json")
    assert run.code == 0
    assert json.loads(run.out)["outcome"] == "ROLLED_BACK"
    assert rule_groups(stack) == {"control"}
    (record,) = Registry(TABLE).rollback_history(SERVICE)
    assert (record.experiment_id, record.actor) == (None, f"cli ({CALLER})")


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("typo", "rollback refused: no experiment 'typo'; traffic untouched"),
        (
            "promoted",
            "rollback refused: experiment {id} was promoted (v42 is live); release the previous version as "
            "a new candidate instead; traffic untouched",
        ),
    ],
)
def test_rollback_of_an_unknown_or_promoted_experiment_is_one_line(
    stack: Env,
    ready: str,
    context: Any,
    cli: Callable[..., Run],
    which: str,
    message: str,
) -> None:
    experiment_id = ready
    promote.handler({"experiment_id": experiment_id, "approved_by": "ana"}, context)
    named = experiment_id if which == "promoted" else which
    run = cli("rollback", "--reason", "x", "--experiment", named, "--yes")
    assert run.code == 1
    assert run.err == f"canarywise rollback: error: {message.format(id=experiment_id)}\n"
    assert rule_groups(stack) == {"canary"}  # the promoted candidate keeps all traffic


# --- approve -----------------------------------------------------------------------------------------------
def test_approve_checks_the_status_first_and_refuses_with_traffic_untouched(
    stack: Env, rolling_out: str, context: Any, cli: Callable[..., Run]
) -> None:
    experiment_id = rolling_out

    def refused(*argv: str) -> str:
        run = cli("approve", *argv, "--yes")
        assert run.code == 1
        assert rule_weights(stack) == weights
        return run.err

    weights = {"control": 95, "canary": 5}
    assert (
        refused("typo")
        == "canarywise approve: error: approve refused: no experiment 'typo'; traffic untouched\n"
    )
    assert refused(experiment_id) == (
        f"canarywise approve: error: approve refused: experiment {experiment_id} is RUNNING "
        "(needs READY_FOR_APPROVAL); traffic untouched\n"
    )
    assert refused() == (
        "canarywise approve: error: approve refused: awaiting approval in mangaassist: none; "
        "traffic untouched\n"
    )
    stage_gate.handler({"action": "ready", "experiment_id": experiment_id}, context)
    assert cli("rollback", "--reason", "complaints", "--yes").code == 0
    weights = {"control": 100, "canary": 0}
    assert refused(experiment_id) == (
        f"canarywise approve: error: approve refused: experiment {experiment_id} is ROLLED_BACK "
        "(needs READY_FOR_APPROVAL); traffic untouched\n"
    )


@pytest.fixture
def promote_machine(stack: Env, ready: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The promote state machine, executed by moto: one task, the promote function, with the whole input.

    It comes after the rollout (`ready`): once moto executes state machines, it keeps them in another
    backend than the one holding the canary state machine the rollout started.
    """
    from moto.core.config import default_user_config

    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    function = boto3.client("lambda").get_function(FunctionName=PROMOTE_FUNCTION)["Configuration"]
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function["FunctionArn"], "Payload.$": "$"},
        "OutputPath": "$.Payload",
        "End": True,
    }
    return str(
        boto3.client("stepfunctions").create_state_machine(
            name="mangaassist-promote",
            roleArn=function["Role"],
            definition=json.dumps({"StartAt": "Promote", "States": {"Promote": task}}),
        )["stateMachineArn"]
    )


def test_approve_promotes_as_the_caller_and_a_second_approve_is_one_line(
    stack: Env,
    ready: str,
    cli: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
    promote_machine: str,
) -> None:
    experiment_id = ready
    _terminal(monkeypatch, "yes")

    run = cli("approve", "--json")  # the single experiment awaiting approval

    assert run.code == 0
    question, answer = run.out.split(" [y/N] ", 1)
    assert question == (
        f"Approve mangaassist: experiment {experiment_id} (candidate v42)? The rule now forwards "
        "control 95 / canary 5; ALL traffic moves to slot 'canary', which becomes live."
    )
    assert json.loads(answer) | {"how": ""} == {
        "experiment_id": experiment_id,
        "candidate": "v42",
        "approved_by": CALLER,
        "how": "",
        "live": "canary",
        "forward": "canary 100",
    }
    assert rule_groups(stack) == {"canary"}
    (execution,) = boto3.client("stepfunctions").list_executions(stateMachineArn=promote_machine)[
        "executions"
    ]
    described = boto3.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {"experiment_id": experiment_id, "approved_by": CALLER}

    again = cli("approve", experiment_id, "--yes")
    assert again.code == 1
    assert again.err == (
        f"canarywise approve: error: approve refused: experiment {experiment_id} is PROMOTED "
        "(needs READY_FOR_APPROVAL); traffic untouched\n"
    )
    assert rule_groups(stack) == {"canary"}


# --- status --exit-code and --watch, list, history ------------------------------------------------------
def test_status_exit_code_says_where_the_rollout_stands(
    stack: Env, rolling_out: str, cli: Callable[..., Run]
) -> None:
    """0 steady, 10 rolling out, 11 awaiting approval, 12 rolled back, 13 rule != registry (cli/watch.py)."""
    assert cli("status").code == 0  # without --exit-code a read that worked is 0
    assert cli("status", "--exit-code").code == 10
    assert json.loads(cli("status", "--json").out)["exit_code"] == 10
    set_rule_weights(stack, 50, 50)  # someone edits the rule by hand
    assert cli("status", "--exit-code").code == 13
    set_rule_weights(stack, 95, 5)
    assert cli("rollback", "--reason", "watching", "--yes").code == 0
    assert rule_weights(stack) == {"control": 100, "canary": 0}
    assert cli("status", "--exit-code").code == 12


def test_status_exit_code_before_any_rollout_and_awaiting_approval(
    stack: Env, cli: Callable[..., Run], context: Any, spec_data: dict[str, Any]
) -> None:
    assert cli("status", "--exit-code").code == 0
    experiment_id, _ = start_rollout(stack, spec_data, context)
    stage_gate.handler({"action": "ready", "experiment_id": experiment_id}, context)
    assert cli("status", "--exit-code").code == 11


def test_status_watch_follows_the_rollout_until_it_ends(
    stack: Env, rolling_out: str, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Piped, --watch prints a line per change and returns when nothing is in progress any more: here an
    operator rolls back during the second wait."""
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            assert main(["rollback", "--reason", "watching", "--yes", "--service", SERVICE]) == 0

    monkeypatch.setattr("canarywise.cli.watch._sleep", wait)
    run = cli("status", "--watch", "--interval", "7", "--exit-code")

    assert run.code == 12
    assert waits == [7.0, 7.0]
    lines = [line for line in run.out.splitlines() if line.startswith(f"{SERVICE}: ")]
    assert lines[0] == (
        f"{SERVICE}: ROLLING_OUT; forward control 95 / canary 5; experiment {rolling_out} (RUNNING)"
    )  # one line for the two identical reads
    assert lines[-1].startswith(
        f"{SERVICE}: STEADY; forward control 100; experiment {rolling_out} (ROLLED_BACK)"
    )
    assert len(lines) == 2


def test_list_shows_every_service_with_its_state_uncut(
    stack: Env, rolling_out: str, cli: Callable[..., Run]
) -> None:
    run = cli("list", "--json", service=False)
    assert run.code == 0
    (row,) = json.loads(run.out)["services"]
    assert row | {"decision": None} == {
        "service": SERVICE,
        "phase": "ROLLING_OUT",
        "live": "control",
        "forward": "control 95 / canary 5",
        "experiment_id": rolling_out,
        "status": "RUNNING",
        "decision": None,
        "exit_code": 10,
    }
    table = cli("list", service=False).out  # piped: full width, the id whole
    assert rolling_out in table
    assert "…" not in table


def test_history_lists_the_services_experiments_with_their_outcome(
    stack: Env, rolling_out: str, cli: Callable[..., Run]
) -> None:
    assert cli("rollback", "--reason", "watching", "--yes").code == 0
    run = cli("history", "--json")
    assert run.code == 0
    (row,) = json.loads(run.out)["experiments"]
    assert (row["experiment_id"], row["candidate"], row["outcome"]) == (rolling_out, "v42", "ROLLED_BACK")
    table = cli("history").out
    assert rolling_out in table
    assert "…" not in table


# --- pause / resume ----------------------------------------------------------------------------------------
def test_pause_and_resume_record_the_caller_and_why_and_move_no_traffic(
    rolling_out: str, cli: Callable[..., Run], context: Any, stack: Env
) -> None:
    run = cli("pause", "--reason", "CSAT complaints")
    assert (run.code, run.out) == (0, f"{SERVICE}: paused by {CALLER}: CSAT complaints ({rolling_out})\n")
    gate = {"action": "gate", "experiment_id": rolling_out, "stage_index": 0}
    assert stage_gate.handler(gate, context)["reason"] == f"paused by {CALLER}: CSAT complaints"
    assert rule_weights(stack) == {"control": 95, "canary": 5}
    assert cli("status", "--json").out.count('"PAUSED"') == 1
    assert cli("status", "--exit-code").code == 10  # still a rollout in progress
    run = cli("resume", "--reason", "survey bug", "--json")
    assert run.code == 0
    assert json.loads(run.out)["outcome"] == "RESUMED"
    assert stage_gate.handler(gate, context)["reason"].startswith("no decision yet")
    # Nothing paused: one line, exit 3; a reason is required and bounded.
    run = cli("resume", "--reason", "again")
    assert run.code == 3
    assert run.out == f"{SERVICE}: nothing to resume: {SERVICE} is ROLLING_OUT, not PAUSED ({rolling_out})\n"
    assert cli("pause", "--reason", " ").code == 2


# --- resume (slice acknowledgements) -----------------------------------------------------------------------
def test_resume_acknowledges_the_slice_findings_holding_the_rollout_as_the_caller(
    stack: Env, rolling_out: str, cli: Callable[..., Run]
) -> None:
    from datetime import UTC, datetime

    from canarywise.data.models import CheckRecord

    experiment_id = rolling_out
    registry = Registry(TABLE)
    assert cli("resume", "--reason", "x").code == 3  # not paused, no check yet: nothing holds
    finding = {"metric": "escalation_rate", "slice": "other", "verdict": "harm", "estimate": 0.02,
               "ci_low": 0.011, "ci_high": 0.029}  # fmt: skip
    held = CheckRecord(
        checked_at=datetime.now(UTC), stage_index=0, decision="HOLD", reason="slice regression holds …",
        details={"findings": [finding, {**finding, "slice": None, "verdict": "no_harm_proven"}]},
    )  # fmt: skip
    registry.record_check(experiment_id, held)

    wrong = cli("resume", "--reason", "x", "--slice", "escalation_rate:returns")
    assert wrong.code == 1
    assert "escalation_rate:returns does not hold experiment" in wrong.err
    assert "(holding: escalation_rate:other)" in wrong.err
    run = cli("resume", "--reason", "gift cards moved to 'other'", "--json")

    assert run.code == 0
    (ack,) = registry.get_experiment(experiment_id).slice_acknowledgements
    assert (ack["metric"], ack["slice"], ack["by"]) == ("escalation_rate", "other", CALLER)
    assert (ack["reason"], ack["estimate"], ack["stage_index"]) == ("gift cards moved to 'other'", 0.02, 0)
    assert json.loads(run.out)["acknowledged"] == [ack]
    assert rule_weights(stack) == {"control": 95, "canary": 5}  # traffic untouched
