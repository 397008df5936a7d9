"""Rollouts on the embedded AWS in accelerated time: the stack, the simulated clock, the traffic, the alarms.

:class:`LocalRun` holds one local AWS (:class:`canarywise.local.server.LocalAws`) with the stack created from
the synthesized template, starts the real canary state machine for a release and then, every simulated five
minutes (:meth:`LocalRun.tick`):

1. reads the forward in force on the ALB listener rule (the data layer's ``TrafficSplit``: slot → weight)
   and which slot is live (the registry's service state),
2. plays five minutes of the scenario's traffic under that forward (the live slot serves the current model,
   the idle slot the candidate) and puts the metrics to CloudWatch,
3. evaluates the alarms minute by minute, the simulated clock at each minute (the composite critical alarm
   invokes the rollback function),
4. invokes the significance-check function with a scheduled event whose ``time`` is the tick's end,
5. with a rollout running, lets the state machine ask its gate once and act on the answer (next stage, roll
   back, finish).

Releases can follow one another on the same run (the release train): the clock, the sticky users and the
alarms carry over.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from canarywise.data.models import CheckRecord, RollbackRecord, StageStart
from canarywise.data.registry import Registry
from canarywise.demo.scenarios import Scenario
from canarywise.demo.simulator import TICK_SECONDS, AlbNames, Tick, TrafficSimulator
from canarywise.errors import CanarywiseError
from canarywise.local.alarms import AlarmChange, AlarmEvaluator
from canarywise.local.clock import GatePacer, SimulatedClock
from canarywise.local.deployment import Deployment
from canarywise.local.server import LocalAws
from canarywise.spec import RolloutSpec

CHECK_INTERVAL = timedelta(seconds=TICK_SECONDS)


class DemoError(CanarywiseError, RuntimeError):
    """The demo could not run the scenario to an end (the message says where it stopped)."""


@dataclass
class TickView:
    """What the live display shows after a tick."""

    scenario: Scenario
    spec: RolloutSpec
    now: datetime
    hours: float
    tick: Tick
    forward: dict[str, int]  # the rule's forward action: slot → weight, only the slots it names
    live: str
    sessions: dict[str, int]  # per slot, since the rollout started
    stages: tuple[StageStart, ...]
    check: CheckRecord | None
    alarms: list[AlarmChange]


@dataclass
class RunResult:
    """How a scenario ended, and where its report is."""

    scenario: str
    expected: str
    outcome: str
    experiment_id: str | None
    decision: str | None
    reason: str
    decision_hours: float | None
    simulated_hours: float
    ticks: int
    wall_seconds: float
    rollback: RollbackRecord | None = None
    report_dir: Path | None = None
    events: list[tuple[float, str]] = field(default_factory=list)
    stand_ins: dict[str, str] = field(default_factory=dict)
    # Per metric alarm: (simulated hours, the value CloudWatch compared with the threshold) each minute.
    alarm_values: dict[str, list[tuple[float, float | None]]] = field(default_factory=dict)
    alarm_thresholds: dict[str, float] = field(default_factory=dict)  # per metric alarm: its threshold

    @property
    def as_expected(self) -> bool:
        return self.outcome == self.expected


class Progress(Protocol):
    """Where the runner reports what happens (the rich live display, plain lines, or nothing)."""

    def started(self, scenario: Scenario, deployment: Deployment, experiment_id: str) -> None: ...

    def event(self, hours: float, text: str) -> None: ...

    def ticked(self, view: TickView) -> None: ...

    def finished(self, result: RunResult) -> None: ...


class QuietProgress:
    """Reports nothing (tests, ``--json``)."""

    def started(self, scenario: Scenario, deployment: Deployment, experiment_id: str) -> None:
        pass

    def event(self, hours: float, text: str) -> None:
        pass

    def ticked(self, view: TickView) -> None:
        pass

    def finished(self, result: RunResult) -> None:
        pass


def default_start() -> datetime:
    """09:00 UTC seven days ago: a week of simulated time ends about now (CloudWatch keeps 14 days)."""
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    return today - timedelta(days=7)


def scheduled_event(now: datetime, schedule_arn: str) -> dict[str, Any]:
    """The event EventBridge Scheduler sends the significance check (its ``time`` is the check's "now")."""
    return {
        "version": "0",
        "id": f"local-{int(now.timestamp())}",
        "source": "aws.scheduler",
        "detail-type": "Scheduled Event",
        "account": "123456789012",
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [schedule_arn],
        "detail": {},
    }


class LocalRun:
    """Rollouts on one local AWS, one after the other (state shared by the steps of :func:`run_scenario`
    and the release train): the simulated clock, the traffic simulator and its sticky users, the alarms."""

    def __init__(
        self,
        aws: LocalAws,
        deployment: Deployment,
        scenario: Scenario,
        spec: RolloutSpec,
        *,
        seed: int,
        start: datetime,
        progress: Progress,
    ) -> None:
        self.aws = aws
        self.deployment = deployment
        self.scenario = scenario
        self.spec = spec
        self.progress = progress
        self.clock = SimulatedClock(start)
        self.pacer = GatePacer()
        self.events: list[tuple[float, str]] = []
        self.split = deployment.traffic_split(aws.client("elbv2"))
        self.registry = Registry(deployment.registry_table, boto3_client=aws.client("dynamodb"))
        self.simulator = TrafficSimulator(
            scenario,
            spec,
            seed=seed,
            alb=AlbNames(deployment.load_balancer_full_name, deployment.target_group_full_names),
            live=self.roles()[0],
        )
        self.cloudwatch = aws.client("cloudwatch")
        self.lambda_client = aws.client("lambda")
        self.stepfunctions = aws.client("stepfunctions")
        self.alarms = AlarmEvaluator(
            self.cloudwatch, self.lambda_client, aws.client("sns"), deployment.composites
        )
        self.execution_arn = ""
        self.experiment_id = ""
        self.release_started = self.clock.now()
        self.sessions: dict[str, int] = dict.fromkeys(deployment.target_groups, 0)
        # Sessions that came back to a slot by their stickiness cookie (not placed by the weights).
        self.returning: dict[str, int] = dict.fromkeys(deployment.target_groups, 0)
        self._status_cache: tuple[float, str] = (0.0, "RUNNING")
        self._stages: tuple[StageStart, ...] = ()
        self._forward_seen: dict[str, int] | None = None

    def roles(self) -> tuple[str, str]:
        """(live slot, idle slot): the registry's service state; before the first rollout, from the rule
        (the slot with the most weight is live, as the lifecycle decides it then)."""
        state = self.registry.service_state(self.deployment.service)
        if state is not None:
            return state.live, state.idle
        forward = self.split.current()
        live = max(self.split.target_groups, key=lambda slot: forward.get(slot, 0))
        return live, next(slot for slot in self.split.target_groups if slot != live)

    @property
    def release_hours(self) -> float:
        """Simulated hours since the current release started."""
        return (self.clock.now() - self.release_started).total_seconds() / 3600

    # -- the state machine ------------------------------------------------------------------------------
    def execution_status(self, *, fresh: bool = False) -> str:
        cached_at, status = self._status_cache
        if fresh or time.monotonic() - cached_at > 0.05:
            status = self.stepfunctions.describe_execution(executionArn=self.execution_arn)["status"]
            self._status_cache = (time.monotonic(), status)
        return status

    def start(self, scenario: Scenario | None = None, *, candidate: str | None = None) -> None:
        """Start the canary state machine for `scenario`'s candidate (default: the run's scenario), the
        release manifest naming the idle slot it was deployed into; wait until it asks its first gate."""
        if scenario is not None:
            self.scenario = self.simulator.scenario = scenario
        self._new_pacer()
        self.release_started = self.clock.now()
        self.sessions = dict.fromkeys(self.sessions, 0)
        self.returning = dict.fromkeys(self.returning, 0)
        self._stages, self._forward_seen = (), None
        release_id = f"{self.scenario.name}-{int(self.clock.now().timestamp())}"
        release = {
            "candidate": candidate or f"{self.scenario.name}-candidate",
            "release_id": release_id,
            "slot": self.roles()[1],
        }
        self.execution_arn = self.stepfunctions.start_execution(
            stateMachineArn=self.deployment.canary_state_machine_arn,
            name=release_id,
            input=json.dumps(
                {
                    "release": release,
                    # The real wait is the check interval; the pacer stands in for it (see GatePacer).
                    "timing": {"check_interval_seconds": 0},
                }
            ),
        )["executionArn"]
        self._status_cache = (0.0, "RUNNING")
        self.pacer.wait_parked(lambda: self.execution_status() != "RUNNING")
        state = self.registry.service_state(self.deployment.service)
        if state is None or state.experiment_id is None:
            raise DemoError(f"the canary state machine did not start an experiment: {self._failure()}")
        self.experiment_id = state.experiment_id

    def _failure(self) -> str:
        described = self.stepfunctions.describe_execution(executionArn=self.execution_arn)
        return f"{described['status']} {described.get('error', '')} {described.get('cause', '')}".strip()

    def _new_pacer(self) -> None:
        """A fresh gate pacer for the next execution (the last one's held gate, if any, let go)."""
        self.pacer.close()
        if self.pacer.hook in self.aws.runtime.before_invoke:
            self.aws.runtime.before_invoke.remove(self.pacer.hook)
        self.pacer = GatePacer()
        self.aws.runtime.before_invoke.append(self.pacer.hook)

    # -- one tick -----------------------------------------------------------------------------------------
    def tick(self) -> TickView:
        """Five simulated minutes under the rule's forward; with a rollout running, its gate asked once."""
        forward = self.split.current()
        if self.experiment_id and forward != self._forward_seen:  # the lifecycle moved traffic
            self._forward_seen = forward
            self._stages = self.registry.stage_history(self.experiment_id)
        live, _ = self.roles()
        start = self.clock.now()
        tick = self.simulator.tick(start, forward=forward, live=live, hours_in=self.release_hours)
        for slot, sessions in tick.sessions.items():
            self.sessions[slot] = self.sessions.get(slot, 0) + sessions
            self.returning[slot] = self.returning.get(slot, 0) + sessions - tick.new_users.get(slot, 0)
        for namespace, data in tick.metric_data.items():
            for offset in range(0, len(data), 1000):
                self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[offset : offset + 1000])
        end = start + CHECK_INTERVAL
        # CloudWatch evaluates alarms every minute: a hard limit acts within the tick, before the next check.
        changes = self.alarms.evaluate_minutes(start, end, at_minute=self.clock.move_to)
        now = self.clock.move_to(end)
        self._invoke_significance_check(now)
        for change in changes:
            if change.state == "ALARM" or change.previous == "ALARM":
                fired = f"; invoked {', '.join(_short(a) for a in change.fired)}" if change.fired else ""
                self.event(f"alarm {change.name} → {change.state} ({change.reason}){fired}", at=change.at)
        if self.execution_arn and self.execution_status(fresh=True) == "RUNNING":
            self.pacer.release()
            self.pacer.wait_parked(lambda: self.execution_status() != "RUNNING")
        self.aws.runtime.flush_metrics()
        check = self.registry.get_experiment(self.experiment_id).latest_check if self.experiment_id else None
        return TickView(
            scenario=self.scenario,
            spec=self.spec,
            now=now,
            hours=self.clock.hours,
            tick=tick,
            forward=forward,
            live=live,
            sessions=dict(self.sessions),
            stages=self._stages,
            check=check,
            alarms=changes,
        )

    def _invoke_significance_check(self, now: datetime) -> None:
        function = self.deployment.function("significance_check")
        response = self.lambda_client.invoke(
            FunctionName=function.name,
            Payload=json.dumps(
                scheduled_event(now, f"arn:aws:scheduler:us-east-1:123456789012:schedule/{function.name}")
            ),
        )
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            raise DemoError(
                f"the significance check failed: {payload.get('errorType')}: {payload.get('errorMessage')}"
            )
        for experiment_id, why in (payload or {}).get("failed", {}).items():
            self.event(f"significance check failed for {experiment_id}: {why}")

    def event(self, text: str, *, at: datetime | None = None) -> None:
        hours = self.clock.hours if at is None else (at - self.clock.start).total_seconds() / 3600
        self.events.append((hours, text))
        self.progress.event(hours, text)

    # -- the end ------------------------------------------------------------------------------------------
    def finish(self) -> None:
        """Stop a still-running execution (the scenario's clock ran out), then let go of its gate."""
        if self.execution_arn and self.execution_status(fresh=True) == "RUNNING":
            self.stepfunctions.stop_execution(
                executionArn=self.execution_arn, error="DemoEnded", cause="the demo's simulated clock stopped"
            )
        self.pacer.close()
        self.aws.runtime.wait_idle()

    def promote(self) -> str:
        """Approve: start the promote state machine (the pipeline's next action) and wait for it."""
        described = run_promote(self.stepfunctions, self.deployment, {"experiment_id": self.experiment_id})
        return str(described["status"])


def run_promote(stepfunctions: Any, deployment: Deployment, payload: dict[str, Any]) -> dict[str, Any]:
    """Start the promote state machine with `payload` and wait for it (60 s); its DescribeExecution."""
    execution = stepfunctions.start_execution(
        stateMachineArn=deployment.promote_state_machine_arn,
        name=f"promote-{uuid.uuid4().hex[:12]}",
        input=json.dumps(payload),
    )["executionArn"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        described: dict[str, Any] = stepfunctions.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.02)
    raise DemoError("the promote state machine did not finish within 60 s")


def describe_forward(forward: dict[str, int]) -> str:
    """``blue 95 / green 5`` (only the slots the rule names)."""
    return " / ".join(f"{slot} {weight}" for slot, weight in sorted(forward.items()))


def _short(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]
