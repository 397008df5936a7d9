"""Stage progression: the canary state machine generated from the spec's stage ladder, and the promote one.

Canary, per stage *i* at *p*%: the stage gate's ``stage_started`` takes the lifecycle transition, sets the
rule live → idle at *p*% and reads it back (a refused or superseded transition ends the execution as
"Superseded", moving nothing) → loop { wait
``$.timing.check_interval_seconds`` (from the execution input, so a local run waits 0-1 s; a long ladder
doubles it in a "Gate poll interval" state as often as its history bound needs:
`canarywise.spec.gate_poll_every`) → ask the gate for the latest decision → ROLLBACK: rollback function,
fail · ADVANCE / READY_FOR_APPROVAL: next stage ·
INCONCLUSIVE: the spec's inconclusive policy (rollback; or hold: poll once a day) · anything else (HOLD,
CONTINUE, unknown): wait again }. After the last stage: ``ready`` → succeed with ``experiment_id`` in the
output. A gate that still fails after its retries holds (a control-plane fault, not harm) and tries again
after 3 intervals, until the stage's deadline (``stage_started`` answers it, counted from the state
machine's own clock), when the inconclusive policy applies with its own reason. Any other task that keeps
failing in a stage rolls back rather than leaving the canary at p% with nobody watching; an execution that
fails, times out or is aborted anyway goes to the rollback function (an EventBridge rule). The payloads are
fixed in notes/contracts.md; the stage gate only reads the decision the significance check wrote.

Promote: the promote function takes ``approve`` (refused, with traffic untouched, unless the experiment is
READY_FOR_APPROVAL), moves all traffic to the candidate's slot, reads it back, takes ``promote`` (the slots
swap roles) and runs BH across the registry. Its input is ``{"experiment_id": …, "approved_by": …}`` or,
from the pipeline, ``{"canary_execution_arn": …}`` (the experiment id is then read from that execution's
output).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from canarywise.spec import RolloutSpec, gate_poll_every

from .functions import FunctionFactory
from .nag import acknowledge, arn_finding, logical_id
from .registry import CONCLUDED_INDEX, grant_registry
from .traffic import TrafficSplit

STAGE_GATE_HANDLER = "canarywise.handlers.stage_gate.handler"
PROMOTE_HANDLER = "canarywise.handlers.promote.handler"
EXPERIMENT_ID = "$.experiment.experiment_id"
# A stage whose tasks keep failing ends here: the canary must not stay at p% without a working gate.
_CATCH_ALL = ["States.ALL"]
# The stage gate's errors (their Python class names) when the lifecycle refused or superseded its transition.
_SUPERSEDED = ["TransitionRefusedError", "SupersededError"]


def state_machine_names(service: str) -> tuple[str, str]:
    """The canary and promote state machine names: fixed, so the rollback function can name the canary one
    (a reference would be a dependency cycle: the state machine invokes the rollback function)."""
    return f"canarywise-{service}-canary", f"canarywise-{service}-promote"


def states_arn(scope: Construct, resource: str, name: str) -> str:
    """``arn:…:states:<region>:<account>:<resource>:<name>`` in `scope`'s stack."""
    return Stack.of(scope).format_arn(
        service="states", resource=resource, resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME
    )


