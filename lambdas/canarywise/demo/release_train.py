"""Three releases in a row on one local AWS: promoted, rolled back, promoted, with sticky returning users.

``canarywise demo --scenario release-train`` shows what issue 10 asks of the lifecycle, on the synthesized
stack with its real state machines and handlers:

1. release 1 (a healthy candidate) goes into the idle slot (green), climbs the ladder and is promoted:
   green is live, the rule forwards everything to green;
2. release 2 (a regression) goes into the slot that is idle now (blue) and is rolled back: the rule's
   forward names only green, so the returning users who hold a blue cookie are back on release 1 at once;
   the service then runs steady until the rollback's cooldown has passed, and no session reaches release 2;
3. release 3 (a healthy candidate) goes into blue again, from green being live, and is promoted.

After each release the live slot (the registry's service state) and the rule's forward (read back from
ELBv2) are printed. The train passes only if every release ended as expected, the slots took turns as above
and no session reached release 2 after its rollback (counted by the simulator, which routes each session
by the rule, and cross-checked with the ALB's ``RequestCount`` of release 2's target group in CloudWatch).

To keep three releases within a minute or two of wall time the train uses a busier service (50 M sessions
a day, so evidence accrues ten times faster than in the single-release scenarios), quarter-hour stage
minimums and a quarter-hour cooldown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from canarywise.data.metric_source import ALB_NAMESPACE
from canarywise.demo.local_run import LocalRun, Progress, QuietProgress, RunResult, default_start
from canarywise.demo.local_run import describe_forward as forward_text
from canarywise.demo.runner import play
from canarywise.demo.scenarios import SCENARIOS, Scenario
from canarywise.demo.traffic import TrafficProfile
from canarywise.local.clock import use_simulated_clock
from canarywise.local.deployment import Deployment
from canarywise.local.provision import provision, synthesize
from canarywise.local.server import LocalAws
from canarywise.spec import RolloutSpec, parse_spec

NAME = "release-train"
TITLE = "Three releases in a row: promoted, rolled back, promoted (blue/green slots take turns)"
TRAIN_TRAFFIC = TrafficProfile(sessions_per_day=50_000_000, returning_share=0.6)
TRAIN_LADDER = (
    {"percent": 5, "min_duration": "15m", "max_duration": "6h"},
    {"percent": 25, "min_duration": "15m", "max_duration": "6h"},
    {"percent": 50, "min_duration": "15m", "max_duration": "6h"},
)
TRAIN_COOLDOWN = "15m"


@dataclass(frozen=True)
class Release:
    """One release of the train: its scenario (the candidate's behaviour) and the outcome it must reach."""

    name: str
    scenario: Scenario
    expected: str


def releases() -> tuple[Release, ...]:
    def train(scenario: str, name: str, **changes: Any) -> Scenario:
        return replace(
            SCENARIOS[scenario],
            name=name,
            traffic=TRAIN_TRAFFIC,
            ladder=TRAIN_LADDER,
            max_hours=24,
            **changes,
        )

    return (
        Release("release 1", train("healthy", "release-1"), "PROMOTED"),
        # The regression shows after half an hour (a leak): by then returning users hold its slot's cookie.
        Release("release 2", train("regression", "release-2", onset_hours=0.5), "ROLLED_BACK"),
        Release("release 3", train("healthy", "release-3"), "PROMOTED"),
    )


def train_spec() -> RolloutSpec:
    """The one spec the stack is synthesized for: the demo's service with the train's ladder and cooldown."""
    data = releases()[0].scenario.spec().model_dump(mode="json")
    data["anti_flapping"]["cooldown"] = TRAIN_COOLDOWN
    return parse_spec(data, source=f"{NAME}: the demo spec with a quarter-hour ladder and cooldown")


@dataclass(frozen=True)
class ReleaseOutcome:
    """How one release ended, and where traffic stood afterwards (registry and ELBv2, read back)."""

    release: str
    experiment_id: str
    outcome: str
    expected: str
    baseline_slot: str
    candidate_slot: str
    live_after: str
    forward_after: dict[str, int]
    candidate_sessions: int  # sessions the candidate's slot served during the release
    candidate_returning: int  # of those, users sent back to it by their stickiness cookie
    ticks: int
    simulated_hours: float


@dataclass
class TrainResult:
    """The train: each release, the sessions that reached release 2 after its rollback, each check."""

    releases: list[ReleaseOutcome] = field(default_factory=list)
    rolled_back_sessions: int | None = None  # sessions on release 2's slot after its rollback (simulator)
    rolled_back_requests: float | None = None  # the ALB's RequestCount of that slot meanwhile (CloudWatch)
    steady_ticks: int = 0
    checks: list[tuple[str, bool]] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(passed for _, passed in self.checks)


def run_release_train(
    *,
    seed: int = 7,
    progress: Progress | None = None,
    start: datetime | None = None,
    log_dir: Path | None = Path("reports") / "logs",
    after: Callable[[LocalAws, Deployment, TrainResult], None] | None = None,
) -> TrainResult:
    """Play the three releases on a fresh local AWS; see the module docs. `progress` gets each release;
    `after` is called with the local AWS, the deployment and the result before the local AWS stops."""
    began = time.monotonic()
    progress = progress or QuietProgress()
    spec = train_spec()
    template = synthesize(spec)
    log_path = log_dir / f"{NAME}-lambda.log" if log_dir is not None else None
    if log_path is not None and log_path.exists():
        log_path.unlink()
    train = releases()
    result = TrainResult()
    with LocalAws(log_path=log_path) as aws:
        deployment = provision(aws, template, stack_name=f"canarywise-{spec.service}")
        run = LocalRun(
            aws,
            deployment,
            train[0].scenario,
            spec,
            seed=seed,
            start=start or default_start(),
            progress=progress,
        )
        aws.runtime.clock = run.clock.now
        undo_clock = use_simulated_clock(run.clock, aws.runtime)
        try:
            rolled_back: tuple[str, datetime] | None = None  # (slot, when) of a rolled-back release
            for release in train:
                if rolled_back is not None:
                    _wait_out_cooldown(run, spec, rolled_back, result)
                result.releases.append(_one_release(run, release, progress))
                if result.releases[-1].outcome == "ROLLED_BACK":
                    rolled_back = (result.releases[-1].candidate_slot, run.clock.now())
                else:
                    rolled_back = None
        finally:
            run.finish()
            undo_clock()
        result.checks = _checks(result)
        result.wall_seconds = time.monotonic() - began
        if after is not None:
            after(aws, deployment, result)
    return result


def _one_release(run: LocalRun, release: Release, progress: Progress) -> ReleaseOutcome:
    began = time.monotonic()
    run.start(release.scenario, candidate=release.scenario.name)
    progress.started(release.scenario, run.deployment, run.experiment_id)
    live, idle = run.roles()
    run.event(f"{release.name}: experiment {run.experiment_id}, candidate deployed into {idle} (live {live})")
    played: RunResult = play(run, approve=True)
    played.wall_seconds = time.monotonic() - began
    experiment = run.registry.get_experiment(run.experiment_id)
    live_after, _ = run.roles()
    forward = run.split.current()  # read back from ELBv2
    served = run.sessions.get(experiment.candidate_slot, 0)
    returning = run.returning.get(experiment.candidate_slot, 0)
    run.event(
        f"{release.name} {played.outcome} after serving {served:,} sessions from {experiment.candidate_slot} "
        f"({returning:,} returning by their cookie): live slot {live_after}, rule forwards "
        f"{forward_text(forward)}"
    )
    progress.finished(played)
    return ReleaseOutcome(
        release=release.name,
        experiment_id=run.experiment_id,
        outcome=played.outcome,
        expected=release.expected,
        baseline_slot=experiment.baseline_slot,
        candidate_slot=experiment.candidate_slot,
        live_after=live_after,
        forward_after=forward,
        candidate_sessions=served,
        candidate_returning=returning,
        ticks=played.ticks,
        simulated_hours=played.simulated_hours,
    )


def _wait_out_cooldown(
    run: LocalRun, spec: RolloutSpec, rolled_back: tuple[str, datetime], result: TrainResult
) -> None:
    """Steady ticks (no rollout) until the rollback's cooldown has passed, counting who reaches its slot."""
    slot, at = rolled_back
    ready = at + timedelta(seconds=spec.anti_flapping.cooldown)
    sessions = 0
    while run.clock.now() < ready:
        view = run.tick()
        sessions += view.tick.sessions.get(slot, 0)
        result.steady_ticks += 1
    result.rolled_back_sessions = sessions
    result.rolled_back_requests = _requests(run, slot, at, run.clock.now())
    run.event(
        f"steady for {spec.anti_flapping.cooldown / 60:g} min after the rollback: {sessions} sessions and "
        f"{result.rolled_back_requests:g} ALB requests reached {slot} (release 2)"
    )


def _requests(run: LocalRun, slot: str, start: datetime, end: datetime) -> float:
    """The ALB's RequestCount of `slot`'s target group from `start` to `end`, as CloudWatch has it."""
    response: dict[str, Any] = run.cloudwatch.get_metric_statistics(
        Namespace=ALB_NAMESPACE,
        MetricName="RequestCount",
        Dimensions=[
            {"Name": "LoadBalancer", "Value": run.deployment.load_balancer_full_name},
            {"Name": "TargetGroup", "Value": run.deployment.target_group_full_names[slot]},
        ],
        StartTime=start,
        EndTime=end,
        Period=60,
        Statistics=["Sum"],
    )
    return float(sum(point["Sum"] for point in response["Datapoints"]))


def _checks(result: TrainResult) -> list[tuple[str, bool]]:
    """What the train must show, each as (what, held)."""
    checks = [
        (f"{r.release} {r.expected} (was {r.outcome})", r.outcome == r.expected) for r in result.releases
    ]
    if len(result.releases) != 3:
        return [*checks, ("all three releases ran", False)]
    first, second, third = result.releases
    checks += [
        (
            f"release 1 promoted into {first.candidate_slot}: live {first.live_after}, rule "
            f"{forward_text(first.forward_after)}",
            first.live_after == first.candidate_slot and first.forward_after == {first.candidate_slot: 100},
        ),
        (
            f"release 2 went into the other slot ({second.candidate_slot}) and its rollback left only "
            f"{second.live_after} in the rule ({forward_text(second.forward_after)})",
            second.baseline_slot == first.candidate_slot
            and second.candidate_slot == first.baseline_slot
            and second.forward_after == {first.candidate_slot: 100},
        ),
        (
            f"returning users were sticking to release 2 before its rollback ({second.candidate_returning:,} "
            "sessions came back to it by their cookie)",
            second.candidate_returning > 0,
        ),
        (
            f"no session reached release 2 after its rollback ({result.rolled_back_sessions} sessions, "
            f"{result.rolled_back_requests} ALB requests)",
            result.rolled_back_sessions == 0 and result.rolled_back_requests == 0,
        ),
        (
            f"release 3 started from release 1's slot live ({third.baseline_slot}) into "
            f"{third.candidate_slot}, and is live now (rule {forward_text(third.forward_after)})",
            third.baseline_slot == first.candidate_slot
            and third.candidate_slot != first.candidate_slot
            and third.live_after == third.candidate_slot
            and third.forward_after == {third.candidate_slot: 100},
        ),
    ]
    return checks
