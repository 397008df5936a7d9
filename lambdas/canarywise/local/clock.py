"""Accelerated time for local mode: a simulated clock, and the state machine paced to it.

- :class:`SimulatedClock` is "now" in the simulation. The significance check already takes its time from
  the scheduled event; the other handlers read the wall clock (``datetime.now(UTC)``), so
  :func:`use_simulated_clock` points their module's ``datetime`` at one whose ``now()`` is the simulated
  clock.
- :class:`GatePacer` makes the state machine ask its gate once per simulated check interval. The state
  machine's waits come from the execution input (0 s locally); the pacer holds each ``gate`` invocation until
  the simulation has played the next five minutes and run the significance check, as the real five-minute
  wait would.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from types import ModuleType
from typing import Any

from canarywise.errors import CanarywiseError
from canarywise.local.lambda_runtime import InProcessLambdaRuntime

STAGE_GATE_HANDLER = "canarywise.handlers.stage_gate.handler"


class PacingError(CanarywiseError, TimeoutError):
    """The state machine did not come back to its gate in time (it is stuck or failed)."""


class SimulatedClock:
    """The simulation's "now" (UTC), moved forward by the simulation only.

    Example
    -------
    >>> clock = SimulatedClock(datetime(2026, 11, 16, 9, 0, tzinfo=UTC))
    >>> clock.advance(timedelta(minutes=5)).isoformat()
    '2026-11-16T09:05:00+00:00'
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError(f"`start` must be timezone-aware, found {start.isoformat()!r}")
        self._now = start.astimezone(UTC)
        self.start = self._now

    def now(self) -> datetime:
        return self._now

    def advance(self, step: timedelta) -> datetime:
        self._now = self._now + step
        return self._now

    def move_to(self, moment: datetime) -> datetime:
        """Set the clock to `moment`, which must not be in its past."""
        if moment < self._now:
            raise ValueError(
                f"the simulated clock only moves forward: {moment.isoformat()} < {self._now.isoformat()}"
            )
        self._now = moment
        return self._now

    @property
    def hours(self) -> float:
        """Simulated hours since the start."""
        return (self._now - self.start).total_seconds() / 3600


def _simulated_datetime(clock: SimulatedClock) -> type[datetime]:
    class SimulatedDatetime(datetime):
        """``datetime`` whose ``now()`` is the simulated clock (everything else unchanged)."""

        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Any:
            moment = clock.now()
            return moment.astimezone(tz) if tz is not None else moment.replace(tzinfo=None)

    return SimulatedDatetime


def use_simulated_clock(clock: SimulatedClock, runtime: InProcessLambdaRuntime) -> Callable[[], None]:
    """Make the handlers' ``datetime.now`` read `clock`; returns the undo.

    A handler module is patched when `runtime` first imports it (importing it earlier, outside a function's
    environment, would leave its Powertools Metrics without a namespace).
    """
    replacement = _simulated_datetime(clock)
    patched: list[ModuleType] = []

    def patch(module: ModuleType) -> None:
        if getattr(module, "datetime", None) is datetime:
            module.datetime = replacement  # type: ignore[attr-defined]
            patched.append(module)

    prefix = "canarywise.handlers."
    for name, module in list(sys.modules.items()):
        if name.startswith(prefix) and module is not None:
            patch(module)
    runtime.module_hooks.append(patch)

    def undo() -> None:
        runtime.module_hooks.remove(patch)
        for module in patched:
            module.datetime = datetime  # type: ignore[attr-defined]

    return undo


class GatePacer:
    """Holds the state machine at its gate until the simulation releases the next check interval.

    Install :meth:`hook` as a ``before_invoke`` hook of the in-process Lambda runtime. Then, per tick: play
    the traffic, run the significance check, :meth:`release` the gate and :meth:`wait_parked` until the state
    machine has acted on the decision and waits at its gate again (or has ended).
    """

    def __init__(self, *, timeout: float = 60.0) -> None:
        self._condition = threading.Condition()
        self._released = 0
        self._served = 0
        self._waiting = False
        self._closed = False
        self.timeout = timeout

    def hook(self, handler: str, event: Any) -> None:
        if handler != STAGE_GATE_HANDLER or not isinstance(event, dict) or event.get("action") != "gate":
            return
        with self._condition:
            self._waiting = True
            self._condition.notify_all()
            while self._released <= self._served and not self._closed:
                self._condition.wait(timeout=1.0)
            self._waiting = False
            self._served = max(self._served + 1, self._released)
            self._condition.notify_all()

    def release(self) -> None:
        """Let the state machine ask its gate once more."""
        with self._condition:
            self._released += 1
            self._condition.notify_all()

    def wait_parked(self, ended: Callable[[], bool], *, poll: float = 0.05) -> None:
        """Wait until the state machine waits at a gate with nothing released, or `ended()` is true."""
        deadline = time.monotonic() + self.timeout
        next_poll = time.monotonic() + poll
        with self._condition:
            while not (self._waiting and self._served >= self._released):
                now = time.monotonic()
                if now >= next_poll:
                    self._condition.release()
                    try:
                        if ended():
                            return
                    finally:
                        self._condition.acquire()
                    next_poll = time.monotonic() + poll
                if now > deadline:
                    raise PacingError(
                        f"the state machine did not return to its gate within {self.timeout:g} s"
                    )
                self._condition.wait(timeout=0.005)

    def close(self) -> None:
        """Release any held gate for good (the simulation is over)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
