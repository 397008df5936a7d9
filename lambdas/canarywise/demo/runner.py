"""A whole rollout on the embedded AWS, in accelerated time: provision, start, play the ticks, conclude.

:func:`run_scenario` starts moto in server mode (:class:`canarywise.local.server.LocalAws`), creates the
stack's resources from the synthesized template, starts the real canary state machine and plays five-minute
ticks (:class:`canarywise.demo.local_run.LocalRun`: traffic under the rule's forward, alarms, the
significance check, the state machine's gate) with :func:`play`.

It stops when the state machine ends, when the scenario's clock runs out, or when the scenario has held long
enough for one reason. With ``approve`` a READY_FOR_APPROVAL rollout is promoted by starting the promote state
machine: the local stand-in for the CodePipeline manual approval.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from canarywise.data.models import CheckRecord, Experiment, ExperimentStatus
from canarywise.demo.local_run import (
    LocalRun,
    Progress,
    QuietProgress,
    RunResult,
    default_start,
    describe_forward,
)
from canarywise.demo.scenarios import Scenario
from canarywise.demo.shadow import rejected_result, run_shadow_phase
from canarywise.local.clock import use_simulated_clock
from canarywise.local.deployment import Deployment
from canarywise.local.provision import provision, synthesize
from canarywise.local.server import LocalAws
from canarywise.report import ReportData, decision_point, hold_started
from canarywise.report import write_report as default_write_report


def _held_for(checks: list[CheckRecord], now: datetime) -> tuple[float, str]:
    """How long (hours) the decision has been HOLD for the same kind of reason, and that reason."""
    since = hold_started(checks)
    if since is None:
        return 0.0, ""
    return (now - since.checked_at).total_seconds() / 3600, checks[-1].reason


def _outcome(experiment: Experiment, check: CheckRecord | None, held_hours: float) -> str:
    if experiment.status is ExperimentStatus.RUNNING and check is not None and check.decision == "HOLD":
        return "HELD" if held_hours > 0 else "RUNNING"
    return experiment.status.value


def run_scenario(
    scenario: Scenario,
    *,
    seed: int = 7,
    approve: bool = False,
    spec_path: Path | None = None,
    progress: Progress | None = None,
    reports_dir: Path | None = Path("reports"),
    start: datetime | None = None,
    log_dir: Path | None = None,
    write_report: Callable[..., Path] | None = None,
    before: Callable[[LocalAws, Deployment], None] | None = None,
    after: Callable[[LocalAws, Deployment, RunResult], None] | None = None,
) -> RunResult:
    """Run `scenario` end to end on a fresh local AWS; see the module docs.

    Parameters
    ----------
    scenario
        What the control and the candidate do, and what should happen.
    seed
        The simulation's seed (the same seed replays the same run).
    approve
        Promote a rollout that reaches READY_FOR_APPROVAL (the CodePipeline approval's stand-in).
    spec_path
        A rollout spec file to use as it is, for the same metrics (default: the scenario's spec file with
        its demo ladder).
    progress
        Where to report progress (default: nothing).
    reports_dir
        The report goes to ``reports_dir/<experiment id>/``; None writes none.
    start
        Simulated start time (default: 09:00 UTC a week ago).
    log_dir
        Where the handlers' log lines go (``lambda.log``); default: the report's folder.
    write_report
        The report writer (default :func:`canarywise.report.write_report`).
    before
        Called with the local AWS and the deployment before the rollout starts (tests subscribe to topics).
    after
        Called with the local AWS, the deployment and the result before the local AWS stops (``--serve``
        keeps it up there; tests run the operator commands against it).
    """
    began = time.monotonic()
    progress = progress or QuietProgress()
    spec = scenario.spec(spec_path)
    template = synthesize(spec)
    log_path = (log_dir or (reports_dir or Path("reports")) / "logs") / f"{scenario.name}-lambda.log"
    if log_path.exists():
        log_path.unlink()
    with LocalAws(log_path=log_path) as aws:
        deployment = provision(aws, template, stack_name=f"canarywise-{spec.service}")
        if before is not None:
            before(aws, deployment)
        run = LocalRun(
            aws, deployment, scenario, spec, seed=seed, start=start or default_start(), progress=progress
        )
        aws.runtime.clock = run.clock.now
        undo_clock = use_simulated_clock(run.clock, aws.runtime)
        try:
            shadow = None
            if scenario.shadow is not None and spec.shadow is not None:
                shadow = run_shadow_phase(
                    run, scenario.shadow, seed=seed, candidate=f"{scenario.name}-candidate"
                )
            if shadow is not None and shadow.decision != "READY_FOR_CANARY":
                result = rejected_result(run, shadow, scenario.expected)  # no user was sent to the candidate
            else:
                run.start()
                progress.started(scenario, deployment, run.experiment_id)
                run.event(f"rollout started: experiment {run.experiment_id}")
                result = play(run, approve=approve)
        finally:
            run.finish()
            undo_clock()
        result.wall_seconds = time.monotonic() - began
        result.stand_ins = dict(deployment.not_provisioned)
        if reports_dir is not None and result.experiment_id:
            write_report = write_report or default_write_report
            result.report_dir = write_report(
                run.registry,
                result.experiment_id,
                reports_dir / result.experiment_id,
                scenario=scenario,
                result=result,
            )
        progress.finished(result)
        if after is not None:
            after(aws, deployment, result)
    return result


def play(run: LocalRun, *, approve: bool) -> RunResult:
    """Tick the started rollout until its state machine ends (promoting it with `approve`), the scenario's
    clock runs out, or it has held long enough; what happened, read from the registry."""
    scenario = run.scenario
    ticks = 0
    last_stage = -1
    checks: list[CheckRecord] = []
    while run.release_hours < scenario.max_hours:
        view = run.tick()
        ticks += 1
        if view.check is not None and (not checks or checks[-1].checked_at != view.check.checked_at):
            checks.append(view.check)
        if view.stages and view.stages[-1].stage_index != last_stage:
            last_stage = view.stages[-1].stage_index
            stage = view.stages[-1]
            forward = describe_forward(view.forward)
            run.event(f"stage {last_stage + 1}: forward {forward}", at=stage.started_at)
        run.progress.ticked(view)
        if run.execution_status(fresh=True) != "RUNNING":
            break
        if scenario.hold_hours is not None:
            held, reason = _held_for(checks, run.clock.now())
            if held >= scenario.hold_hours:
                run.event(f"held {held:.1f} h: {reason}")
                break
    status = run.execution_status(fresh=True)
    experiment = run.registry.get_experiment(run.experiment_id)
    if status == "SUCCEEDED":
        run.event("canary state machine succeeded: ready for approval")
        if approve and experiment.status is ExperimentStatus.READY_FOR_APPROVAL:
            promoted = run.promote()
            # Local stand-in for the CodePipeline manual approval (moto has no CodePipeline): start what the
            # approval starts, the promote state machine.
            run.event(
                f"approved (stand-in for the CodePipeline approval): promote state machine {promoted.lower()}"
            )
    elif status != "RUNNING":
        run.event(f"canary state machine {status.lower()}")
    data = ReportData.read(run.registry, run.experiment_id)
    experiment, rollback = data.experiment, data.rollback
    if rollback is not None:
        run.event(f"rolled back by {rollback.source}: {rollback.reason}")
    held, _ = _held_for(list(data.checks), run.clock.now())
    check = experiment.latest_check
    point = decision_point(data)
    approved = scenario.expected == "READY_FOR_APPROVAL" and approve
    return RunResult(
        scenario=scenario.name,
        expected="PROMOTED" if approved else scenario.expected,
        outcome=_outcome(experiment, check, held),
        experiment_id=run.experiment_id,
        decision=check.decision if check else None,
        reason=(rollback.reason if rollback else check.reason if check else ""),
        decision_hours=point[0] if point else None,
        simulated_hours=run.clock.hours,
        ticks=ticks,
        wall_seconds=0.0,
        rollback=rollback,
        events=run.events,
        alarm_values={
            name: [((at - run.clock.start).total_seconds() / 3600, value) for at, value in series]
            for name, series in run.alarms.series.items()
        },
        alarm_thresholds=dict(run.alarms.thresholds),
    )
