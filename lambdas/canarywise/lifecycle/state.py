"""A service's traffic state: which slot is live, which is idle, the forward weights asked for, the version.

Pure: no boto3. The registry stores it (``SERVICE#<service>`` / ``STATE``) and changes it only through
`canarywise.lifecycle.table.TRANSITIONS`; `ServiceState.after` computes what a transition asks for.

Example
-------
>>> state = ServiceState.initial("mangaassist", live="blue", idle="green", now=T0)  # doctest: +SKIP
>>> state.after(TRANSITIONS[Event.STAGE_STARTED], percent=5).forward  # doctest: +SKIP
{'blue': 95, 'green': 5}
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from canarywise.data.models import UtcDatetime, Weights
from canarywise.errors import CanarywiseError
from canarywise.lifecycle.table import Phase, Traffic, Transition

SCHEMA_VERSION = 1


class LifecycleError(CanarywiseError):
    """A lifecycle request cannot be carried out; the subclass says why."""


class TransitionRefusedError(LifecycleError):
    """The transition's conditions do not hold (wrong phase or status, or a stale version): nothing changed.

    The message is one line: the event, what was expected, what was found.
    """


class ServiceState(BaseModel):
    """What the registry holds about one service's traffic (one item, versioned)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    service: str
    version: Annotated[int, Field(ge=0)]
    phase: Phase
    live: str
    idle: str
    # The forward action asked for: slot → ALB weight, only the slots the action names. A slot that is not
    # named receives no request, whatever cookie a client carries.
    forward: dict[str, Annotated[int, Field(ge=0, le=999)]]
    experiment_id: str | None = None
    updated_at: UtcDatetime
    updated_by: str = ""
    last_event: str = ""
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def initial(cls, service: str, *, live: str, idle: str, now: datetime, by: str = "") -> ServiceState:
        """A service with everything on `live` (version 0)."""
        return cls(
            service=service,
            version=0,
            phase=Phase.STEADY,
            live=live,
            idle=idle,
            forward={live: 100},
            updated_at=now,
            updated_by=by,
            last_event="initialised",
        )

    @property
    def sticky(self) -> bool:
        """Stickiness is on only while the forward names both slots (a single slot needs none)."""
        return len([w for w in self.forward.values() if w > 0]) > 1

    def role_weights(self) -> Weights:
        """The forward as the experiment sees it: control = live slot, canary = idle slot, in percent."""
        total = sum(self.forward.values())
        canary = round(100 * self.forward.get(self.idle, 0) / total) if total else 0
        return Weights(control=100 - canary, canary=canary)

    def after(
        self,
        transition: Transition,
        *,
        percent: float | None = None,
        experiment_id: str | None = None,
        now: datetime,
        by: str,
    ) -> ServiceState:
        """The state `transition` leads to (version + 1); `percent` is the stage's canary share."""
        live, idle = (self.idle, self.live) if transition.swaps_roles else (self.live, self.idle)
        forward = dict(self.forward)
        match transition.traffic:
            case Traffic.STAGE_SHARE:
                if percent is None or not 0 < percent < 100 or percent != int(percent):
                    raise LifecycleError(
                        f"a stage's share must be a whole percent in (0, 100), found {percent!r}"
                    )
                forward = {live: 100 - int(percent), idle: int(percent)}
            case Traffic.ALL_IDLE:
                forward = {idle: 100}
            case Traffic.ONLY_LIVE:
                forward = {live: 100}
            case Traffic.UNCHANGED:
                pass
        ends = transition.service_to is Phase.STEADY
        return self.model_copy(
            update={
                "version": self.version + 1,
                "phase": transition.service_to,
                "live": live,
                "idle": idle,
                "forward": forward,
                "experiment_id": None if ends else (experiment_id or self.experiment_id),
                "updated_at": now,
                "updated_by": by,
                "last_event": transition.event.value,
            }
        )
