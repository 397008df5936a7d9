"""The release lifecycle as a table: every allowed move of a service's traffic and of its experiment.

A service has two target groups (*slots*) that take turns: the **live** slot serves the current model, the
**idle** slot receives the next candidate. The service's state (phase, which slot is live, the forward
weights in force, a version) and the experiment's status move only through the rows below, each applied as
one conditional DynamoDB transaction that checks the version (a fencing token) and both "from" columns, and
increments the version (`canarywise.data.registry.Registry.transition`). A writer holding an older version
changes nothing.

The rows, in order: ``start`` (STEADY → ROLLING_OUT, creates the experiment RUNNING), ``stage_started``
(live/idle at the stage's share), ``pause`` and ``resume`` (ROLLING_OUT ⇄ PAUSED, traffic unchanged),
``ready`` (→ AWAITING_APPROVAL), ``approve`` (→ PROMOTING, all on idle), ``promote`` (→ STEADY, the slots
swap roles), ``roll_back`` (→ ROLLING_BACK, only live; from PAUSED too), ``rolled_back`` (→ STEADY),
``force_live`` (STEADY, only live). `table_rows` prints them with every column;
docs/lifecycle.md shows the same table (a test keeps the two equal).

Two moves come in pairs so that traffic is verified in between: ``approve`` takes the experiment (nobody
else can promote or roll it back with the old version) and asks for all traffic on the idle slot; the
promote function sets the listener rule, reads it back, and only then takes ``promote``, which swaps the
roles (the candidate's slot becomes live; the next release goes into the other one). ``roll_back`` takes the
experiment and asks for the live slot only; the rollback function stops the execution, sets the rule,
reads it back, and only then takes ``rolled_back``, which writes the one rollback record and is followed by
the one alert.

Example
-------
>>> TRANSITIONS[Event.APPROVE].traffic
<Traffic.ALL_IDLE: 'all on idle'>
>>> sorted(TRANSITIONS[Event.ROLL_BACK].experiment_from)
['APPROVED', 'READY_FOR_APPROVAL', 'RUNNING']
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from canarywise.data.models import ExperimentStatus as Status


class Phase(StrEnum):
    """Where a service's traffic stands."""

    STEADY = "STEADY"  # all traffic on the live slot; no experiment
    ROLLING_OUT = "ROLLING_OUT"  # the canary ladder runs: live / idle at the stage's share
    PAUSED = "PAUSED"  # the ladder holds at its stage's share until a person resumes (or anyone rolls back)
    AWAITING_APPROVAL = "AWAITING_APPROVAL"  # the last stage's gate passed; a person decides
    PROMOTING = "PROMOTING"  # approved: traffic is moving to the idle slot
    ROLLING_BACK = "ROLLING_BACK"  # a rollback was taken: traffic is moving back to the live slot only


class Event(StrEnum):
    START = "start"
    STAGE_STARTED = "stage_started"
    PAUSE = "pause"
    RESUME = "resume"
    READY = "ready"
    APPROVE = "approve"
    PROMOTE = "promote"
    ROLL_BACK = "roll_back"
    ROLLED_BACK = "rolled_back"
    FORCE_LIVE = "force_live"


class Traffic(StrEnum):
    """What a transition asks of the listener rule (the forward action in the state's `forward`)."""

    UNCHANGED = "unchanged"
    STAGE_SHARE = "live/idle at the stage's share"  # both slots named, stickiness on
    ALL_IDLE = "all on idle"  # only the idle slot named: every user, sticky or not, reaches the candidate
    ONLY_LIVE = "only live"  # only the live slot named: no user, sticky or not, reaches the candidate


@dataclass(frozen=True)
class Transition:
    """One row of the table."""

    event: Event
    service_from: frozenset[Phase]
    service_to: Phase
    experiment_from: frozenset[Status]  # empty: the transition creates the experiment (or has none)
    experiment_to: Status | None
    traffic: Traffic
    who: str
    swaps_roles: bool = False
    needs_experiment: bool = True


def _row(
    event: Event,
    service_from: set[Phase],
    service_to: Phase,
    experiment_from: set[Status],
    experiment_to: Status | None,
    traffic: Traffic,
    who: str,
    **extra: bool,
) -> tuple[Event, Transition]:
    return event, Transition(
        event,
        frozenset(service_from),
        service_to,
        frozenset(experiment_from),
        experiment_to,
        traffic,
        who,
        **extra,
    )


