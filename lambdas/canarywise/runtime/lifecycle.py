"""Take a lifecycle transition, then make the listener rule say what it asks for, and verify it.

`Lifecycle.take` applies one row of `canarywise.lifecycle.table.TRANSITIONS` (a conditional write with the
caller's version); `Lifecycle.settle` writes the forward of the *newest* state to the rule, reads it back,
and re-reads the version: if another writer moved the service on meanwhile, it writes that newer forward
instead, and tells its caller it was superseded. So a stale writer never leaves its forward on the rule,
even when its ``ModifyRule`` lands after a newer writer's (a rollback's) — it puts the newer one back.

Example
-------
>>> lifecycle = Lifecycle("mangaassist", registry, traffic)  # doctest: +SKIP
>>> state = lifecycle.take(Event.STAGE_STARTED, percent=5, now=now, by="me")  # doctest: +SKIP
>>> lifecycle.settle(state).forward  # doctest: +SKIP
{'blue': 95, 'green': 5}
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from canarywise.data.registry import Registry
from canarywise.data.traffic import TrafficError, TrafficSplit
from canarywise.lifecycle.state import LifecycleError, ServiceState, TransitionRefusedError
from canarywise.lifecycle.table import Event

logger = Logger(child=True)

# How many newer versions `settle` follows before it gives up (each is another writer's transition).
_SETTLE_ROUNDS = 5


class SupersededError(LifecycleError):
    """Another transition moved the service on while this one set traffic; the rule holds the newer one."""


@dataclass(frozen=True)
class Lifecycle:
    """One service's lifecycle: its registry state and its listener rule."""

    service: str
    registry: Registry
    traffic: TrafficSplit

    def state(self, now: datetime) -> ServiceState:
        """The service's state; the first time, taken from the rule (the slot with the most weight is live).

        This is also the migration from fixed control/canary groups: a deployment whose last release was
        promoted into the "canary" group finds that group live, and the next candidate goes into "control".
        """
        state = self.registry.service_state(self.service)
        if state is not None:
            return state
        current = self.traffic.current()
        slots = list(self.traffic.target_groups)
        live = max(slots, key=lambda slot: (current.get(slot, 0), -slots.index(slot)))
        idle = next(slot for slot in slots if slot != live)
        logger.info("service state initialised from the listener rule", extra={"live": live, "rule": current})
        initial = ServiceState.initial(
            self.service, live=live, idle=idle, now=now, by="initialised from the rule"
        )
        return self.registry.initialise_service_state(initial)

    def take(
        self, event: Event, *, now: datetime, by: str, state: ServiceState | None = None, **kwargs: Any
    ) -> ServiceState:
        """Apply `event` from `state` (default: the state read now). `TransitionRefusedError` if refused."""
        return self.registry.transition(event, state or self.state(now), now=now, by=by, **kwargs)

    def settle(self, state: ServiceState) -> ServiceState:
        """Make the rule say what the newest state asks for, read it back, and return that state.

        Raises
        ------
        SupersededError
            When a newer transition than `state` stands (the rule then holds the newer forward, verified).
        TrafficError
            When the rule cannot be set or does not read back as asked.
        """
        target = state
        for _ in range(_SETTLE_ROUNDS):
            newest = self._newest(target)
            if newest.version != target.version:
                target = newest
                continue
            self.traffic.apply(target)
            # Another writer may have taken a transition while this one wrote: if so, its forward wins.
            after = self._newest(target)
            if after.version == target.version:
                break
            target = after
        else:
            raise TrafficError(f"{self.service} kept changing while its listener rule was set")
        if target.version != state.version:
            raise SupersededError(
                f"{state.last_event} (version {state.version}) was superseded by {target.last_event} "
                f"(version {target.version}, by {target.updated_by or 'unknown'}); "
                f"the rule holds {target.forward}"
            )
        return target

    def drift(self, state: ServiceState) -> str | None:
        """How the rule differs from what `state` asks for, or None (an unreadable rule is a difference)."""
        try:
            found = {slot: weight for slot, weight in self.traffic.current().items() if weight > 0}
        except TrafficError as exc:
            return f"the rule cannot be read ({exc})"
        wanted = {slot: weight for slot, weight in state.forward.items() if weight > 0}
        return None if found == wanted else f"the rule forwards {found}, the registry says {wanted}"

    def _newest(self, state: ServiceState) -> ServiceState:
        newest = self.registry.service_state(self.service)
        if newest is None or newest.version < state.version:
            raise LifecycleError(f"{self.service}'s state went back in time (version {state.version})")
        return newest


__all__ = ["Lifecycle", "SupersededError", "TransitionRefusedError"]
