"""The stage ladder's worst case, checked at synth: its longest run and the Step Functions history it writes.

A canary execution polls its gate every `gate_poll_seconds` (``check_interval``, doubled as often as the
history bound needs: `gate_poll_every`) until a stage passes or its ``max_duration`` ends;
a try after a rollback stretches the first stage (``anti_flapping.first_stage_multiplier``). Synth refuses a
ladder whose worst case would outlast what waits for it (`canarywise.spec.deployable`: the pipeline's
approval); the gate poll interval keeps the execution's history within the bound whatever the ladder
(at the longest ladder the approval allows, 1,368 h at a 1-minute check_interval, it polls every 64 minutes).

Example
-------
>>> from canarywise.spec import load_spec
>>> gate_poll_seconds(load_spec("lambdas/canarywise/demo/specs/storefront-chatbot.yaml"))  # 4 x 5 min
1200
"""

from __future__ import annotations

import math

from canarywise.spec.model import RolloutSpec

# Step Functions fails an execution once its history reaches 25,000 events (a hard quota). Each time the
# canary state machine polls its gate (stacks/progression.py: one turn of a stage's loop) it adds
#   Wait "Stage i: wait"                  WaitStateEntered, WaitStateExited                     2
#   Task "Stage i: gate" (Lambda invoke)  TaskStateEntered, TaskScheduled, TaskStarted,
#                                         TaskSucceeded, TaskStateExited                        5
#   Choice "Stage i: decision"            ChoiceStateEntered, ChoiceStateExited                 2
# Change it with the loop's states: tests/infrastructure/test_stack.py counts them in the synthesized one.
HISTORY_EVENTS_PER_POLL = 9
STEP_FUNCTIONS_HISTORY_QUOTA = 25_000
# Synth refuses a spec whose worst case passes this; the rest of the quota is for what is not a poll (each
# stage's weights and start tasks, start, ready, a rollback) and for the retries of failing tasks.
MAX_HISTORY_EVENTS = 20_000
# What synth cannot count, bounded by the state machine itself (fault table, rows 1 and 7):
# - a gate that keeps failing costs more than a poll (each of its 4 attempts adds LambdaFunctionScheduled,
#   Started and Failed, then a Pass and a Choice: about 20 events), so the stage waits
#   UNAVAILABLE_POLL_INTERVALS check intervals before trying again: per check interval it never writes more
#   history than a working poll;
# - past a stage's maximum under `inconclusive_policy: hold` the stage has no end of its own (a person
#   decides; harm still rolls back through the critical alarm within a check interval), so it polls once
#   every HELD_POLL_SECONDS: over a standard execution's longest life (1 year, after which Step Functions
#   ends it) that is at most HELD_HISTORY_EVENTS, which fit beside MAX_HISTORY_EVENTS under the quota.
UNAVAILABLE_POLL_INTERVALS = 3
HELD_POLL_SECONDS = 86_400
STANDARD_EXECUTION_MAX_SECONDS = 365 * 86_400
HELD_HISTORY_EVENTS = math.ceil(STANDARD_EXECUTION_MAX_SECONDS / HELD_POLL_SECONDS) * HISTORY_EVENTS_PER_POLL


def poll_waits(spec: RolloutSpec, check_interval_seconds: int | None = None) -> dict[str, int]:
    """The seconds the canary state machine waits after a failed gate poll and between polls of a stage held
    past its maximum, for an execution whose normal wait is `check_interval_seconds` (the spec's
    ``check_interval`` when None; 0 in local mode, so both are 0 there too).

    Example
    -------
    >>> from canarywise.spec import load_spec
    >>> poll_waits(load_spec("config/mangaassist.yaml"))  # 3 × 5 min; 288 × 5 min
    {'unavailable_wait_seconds': 900, 'held_wait_seconds': 86400}
    """
    interval = spec.check_interval if check_interval_seconds is None else check_interval_seconds
    return {
        "unavailable_wait_seconds": interval * UNAVAILABLE_POLL_INTERVALS,
        "held_wait_seconds": interval * math.ceil(HELD_POLL_SECONDS / spec.check_interval),
    }


def worst_case_stage_seconds(spec: RolloutSpec) -> tuple[int, ...]:
    """Each stage's longest run: its max_duration, the first one stretched by the anti-flapping multiplier
    (what a try after a rollback gets).

    Example
    -------
    >>> from canarywise.spec import load_spec
    >>> worst_case_stage_seconds(load_spec("config/mangaassist.yaml"))  # 48 h x 1.25, 48 h, 60 h
    (216000, 172800, 216000)
    """
    multiplier = spec.anti_flapping.first_stage_multiplier
    return tuple(
        round(stage.max_duration * (multiplier if index == 0 else 1.0))
        for index, stage in enumerate(spec.stages)
    )


def worst_case_ladder_text(spec: RolloutSpec) -> str:
    """``"max_duration 48 h × first_stage_multiplier 1.25 + 48 h + 60 h"``: the worst case, for messages."""
    hours = [f"{stage.max_duration / 3600:g} h" for stage in spec.stages]
    multiplier = spec.anti_flapping.first_stage_multiplier
    if multiplier != 1:
        hours[0] += f" × first_stage_multiplier {multiplier:g}"
    return "max_duration " + " + ".join(hours)


def gate_poll_every(spec: RolloutSpec) -> int:
    """How many check intervals the canary execution waits between gate polls: the smallest power of two
    (1, 2, 4, …) that keeps its worst-case history within `MAX_HISTORY_EVENTS`.

    The gate only reads the latest decision, which the significance check writes on its own schedule (every
    check_interval), so polling less often costs nothing but a later advance: a stage moves on up to one
    poll after its gate passed. A power of two because the state machine computes the wait by doubling
    (``States.MathAdd``; ASL has no multiplication).

    Example
    -------
    >>> from canarywise.spec import load_spec
    >>> gate_poll_every(load_spec("config/mangaassist.yaml"))  # 168 h of 5-minute polls: 18,144 events
    1
    """
    every = 1
    while history_events(spec, every=every) > MAX_HISTORY_EVENTS:
        every *= 2
    return every


def history_events(spec: RolloutSpec, *, every: int = 1) -> int:
    """The most Step Functions history events the canary execution's gate polls can add: a poll every
    `every` check_intervals through each stage's worst case (`worst_case_stage_seconds`),
    `HISTORY_EVENTS_PER_POLL` each."""
    interval = spec.check_interval * every
    polls = sum(math.ceil(seconds / interval) for seconds in worst_case_stage_seconds(spec))
    return polls * HISTORY_EVENTS_PER_POLL


def gate_poll_seconds(spec: RolloutSpec) -> int:
    """The deployed wait between gate polls: `gate_poll_every` check intervals."""
    return round(spec.check_interval * gate_poll_every(spec))
