"""The slice half of ``canarywise resume``: acknowledge the slice regressions that hold a rollout.

A regression proven in a slice that does not roll back holds the stage (`canarywise.decision.slices`).
``canarywise resume --reason …`` (`canarywise.cli.pause`) resumes a paused rollout and, here, reads the
rollout's latest check, and records an acknowledgement per slice finding holding it — who (the caller's
identity), why (``--reason``), which metric and slice, and the finding's numbers — with
``Registry.acknowledge_slice``. The next significance check no longer holds on those slices. Traffic is not
touched. ``--slice METRIC:SLICE`` picks findings (default: every one holding).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from canarywise.cli.deployment import OperatorError
from canarywise.cli.main import UsageError

if TYPE_CHECKING:
    from canarywise.data.registry import Registry


def picked_slices(values: Sequence[str] | None) -> set[tuple[str, str]] | None:
    """``--slice METRIC:SLICE`` values as (metric, slice) pairs; None when none was given."""
    if not values:
        return None
    out = set()
    for value in values:
        metric, sep, slice_ = value.partition(":")
        if not sep or not metric or not slice_:
            raise UsageError(f"--slice must be METRIC:SLICE (e.g. escalation_rate:other), found {value!r}")
        out.add((metric, slice_))
    return out


def holding_findings(details: dict[str, Any]) -> list[dict[str, Any]]:
    """The slice findings proven worse in a check's details (the ones a slice hold names)."""
    return [
        f for f in details.get("findings", []) if f.get("slice") is not None and f.get("verdict") == "harm"
    ]


def acknowledge_held_slices(
    registry: Registry,
    experiment_id: str | None,
    *,
    by: str,
    reason: str,
    now: datetime,
    picked: set[tuple[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Acknowledge the slice findings holding `experiment_id` (its latest check is a HOLD naming them); the
    entries recorded, empty when nothing holds. `OperatorError` when `picked` names a finding not holding."""
    if experiment_id is None:
        return []
    experiment = registry.get_experiment(experiment_id)
    check = experiment.latest_check
    held = holding_findings(check.details) if check is not None and check.decision == "HOLD" else []
    if picked is not None:
        known = {(f["metric"], f["slice"]) for f in held}
        unknown = sorted(picked - known)
        if unknown:
            names = ", ".join(f"{m}:{s}" for m, s in sorted(known)) or "none"
            raise OperatorError(
                f"resume refused: {', '.join(f'{m}:{s}' for m, s in unknown)} does not hold experiment "
                f"{experiment_id} (holding: {names})"
            )
        held = [f for f in held if (f["metric"], f["slice"]) in picked]
    return [
        registry.acknowledge_slice(
            experiment_id,
            metric=f["metric"],
            slice_=f["slice"],
            by=by,
            reason=reason,
            now=now,
            finding=f,
            stage_index=check.stage_index if check else -1,
        )
        for f in held
    ]
