"""Pausing a rollout and resuming it: the lifecycle's ``pause`` and ``resume``, with who and why recorded.

A pause holds the ladder where it is: the service moves ROLLING_OUT → PAUSED, traffic stays at the stage's
share, the experiment stays RUNNING (the significance check keeps checking it and the critical alarm keeps
rolling it back on harm), and the stage gate answers HOLD, "paused by <who>: <why>", until ``resume``. The
warning composite alarm pauses (``pause_for_alarm``); a person pauses and resumes with ``canarywise pause``
and ``canarywise resume``. Each is one conditional write (`Registry.transition`, the version as its fencing
token) that also stores the note on the experiment (``paused``, cleared by ``resume``) and one record
(``NOTE#<time>#<event>``) under the experiment, so the history of pauses stays readable.

Example
-------
>>> pause("mangaassist", registry, by="alice", reason="CSAT complaints", now=now).outcome  # doctest: +SKIP
'PAUSED'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from canarywise.data.models import PauseNote, to_iso
from canarywise.data.registry import Registry
from canarywise.errors import CanarywiseError
from canarywise.lifecycle.state import ServiceState, TransitionRefusedError
from canarywise.lifecycle.table import Event, Phase
from canarywise.runtime.events import RollbackRequest

logger = Logger(child=True)

# Outcomes: the transition was taken; it had been taken already (an alarm firing again, a second person);
# there is nothing to pause or resume (no rollout, or one past its ladder): traffic and state untouched.
PAUSED, RESUMED, ALREADY, NOTHING = "PAUSED", "RESUMED", "ALREADY", "NOTHING_TO_DO"


class PauseRefusedError(CanarywiseError):
    """The pause or resume was refused (another transition moved the service meanwhile): nothing changed."""


@dataclass(frozen=True)
class PauseResult:
    """What a pause or resume call did."""

    outcome: str
    reason: str
    experiment_id: str | None = None
    phase: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "experiment_id": self.experiment_id,
            "phase": self.phase,
        }


def paused_reason(note: PauseNote) -> str:
    """How the stage gate words its HOLD while paused: ``paused by <who>: <why>``."""
    return f"paused by {note.by}: {note.reason}"


def pause(service: str, registry: Registry, *, by: str, reason: str, now: datetime) -> PauseResult:
    """Take ``pause`` for the service's rollout: it holds at its stage until `resume` (or a rollback).

    Only a rollout on its ladder (ROLLING_OUT) can pause; one awaiting approval already waits for a person.
    """
    state = registry.service_state(service)
    if state is not None and state.phase is Phase.PAUSED:
        return PauseResult(ALREADY, f"{service} is already paused", state.experiment_id, state.phase.value)
    if state is None or state.phase is not Phase.ROLLING_OUT or state.experiment_id is None:
        return _nothing("pause", service, state, "(a pause holds a rollout on its ladder, ROLLING_OUT)")
    note = PauseNote(by=by, reason=reason, at=now)
    sets = {"paused": note.model_dump_json()}
    after = _take(Event.PAUSE, registry, state, note, now=now, experiment_sets=sets)
    logger.info("rollout paused", extra={"experiment_id": after.experiment_id, "by": by, "reason": reason})
    return PauseResult(PAUSED, paused_reason(note), after.experiment_id, after.phase.value)


def resume(service: str, registry: Registry, *, by: str, reason: str, now: datetime) -> PauseResult:
    """Take ``resume``: the paused rollout's stage gate reads the significance check's decisions again."""
    state = registry.service_state(service)
    if state is None or state.phase is not Phase.PAUSED or state.experiment_id is None:
        return _nothing("resume", service, state, "not PAUSED")
    note = PauseNote(by=by, reason=reason, at=now)
    after = _take(Event.RESUME, registry, state, note, now=now, experiment_removes=("paused",))
    logger.info("rollout resumed", extra={"experiment_id": after.experiment_id, "by": by, "reason": reason})
    return PauseResult(RESUMED, f"resumed by {by}: {reason}", after.experiment_id, after.phase.value)


def pause_for_alarm(
    request: RollbackRequest, service: str, registry: Registry, *, now: datetime
) -> PauseResult:
    """The warning composite alarm went into ALARM: pause the rollout (who = the alarm, why = its reason).

    `request` is the alarm event as `parse_rollback_event` reads it (checked to be this stack's warning
    alarm); an alarm going back to OK, or a foreign one, pauses nothing.
    """
    if not request.act:
        return PauseResult("IGNORED", request.reason)
    alarm = (request.trigger_id or "the warning alarm").split("@", 1)[0].rsplit(":", 1)[-1]
    reason = request.reason.removeprefix(f"alarm {alarm} is ALARM: ") or request.reason
    return pause(service, registry, by=f"alarm {alarm}", reason=reason, now=now)


def _nothing(what: str, service: str, state: ServiceState | None, why: str) -> PauseResult:
    """Nothing to pause or resume: traffic and state untouched."""
    if state is None:
        return PauseResult(NOTHING, f"nothing to {what}: {service} is not yet rolled out")
    return PauseResult(
        NOTHING,
        f"nothing to {what}: {service} is {state.phase.value}{',' if why[0] != '(' else ''} {why}",
        state.experiment_id,
        state.phase.value,
    )


def _take(
    event: Event, registry: Registry, state: ServiceState, note: PauseNote, *, now: datetime, **kwargs: Any
) -> ServiceState:
    assert state.experiment_id is not None
    record = {
        "pk": f"EXP#{state.experiment_id}",
        "sk": f"NOTE#{to_iso(now)}#{event.value}",
        "kind": "lifecycle_note",
        "event": event.value,
        "service": state.service,
        "by": note.by,
        "reason": note.reason,
        "at": to_iso(now),
    }
    try:
        return registry.transition(event, state, now=now, by=note.by, note=record, **kwargs)
    except TransitionRefusedError as exc:
        raise PauseRefusedError(f"{exc}; traffic untouched") from exc


__all__ = ["PauseRefusedError", "PauseResult", "pause", "pause_for_alarm", "paused_reason", "resume"]