class Progression(Construct):
    """The stage gate and promote functions and the two state machines."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: RolloutSpec,
        functions: FunctionFactory,
        registry: dynamodb.Table,
        traffic: TrafficSplit,
        rollback_function: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        self._spec = spec
        self._traffic = traffic
        # Where the Wait states find the seconds between gate polls (`_canary_definition` sets it when the
        # ladder needs polls further apart than check_interval).
        self._poll_path = (
            "$.timing.gate_poll_seconds" if gate_poll_every(spec) > 1 else "$.timing.check_interval_seconds"
        )
        canary_name, promote_name = state_machine_names(spec.service)

        self.stage_gate = functions.function(
            self,
            "StageGate",
            handler=STAGE_GATE_HANDLER,
            description="Starts experiments, moves each stage's traffic, reads the latest decision",
            environment=traffic.function_environment(),
        )
        self.promote_function = functions.function(
            self,
            "Promote",
            handler=PROMOTE_HANDLER,
            description="Approves, moves all traffic to the candidate, verifies, promotes, runs BH",
            environment=traffic.function_environment(),
            timeout=Duration.seconds(60),
        )
        # The stage gate and promote write the experiment and this service's traffic state; promote also
        # queries the concluded index (Benjamini-Hochberg over the last 12 months).
        own_keys = ["EXP#*", f"SERVICE#{spec.service}"]
        for fn, indexes in ((self.stage_gate, ()), (self.promote_function, (CONCLUDED_INDEX,))):
            role = fn.role
            assert role is not None
            grant_registry(role, registry, write_keys=own_keys, indexes=indexes)
        for fn in (self.stage_gate, self.promote_function):
            role = fn.role
            assert role is not None
            traffic.grant_set_traffic(role)
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::*]",
                "elasticloadbalancing:DescribeRules (reads the rule back after every change) and the X-Ray "
                "tracing actions have no resource-level permissions.",
            )

        self.canary = self._state_machine(
            "Canary", canary_name, self._canary_definition(rollback_function), "stage ladder up to approval"
        )
        self.promote = self._state_machine(
            "PromoteStateMachine", promote_name, self._promote_definition(canary_name), "100% and conclusion"
        )
        self._on_execution_ended(rollback_function)
        invoked: tuple[lambda_.IFunction, ...] = (self.stage_gate, rollback_function)
        for invoked_function in invoked:
            _acknowledge_invoke(self.canary, invoked_function)
        _acknowledge_invoke(self.promote, self.promote_function)
        acknowledge(
            self.promote.role,
            arn_finding(self, "states", f"execution:{canary_name}:*"),
            "Reads the output (experiment id) of the canary execution the pipeline names; execution names "
            "are not known in advance, and the wildcard is limited to the canary state machine's executions.",
        )

    def _on_execution_ended(self, rollback_function: lambda_.IFunction) -> None:
        """Every canary or promote execution that ends FAILED, TIMED_OUT or ABORTED goes to the rollback
        function (fault table, row 6): with its rollout still in progress it is rolled back (traffic on the
        live slot, read back, one record, one alert); when it failed at its start, or a promote was refused,
        a person is told once; an ending the rollback itself caused changes nothing
        (`canarywise.runtime.execution_ended`). Step Functions sends these status changes to EventBridge's
        default bus; their detail is DescribeExecution's (input, status, error and cause)."""
        events.Rule(
            self,
            "ExecutionEnded",
            description="A canarywise execution that failed, timed out or was aborted ends verified",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "stateMachineArn": [self.canary.state_machine_arn, self.promote.state_machine_arn],
                    "status": ["FAILED", "TIMED_OUT", "ABORTED"],
                },
            ),
            targets=[events_targets.LambdaFunction(rollback_function, retry_attempts=4)],
        )

    # -- canary ----------------------------------------------------------------------------------------------

    def _canary_definition(self, rollback_function: lambda_.IFunction) -> sfn.IChainable:
        spec = self._spec
        start = self._gate_call(
            "Start experiment",
            {
                "action": "start",
                "execution_arn": sfn.JsonPath.string_at("$$.Execution.Id"),
                "release": sfn.JsonPath.object_at("$.release"),
                # Checked here, before anything is registered or moved: a Wait state cannot catch a bad
                # value later, so an invalid timing would strand the canary at its first share.
                "timing": sfn.JsonPath.object_at("$.timing"),
                "spec": spec.model_dump(mode="json"),
            },
            result_path="$.experiment",
            # The slower waits (canarywise.spec.poll_waits): after a failed gate, and past a stage's
            # maximum under `inconclusive_policy: hold`; both scale with the execution's own interval.
            result_selector={
                "experiment_id": sfn.JsonPath.string_at("$.experiment_id"),
                "unavailable_wait_seconds": sfn.JsonPath.number_at("$.unavailable_wait_seconds"),
                "held_wait_seconds": sfn.JsonPath.number_at("$.held_wait_seconds"),
            },
        )
        roll_back = tasks.LambdaInvoke(
            self,
            "Roll back",
            lambda_function=rollback_function,
            payload=sfn.TaskInput.from_object(
                {
                    "source": "state_machine",
                    "experiment_id": sfn.JsonPath.string_at(EXPERIMENT_ID),
                    "reason": sfn.JsonPath.string_at("$.gate.reason"),
                }
            ),
            payload_response_only=True,
            result_path="$.rollback",
        ).next(sfn.Fail(self, "Rolled back", error="CanaryRolledBack", cause="the canary was rolled back"))
        on_error = sfn.Pass(
            self,
            "Stage failed",
            parameters={
                "decision": "ROLLBACK",
                "reason": sfn.JsonPath.format(
                    "the canary state machine failed in a stage: {}: {}",
                    sfn.JsonPath.string_at("$.error.Error"),
                    sfn.JsonPath.string_at("$.error.Cause"),
                ),
            },
            result_path="$.gate",
        ).next(roll_back)

        ready = self._gate_call(
            "Ready for approval",
            {"action": "ready", "experiment_id": sfn.JsonPath.string_at(EXPERIMENT_ID)},
            result_path="$.ready",
        )
        # A refused or superseded transition means someone else (a rollback) owns the service now: end here,
        # moving nothing, rather than "rolling back" what is already rolled back.
        superseded = sfn.Fail(
            self,
            "Superseded",
            error="CanarywiseSuperseded",
            cause="another lifecycle transition (a rollback) took over this rollout; nothing was moved",
        )
        ready.add_catch(superseded, errors=_SUPERSEDED, result_path="$.error")
        ready.add_catch(on_error, errors=_CATCH_ALL, result_path="$.error")
        output = sfn.Pass(
            self,
            "Output",
            parameters={
                "experiment_id": sfn.JsonPath.string_at(EXPERIMENT_ID),
                "release": sfn.JsonPath.object_at("$.release"),
                "decision": "READY_FOR_APPROVAL",
            },
        )
        output.next(sfn.Succeed(self, "Awaiting approval"))
        after: sfn.IChainable = ready.next(
            self._unless_paused("Ready for approval", ready, "$.ready", output)
        )

        # Built from the last stage back, so each stage's ADVANCE can point at the next stage's first state.
        for index in reversed(range(len(spec.stages))):
            after = self._stage(
                index, advance_to=after, roll_back=roll_back, on_error=on_error, superseded=superseded
            )
        every = gate_poll_every(spec)
        if every == 1:
            return start.next(after)
        # A ladder whose check_interval polls would pass the history bound polls every `every` intervals:
        # the input's interval doubled log2(every) times (ASL has no multiplication).
        doubled = "$.timing.check_interval_seconds"
        for _ in range(every.bit_length() - 1):
            doubled = f"States.MathAdd({doubled}, {doubled})"
        poll = sfn.Pass(
            self,
            "Gate poll interval",
            parameters={
                "check_interval_seconds.$": "$.timing.check_interval_seconds",
                "gate_poll_seconds.$": doubled,
            },
            result_path="$.timing",
        )
        return start.next(poll).next(after)

    def _stage(
        self,
        index: int,
        *,
        advance_to: sfn.IChainable,
        roll_back: sfn.IChainable,
        on_error: sfn.IChainable,
        superseded: sfn.IChainable,
    ) -> sfn.IChainable:
        percent = round(self._spec.stages[index].percent)
        label = f"Stage {index + 1} ({percent}%)"
        started = self._gate_call(
            f"{label}: started",
            {
                "action": "stage_started",
                "experiment_id": sfn.JsonPath.string_at(EXPERIMENT_ID),
                "stage_index": index,
                "weights": {"control": 100 - percent, "canary": percent},
                # The state machine's own clock: the stage's deadline is counted from it, so that the
                # failure path below compares two times of the same clock.
                "entered_at": sfn.JsonPath.string_at("$$.State.EnteredTime"),
            },
            result_path="$.started",
        )
        wait = sfn.Wait(self, f"{label}: wait", time=sfn.WaitTime.seconds_path(self._poll_path))
        gate = self._gate_call(
            f"{label}: gate",
            {"action": "gate", "experiment_id": sfn.JsonPath.string_at(EXPERIMENT_ID), "stage_index": index},
            result_path="$.gate",
        )
        started.add_catch(superseded, errors=_SUPERSEDED, result_path="$.error")
        started.add_catch(on_error, errors=_CATCH_ALL, result_path="$.error")
        # Past the maximum under `hold` the stage polls once a day (fault table, row 7: a bounded history).
        inconclusive = (
            roll_back
            if self._spec.inconclusive_policy == "rollback"
            else sfn.Wait(
                self,
                f"{label}: held past its maximum",
                time=sfn.WaitTime.seconds_path("$.experiment.held_wait_seconds"),
            ).next(gate)
        )
        # A gate that keeps failing (after its retries) is a control-plane fault, not evidence of harm: hold
        # and poll again (the warning alarm on the stage gate's errors pages a person meanwhile) — until the
        # stage's maximum, when the spec's inconclusive policy applies with its own reason (fault table,
        # row 1). The stage's deadline came back from "started"; the failure's time is this state
        # machine's clock, the same one the deadline was counted from.
        unavailable = self._gate_answer(
            f"{label}: gate unavailable",
            "HOLD",
            "the stage gate failed (a control-plane fault, not harm): {}",
            "$.error.Error",
            failed_at=sfn.JsonPath.string_at("$$.State.EnteredTime"),
        )
        past_maximum = self._gate_answer(
            f"{label}: unavailable past its maximum",
            "INCONCLUSIVE",
            "control plane unavailable past the stage maximum ({}): the gate of "
            f"stage {index + 1} of {len(self._spec.stages)} kept failing, the spec inconclusive policy "
            "applies (a control-plane fault, not harm): {}",
            "$.started.deadline",
            "$.error.Error",
        ).next(inconclusive)
        unavailable.next(
            sfn.Choice(self, f"{label}: past its maximum?")
            .when(
                # Compared as strings: both are RFC 3339 in UTC, so their order is time order to the second,
                # whether or not the clock writes fractional seconds (a Timestamp comparison refuses those
                # in some implementations, and would then never see the deadline pass).
                sfn.Condition.string_greater_than_equals_json_path("$.gate.failed_at", "$.started.deadline"),
                past_maximum,
            )
            .otherwise(
                # Waits longer than a poll: a failed poll writes about 20 history events, a poll 9.
                sfn.Wait(
                    self,
                    f"{label}: wait after the failure",
                    time=sfn.WaitTime.seconds_path("$.experiment.unavailable_wait_seconds"),
                ).next(gate)
            )
        )
        gate.add_catch(superseded, errors=_SUPERSEDED, result_path="$.error")
        gate.add_catch(unavailable, errors=_CATCH_ALL, result_path="$.error")

        decision = sfn.Choice(self, f"{label}: decision")
        is_ = sfn.Condition.string_equals
        decision.when(is_("$.gate.decision", "ROLLBACK"), roll_back)
        decision.when(
            sfn.Condition.or_(
                is_("$.gate.decision", "ADVANCE"), is_("$.gate.decision", "READY_FOR_APPROVAL")
            ),
            advance_to,
        )
        decision.when(is_("$.gate.decision", "INCONCLUSIVE"), inconclusive)
        decision.otherwise(wait)  # HOLD, CONTINUE, anything unexpected: never advance on doubt
        started.next(self._unless_paused(label, started, "$.started", wait))
        wait.next(gate).next(decision)
        return started

    def _unless_paused(
        self, label: str, task: tasks.LambdaInvoke, result_path: str, then: sfn.IChainable
    ) -> sfn.Choice:
        """Go on to `then`, unless `task` found the rollout paused (a pause that landed after the gate
        said go on): then wait a check interval and run `task` again, until a person resumes."""
        paused = sfn.Wait(self, f"{label}: paused", time=sfn.WaitTime.seconds_path(self._poll_path)).next(
            task
        )
        return (
            sfn.Choice(self, f"{label}: paused?")
            .when(sfn.Condition.is_present(f"{result_path}.paused"), paused)
            .otherwise(then)
        )

    def _gate_answer(self, name: str, decision: str, reason: str, *paths: str, **extra: str) -> sfn.Pass:
        """A Pass that answers in the gate's place (``$.gate``): `decision`, and `reason` formatted with the
        values at `paths` (``States.Format``: no apostrophes in `reason`)."""
        values = [sfn.JsonPath.string_at(path) for path in paths]
        return sfn.Pass(
            self,
            name,
            parameters={"decision": decision, "reason": sfn.JsonPath.format(reason, *values), **extra},
            result_path="$.gate",
        )

    # -- promote ---------------------------------------------------------------------------------------------

    def _promote_definition(self, canary_name: str) -> sfn.IChainable:
        conclude = tasks.LambdaInvoke(
            self,
            "Approve and promote",
            lambda_function=self.promote_function,
            # No payload: the function gets the whole input (experiment_id, and approved_by when a person's
            # identity is known). TaskInput.from_json_path_at("$") rendered "Parameters": "$", which is not
            # valid ASL (Parameters must be an object).
            payload_response_only=True,
            result_path="$.conclusion",
        )
        promoted = conclude.next(sfn.Succeed(self, "Promoted"))
        canary_executions = states_arn(self, "execution", f"{canary_name}:*")
        read_canary = tasks.CallAwsService(
            self,
            "Read canary output",
            service="sfn",
            action="describeExecution",
            iam_action="states:DescribeExecution",
            iam_resources=[canary_executions],
            parameters={"ExecutionArn": sfn.JsonPath.string_at("$.canary_execution_arn")},
            result_selector={"output": sfn.JsonPath.string_to_json(sfn.JsonPath.string_at("$.Output"))},
            result_path="$.canary",
        )
        from_canary = sfn.Pass(
            self,
            "Experiment of the canary",
            parameters={"experiment_id": sfn.JsonPath.string_at("$.canary.output.experiment_id")},
        )
        read_canary.next(from_canary).next(promoted)
        return (
            sfn.Choice(self, "Which experiment")
            .when(sfn.Condition.is_present("$.experiment_id"), promoted)
            .when(sfn.Condition.is_present("$.canary_execution_arn"), read_canary)
            .otherwise(
                sfn.Fail(
                    self,
                    "No experiment",
                    error="PromoteInputError",
                    cause='the input needs "experiment_id" or "canary_execution_arn"',
                )
            )
        )

    # -- shared ----------------------------------------------------------------------------------------------

    def _gate_call(
        self,
        name: str,
        payload: dict[str, Any],
        *,
        result_path: str,
        result_selector: dict[str, Any] | None = None,
    ) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            name,
            lambda_function=self.stage_gate,
            payload=sfn.TaskInput.from_object(payload),
            payload_response_only=True,
            result_path=result_path,
            result_selector=result_selector,
        )
        # Transient faults (a throttled registry read, a Lambda error) are retried with backoff (2, 4, 8 s);
        # a refused or superseded lifecycle transition is final and never retried.
        task.add_retry(errors=_SUPERSEDED, max_attempts=0)
        task.add_retry(errors=_CATCH_ALL, interval=Duration.seconds(2), max_attempts=3, backoff_rate=2)
        return task

    def _state_machine(
        self, construct_id: str, name: str, definition: sfn.IChainable, purpose: str
    ) -> sfn.StateMachine:
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            log_group_name=f"/aws/vendedlogs/states/{name}",  # the prefix Step Functions log delivery expects
            retention=logs.RetentionDays.SIX_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        machine = sfn.StateMachine(
            self,
            construct_id,
            state_machine_name=name,
            comment=f"canarywise {self._spec.service}: {purpose}",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        acknowledge(
            machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions log delivery (logs:CreateLogDelivery, PutResourcePolicy, …) and X-Ray tracing "
            "actions have no resource-level permissions.",
        )
        return machine


def _acknowledge_invoke(machine: sfn.StateMachine, fn: lambda_.IFunction) -> None:
    acknowledge(
        machine.role,
        f"AwsSolutions-IAM5[Resource::<{logical_id(fn)}.Arn>:*]",
        "Invoke permission on the function's versions/aliases (ARN suffix :*), as CDK's LambdaInvoke grants "
        "it; limited to this one function.",
    )
