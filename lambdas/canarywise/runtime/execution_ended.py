"""A canary or promote execution that ended FAILED, TIMED_OUT or ABORTED: end in a verified state, once.

EventBridge delivers Step Functions' "Execution Status Change" events (their ``detail`` carries what
DescribeExecution returns: the execution, its status, its input and, when it failed, its error and cause) to
the rollback function (fault table, row 6). What happens depends on the experiment the execution was
running (read from its input: the canary's release candidate, or the promote's ``experiment_id``):

- still in progress (RUNNING, READY_FOR_APPROVAL, APPROVED, or ROLLING_BACK by a taker that died): it is
  rolled back as any trigger would — traffic on the live slot, read back, one record, one alert — with a
  reason naming the execution. A promote refused before it moved anything (``PromoteRefusedError``) is the
  exception: the rollout stays as it was, and a person is told;
- concluded (rolled back, rejected, promoted): the rollback or promotion that ended it already said so (the
  canary's own "Rolled back" and "Superseded" endings, an execution the rollback stopped): nothing is sent;
- none (the execution failed at its start: a bad manifest, a cooldown, another rollout in progress) or a
  promote refused: nothing of it holds traffic; one alert says what failed.

Example
-------
>>> ended(event, service="mangaassist", registry=registry, lifecycle=lifecycle,  # doctest: +SKIP
...       executions=executions, alerts=alerts, now=now).outcome
'ALERTED'
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict

from canarywise.data.executions import AlertTopic
from canarywise.data.models import Experiment, ExperimentStatus
from canarywise.data.registry import ExperimentNotFoundError, Registry, experiment_id_for
from canarywise.runtime.events import MAX_REASON_CHARS, EventError, RollbackRequest
from canarywise.runtime.lifecycle import Lifecycle
from canarywise.runtime.rollback import RollbackResult, roll_back

logger = Logger(child=True)

SOURCE = "aws.states"
ENDED = {"FAILED", "TIMED_OUT", "ABORTED"}
# An execution ending with these moved nothing (a refused promote): never a reason to roll back.
_REFUSED = {"PromoteRefusedError"}
_IN_PROGRESS = {
    ExperimentStatus.RUNNING,
    ExperimentStatus.READY_FOR_APPROVAL,
    ExperimentStatus.APPROVED,
    ExperimentStatus.ROLLING_BACK,
}


class _Detail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    executionArn: str  # noqa: N815 - Step Functions' field names
    stateMachineArn: str  # noqa: N815
    status: str
    name: str = ""
    input: str | None = None
    error: str | None = None
    cause: str | None = None


class _ExecutionEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    source: str
    detail: _Detail


def ended(
    event: Any, *, service: str, registry: Registry, lifecycle: Lifecycle, now: datetime, **rollback: Any
) -> RollbackResult:
    """Act on one execution status change (see the module docstring)."""
    try:
        detail = _ExecutionEvent.model_validate(event).detail
    except ValueError as exc:
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise EventError(f"malformed Step Functions event: {first[0].strip()}") from exc
    machine = detail.stateMachineArn.rsplit(":", 1)[-1]
    what = f"the {machine} execution {detail.name or detail.executionArn} ended {detail.status}"
    if detail.error:
        what += f" ({detail.error}: {(detail.cause or '')[:300]})"
    if detail.status not in ENDED:
        return RollbackResult(outcome="IGNORED", reason=f"{what}: not a failure")
    experiment = _experiment_of(detail, service, registry)
    if experiment is not None and experiment.status in _IN_PROGRESS and detail.error not in _REFUSED:
        request = RollbackRequest(
            source=SOURCE,
            reason=f"{what}, with its rollout in progress"[:MAX_REASON_CHARS],
            experiment_id=experiment.experiment_id,
            trigger_id=f"execution@{detail.executionArn}",
        )
        # `rollback`: what `roll_back` needs besides (executions, alerts, approvals).
        return roll_back(
            request, service=service, registry=registry, lifecycle=lifecycle, now=now, **rollback
        )
    if experiment is not None and detail.error not in _REFUSED:
        logger.info("execution ended after its experiment concluded", extra={"execution": what})
        return RollbackResult(
            outcome="IGNORED",
            reason=f"{what}: experiment {experiment.experiment_id} is {experiment.status}, already told",
            experiment_ids=(experiment.experiment_id,),
        )
    live = lifecycle.state(now).live
    held = f"experiment {experiment.experiment_id} is {experiment.status}" if experiment else "no experiment"
    reason = f"{what}: {held}; nothing of it was rolled back, all traffic stays on {live!r} as it was"
    try:
        alerts: AlertTopic = rollback["alerts"]
        alerts.publish(f"canarywise: {service} {machine} execution {detail.status}", {"reason": reason})
        notified = True
    except Exception:  # logged; the function's own error alarm does not see it, the log does
        logger.exception("could not alert on a failed execution", extra={"reason": reason})
        notified = False
    return RollbackResult(outcome="ALERTED", reason=reason, notified=notified, live=live)


def _experiment_of(detail: _Detail, service: str, registry: Registry) -> Experiment | None:
    """The experiment the execution ran: the promote's ``experiment_id``, or the canary's (its id follows
    from the release candidate and the execution, as ``start`` made it). None when it never began."""
    try:
        data = json.loads(detail.input or "{}")
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    experiment_id = data.get("experiment_id")
    release = data.get("release")
    if not isinstance(experiment_id, str) and isinstance(release, dict):
        candidate = release.get("candidate")
        if isinstance(candidate, str):
            experiment_id = experiment_id_for(service, candidate, detail.executionArn)
    if not isinstance(experiment_id, str):
        return None
    try:
        return registry.get_experiment(experiment_id)
    except ExperimentNotFoundError:
        return None