_LIVE_EXPERIMENT = {Status.RUNNING, Status.READY_FOR_APPROVAL, Status.APPROVED}

TRANSITIONS: dict[Event, Transition] = dict(
    [
        _row(
            Event.START,
            {Phase.STEADY},
            Phase.ROLLING_OUT,
            set(),
            Status.RUNNING,
            Traffic.UNCHANGED,
            "canary state machine",
        ),
        _row(
            Event.STAGE_STARTED,
            {Phase.ROLLING_OUT},
            Phase.ROLLING_OUT,
            {Status.RUNNING},
            Status.RUNNING,
            Traffic.STAGE_SHARE,
            "canary state machine",
        ),
        # A pause holds the ladder where it is (traffic unchanged; the checks and the critical alarm keep
        # running, so a rollback still works): the stage gate answers HOLD, "paused by <who>: <why>".
        _row(
            Event.PAUSE,
            {Phase.ROLLING_OUT},
            Phase.PAUSED,
            {Status.RUNNING},
            Status.RUNNING,
            Traffic.UNCHANGED,
            "the warning alarm, a person (canarywise pause)",
        ),
        _row(
            Event.RESUME,
            {Phase.PAUSED},
            Phase.ROLLING_OUT,
            {Status.RUNNING},
            Status.RUNNING,
            Traffic.UNCHANGED,
            "a person (canarywise resume)",
        ),
        _row(
            Event.READY,
            {Phase.ROLLING_OUT},
            Phase.AWAITING_APPROVAL,
            {Status.RUNNING},
            Status.READY_FOR_APPROVAL,
            Traffic.UNCHANGED,
            "canary state machine",
        ),
        _row(
            Event.APPROVE,
            {Phase.AWAITING_APPROVAL},
            Phase.PROMOTING,
            {Status.READY_FOR_APPROVAL},
            Status.APPROVED,
            Traffic.ALL_IDLE,
            "a person (pipeline approval or canarywise approve)",
        ),
        _row(
            Event.PROMOTE,
            {Phase.PROMOTING},
            Phase.STEADY,
            {Status.APPROVED},
            Status.PROMOTED,
            Traffic.UNCHANGED,
            "promote function, after the rule is read back",
            swaps_roles=True,
        ),
        _row(
            Event.ROLL_BACK,
            {Phase.ROLLING_OUT, Phase.PAUSED, Phase.AWAITING_APPROVAL, Phase.PROMOTING},
            Phase.ROLLING_BACK,
            _LIVE_EXPERIMENT,
            Status.ROLLING_BACK,
            Traffic.ONLY_LIVE,
            "critical alarm, state machine, rejected approval, a person",
        ),
        _row(
            Event.ROLLED_BACK,
            {Phase.ROLLING_BACK},
            Phase.STEADY,
            {Status.ROLLING_BACK},
            Status.ROLLED_BACK,  # or REJECTED, for a rejected approval
            Traffic.UNCHANGED,
            "rollback function, after the rule is read back",
        ),
        _row(
            Event.FORCE_LIVE,
            {Phase.STEADY},
            Phase.STEADY,
            set(),
            None,
            Traffic.ONLY_LIVE,
            "a person (canarywise rollback --force)",
            needs_experiment=False,
        ),
    ]
)


def table_rows() -> list[tuple[str, str, str, str, str, str, str]]:
    """The table as text rows (the docs and `canarywise lifecycle` print it from here)."""

    def names(values: frozenset[Phase] | frozenset[Status]) -> str:
        return ", ".join(sorted(v.value for v in values)) or "—"

    rows = []
    for t in TRANSITIONS.values():
        to_experiment = t.experiment_to.value if t.experiment_to else "—"
        if t.event is Event.ROLLED_BACK:
            to_experiment = "ROLLED_BACK or REJECTED"
        service_to = t.service_to.value + (" (roles swap)" if t.swaps_roles else "")
        rows.append(
            (
                t.event.value,
                names(t.service_from),
                service_to,
                names(t.experiment_from) if t.needs_experiment else "—",
                to_experiment,
                t.traffic.value,
                t.who,
            )
        )
    return rows
