"""One look of a shadow phase: paired series from CloudWatch → the shadow gate → the registry.

The look reads the phase's spec and start from the registry (the spec as it was when the phase started), the
paired aggregates since then (`canarywise.data.metric_source.paired`), decides with
`canarywise.decision.shadow.decide_shadow` and stores the decision with its numbers and reasons. CloudWatch
that cannot be read is a HOLD with the reason, stored like any other decision, never a pass.

Example
-------
>>> decision = check_shadow(shadow_id="mangaassist-shadow-v2", now=now, registry=registry,  # doctest: +SKIP
...                         source=PairedSource(cloudwatch))
>>> decision.kind  # doctest: +SKIP
<DecisionKind.REJECTED: 'REJECTED'>
"""

from __future__ import annotations

import json
from datetime import datetime

from aws_lambda_powertools import Logger

from canarywise.data.metric_source import MetricSourceError
from canarywise.data.metric_source.paired import PairedSource
from canarywise.data.models import CheckRecord
from canarywise.data.registry import Registry, RegistryError
from canarywise.decision.models import Decision, DecisionKind
from canarywise.decision.shadow import SHADOW_STAGE, decide_shadow
from canarywise.errors import CanarywiseError
from canarywise.spec import parse_stored_spec

logger = Logger(child=True)


def check_shadow(*, shadow_id: str, now: datetime, registry: Registry, source: PairedSource) -> Decision:
    """Decide the shadow phase `shadow_id` at `now` and record the look; the decision is returned."""
    phase = registry.shadow_phase(shadow_id)
    if phase is None:
        raise RegistryError(f"no shadow phase {shadow_id!r} in the registry")
    spec, _ = parse_stored_spec(json.loads(phase["spec"]), source=f"shadow phase {shadow_id}")
    started_at = datetime.fromisoformat(phase["started_at"])
    try:
        observations = source.observe(spec, started_at, now)
    except MetricSourceError as exc:
        decision = Decision(DecisionKind.HOLD, (f"paired metrics unreadable: {exc}",), (), SHADOW_STAGE, now)
    else:
        decision = decide_shadow(spec, started_at, observations, now)
    registry.record_shadow_check(
        shadow_id,
        CheckRecord(
            checked_at=now,
            stage_index=SHADOW_STAGE,
            decision=decision.kind.value,
            reason=decision.reason,
            harm=decision.kind is DecisionKind.REJECTED,
            details=decision.to_dict(),
        ),
    )
    return decision


def check_running_shadows(
    *, service: str, now: datetime, registry: Registry, source: PairedSource
) -> dict[str, str]:
    """One look at each of the service's running shadow phases (the scheduled significance check calls it):
    phase id → its decision, or ``"FAILED: <why>"`` (one phase failing never stops the others)."""
    decisions: dict[str, str] = {}
    for shadow_id in registry.list_running_shadows(service):
        try:
            decisions[shadow_id] = check_shadow(
                shadow_id=shadow_id, now=now, registry=registry, source=source
            ).kind.value
        except CanarywiseError as exc:
            logger.exception("shadow look failed", extra={"shadow_id": shadow_id})
            decisions[shadow_id] = f"FAILED: {type(exc).__name__}: {exc}"
    return decisions
